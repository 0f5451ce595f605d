"""Issue 12's table in one command: nncli's speed against OpenBLAS (numpy) and PyTorch.

    python benchmarks/run.py --only speed [--quick] [--baseline TREE]

Rows (every ratio against its reference timed in the same process):
  - own GEMM vs numpy.matmul, float32 and float64, 512³ … 2048³, 1 and 2 threads
  - own GEMM at the training shapes (mnist 784-256-128-10 b128, wide 512-2048-2048-10 b256;
    the forward h·Ωᵀ, weight gradient δᵀ·h and input gradient δ·Ω of every layer)
  - training epoch GFLOP/s against numpy's sgemm GFLOP/s on the same products (wide, mnist)
  - samples/s of wide and mnist against PyTorch, 1 and 2 threads
  - samples/s of a tanh / sigmoid / gelu / elu / softplus / sin network against the same relu
    network, mnist shape, 1 thread
  - mnist training and predict on 2 threads against 1 while a spinning process takes the
    other core (a shared machine; no issue target, ≥ 0.9 expected)
  - GFLOP/s as a fraction of this CPU's FMA peak, measured with a tiny FMA loop
    (nncli._kernels.gemm.fma_probe) at 256 and 512 bits.

Every measurement runs in a subprocess whose nncli comes from a source tree (PYTHONPATH);
--baseline TREE runs the same measurements on another built checkout (e.g. the commit before
a change) right after, and the table shows both columns. PyTorch runs in its own processes
(its OpenMP threads never share one with nncli's pool), turn by turn against nncli's.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import REPO, Result  # noqa: E402

NETS = {"mnist": ([784, 256, 128, 10], 128), "wide": ([512, 2048, 2048, 10], 256)}
ACTS = ["tanh", "sigmoid", "gelu", "elu", "softplus", "sin"]
SQUARE = [512, 1024, 2048]
TURN = 0.25   # seconds of timed epochs per turn of a duel against PyTorch


# --------------------------------------------------------------------- worker parts ---
def train_products(widths, B):
    """(label, (M, N, K), trans_a, trans_b) of one training step, in dense.pyx's layouts."""
    out = []
    for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        out.append((f"L{k + 1} fwd h·Ωᵀ", (B, n_out, n_in), False, True))
        out.append((f"L{k + 1} dΩ δᵀ·h", (n_out, n_in, B), True, False))
        if k > 0:
            out.append((f"L{k + 1} dh δ·Ω", (B, n_in, n_out), False, False))
    return out


def _time_pair(f_ours, f_ref, repeats, min_block, threads):
    """Best seconds per call of each, interleaved blocks. One thread: the calling thread's CPU
    time (both libraries then compute in this thread), which leaves out the time other
    processes held the core -- on a shared machine wall-clock blocks swing by 10-20 %.
    Two threads: wall time (a waiting thread's spinning would count as CPU time)."""
    clock = time.thread_time if threads == 1 else time.perf_counter
    best = {}
    n = {}
    for key, f in (("ours", f_ours), ("ref", f_ref)):
        f()
        t0 = clock()
        f()
        n[key] = max(1, int(min_block / max(clock() - t0, 1e-9)))
        best[key] = float("inf")
    for _ in range(repeats):
        for key, f in (("ours", f_ours), ("ref", f_ref)):
            if threads > 1:
                time.sleep(0.12)   # OpenBLAS's workers spin after a call: let them sleep
            t0 = clock()
            for _ in range(n[key]):
                f()
            best[key] = min(best[key], (clock() - t0) / n[key])
    return best["ours"], best["ref"]


def part_gemm(spec):
    from threadpoolctl import threadpool_limits
    from nncli._kernels.gemm import matmul
    quick = spec["quick"]
    repeats, min_block = (3, 0.03) if quick else (5, 0.06)
    cases = [(f"{d} {n}³", (n, n, n), False, False, d) for d in ("float32", "float64")
             for n in (SQUARE[:2] if quick else SQUARE)]
    for net, (widths, B) in NETS.items():
        cases += [(f"float32 {net} {lab}", shp, ta, tb, "float32")
                  for lab, shp, ta, tb in train_products(widths, B)]
    rng = np.random.default_rng(0)
    rows = []
    for label, (M, N, K), ta, tb, dname in cases:
        dt = np.dtype(dname)
        a = rng.standard_normal((K, M) if ta else (M, K)).astype(dt)
        b = rng.standard_normal((N, K) if tb else (K, N)).astype(dt)
        c1, c2 = np.empty((M, N), dt), np.empty((M, N), dt)
        av, bv = (a.T if ta else a), (b.T if tb else b)
        for n in spec["threads"]:
            with threadpool_limits(limits=n, user_api="blas"):
                t_o, t_r = _time_pair(
                    lambda: matmul(a, b, trans_a=ta, trans_b=tb, out=c1, n_threads=n),
                    lambda: np.matmul(av, bv, out=c2), repeats, min_block, n)
            err = float(np.max(np.abs(c1.astype(np.float64) - c2)) / (np.max(np.abs(c2)) + 1e-30))
            tol = (1e-4 if dname == "float32" else 1e-12) * max(1.0, K ** 0.5)
            fl = 2.0 * M * N * K
            rows.append({"label": label, "threads": n, "ours": fl / t_o / 1e9,
                         "ref": fl / t_r / 1e9, "wrong": err > tol, "err": err})
    return rows


def _nncli_runner(widths, B, act, threads, N, seed_data=1234):
    sys.path.insert(0, HERE)
    import bench_train
    cfg = dict(layers=widths, act=act, loss="cross_entropy", batch=B, opt="adam", lr=1e-3)
    rng = np.random.default_rng(seed_data)
    X = rng.standard_normal((N, widths[0])).astype(np.float32)
    labels = (X[:, :widths[-1]].argmax(1)).astype(np.int64)
    Y = np.eye(widths[-1], dtype=np.float32)[labels]
    r = bench_train.NncliRunner(cfg, X, Y, labels, threads)
    return r


def step_flops(widths, B):
    return sum(2.0 * M * N * K for _, (M, N, K), _, _ in train_products(widths, B))


def _numpy_step(widths, B):
    """One training step's products through numpy (OpenBLAS), preallocated outputs."""
    rng = np.random.default_rng(0)
    ops = []
    for _, (M, Nn, K), ta, tb in train_products(widths, B):
        a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
        b = rng.standard_normal((Nn, K) if tb else (K, Nn)).astype(np.float32)
        ops.append(((a.T if ta else a), (b.T if tb else b), np.empty((M, Nn), np.float32)))

    def step():
        for a, b, c in ops:
            np.matmul(a, b, out=c)
    return step


def part_train(spec):
    """Samples/s of nncli nets that differ only in the hidden activation (spec["acts"]), and
    numpy's sgemm GFLOP/s on one step's products if asked: all interleaved, round after
    round, best of each (a noisy machine hits them alike)."""
    from threadpoolctl import threadpool_limits
    widths, B = NETS[spec["net"]]
    n, N = spec["threads"], spec["rows"]
    runners = {}
    for act in spec["acts"]:
        runners[act] = _nncli_runner(widths, B, act, n, N)
        runners[act].fresh()
        runners[act].epoch()            # warm-up (buffers, packing workspaces, thread pool)
    best = {act: 0.0 for act in runners}
    rates = {act: [] for act in runners}
    np_rates = []
    np_best = float("inf")
    step = _numpy_step(widths, B) if spec.get("numpy") else None
    with threadpool_limits(limits=n, user_api="blas"):
        if step:
            step()
            if n > 1:
                time.sleep(0.12)
        t_start = time.perf_counter()
        rounds = 0
        while rounds < 3 or (time.perf_counter() - t_start < spec["min_time"] and rounds < 50):
            rounds += 1
            for act, r in runners.items():
                t0 = time.perf_counter()
                r.epoch()
                rates[act].append(N / (time.perf_counter() - t0))
                best[act] = max(best[act], rates[act][-1])
            if step:
                if n > 1:
                    time.sleep(0.12)   # OpenBLAS's workers spin after a call: let them sleep
                reps = max(1, N // B // 4)
                t0 = time.perf_counter()
                for _ in range(reps):
                    step()
                np_rates.append((time.perf_counter() - t0) / reps)
                np_best = min(np_best, np_rates[-1])
                if n > 1:
                    time.sleep(0.12)   # and again before nncli's next epoch: a spinning
                    # OpenBLAS worker holds the second core the epoch's threads need
    fl = step_flops(widths, B)
    out = {act: {"samples_per_s": v, "gflops": v / B * fl / 1e9} for act, v in best.items()}
    # Ratios within a round (back to back, same load), then their median over the rounds:
    # sturdier than a ratio of two bests when the machine's load drifts.
    base = rates[spec["acts"][0]]
    for act in runners:
        out[act]["vs_first"] = float(np.median([a / b for a, b in zip(rates[act], base)]))
    if step:
        out["numpy_gflops"] = fl / np_best / 1e9
        out["vs_numpy"] = float(np.median([(r / B * fl) / (fl / t)
                                           for r, t in zip(base, np_rates)]))
    return out


def part_busy(spec):
    """Two threads against one with the machine's other core taken by a spinning process
    (what a shared machine does to a parallel run): mnist training epochs and predict over
    the same rows, the two thread counts alternated; medians of per-round ratios."""
    widths, B = NETS["mnist"]
    N = spec["rows"]
    runners = {n: _nncli_runner(widths, B, "relu", n, N) for n in (1, 2)}
    for r in runners.values():
        r.fresh()
        r.epoch()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        train, pred = {1: [], 2: []}, {1: [], 2: []}
        t_start = time.perf_counter()
        while len(train[1]) < 5 or time.perf_counter() - t_start < spec["min_time"]:
            for n, r in runners.items():
                t0 = time.perf_counter()
                r.epoch()
                train[n].append(N / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                r.net.predict(r.X, n_threads=n)
                pred[n].append(N / (time.perf_counter() - t0))
    finally:
        spinner.kill()
        spinner.wait()
    med = lambda d: float(np.median([b / a for a, b in zip(d[1], d[2])]))  # noqa: E731
    return {"train": {"one": float(np.median(train[1])), "two": float(np.median(train[2])),
                      "ratio": med(train)},
            "predict": {"one": float(np.median(pred[1])), "two": float(np.median(pred[2])),
                        "ratio": med(pred)}}


def _torch_epoch(widths, B, n, N):
    """The idiomatic PyTorch loop over N rows like nncli's (same data recipe, relu, Adam,
    cross-entropy): an epoch function, warmed up once."""
    import torch
    from torch import nn
    torch.set_num_threads(n)
    torch.manual_seed(0)
    mods = []
    for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        mods.append(nn.Linear(a, b))
        if k < len(widths) - 2:
            mods.append(nn.ReLU())
    model = nn.Sequential(*mods)
    rng = np.random.default_rng(1234)
    X = torch.from_numpy(rng.standard_normal((N, widths[0])).astype(np.float32))
    Y = X[:, :widths[-1]].argmax(1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lossf = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)

    def epoch():
        perm = torch.randperm(N, generator=gen)
        for i in range(0, N, B):
            idx = perm[i:i + B]
            opt.zero_grad()
            loss = lossf(model(X[idx]), Y[idx])
            loss.backward()
            opt.step()
    epoch()
    return epoch


def part_epochs(spec):
    """One side of a duel, long-lived: builds nncli's net (from its PYTHONPATH tree) or
    PyTorch's, says "ready", then for each line read from stdin (a number of seconds, S) runs
    one epoch untimed and then epochs back to back for at least S seconds, and answers with
    those epochs' samples per second. The untimed epoch takes what a turn's start costs
    (caches the other side filled, a clock that slowed while this side waited: ~10 % of the
    first epoch, both sides alike), which a running training does not pay."""
    widths, B = NETS[spec["net"]]
    n, N = spec["threads"], spec["rows"]
    if spec["side"] == "torch":
        epoch = _torch_epoch(widths, B, n, N)
    else:
        r = _nncli_runner(widths, B, "relu", n, N)
        r.fresh()
        r.epoch()
        epoch = r.epoch
    print("ready", flush=True)
    for line in sys.stdin:
        epoch()
        count, t0 = 0, time.perf_counter()
        while count == 0 or time.perf_counter() - t0 < float(line):
            epoch()
            count += 1
        print(json.dumps(count * N / (time.perf_counter() - t0)), flush=True)


class _Side:
    """A part_epochs process."""
    def __init__(self, tree, spec):
        env = dict(os.environ)
        env["PYTHONPATH"] = tree + os.pathsep + HERE
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, env=env, cwd="/")
        self._read("ready")

    def _read(self, expect=None):
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.err.seek(0)
                tail = self.err.read().strip().splitlines()[-3:]
                raise RuntimeError("epochs worker failed: " + " | ".join(tail))
            line = line.strip()
            if expect is None and line[:1].isdigit():
                return float(line)
            if line == expect:
                return line

    def turn(self, seconds):
        """Samples/s over at least `seconds` of epochs, after an untimed one."""
        self.proc.stdin.write(f"{seconds}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.err.close()


def duel(tree, net, n, rows, min_time):
    """nncli (from tree) against PyTorch on the same rows, turn by turn: two long-lived
    processes, one working while the other waits for its next line, alternated round by
    round (who goes first alternates too); each turn is an untimed epoch and then at least
    TURN seconds of epochs (part_epochs). Returns both sides' best samples/s and the median
    of the rounds' ratios: each round times both within a second or two, so a load that
    drifts over the run (another session starting) hits them alike, where two separate runs
    a minute apart could each catch a different machine."""
    spec = {"part": "epochs", "net": net, "threads": n, "rows": rows}
    sides = {"nncli": _Side(tree, dict(spec, side="nncli"))}
    try:
        sides["torch"] = _Side(REPO, dict(spec, side="torch"))
        rates = {"nncli": [], "torch": []}
        t_start = time.perf_counter()
        while len(rates["nncli"]) < 5 or (time.perf_counter() - t_start < 2 * min_time
                                         and len(rates["nncli"]) < 40):
            order = ("nncli", "torch") if len(rates["nncli"]) % 2 == 0 else ("torch", "nncli")
            for side in order:
                rates[side].append(sides[side].turn(TURN))
                if n > 1:   # the other side's workers spin for a while after its turn
                    time.sleep(0.12)
    finally:
        for side in sides.values():
            side.close()
    return {"ours": max(rates["nncli"]), "torch": max(rates["torch"]),
            "ratio": float(np.median([a / b for a, b in zip(rates["nncli"], rates["torch"])])),
            "rounds": len(rates["nncli"])}


def worker(tree, spec, timeout=900):
    env = dict(os.environ)
    env["PYTHONPATH"] = tree + os.pathsep + HERE
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), json.dumps(spec)],
                          capture_output=True, text=True, env=env, cwd="/", timeout=timeout)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(("{", "["))]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"worker {spec['part']} failed: " + " | ".join(tail))
    return json.loads(lines[-1])


# ------------------------------------------------------------------------ the table ---
def part_cpu(spec):
    return {"peak": fma_peak(), "kind": cpu_kind()}


def fma_peak():
    """GFLOP/s of a tiny FMA loop, 256- and 512-bit, per core (best of 40 short runs)."""
    from nncli._kernels import gemm
    out = {}
    for width in (256, 512):
        if np.isnan(gemm.fma_probe(10, width)):
            continue
        iters = 400_000
        best = float("inf")
        for _ in range(40):   # short runs, the best: a busy machine takes whole time slices
            t0 = time.perf_counter()
            gemm.fma_probe(iters, width)
            best = min(best, time.perf_counter() - t0)
        out[width] = iters * 12 * (width // 32) * 2 / best / 1e9
    return out


def cpu_kind():
    from nncli._kernels import gemm
    vendor, family, model = gemm.cpu()
    names = {("amd", 23): "AMD Zen 1/2", ("amd", 25): "AMD Zen 3/4", ("amd", 26): "AMD Zen 5"}
    kind = names.get((vendor, family), f"{vendor} family {family} model {model}")
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            fl = next(l for l in f if l.startswith("flags")).split()
        flags = " ".join(x for x in ("avx2", "fma", "avx512f", "amx_tile") if x in fl)
    except (OSError, StopIteration):
        pass
    return f"{kind} ({vendor} family {family} model {model}; {flags})"


ROWS = {"mnist": (2048, 4096), "wide": (512, 1024)}   # (quick, full) rows per epoch


def measure_tree(tree, threads, quick, log):
    res = {}
    t0 = time.perf_counter()
    res["gemm"] = worker(tree, {"part": "gemm", "threads": threads, "quick": quick})
    log(f"  [{tree}] gemm {time.perf_counter() - t0:.0f}s")
    min_time = 1.0 if quick else 2.5
    for net in NETS:
        for n in threads:
            res[f"train {net} {n}"] = worker(tree, {
                "part": "train", "net": net, "threads": n, "rows": ROWS[net][not quick],
                "min_time": min_time, "numpy": True, "acts": ["relu"]})
    if 2 in threads and len(os.sched_getaffinity(0)) >= 2:
        res["busy"] = worker(tree, {"part": "busy", "rows": ROWS["mnist"][not quick],
                                    "min_time": min_time})
    for net in NETS:
        for n in threads:
            try:
                res[f"duel {net} {n}"] = duel(tree, net, n, ROWS[net][not quick], min_time)
            except RuntimeError as e:   # no PyTorch here
                log(f"  [{tree}] PyTorch duel {net} {n} skipped: {e}")
    res["acts"] = worker(tree, {"part": "train", "net": "mnist", "threads": 1,
                                "acts": ["relu"] + ACTS, "rows": ROWS["mnist"][not quick],
                                "min_time": 2 * min_time})
    log(f"  [{tree}] train {time.perf_counter() - t0:.0f}s")
    return res


def table(trees, threads, quick, log):
    """Measure each tree (label → path); return Result rows (the last tree's ratios are
    judged; the others go into the note as 'today')."""
    cpu = worker(REPO, {"part": "cpu"})
    peak = {int(w): g for w, g in cpu["peak"].items()}
    kind = cpu["kind"]
    meas = {lab: measure_tree(path, threads, quick, log) for lab, path in trees.items()}
    labs = list(trees)
    new = labs[-1]
    peak_core = max(peak.values()) if peak else None
    results = [Result("speed", f"CPU: {kind}", note="FMA peak per core (FMA loop): " + ", ".join(
        f"{w}-bit {g:.1f} GFLOP/s" for w, g in peak.items()))]

    groups = {}   # the measure → {tree: [ratios]}

    def add(name, thr, ours, ref, target, unit, extra_notes=(), per_tree=None, group=None,
            ratio=None):
        """ours/ref are the best figures; the ratio is theirs unless given (a median of
        per-round ratios)."""
        if ratio is None:
            ratio = ours / ref if ours and ref else None
        if group:
            g = groups.setdefault(group, ({}, target))[0]
            for lab, r in (per_tree or {}).items():
                if r:
                    g.setdefault(lab, []).append(r)
        notes = list(extra_notes)
        if per_tree:
            notes.append(" · ".join(f"{lab} {r:.3g}×" for lab, r in per_tree.items() if r))
        if peak_core and unit == "GFLOP/s" and ours:
            notes.append(f"{ours / (peak_core * thr):.0%} of FMA peak")
        results.append(Result("speed", name, thr, ours=ours, ref=ref, unit=unit,
                              ratio=ratio, ratio_kind="ours/ref", target=target,
                              note="; ".join(notes)).finish())

    # GEMM rows, the same order as the worker's
    for i, row in enumerate(meas[new]["gemm"]):
        per = {lab: (m["gemm"][i]["ours"] / m["gemm"][i]["ref"]) for lab, m in meas.items()}
        square = "³" in row["label"]
        add(f"gemm {row['label']}", row["threads"], row["ours"], row["ref"], 1.0, "GFLOP/s",
            ["WRONG"] if row["wrong"] else [], per,
            group=("GEMM vs numpy, f32 & f64, 512³–2048³" if square else
                   "GEMM at the training shapes (mnist, wide)") + f", {row['threads']} thr")
        if row["wrong"]:
            results[-1].met = False
    for net in NETS:
        for n in threads:
            m = {lab: meas[lab][f"train {net} {n}"] for lab in labs}
            per = {lab: v["vs_numpy"] for lab, v in m.items()}
            add(f"epoch GFLOP/s vs numpy sgemm, {net}", n, m[new]["relu"]["gflops"],
                m[new]["numpy_gflops"], 0.92, "GFLOP/s", per_tree=per, ratio=per[new],
                group=f"training epoch GFLOP/s vs numpy sgemm (wide, mnist), {n} thr")
    for net in NETS:
        for n in threads:
            d = {lab: meas[lab].get(f"duel {net} {n}") for lab in labs}
            if not d[new]:
                continue
            per = {lab: v["ratio"] for lab, v in d.items() if v}
            add(f"{net} vs PyTorch", n, d[new]["ours"], d[new]["torch"],
                1.35 if net == "wide" else 2.5, "samples/s", per_tree=per, ratio=per[new],
                extra_notes=[f"median of {d[new]['rounds']} rounds' ratios; "
                             f"ratio of the bests {d[new]['ours'] / d[new]['torch']:.3g}"],
                group=f"{net} vs PyTorch, 1 / 2 threads")
    if all("busy" in meas[lab] for lab in labs):
        for what in ("train", "predict"):
            m = meas[new]["busy"][what]
            per = {lab: meas[lab]["busy"][what]["ratio"] for lab in labs}
            add(f"mnist {what}, 2 threads vs 1, other core busy", 2, m["two"], m["one"], 0.9,
                "samples/s", per_tree=per, ratio=per[new],
                extra_notes=["not an issue goal: two threads must not lose to one on a shared machine"])
    for act in ACTS:
        m = {lab: (meas[lab]["acts"][act]["samples_per_s"],
                   meas[lab]["acts"]["relu"]["samples_per_s"]) for lab in labs}
        per = {lab: meas[lab]["acts"][act]["vs_first"] for lab in labs}
        add(f"mnist {act} net vs relu net", 1, m[new][0], m[new][1], 0.85, "samples/s",
            per_tree=per, ratio=per[new], group="tanh/sigmoid/gelu/elu/softplus/sin net vs relu net, mnist")
    # The table: per measure, the range of ratios of each tree; judged on the worst.
    for name, (per, target) in groups.items():
        rng = {lab: (min(v), max(v)) for lab, v in per.items()}
        lo = rng.get(new, (None,))[0]
        results.append(Result("speed summary", name, ratio=lo, ratio_kind="ours/ref (worst)",
                              target=target, note=" · ".join(
                                  f"{lab} {a:.2f}–{b:.2f}" for lab, (a, b) in rng.items())).finish())
    return results


def run(threads, quick, log, baseline=None):
    trees = {}
    if baseline:
        trees["today"] = os.path.abspath(baseline)
    trees["new" if baseline else "this"] = REPO
    return table(trees, threads, quick, log)


PARTS = {"cpu": part_cpu, "gemm": part_gemm, "train": part_train, "epochs": part_epochs,
         "busy": part_busy}


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(PARTS[spec["part"]](spec)))
