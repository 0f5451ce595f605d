"""The command line: start-up time of `nncli --help`, and `nncli predict` throughput and peak
memory streaming CSV files of two sizes 10× apart.

Peak memory is the child's own max RSS from os.wait4 (per process, unlike RUSAGE_CHILDREN,
which keeps the maximum over every child ever waited for). Linux carries a parent's RSS
high-water mark into a forked child across exec, so the child is started by a small
launcher process (REPORT_RSS below), never forked from this large benchmark process.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import REPO, Result, child_env

N_FEATURES = 8


def nncli_command():
    """argv prefix running this interpreter's nncli: the console script beside sys.executable,
    else the one on PATH, else `python -m nncli`."""
    local = os.path.join(os.path.dirname(sys.executable), "nncli")
    if os.path.exists(local):
        return [local]
    found = shutil.which("nncli")
    return [found] if found else [sys.executable, "-m", "nncli"]


# Runs argv[2:] and writes "<exit code> <max RSS in KiB>" to fd argv[1] (a small process).
REPORT_RSS = ("import os, sys\n"
              "pid = os.fork()\n"
              "if pid == 0:\n"
              "    os.execvp(sys.argv[2], sys.argv[2:])\n"
              "_, status, ru = os.wait4(pid, 0)\n"
              "os.write(int(sys.argv[1]), f'{os.waitstatus_to_exitcode(status)} {ru.ru_maxrss}'.encode())\n")


def run_measured(argv, stdout=subprocess.DEVNULL, cwd=None):
    """(seconds, max RSS in bytes, exit code, stderr tail) of one child process."""
    read_end, write_end = os.pipe()
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-S", "-c", REPORT_RSS, str(write_end), *argv],
                         stdout=stdout, stderr=subprocess.PIPE, env=child_env(), cwd=cwd or "/",
                         pass_fds=(write_end,))
    os.close(write_end)
    err = p.stderr.read()
    p.wait()
    dt = time.perf_counter() - t0
    report = os.read(read_end, 100).decode().split()
    os.close(read_end)
    p.stderr.close()
    tail = err.decode(errors="replace").strip().splitlines()[-2:]
    if len(report) != 2:
        return dt, 0, p.returncode or 1, " | ".join(tail) or "launcher failed"
    return dt, int(report[1]) * 1024, int(report[0]), " | ".join(tail)


def write_csv(path, n_rows, seed):
    """n_rows × (8 features + target y), written in chunks (bounded memory)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(N_FEATURES)
    with open(path, "w") as f:
        f.write(",".join([f"x{i + 1}" for i in range(N_FEATURES)] + ["y"]) + "\n")
        done = 0
        while done < n_rows:
            n = min(100_000, n_rows - done)
            X = rng.standard_normal((n, N_FEATURES))
            y = np.tanh(X @ w / 3) + 0.1 * rng.standard_normal(n)
            np.savetxt(f, np.column_stack([X, y]), fmt="%.5f", delimiter=",")
            done += n


def commands_available(cmd):
    missing = []
    for sub in ("train", "predict"):
        p = subprocess.run(cmd + [sub, "--help"], capture_output=True, text=True, env=child_env(), cwd="/")
        if p.returncode != 0:
            missing.append(sub)
    return missing


def run(threads, quick, log):
    cmd = nncli_command()
    results = []
    # -- start-up ------------------------------------------------------------------------
    n_runs = 5 if quick else 11
    ours, ref = [], []
    rc = 0
    for _ in range(n_runs):  # alternate, so drifting machine load hits both alike
        dt, _, rc_, _ = run_measured(cmd + ["--help"])
        ours.append(dt)
        rc = rc or rc_
        dt, _, _, _ = run_measured([sys.executable, "-c", "import numpy, click"])
        ref.append(dt)
    a, b = statistics.median(ours), statistics.median(ref)
    results.append(Result("cli", "nncli --help start-up (median)", None, ours=a * 1e3, ref=b * 1e3,
                          unit="ms", reference='python -c "import numpy, click"', ratio=a / b,
                          ratio_kind="ours/ref (time)", target=1.5, target_op="<=",
                          note=f"{n_runs} runs each" + (f"; exit code {rc}" if rc else ""),
                          extra={"ours_s": ours, "ref_s": ref}).finish())
    log(f"  cli --help {a * 1e3:.0f} ms vs {b * 1e3:.0f} ms")

    # -- predict -------------------------------------------------------------------------
    missing = commands_available(cmd)
    if missing:
        note = f"skipped: `nncli {' / '.join(missing)}` not available yet in {cmd[0]}"
        probe = subprocess.run([sys.executable, "-c", "import nncli.commands.predict"],
                               capture_output=True, env=child_env(), cwd="/")
        if probe.returncode != 0 and os.path.isfile(os.path.join(REPO, "nncli", "commands", "predict.py")):
            note += (" (the checkout has nncli/commands/ but the installed package does not: "
                     "is nncli.commands listed in pyproject's packages?)")
        log("  cli predict " + note)
        results.append(Result("cli", "predict streaming", None, note=note))
        return results
    sizes = (20_000, 200_000) if quick else (50_000, 500_000)
    with tempfile.TemporaryDirectory(prefix="nncli-bench-") as tmp:
        train_csv = os.path.join(tmp, "train.csv")
        model = os.path.join(tmp, "model.npz")
        write_csv(train_csv, 2000, seed=1)
        dt, _, rc, err = run_measured(cmd + ["train", train_csv, "-o", model, "--epochs", "3",
                                             "--quiet", "--target", "y"], cwd=tmp)
        if rc != 0:
            note = f"skipped: `nncli train` failed (exit {rc}: {err})"
            log("  cli " + note)
            results.append(Result("cli", "predict streaming", None, note=note))
            return results
        stats = {}
        for n in sizes:
            path = os.path.join(tmp, f"predict_{n}.csv")
            write_csv(path, n, seed=2)
            for t in threads:
                best, rss, rc, err = None, 0, 0, ""
                for _ in range(1 if n == sizes[1] and quick else 2):
                    dt, peak, rc, err = run_measured(cmd + ["predict", model, path, "--threads", str(t)])
                    if rc != 0:
                        break
                    best = dt if best is None else min(best, dt)
                    rss = max(rss, peak)
                stats[(n, t)] = (best, rss, rc, err)
                if rc:
                    log(f"  cli predict {n} rows failed: exit {rc}: {err}")
                else:
                    log(f"  cli predict {n:,} rows t={t}: {n / best:,.0f} rows/s, peak RSS {rss / 2**20:.0f} MiB")
            os.unlink(path)
    small, big = sizes
    for t in threads:
        s, b_ = stats[(small, t)], stats[(big, t)]
        if s[2] or b_[2]:
            results.append(Result("cli", "predict streaming", t,
                                  note=f"failed: exit {s[2] or b_[2]}: {s[3] or b_[3]}"))
            continue
        for n, st in ((small, s), (big, b_)):
            results.append(Result("cli", f"predict {n:,} rows → /dev/null (incl. start-up)", t,
                                  ours=n / st[0], unit="rows/s", note=f"peak RSS {st[1] / 2**20:.0f} MiB",
                                  extra={"seconds": st[0], "max_rss": st[1]}))
        results.append(Result("cli", f"predict peak RSS {big:,} vs {small:,} rows", t,
                              ours=b_[1] / 2**20, ref=s[1] / 2**20, unit="MiB",
                              reference=f"{small:,} rows", ratio=b_[1] / s[1],
                              ratio_kind="big/small", target=1.10, target_op="<=",
                              note="memory must not grow with the input").finish())
    return results
