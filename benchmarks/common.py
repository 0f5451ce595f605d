"""Shared helpers for the benchmark suite: imports, timing, results, environment facts.

Nothing here is part of nncli; the benchmarks import the *installed* nncli (falling back to
an in-place build of this checkout when it is not installed).
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def import_nncli():
    """Import nncli: the installed package first, else this checkout (in-place build)."""
    try:
        import nncli  # noqa: F401
    except ImportError:
        sys.path.insert(0, REPO)
        import nncli  # noqa: F401
    return sys.modules["nncli"]


def child_env():
    """Environment for subprocesses: this one (already without OPENBLAS_* overrides), plus
    PYTHONPATH to the checkout when nncli is not installed."""
    env = dict(os.environ)
    nncli = import_nncli()
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(nncli.__file__)))
    if pkg_parent == REPO:
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def optional_import(name):
    try:
        return __import__(name)
    except Exception:  # ImportError, or a broken install
        return None


# ---------------------------------------------------------------------------- timing ---
def best_of(fn, *, repeats=5, min_block=0.02, warmup=1):
    """Seconds per call of fn(): best and median over `repeats` blocks, each block long enough
    (≥ min_block s) to dwarf the timer. Returns (best, median, calls_per_block)."""
    for _ in range(warmup):
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
    n = max(1, int(min_block / max(first, 1e-9)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return min(times), statistics.median(times), n


# --------------------------------------------------------------------------- results ---
@dataclass
class Result:
    """One compared measurement. `ratio` is always 'how many times better nncli is' in the
    direction of the target: higher-is-better metrics ours/ref, time-like metrics ref/ours
    unless `ratio_kind` says otherwise (see README)."""
    section: str
    name: str
    threads: int = None
    ours: float = None          # nncli's number (unit below)
    ref: float = None           # the reference's number, same unit
    unit: str = ""
    reference: str = ""         # what ref is (numpy, torch, sklearn, loadtxt …)
    ratio: float = None
    ratio_kind: str = ""        # e.g. "ours/ref" or "ref/ours"
    target: float = None
    target_op: str = ">="       # ratio must be >= or <= target
    met: bool = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    def finish(self):
        if self.ratio is not None and self.target is not None:
            self.met = (self.ratio >= self.target) if self.target_op == ">=" else (self.ratio <= self.target)
        return self


def ratio(a, b):
    try:
        return a / b if a is not None and b else None
    except ZeroDivisionError:
        return None


# ------------------------------------------------------------------------ environment ---
def git_commit():
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("-dirty" if dirty else "") if rev else None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def blas_info():
    """threadpoolctl's view of numpy's BLAS (which OpenBLAS kernel runs)."""
    tpc = optional_import("threadpoolctl")
    if tpc is None:
        return []
    import numpy  # noqa: F401  (loads the BLAS)
    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "threading_layer",
            "num_threads", "filepath")
    return [{k: d.get(k) for k in keep} for d in tpc.threadpool_info()]


def environment(args_dict, removed_env):
    import numpy as np
    nncli = import_nncli()
    from nncli._kernels import gemm
    info = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_commit(),
        "host": platform.node(),
        "cpu": cpu_name(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "nncli": getattr(nncli, "__version__", "?"),
        "nncli_path": os.path.dirname(os.path.abspath(nncli.__file__)),
        "nncli_gemm_isa": gemm.isa(),
        "blas": blas_info(),
        "openblas_env_removed": removed_env,
        "args": args_dict,
    }
    for mod in ("torch", "sklearn"):
        m = optional_import(mod) if mod == "sklearn" else None
        if mod == "torch":
            # Importing torch in this process would start its OpenMP threads next to
            # nncli's pool; ask a subprocess instead.
            try:
                out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                                     capture_output=True, text=True, timeout=120, cwd="/")
                info["torch"] = out.stdout.strip() or None
            except (OSError, subprocess.SubprocessError):
                info["torch"] = None
        else:
            info[mod] = getattr(m, "__version__", None)
    return info


def run_worker(script, spec, timeout=None):
    """Run `python script JSON` in a fresh process; it prints one JSON line last."""
    proc = subprocess.run([sys.executable, script, json.dumps(spec)], capture_output=True,
                          text=True, env=child_env(), cwd="/", timeout=timeout)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"worker exit {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


def fmt(x, digits=3):
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1e6:
        return f"{x:.3g}"
    if ax >= 100:
        return f"{x:,.0f}"
    if ax >= 1:
        return f"{x:.{digits}g}" if ax < 10 else f"{x:.1f}"
    return f"{x:.{digits}g}"


def to_json(results, env):
    return {"environment": env, "results": [asdict(r) for r in results]}
