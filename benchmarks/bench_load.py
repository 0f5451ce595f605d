"""CSV loading: nncli.data.read_csv + prepare_training against numpy.loadtxt on the same
numeric file (rows × 20 columns: 19 features and a target `y`).

Every measurement runs in a fresh subprocess (`python bench_load.py WHAT MODE PATH`):
  time   best wall time of the load inside the process (imports excluded)
  rss    peak RSS during the load minus RSS just before it (peak reset via clear_refs;
         falls back to ru_maxrss)
  trace  tracemalloc's peak during the load (numpy's buffers are traced), in its own run
         because tracing slows Python code down
Memory is reported as a multiple of the float64 array the file holds (rows × 20 × 8 bytes).
"""
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

N_COLS = 20


def write_file(path, n_rows, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    names = [f"x{i + 1}" for i in range(N_COLS - 1)] + ["y"]
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        done = 0
        while done < n_rows:
            n = min(50_000, n_rows - done)
            np.savetxt(f, rng.standard_normal((n, N_COLS)), fmt="%.6g", delimiter=",")
            done += n


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


def _load(what, path):
    if what == "nncli":
        from nncli.data import prepare_training, read_csv
        table = read_csv(path)
        data = prepare_training(table, target="y")
        return data.X, data.Y
    import numpy as np
    return np.loadtxt(path, delimiter=",", skiprows=1)


def worker(what, mode, path):
    from common import import_nncli
    import numpy  # noqa: F401
    if what == "nncli":
        import_nncli()
        import nncli.data  # noqa: F401  (imports are not part of the load)
    if mode == "time":
        t0 = time.perf_counter()
        out = _load(what, path)
        return {"seconds": time.perf_counter() - t0, "shape": list(getattr(out, "shape", ()) or out[0].shape)}
    if mode == "trace":
        import tracemalloc
        tracemalloc.start()
        out = _load(what, path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"peak_bytes": peak}
    # rss
    reset = False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        reset = True
    except OSError:
        pass
    before = _status("VmRSS")
    out = _load(what, path)
    peak = _status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del out
    return {"peak_bytes": peak - before, "method": "VmHWM-reset" if reset else "ru_maxrss"}


def run(threads, quick, log):
    import tempfile
    from common import Result, run_worker
    n_rows = 50_000 if quick else 200_000
    script = os.path.abspath(__file__)
    results = []
    with tempfile.TemporaryDirectory(prefix="nncli-bench-") as tmp:
        path = os.path.join(tmp, f"load_{n_rows}.csv")
        write_file(path, n_rows)
        array_bytes = n_rows * N_COLS * 8
        got = {}
        repeats = 2 if quick else 3
        for what in ("nncli", "numpy"):
            times = []
            for _ in range(repeats):
                out = run_worker(script, {"what": what, "mode": "time", "path": path})
                if "error" in out:
                    break
                times.append(out["seconds"])
            if "error" in out:
                got[what] = {"error": out["error"]}
                log(f"  load {what}: {out['error']}")
                continue
            rss = run_worker(script, {"what": what, "mode": "rss", "path": path})
            trace = run_worker(script, {"what": what, "mode": "trace", "path": path})
            got[what] = {"seconds": min(times), "times": times, "rss": rss.get("peak_bytes"),
                         "trace": trace.get("peak_bytes")}
            log(f"  load {what}: {min(times):.3f} s, peak +RSS {got[what]['rss'] / 2**20:.0f} MiB, "
                f"traced {got[what]['trace'] / 2**20:.0f} MiB")
    label = f"{n_rows:,}×{N_COLS} CSV"
    ours, ref = got.get("nncli", {}), got.get("numpy", {})
    err = ours.get("error") or ref.get("error")
    if err:
        results.append(Result("load", f"read_csv+prepare_training {label}", note=f"failed: {err}"))
        return results
    results.append(Result("load", f"read_csv+prepare_training {label}: time", None,
                          ours=ours["seconds"], ref=ref["seconds"], unit="s",
                          reference="numpy.loadtxt", ratio=ours["seconds"] / ref["seconds"],
                          ratio_kind="ours/ref (time)", target=1.0, target_op="<=",
                          note=f"best of {repeats}", extra={"nncli": ours, "numpy": ref}).finish())
    mem = max(ours["rss"], ours["trace"])
    results.append(Result("load", f"read_csv+prepare_training {label}: peak memory", None,
                          ours=mem / 2**20, ref=array_bytes / 2**20, unit="MiB",
                          reference="float64 array size", ratio=mem / array_bytes,
                          ratio_kind="peak/array", target=2.0, target_op="<=",
                          note=(f"max of +RSS {ours['rss'] / 2**20:.0f} and traced "
                                f"{ours['trace'] / 2**20:.0f} MiB; loadtxt: +RSS "
                                f"{ref['rss'] / 2**20:.0f}, traced {ref['trace'] / 2**20:.0f} MiB"),
                          extra={"nncli": ours, "numpy": ref, "array_bytes": array_bytes}).finish())
    return results


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(worker(spec["what"], spec["mode"], spec["path"])))
