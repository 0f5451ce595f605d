"""`--ensemble N`: members trained together (one pass per epoch, members on threads) against
members trained one after another, on a synthetic 20k-row regression table.

    python benchmarks/run.py --only ensemble [--threads 1,2] [--baseline TREE]

Two rows per thread count:
- in-process, the same checkout: `TrainingRun.train()` of `--ensemble 4` (members together)
  against four single-network runs with seeds s…s+3 (what the ensemble did before: each
  member trained, then refit, one after the other). Reading the CSV is left out of both.
- with --baseline TREE (a built checkout, e.g. main before this change): the wall time of the
  whole command `nncli train t20k.csv --ensemble 4 --threads T` in this checkout against that
  tree, alternated, best of five.
The ratio is reference time / our time (> 1: together is faster).
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import REPO, Result

ROWS, FEATURES, MEMBERS, EPOCHS = 20_000, 12, 4, 20
OPTIONS = {"epochs": EPOCHS, "early_stopping": 0, "seed": 1, "val_split": 0.2, "refit": True,
           "layers": [64, 32], "batch_size": 32}


def write_table(path, rows=ROWS):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, FEATURES))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=rows)
    with open(path, "w") as f:
        f.write(",".join([f"x{i}" for i in range(FEATURES)] + ["y"]) + "\n")
        np.savetxt(f, np.c_[X, y], delimiter=",", fmt="%.6g")


def cpu_seconds():
    t = os.times()
    return t.user + t.system


def train_seconds(path, config, folder):
    """(wall seconds, CPU seconds of all threads) of TrainingRun.train() (after prepare)."""
    from nncli.run import TrainingRun
    run = TrainingRun(path, config, output=os.path.join(folder, "m.npz")).prepare()
    t0, c0 = time.perf_counter(), cpu_seconds()
    run.train()
    return time.perf_counter() - t0, cpu_seconds() - c0


def add(pairs):
    return tuple(map(sum, zip(*pairs)))


def cli_seconds(tree, path, threads, folder):
    env = dict(os.environ, PYTHONPATH=tree)
    argv = [sys.executable, "-m", "nncli", "train", path, "--ensemble", str(MEMBERS), "--threads",
            str(threads), "--epochs", str(EPOCHS), "--early-stopping", "0", "--seed", "1", "-q",
            "-o", os.path.join(folder, "cli.npz")]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, env=env, cwd=folder, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def run(threads, quick, log, baseline=None):
    results = []
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "t20k.csv")
        write_table(path, ROWS // 4 if quick else ROWS)
        repeats = 1 if quick else 5
        for t in threads:
            log(f"  ensemble of {MEMBERS}, {t} thread(s): together vs one after another")
            together, alone = [], []
            for _ in range(repeats):   # alternated, so a busy spell hurts both
                together.append(train_seconds(path, {**OPTIONS, "threads": t, "ensemble": MEMBERS}, folder))
                alone.append(add(train_seconds(path, {**OPTIONS, "threads": t, "seed": 1 + k}, folder)
                                 for k in range(MEMBERS)))
            (ours, ours_cpu), (ref, ref_cpu) = min(together), min(alone)
            results.append(Result(
                "ensemble", f"--ensemble {MEMBERS}: train() together vs members one after another",
                threads=t, ours=ours, ref=ref, unit="s", reference="4 single runs, same checkout",
                ratio=ref / ours, ratio_kind="ref/ours",
                note=f"{ROWS // 4 if quick else ROWS} rows, {EPOCHS} epochs + refit; best of "
                     f"{repeats}: together {', '.join(f'{s:.2f}' for s, _ in together)} s, one after "
                     f"another {', '.join(f'{s:.2f}' for s, _ in alone)} s; CPU s of the best: "
                     f"together {ours_cpu:.2f}, one after another {ref_cpu:.2f}",
                extra={"together": together, "alone": alone}).finish())
            if baseline:
                log(f"  nncli train --ensemble {MEMBERS} --threads {t}: this checkout vs {baseline}")
                ours_cli, base_cli = [], []
                for _ in range(repeats):
                    ours_cli.append(cli_seconds(REPO, path, t, folder))
                    base_cli.append(cli_seconds(os.path.abspath(baseline), path, t, folder))
                results.append(Result(
                    "ensemble", f"nncli train --ensemble {MEMBERS} (wall time) vs the baseline tree",
                    threads=t, ours=min(ours_cli), ref=min(base_cli), unit="s",
                    reference=os.path.abspath(baseline), ratio=min(base_cli) / min(ours_cli),
                    ratio_kind="ref/ours",
                    note=f"best of {repeats}: ours {', '.join(f'{s:.2f}' for s in ours_cli)} s, "
                         f"baseline {', '.join(f'{s:.2f}' for s in base_cli)} s").finish())
    return results
