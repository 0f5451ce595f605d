"""Data bigger than memory (issue 13): each figure a ratio against a reference in the same run.

  build    building the training cache (one pass: nncli.cache.get_cache) vs the in-memory
           load of the same CSV up to the point training can start (read_csv +
           prepare_training + the validation split + the cast to float32); target ≥ 0.9×
  epoch    a streaming epoch (StreamingTrainer over the cache, 8 blocks, page cache warm) vs
           an in-memory epoch (Trainer on the same float32 arrays), tabular and mnist-shaped;
           target ≥ 0.8×. The page cache is not dropped (that needs a privilege this shared
           machine does not give), so a cold first epoch is not measured.
  rss      peak RSS of `nncli train FILE --memory M` on a generated CSV 4× larger than M,
           polled with psutil, vs M + 100 MB; target ≤ 1
  predict  `nncli predict` rows/s on a file with an unused text column vs the same rows
           without it; target ≥ 0.8; and `nncli evaluate`'s peak RSS on 4× the rows vs 1×,
           target ≤ 1.1

    python benchmarks/run.py --only stream [--quick]
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MiB = 1 << 20


def _write_numeric(path, n_rows, n_cols=20, seed=0):
    """rows × n_cols numbers (%.6g), the last column y a noisy sum of the first five."""
    import io

    import numpy as np
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write(",".join([f"x{i + 1}" for i in range(n_cols - 1)] + ["y"]) + "\n")
        done = 0
        while done < n_rows:
            n = min(50_000, n_rows - done)
            a = rng.standard_normal((n, n_cols))
            a[:, -1] = a[:, :5].sum(1) + 0.1 * a[:, -1]
            buf = io.StringIO()
            np.savetxt(buf, a, fmt="%.6g", delimiter=",")
            f.write(buf.getvalue())
            done += n


def _write_big(path, size_bytes, n_cols=20):
    """A numeric CSV of about size_bytes: 8 distinct blocks of 50,000 rows, repeated."""
    import io

    import numpy as np
    rng = np.random.default_rng(1)
    blocks = []
    for _ in range(8):
        a = rng.standard_normal((50_000, n_cols))
        a[:, -1] = a[:, :5].sum(1) + 0.1 * a[:, -1]
        buf = io.BytesIO()
        np.savetxt(buf, a, fmt="%.6g", delimiter=",")
        blocks.append(buf.getvalue())
    with open(path, "wb") as f:
        f.write((",".join([f"x{i + 1}" for i in range(n_cols - 1)] + ["y"]) + "\n").encode())
        i = 0
        while f.tell() < size_bytes:
            f.write(blocks[i % 8])
            i += 1


def _in_memory_load(path, config):
    from nncli import pipeline
    from nncli.data import read_csv
    table = read_csv(path)
    data = pipeline.prepare_data(table, config)
    X, Y, (Xv, Yv) = pipeline.split_validation(data)
    return [a.astype(config["dtype"]) for a in (X, Y, Xv, Yv)]


def bench_build(tmp, quick, log):
    from common import Result

    from nncli.cache import get_cache
    n_rows = 200_000 if quick else 1_000_000
    path = os.path.join(tmp, "build.csv")
    _write_numeric(path, n_rows)
    config = {"target": "y", "val_split": 0.2, "seed": 0, "dtype": "float32"}
    mem, build = [], []
    for _ in range(2 if quick else 3):   # interleaved, best of each
        t0 = time.perf_counter()
        out = _in_memory_load(path, config)
        mem.append(time.perf_counter() - t0)
        del out
        shutil.rmtree(os.path.join(tmp, "cache"), ignore_errors=True)
        t0 = time.perf_counter()
        cache, _ = get_cache(path, config, cache_dir=os.path.join(tmp, "cache"), budget=256 * MiB)
        build.append(time.perf_counter() - t0)
        del cache
    size = os.path.getsize(path)
    log(f"  build: in memory {min(mem):.2f} s, cache {min(build):.2f} s ({size / MiB:.0f} MiB CSV)")
    return [Result("stream", f"cache build vs in-memory load, {n_rows:,}×20 CSV "
                   f"({size / MiB:.0f} MiB)", None, ours=size / MiB / min(build),
                   ref=size / MiB / min(mem), unit="MiB/s", reference="read_csv+prepare+split+cast",
                   ratio=min(mem) / min(build), ratio_kind="ref time/ours", target=0.9,
                   note=f"best of {len(mem)}").finish()]


def _arrays_cache(path, X, Y, val_fraction=0.2, seed=0):
    """A cache file of given arrays (what get_cache writes after its pass), for the epoch
    benchmark without a CSV of 784 columns."""
    import numpy as np

    from nncli.cachefile import ALIGN, CacheFile, CacheWriter
    n = len(X)
    rng = np.random.default_rng(seed)
    val = np.sort(rng.permutation(n)[:int(n * val_fraction)])
    train = np.setdiff1d(np.arange(n), val)
    w = CacheWriter(path)
    for name, a in (("X", X), ("Y", Y), ("train_rows", train), ("val_rows", val)):
        w.add(name, a.nbytes)
    for name, a in (("X", X), ("Y", Y), ("train_rows", train), ("val_rows", val)):
        w.write(name, a)
    meta = w.commit({"key": "bench", "dtype": X.dtype.name, "n_rows": n, "n_features": X.shape[1],
                     "n_outputs": Y.shape[1], "same_xy": False, "n_train": len(train),
                     "n_val": len(val)})
    return CacheFile(path, meta, ALIGN), train, val


def bench_epoch(tmp, quick, threads, log):
    import numpy as np
    from common import Result

    from nncli.network import Network
    from nncli.streaming import StreamingTrainer
    from nncli.training import Trainer
    rng = np.random.default_rng(0)
    configs = {
        "tabular": dict(n=(100_000 if quick else 400_000), n_in=19, hidden=[64, 64], n_out=1,
                        loss="mse", batch=128),
        "mnist-shaped": dict(n=(20_000 if quick else 60_000), n_in=784, hidden=[128], n_out=10,
                             loss="cross_entropy", batch=64),
    }
    results = []
    for name, c in configs.items():
        X = rng.standard_normal((c["n"], c["n_in"])).astype(np.float32)
        if c["loss"] == "mse":
            Y = X[:, :5].sum(1, keepdims=True).astype(np.float32)
        else:
            Y = np.eye(c["n_out"], dtype=np.float32)[rng.integers(0, c["n_out"], c["n"])]
        cache, train, _ = _arrays_cache(os.path.join(tmp, f"{name}.nncache"), X, Y)
        layers = [c["n_in"], *c["hidden"], c["n_out"]]
        trainers = {}
        for kind in ("memory", "stream"):
            net = Network(layers, ["relu"] * len(c["hidden"]), c["loss"], dtype="float32", seed=0)
            if kind == "memory":
                tr = Trainer(net, X[train], Y[train], batch_size=c["batch"], epochs=1, seed=0,
                             n_threads=threads)
            else:
                tr = StreamingTrainer(net, cache, block_rows=-(-c["n"] // 8), batch_size=c["batch"],
                                      epochs=1, seed=0, n_threads=threads)
            trainers[kind] = (tr, net.engine(tr.batch_size, threads))
        # epochs of the two alternated, best of each: the machine is shared and noisy
        rates = {"memory": 0.0, "stream": 0.0}
        for _ in range(4 if quick else 8):
            for kind, (tr, engine) in trainers.items():
                t0 = time.perf_counter()
                tr._train_epoch(engine, 1e-3)
                rates[kind] = max(rates[kind], len(train) / (time.perf_counter() - t0))
        log(f"  epoch {name}: in memory {rates['memory']:,.0f} rows/s, streaming {rates['stream']:,.0f}")
        results.append(Result("stream", f"streaming epoch vs in-memory, {name} "
                              f"{'→'.join(map(str, layers))}, {c['n']:,} rows, 8 blocks", threads,
                              ours=rates["stream"], ref=rates["memory"], unit="rows/s",
                              reference="Trainer (in memory)", ratio=rates["stream"] / rates["memory"],
                              ratio_kind="ours/ref", target=0.8,
                              note="page cache warm; best of alternated epochs").finish())
        del cache
    return results


def _peak_rss(cmd, env):
    """(exit code, peak RSS bytes of the process, stderr tail), RSS polled every 20 ms."""
    import psutil
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    proc, peak = psutil.Process(p.pid), 0
    while p.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    return p.returncode, peak, p.stderr.read().strip().splitlines()[-3:]


def bench_rss(tmp, quick, threads, log):
    from common import Result, child_env
    budget = 64 * MiB if quick else 256 * MiB
    path = os.path.join(tmp, "big.csv")
    _write_big(path, 4 * budget)
    size = os.path.getsize(path)
    cmd = [sys.executable, "-m", "nncli", "train", path, "--memory", f"{budget // MiB}M",
           "--epochs", "1", "--layers", "32", "--batch-size", "256", "--target", "y",
           "--threads", str(threads), "-o", os.path.join(tmp, "big.npz"), "--cache",
           os.path.join(tmp, "bigcache")]
    rc, peak, tail = _peak_rss(cmd, child_env())
    os.remove(path)
    if rc != 0:
        return [Result("stream", "peak RSS training 4× --memory", note=f"failed: {' | '.join(tail)}")]
    log(f"  rss: file {size / MiB:.0f} MiB, --memory {budget // MiB}M, peak RSS {peak / MiB:.0f} MiB")
    return [Result("stream", f"peak RSS, train on a {size / MiB:.0f} MiB CSV with --memory "
                   f"{budget // MiB}M (cache built in the run)", threads, ours=peak / MiB,
                   ref=(budget + 100 * MiB) / MiB, unit="MiB", reference="budget + 100 MiB",
                   ratio=peak / (budget + 100 * MiB), ratio_kind="ours/ref", target=1.0,
                   target_op="<=", note=" | ".join(tail[-1:])).finish()]


def bench_predict(tmp, quick, threads, log):
    import numpy as np
    from common import Result, child_env
    n = 100_000 if quick else 400_000
    rng = np.random.default_rng(3)
    a = rng.standard_normal((n, 8))
    cells = np.char.mod("%.6g", a).tolist()
    note = np.array(["alpha", "beta", "gamma", "delta epsilon", "zeta"])[rng.integers(0, 5, n)].tolist()
    label = np.where(a[:, 0] + a[:, 1] > 0, "up", "down").tolist()
    plain, text = os.path.join(tmp, "plain.csv"), os.path.join(tmp, "text.csv")
    names = [f"x{i}" for i in range(8)]
    with open(plain, "w") as f:
        f.write(",".join(names + ["label"]) + "\n")
        f.writelines(",".join(r) + f",{y}\n" for r, y in zip(cells, label))
    with open(text, "w") as f:
        f.write(",".join(names + ["note", "label"]) + "\n")
        f.writelines(",".join(r) + f",{w},{y}\n" for r, w, y in zip(cells, note, label))
    env = child_env()
    model = os.path.join(tmp, "p.npz")
    subprocess.run([sys.executable, "-m", "nncli", "train", plain, "--epochs", "1", "-q", "-o", model],
                   check=True, env=env)
    best = {}
    for which in ("plain", "text", "plain", "text"):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nncli", "predict", model, plain if which == "plain" else text,
                        "--threads", str(threads)], check=True, env=env, stdout=subprocess.DEVNULL)
        best[which] = max(best.get(which, 0), n / (time.perf_counter() - t0))
    log(f"  predict: {best['plain']:,.0f} rows/s without, {best['text']:,.0f} with an unused text column")
    # evaluate's memory must not grow with the file: the same rows once and four times
    big = os.path.join(tmp, "text4.csv")
    with open(text) as f, open(big, "w") as out:
        head, body = f.readline(), f.read()
        out.write(head + body * 4)
    peaks = {}
    for name, path in (("1x", text), ("4x", big)):
        rc, peaks[name], tail = _peak_rss([sys.executable, "-m", "nncli", "evaluate", model, path,
                                           "--threads", str(threads)], env)
    log(f"  evaluate peak RSS: {peaks['1x'] / MiB:.0f} MiB on {n:,} rows, {peaks['4x'] / MiB:.0f} on {4 * n:,}")
    evaluate = Result("stream", f"evaluate peak RSS, {4 * n:,} vs {n:,} rows (classification, a text "
                      "label and an unused text column)", threads, ours=peaks["4x"] / MiB,
                      ref=peaks["1x"] / MiB, unit="MiB", reference=f"the same on {n:,} rows",
                      ratio=peaks["4x"] / peaks["1x"], ratio_kind="big/small", target=1.1,
                      target_op="<=", note="memory must not grow with the input").finish()
    return [evaluate, Result("stream", f"predict with vs without an unused text column, {n:,} rows", threads,
                   ours=best["text"], ref=best["plain"], unit="rows/s",
                   reference="the same rows without it", ratio=best["text"] / best["plain"],
                   ratio_kind="ours/ref", target=0.8,
                   note="whole process (start-up included), best of 2").finish()]


def run(threads, quick, log):
    t = max(threads)
    results = []
    with tempfile.TemporaryDirectory(prefix="nncli-stream-") as tmp:
        for part in (lambda: bench_build(tmp, quick, log), lambda: bench_epoch(tmp, quick, t, log),
                     lambda: bench_rss(tmp, quick, t, log), lambda: bench_predict(tmp, quick, t, log)):
            results += part()
    return results
