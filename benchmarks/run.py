#!/usr/bin/env python3
"""nncli benchmark suite: ratios against references timed in the same run.

    python benchmarks/run.py                       # everything, 1 and 2 threads
    python benchmarks/run.py --quick               # a short run (~minutes)
    python benchmarks/run.py --only gemm,train --threads 1 --out /tmp/r.json
    python benchmarks/run.py --only speed --baseline /tmp/old-checkout   # issue 12's table
    python benchmarks/run.py --only ensemble --baseline /work/main       # --ensemble before/after

Prints a table and writes JSON (benchmarks/results.json by default). See benchmarks/README.md.
Not part of the test suite.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SECTIONS = ("gemm", "train", "cli", "load", "stream", "speed", "export", "ensemble")
REEXEC_MARK = "NNCLI_BENCH_REMOVED_ENV"


def reexec_without_openblas_overrides():
    """OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE can pick a slower OpenBLAS kernel for numpy (the
    reference): run again with both unset, remembering what was removed."""
    from common import OPENBLAS_VARS
    if REEXEC_MARK in os.environ:
        return json.loads(os.environ[REEXEC_MARK])
    removed = {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ}
    if not removed:
        return {}
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
    env[REEXEC_MARK] = json.dumps(removed)
    print(f"[bench] unsetting {', '.join(f'{k}={v}' for k, v in removed.items())} for the numpy "
          "reference; re-executing", file=sys.stderr, flush=True)
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(SECTIONS),
                   help="comma-separated sections to run: gemm,train,cli,load,stream,speed,export,ensemble "
                        "(default: all)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    p.add_argument("--threads", default="1,2", help="thread counts to compare at (default 1,2)")
    p.add_argument("--train-configs", default=None,
                   help="subset of training configs: seed,tabular,mnist,wide (default: all)")
    p.add_argument("--out", default=os.path.join(HERE, "results.json"),
                   help="JSON output path (default benchmarks/results.json)")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help="do not unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    p.add_argument("--baseline", default=None,
                   help="speed and ensemble sections: also measure this built checkout (the "
                        "'today' column; the ensemble's command before the change)")
    p.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in args.only if s not in SECTIONS]
    if bad:
        p.error(f"unknown section(s) {', '.join(bad)}; choose from {', '.join(SECTIONS)}")
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        p.error("--threads takes integers, e.g. 1,2")
    if not args.threads or min(args.threads) < 1:
        p.error("--threads takes positive integers")
    if args.train_configs:
        args.train_configs = [c.strip() for c in args.train_configs.split(",") if c.strip()]
    return args


def status(r):
    if r.met is None:
        return ""
    return "met" if r.met else "NOT MET"


def print_table(results, out=sys.stdout):
    from common import fmt
    head = ("benchmark", "thr", "nncli", "reference", "unit", "ratio", "target", "status")
    rows = []
    for r in results:
        tgt = f"{r.target_op} {r.target:g}×" if r.target is not None else ""
        rows.append((r.section, (r.name, "" if r.threads is None else str(r.threads), fmt(r.ours),
                                 fmt(r.ref), r.unit, f"{r.ratio:.3g}×" if r.ratio is not None else "—",
                                 tgt, status(r)), r.note))
    widths = [max([len(head[i])] + [len(row[1][i]) for row in rows]) for i in range(len(head))]
    widths[0] = min(widths[0], 60)

    def line(cells):
        return "  ".join(c.ljust(w) if i in (0, 4, 7) else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    section = None
    for sec, cells, note in rows:
        if sec != section:
            section = sec
            print(f"\n== {sec} " + "=" * 40, file=out)
            print(line(head), file=out)
        print(line(cells), file=out)
        if note:
            print(" " * 4 + "↳ " + note, file=out)
    met = sum(1 for r in results if r.met is True)
    judged = sum(1 for r in results if r.met is not None)
    print(f"\ntargets met: {met}/{judged}", file=out)


def main(argv=None):
    args = parse_args(argv)
    removed = {} if args.keep_openblas_env else reexec_without_openblas_overrides()
    from common import environment, import_nncli, to_json
    import_nncli()
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.verbose else (lambda msg: None)
    env = environment({k: v for k, v in vars(args).items()}, removed)
    print(f"nncli {env['nncli']} ({env['nncli_path']}), GEMM path {env['nncli_gemm_isa']}; "
          f"commit {env['commit']}")
    print(f"CPU {env['cpu']} ×{env['cpus_usable']}; python {env['python']}, numpy {env['numpy']}, "
          f"torch {env.get('torch') or 'not importable'}, scikit-learn {env.get('sklearn') or 'not importable'}")
    for b in env["blas"]:
        if b.get("user_api") == "blas":
            print(f"numpy BLAS: {b.get('internal_api')} {b.get('version')}, kernel "
                  f"{b.get('architecture')}, {b.get('threading_layer')}, {b.get('num_threads')} threads")
    if removed:
        print(f"(unset for this run: {', '.join(f'{k}={v}' for k, v in removed.items())})")
    elif args.keep_openblas_env:
        from common import OPENBLAS_VARS
        kept = {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ}
        if kept:
            print(f"(kept: {kept} — numpy's reference may be slower than it should be)")
    print(f"threads {args.threads}; {'quick' if args.quick else 'full'} run; sections {','.join(args.only)}",
          flush=True)

    results = []
    timings = {}
    for sec in args.only:
        t0 = time.perf_counter()
        log(f"[{sec}]")
        try:
            if sec == "gemm":
                import bench_gemm
                results += bench_gemm.run(args.threads, args.quick, log)
            elif sec == "train":
                import bench_train
                results += bench_train.run(args.threads, args.quick, log, args.train_configs)
            elif sec == "cli":
                import bench_cli
                results += bench_cli.run(args.threads, args.quick, log)
            elif sec == "speed":
                import bench_speed
                results += bench_speed.run(args.threads, args.quick, log, args.baseline)
            elif sec == "load":
                import bench_load
                results += bench_load.run(args.threads, args.quick, log)
            elif sec == "stream":
                import bench_stream
                results += bench_stream.run(args.threads, args.quick, log)
            elif sec == "export":
                import bench_export
                results += bench_export.run(args.threads, args.quick, log)
            elif sec == "ensemble":
                import bench_ensemble
                results += bench_ensemble.run(args.threads, args.quick, log, args.baseline)
        except Exception as e:  # one broken section must not lose the others
            import traceback
            traceback.print_exc()
            from common import Result
            results.append(Result(sec, f"{sec} section", note=f"crashed: {type(e).__name__}: {e}"))
        timings[sec] = time.perf_counter() - t0
    env["section_seconds"] = timings
    print_table(results)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(to_json(results, env), f, indent=1, default=str)
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
