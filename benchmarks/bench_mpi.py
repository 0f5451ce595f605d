"""Data-parallel training on MPI: samples/s with 1 and 2 ranks (one thread each), against
the single-process fused epoch kernel timed in the same run, and the scaling model.

    python benchmarks/bench_mpi.py [--configs mnist,wide] [--repeats N] [--bandwidth 1.25e9,12.5e9]
    python benchmarks/bench_mpi.py --shard-memory 500000   # peak RSS per rank, 1 vs 2 ranks

Each measurement is its own process tree: `python bench_mpi.py worker CONFIG MODE` (fused:
one process, Trainer) or `mpiexec -n R python bench_mpi.py worker CONFIG dist`
(DistributedTrainer). Same synthetic data as bench_train.py; 1 warm-up epoch, then the
best of E timed epochs of one run (--repeats N: best of N fresh runs). Rank 0 also times the
Allreduce of the P-float gradient alone, and counts the Allreduce calls and bytes of training.

Scaling model (printed for 8–64 machines): a step of global batch B on M machines costs
    t(M) = t_c / M + t_ar(M),   t_ar(M) = 2 (M − 1)/M · 4P / bandwidth + 2 (M − 1) · latency
(ring Allreduce of the float32 gradient: each rank sends and receives 2(M−1)/M of its 4P
bytes), where t_c is one process's compute per step measured here. Speed-up = t_c / t(M).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_train import CONFIGS, make_data  # noqa: E402
from common import child_env, import_nncli  # noqa: E402

SIZES = {"tabular": (16384, 3), "mnist": (8192, 3), "wide": (2048, 2)}   # rows, timed epochs
LATENCY = 5e-6   # s per message: a typical datacentre network (an assumption, not measured)


def worker(name, mode):
    import_nncli()
    from nncli.network import Network
    from nncli.training import Trainer
    cfg = CONFIGS[name]
    N, E = SIZES[name]
    X, Y, _ = make_data(name, N)
    net = Network(cfg["layers"], [cfg["act"]] * (len(cfg["layers"]) - 2) + ["identity"],
                  cfg["loss"], dtype="float32", seed=1)
    times = []
    last = [time.perf_counter()]

    def clock(record, trainer):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now
    options = dict(optimizer="adam", lr=cfg["lr"], batch_size=cfg["batch"], epochs=1 + E,
                   seed=0, n_threads=1)
    rank, allreduce = 0, None
    if mode == "fused":
        trainer = Trainer(net, X, Y, **options)
    else:
        from mpi4py import MPI
        from nncli.distributed import DistributedTrainer
        comm = MPI.COMM_WORLD
        rank, size = comm.Get_rank(), comm.Get_size()
        # each rank holds its contiguous block of the rows, as nncli.shards gives them
        mine = slice(N * rank // size, N * (rank + 1) // size)
        counting = CountingComm(comm)
        trainer = DistributedTrainer(net, X[mine], Y[mine], comm=counting, **options)
        grad = np.ones(net.n_params, np.float32)
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(50):
            comm.Allreduce(MPI.IN_PLACE, grad, op=MPI.SUM)
        allreduce = (time.perf_counter() - t0) / 50
        comm.Barrier()
    last[0] = time.perf_counter()
    trainer.run([clock])
    if rank == 0:
        best = min(times[1:])
        steps = (1 + E) * -(-N // cfg["batch"])
        print(json.dumps({"config": name, "mode": mode, "P": net.n_params, "batch": cfg["batch"],
                          "rows": N, "samples_per_s": N / best, "allreduce_s": allreduce,
                          **({} if mode == "fused" else {
                              "allreduce_calls_per_step": counting.calls / steps,
                              "allreduce_bytes_per_step": counting.bytes / steps})}))


class CountingComm:
    """An mpi4py communicator that counts the Allreduce calls and bytes of training: what
    the scaling model assumes (one Allreduce of the float32 ∂L/∂φ, 4P bytes, per step) is
    checked against what the code does (plus one 16-byte sum of the loss per epoch)."""

    def __init__(self, comm):
        self.comm, self.calls, self.bytes = comm, 0, 0

    def Allreduce(self, send, recv, op):
        self.calls += 1
        self.bytes += recv.nbytes
        return self.comm.Allreduce(send, recv, op=op)

    def __getattr__(self, name):
        return getattr(self.comm, name)


def overhead(name, rounds=7):
    """The per-batch path's cost against the fused kernel, interleaved in one process (1 rank,
    best of `rounds` epochs each): robust to a busy machine, unlike separate runs."""
    import_nncli()
    from mpi4py import MPI
    from nncli.distributed import DistributedTrainer
    from nncli.network import Network
    from nncli.training import Trainer
    cfg = CONFIGS[name]
    N = SIZES[name][0]
    X, Y, _ = make_data(name, N)
    acts = [cfg["act"]] * (len(cfg["layers"]) - 2) + ["identity"]

    def make(cls, **kw):
        net = Network(cfg["layers"], acts, cfg["loss"], dtype="float32", seed=1)
        t = cls(net, X, Y, optimizer="adam", lr=cfg["lr"], batch_size=cfg["batch"], epochs=1,
                seed=0, n_threads=1, **kw)
        return t, net.engine(t.batch_size, 1)
    fused, per_batch = make(Trainer), make(DistributedTrainer, comm=MPI.COMM_WORLD)
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, (trainer, engine) in enumerate((fused, per_batch)):
            t0 = time.perf_counter()
            trainer._train_epoch(engine, cfg["lr"])
            best[i] = min(best[i], time.perf_counter() - t0)
    batches = -(-N // cfg["batch"])
    return best[1] / best[0], (best[1] - best[0]) / batches


def measure(name, mode, ranks, repeats=1):
    """The best of `repeats` fresh runs (the machine may be shared)."""
    runs = [_measure_once(name, mode, ranks) for _ in range(repeats)]
    return max(runs, key=lambda r: r["samples_per_s"])


def _measure_once(name, mode, ranks):
    cmd = [sys.executable, os.path.abspath(__file__), "worker", name, mode]
    if ranks:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(ranks), *cmd]
    env = child_env()
    env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def scaling(P, batch, samples_per_s, bandwidths, machines=(8, 16, 32, 64)):
    t_c = batch / samples_per_s
    rows = []
    for bw in bandwidths:
        for M in machines:
            t_ar = 2 * (M - 1) / M * 4 * P / bw + 2 * (M - 1) * LATENCY
            rows.append({"bandwidth_GBps": bw / 1e9, "machines": M, "compute_ms": 1e3 * t_c / M,
                         "allreduce_ms": 1e3 * t_ar, "speedup": t_c / (t_c / M + t_ar)})
    return t_c, rows


def shard_memory(rows, ranks=(1, 2)):
    """Each rank reads its shard: the peak RSS of every rank of `mpiexec -n R nncli train
    CSV --distributed --epochs 1` on a CSV of `rows` × 20 numbers, for each R (psutil, the
    ranks polled every 20 ms); and the same file with one quoted field holding a newline,
    which every rank reads whole (as every rank did before sharding)."""
    import tempfile

    import psutil
    folder = tempfile.mkdtemp(prefix="nncli-shard-")
    rng = np.random.default_rng(7)
    block = rng.standard_normal((rows, 20))
    paths = {}
    for how, note in (("byte ranges", "x"), ("read whole", '"a\nb"')):
        paths[how] = os.path.join(folder, how.replace(" ", "-") + ".csv")
        with open(paths[how], "w") as f:
            f.write(",".join([f"x{j}" for j in range(19)] + ["y", "note"]) + "\n")
            f.write(",".join(f"{v:.6f}" for v in block[0]) + f",{note}\n")
            for lo in range(1, rows, 100_000):
                np.savetxt(f, block[lo:lo + 100_000], fmt="%.6f", delimiter=",", footer="",
                           newline=",x\n")
    size = os.path.getsize(paths["byte ranges"])
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    out = {}
    for how, path in paths.items():
        for R in ranks:
            cmd = [mpiexec, "-n", str(R), sys.executable, "-m", "nncli", "train", path,
                   "--distributed", "--epochs", "1", "--threads", "1", "--layers", "16",
                   "--target", "y", "--drop", "note", "-q", "-o", os.path.join(folder, "m.npz")]
            p = psutil.Popen(cmd, env=child_env(), cwd=folder)
            peak = {}
            while p.poll() is None:
                try:
                    for c in p.children(recursive=True):
                        if c.name().startswith("python"):
                            peak[c.pid] = max(peak.get(c.pid, 0), c.memory_info().rss)
                except psutil.Error:
                    pass
                time.sleep(0.02)
            if p.returncode:
                raise SystemExit(f"{' '.join(cmd)} failed")
            out[how, R] = sorted(peak.values())
        os.remove(path)
    return size, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shard-memory", type=int, default=0, metavar="ROWS",
                    help="only measure the peak RSS per rank, 1 and 2 ranks, on a CSV of ROWS×20")
    ap.add_argument("--configs", default="tabular,mnist,wide")
    ap.add_argument("--repeats", type=int, default=1, help="fresh runs per measurement (best)")
    ap.add_argument("--bandwidth", default="1.25e9,12.5e9",
                    help="bytes/s of the network in the scaling model (10 and 100 Gbit/s)")
    args = ap.parse_args()
    if args.shard_memory:
        size, peaks = shard_memory(args.shard_memory)
        print(f"CSV of {args.shard_memory:,} rows × 20: {size / 2**20:.0f} MiB")
        for (how, R), rss in peaks.items():
            print(f"  {how:11s} {R} rank{'s' * (R > 1)}: peak RSS per rank "
                  + ", ".join(f"{r / 2**20:.0f} MiB" for r in rss))
        return
    bandwidths = [float(b) for b in args.bandwidth.split(",")]
    for name in args.configs.split(","):
        fused = measure(name, "fused", 0, args.repeats)
        one = measure(name, "dist", 1, args.repeats)
        two = measure(name, "dist", 2, args.repeats)
        print(f"{name}: P={fused['P']} batch={fused['batch']} rows={fused['rows']}")
        print(f"  1 process, fused epoch kernel : {fused['samples_per_s']:10,.0f} samples/s")
        print(f"  1 rank, --distributed path    : {one['samples_per_s']:10,.0f} samples/s "
              f"({one['samples_per_s'] / fused['samples_per_s']:.3f}× fused)")
        print(f"  2 ranks, --distributed        : {two['samples_per_s']:10,.0f} samples/s "
              f"({two['samples_per_s'] / fused['samples_per_s']:.2f}× fused); Allreduce of "
              f"4P = {4 * fused['P'] / 1e6:.2f} MB: {1e3 * two['allreduce_s']:.3f} ms (shared memory)")
        print(f"  Allreduce per step, counted: {two['allreduce_calls_per_step']:.4f} calls, "
              f"{two['allreduce_bytes_per_step']:,.0f} bytes (4P = {4 * fused['P']:,})")
        ratio, per_batch = overhead(name)
        print(f"  per-batch path vs fused, interleaved in one process: {ratio:.3f}× the time, "
              f"{1e6 * per_batch:.1f} µs per batch")
        t_c, rows = scaling(fused["P"], fused["batch"], fused["samples_per_s"], bandwidths)
        print(f"  model: compute per step t_c = {1e3 * t_c:.2f} ms on one core")
        for r in rows:
            print(f"    {r['bandwidth_GBps']:6.2f} GB/s  M={r['machines']:3d}: compute "
                  f"{r['compute_ms']:7.3f} ms + Allreduce {r['allreduce_ms']:7.3f} ms → "
                  f"speed-up {r['speedup']:5.1f}×")


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2], sys.argv[3])
    else:
        main()
