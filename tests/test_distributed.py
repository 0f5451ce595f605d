"""Data-parallel training on MPI: `mpiexec -n 2 nncli train … --distributed` on localhost.

Two ranks with global batch B train what one process with batch B trains, up to the order
of the gradient's summation: max|Δφ| / max|φ| ≤ 1e-12 in float64, ≤ 1e-5 in float32 after
a few epochs; two runs with the same seed and rank count are bit-identical."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import nncli
from nncli.cli import cli
from nncli.model_io import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREE = os.path.join(ROOT, "data", "three.csv")
IRIS = os.path.join(ROOT, "data", "iris.csv")
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(nncli.__file__)))
TIMEOUT = 120
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def _mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


def _mpi_missing():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'nncli[mpi]')"
    if _mpiexec() is None:
        return "no mpiexec (pip install mpich)"
    return None


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))


@pytest.fixture(scope="module")
def env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    return env


def train(env, folder, ranks, *args, name="m.npz"):
    """`nncli train` in `folder` (under mpiexec -n ranks, or a plain process for 0)."""
    cmd = [sys.executable, "-m", "nncli", "train", *map(str, args), "-o", name]
    if ranks:
        cmd = [_mpiexec(), "-n", str(ranks), *cmd, "--distributed"]
    elif "--resume" not in args:
        cmd += ["--ensemble", "1"]   # one network, as --distributed trains (small tables get 5)
    return subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def _phi(path):
    return load_model(path).network.phi.astype(np.float64)


def test_without_mpi4py_one_line_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    r = CliRunner().invoke(cli, ["train", IRIS, "--distributed", "-o", str(tmp_path / "m.npz")])
    assert r.exit_code == 1
    assert r.output.startswith("Error: --distributed needs MPI: pip install 'nncli[mpi]'")
    assert len(r.output.strip().splitlines()) == 1


@needs_mpi
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_ranks_train_what_one_process_trains(env, tmp_path, dtype):
    args = [THREE, "--layers", "16,8", "--batch-size", 24, "--epochs", 4, "--seed", 5,
            "--dtype", dtype, "--threads", 1, "--lr", 0.01, "--clip-norm", 5]
    one = train(env, tmp_path, 0, *args, "-q", name="one.npz")
    assert one.returncode == 0, one.stderr
    two = [train(env, tmp_path, 2, *args, name=f"two{i}.npz") for i in range(2)]
    for r in two:
        assert r.returncode == 0, r.stderr
    ref, a, b = _phi(tmp_path / "one.npz"), _phi(tmp_path / "two0.npz"), _phi(tmp_path / "two1.npz")
    assert np.abs(a - ref).max() / np.abs(ref).max() <= TOLERANCE[dtype]
    assert a.tobytes() == b.tobytes()            # same seed, same rank count: bit for bit
    meta = load_model(tmp_path / "two0.npz").meta
    assert meta["distributed"] == {"ranks": 2} and meta["train_rows"] == 400
    info = CliRunner().invoke(cli, ["info", str(tmp_path / "two0.npz")])
    assert "trained    data-parallel over 2 MPI ranks" in info.output
    # Rank 0 alone reports and writes: one summary, one model and loss log per run.
    assert two[0].stderr.count("Done:") == 1 and "over 2 ranks" in two[0].stderr
    assert f"Data: each of 2 ranks read its byte range of {THREE}." in two[0].stderr
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["one.npz", "one.loss.csv", "two0.npz", "two0.loss.csv", "two1.npz", "two1.loss.csv"])
    assert len((tmp_path / "two0.loss.csv").read_text().splitlines()) == 5


@needs_mpi
def test_two_ranks_draw_the_dropout_masks_one_process_draws(env, tmp_path):
    """Each rank passes its rows' places in the global batch to the kernel, which keys the
    masks by them: two ranks with --dropout train what one process trains."""
    args = [THREE, "--layers", "16,8", "--batch-size", 24, "--epochs", 3, "--seed", 5,
            "--dtype", "float64", "--threads", 1, "--dropout", "0.3,0.2", "-q"]
    assert train(env, tmp_path, 0, *args, name="one.npz").returncode == 0
    r = train(env, tmp_path, 2, *args, name="two.npz")
    assert r.returncode == 0, r.stderr
    ref, two = _phi(tmp_path / "one.npz"), _phi(tmp_path / "two.npz")
    plain = train(env, tmp_path, 0, *args[:-3], "-q", name="plain.npz")
    assert plain.returncode == 0 and np.abs(_phi(tmp_path / "plain.npz") - ref).max() > 1e-3
    assert np.abs(two - ref).max() / np.abs(ref).max() <= TOLERANCE["float64"]


@needs_mpi
def test_one_rank_is_the_fused_path_bit_for_bit(env, tmp_path):
    """The per-batch path (batch_gradient + Allreduce + step) does the fused kernel's
    arithmetic: with one rank they agree exactly."""
    args = [IRIS, "--batch-size", 16, "--epochs", 3, "--seed", 2, "--threads", 1, "-q"]
    assert train(env, tmp_path, 0, *args, name="a.npz").returncode == 0
    assert train(env, tmp_path, 1, *args, name="b.npz").returncode == 0
    assert _phi(tmp_path / "a.npz").tobytes() == _phi(tmp_path / "b.npz").tobytes()


@needs_mpi
def test_an_error_every_rank_sees_is_reported_once(env, tmp_path):
    r = train(env, tmp_path, 2, IRIS, "--target", "nope")
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "nope" in errors[0], r.stderr


@needs_mpi
def test_a_rank_failing_alone_stops_all(env, tmp_path):
    """Only rank 0 writes, so only rank 0 finds the output folder missing: the others
    are told and stop too, and the message says so once."""
    r = train(env, tmp_path, 2, IRIS, "--epochs", 2, name=str(tmp_path / "missing" / "m.npz"))
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "missing" in errors[0], r.stderr
    assert not os.path.exists(tmp_path / "missing")


@needs_mpi
def test_divergence_stops_every_rank_with_one_message(env, tmp_path):
    r = train(env, tmp_path, 2, THREE, "--optimizer", "sgd", "--lr", 1000, "--epochs", 3)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "training diverged at epoch 1" in errors[0], r.stderr


FAIL_ON_RANK_1 = """
import sys
from mpi4py import MPI
import nncli.distributed as d
if MPI.COMM_WORLD.Get_rank() == 1:     # rank 1 alone fails in its second epoch
    train_epoch = d.DistributedTrainer._train_epoch
    def failing(self, engine, lr):
        if self.epoch == 1:
            raise MemoryError("simulated")
        return train_epoch(self, engine, lr)
    d.DistributedTrainer._train_epoch = failing
from nncli.cli import main
main(sys.argv[1:])
"""


@needs_mpi
def test_a_rank_failing_mid_training_aborts_all(env, tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(FAIL_ON_RANK_1)
    r = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(script), "train", IRIS,
                        "--distributed", "--epochs", "50", "-o", "m.npz"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode != 0
    assert "Error: rank 1 of 2 failed: MemoryError: simulated; stopping all ranks" in r.stderr
    assert not os.path.exists(tmp_path / "m.npz")


@needs_mpi
def test_a_run_stopped_by_a_failing_rank_resumes_bit_for_bit(env, tmp_path):
    """Rank 1 fails in epoch 4 (the checkpoint of epoch 2 is on disk, rank 0's):
    resuming on 2 ranks gives the model of an uninterrupted 2-rank run, bit for bit."""
    script = tmp_path / "fail.py"
    script.write_text(FAIL_ON_RANK_1.replace("self.epoch == 1", "self.epoch == 3"))
    args = [THREE, "--epochs", 5, "--seed", 4, "--threads", 1, "--layers", 8, "-q"]
    full = train(env, tmp_path, 2, *args, name="full.npz")
    assert full.returncode == 0, full.stderr
    r = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(script), "train",
                        *map(str, args), "--distributed", "--checkpoint", "ck.npz",
                        "--checkpoint-every", "2", "-o", "part.npz"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode != 0 and "rank 1 of 2 failed" in r.stderr
    assert load_model(tmp_path / "ck.npz").meta["checkpoint"]["epoch"] == 2
    resumed = train(env, tmp_path, 2, "--resume", "ck.npz", THREE, "-q", name="resumed.npz")
    assert resumed.returncode == 0, resumed.stderr
    assert _phi(tmp_path / "resumed.npz").tobytes() == _phi(tmp_path / "full.npz").tobytes()


@needs_mpi
def test_kan_layers_train_data_parallel_but_grid_refits_are_refused(env, tmp_path):
    args = [IRIS, "--arch", "kan", "--layers", 4, "--epochs", 3, "--dtype", "float64",
            "--threads", 1, "-q"]
    assert train(env, tmp_path, 0, *args, name="one.npz").returncode == 0
    r = train(env, tmp_path, 2, *args, name="two.npz")
    assert r.returncode == 0, r.stderr
    ref, two = _phi(tmp_path / "one.npz"), _phi(tmp_path / "two.npz")
    assert np.abs(two - ref).max() / np.abs(ref).max() <= TOLERANCE["float64"]
    r = train(env, tmp_path, 2, *args, "--grid", "3,6", name="three.npz")
    assert r.returncode == 2
    assert r.stderr.count("Error: --distributed does not refine or adapt KAN grids") == 1


def _mixed(path, quoted=False):
    """Gaps (median fills, an indicator), a category, a boolean, three classes."""
    rng = np.random.default_rng(3)
    rows = ["x,y,colour,flag,label"]
    for i in range(240):
        x = "" if rng.random() < 0.1 else f"{rng.normal(3, 2):.5f}"
        colour = ["red", "green", "blue", ""][rng.integers(0, 4)]
        if quoted and i == 120:
            colour = '"light\nblue"'   # a newline inside a quoted field
        rows.append(f"{x},{rng.integers(0, 9)},{colour},{['yes', 'no'][i % 2]},"
                    f"{'abc'[rng.integers(0, 3)]}")
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@needs_mpi
@pytest.mark.parametrize("quoted", [False, True], ids=["byte ranges", "quoted newline: read whole"])
def test_sharded_statistics_give_the_model_one_process_gives(env, tmp_path, quoted):
    """Each rank fits the schema from its shard combined with the others': the same
    vocabularies, classes, fills (medians exactly) and statistics (to 1e-12) as one process,
    hence the same φ up to the summation order."""
    data = _mixed(tmp_path / "mixed.csv", quoted)
    args = [data, "--target", "label", "--layers", "8", "--batch-size", 16, "--epochs", 3,
            "--seed", 1, "--dtype", "float64", "--threads", 1, "--early-stopping", 0]
    one = train(env, tmp_path, 0, *args, "-q", name="one.npz")
    assert one.returncode == 0, one.stderr
    two = train(env, tmp_path, 2, *args, name="two.npz")
    assert two.returncode == 0, two.stderr
    how = ("every rank read all of " + data + " (a quoted field holds a newline) and kept 1/2 "
           "of the rows" if quoted else f"each of 2 ranks read its byte range of {data}")
    assert f"Data: {how}." in two.stderr
    a, b = load_model(tmp_path / "one.npz").meta, load_model(tmp_path / "two.npz").meta
    for x, y in zip(a["schema"]["inputs"], b["schema"]["inputs"]):
        assert {k: v for k, v in x.items() if k not in ("mean", "std")} == \
               {k: v for k, v in y.items() if k not in ("mean", "std")}
        if "mean" in x:
            assert y["mean"] == pytest.approx(x["mean"], rel=1e-12)
            assert y["std"] == pytest.approx(x["std"], rel=1e-12)
    assert a["schema"]["targets"] == b["schema"]["targets"]
    assert (a["train_rows"], a["val_rows"]) == (b["train_rows"], b["val_rows"]) == (192, 48)
    assert b["metrics"]["val_accuracy"] == pytest.approx(a["metrics"]["val_accuracy"])
    ref, got = _phi(tmp_path / "one.npz"), _phi(tmp_path / "two.npz")
    assert np.abs(got - ref).max() / np.abs(ref).max() <= TOLERANCE["float64"]


@needs_mpi
@pytest.mark.parametrize("val_data", [False, True], ids=["split", "val-data file"])
def test_a_regressions_validation_metrics_combine_every_ranks_rows(env, tmp_path, val_data):
    """Held-out rows of every shard, or a --val-data file each rank scores every R-th row of."""
    args = [THREE, "--layers", "8", "--epochs", 2, "--seed", 3, "--dtype", "float64",
            "--threads", 1, "--json", "-q"]
    if val_data:
        (tmp_path / "val.csv").write_text("".join(open(THREE).readlines()[:101]))
        args += ["--val-data", tmp_path / "val.csv"]
    one = train(env, tmp_path, 0, *args, name="one.npz")
    two = train(env, tmp_path, 2, *args, name="two.npz")
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    for k in ("val_loss", "val_rmse", "val_mae", "val_r2"):
        assert b[k] == pytest.approx(a[k], rel=1e-9), k


@needs_mpi
def test_a_bad_cell_in_the_second_shard_is_reported_once_with_its_line(env, tmp_path):
    lines = open(THREE).read().splitlines()
    lines[400] = "oops," + lines[400].split(",", 1)[1]
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    r = train(env, tmp_path, 2, tmp_path / "bad.csv", "--epochs", 1)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: rank 1: {tmp_path / 'bad.csv'}:401: column 'x1' (1): cannot read "
                      "'oops' as a number"], r.stderr


READS_LOGGED = """
import json
import os
import sys
from mpi4py import MPI
import nncli.cachefile as cf
rank = MPI.COMM_WORLD.Get_rank()
log = open(f"reads-{rank}.jsonl", "w")
read_rows = cf.CacheFile.read_rows
def logged(self, lo, hi, X, Y=None):
    log.write(json.dumps([lo, hi]) + "\\n")
    log.flush()
    return read_rows(self, lo, hi, X, Y)
cf.CacheFile.read_rows = logged
if rank:   # only rank 0 reads the whole cache (to check it)
    def refused(*args, **kwargs):
        raise AssertionError("rank 1 opened the whole cache")
    cf.open_cache = refused
from nncli.cli import main
main(sys.argv[1:])
"""


@needs_mpi
def test_a_streamed_run_reads_each_ranks_slice_of_every_block(env, tmp_path):
    """Streaming from the cache in 3 blocks: two ranks train what one process trains, and
    rank r reads rows only from its half of each block."""
    script = tmp_path / "logged.py"
    script.write_text(READS_LOGGED)
    args = [THREE, "--shuffle-block", 150, "--cache", tmp_path / "cache", "--epochs", 3,
            "--seed", 2, "--dtype", "float64", "--threads", 1, "--batch-size", 16]
    one = train(env, tmp_path, 0, *args, "-q", name="one.npz")
    assert one.returncode == 0, one.stderr
    r = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(script), "train",
                        *map(str, args), "--distributed", "-o", "two.npz"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert "Cache " in r.stderr and ("reused; 500 rows in 4 blocks of up to 150; each of 2 "
                                     "ranks reads its slice of every block.") in r.stderr
    ref, got = _phi(tmp_path / "one.npz"), _phi(tmp_path / "two.npz")
    assert np.abs(got - ref).max() / np.abs(ref).max() <= TOLERANCE["float64"]
    meta = load_model(tmp_path / "two.npz").meta
    assert meta["config"]["streamed"] and meta["distributed"] == {"ranks": 2}
    blocks = [(lo, min(lo + 150, 500)) for lo in range(0, 500, 150)]
    for rank in (0, 1):
        reads = {tuple(x) for x in map(json.loads, open(tmp_path / f"reads-{rank}.jsonl"))}
        halves = {(lo + (hi - lo) * rank // 2, lo + (hi - lo) * (rank + 1) // 2) for lo, hi in blocks}
        assert reads == halves, (rank, reads)


@needs_mpi
def test_one_allreduce_of_4p_bytes_per_step(tmp_path):
    """What the README's scaling model assumes: each step of a global batch sends one
    Allreduce of the float32 gradient, 4P bytes, and an epoch one more of its loss."""
    from nncli.distributed import DistributedTrainer
    from nncli.network import Network

    class Counting:   # one rank, recording what training sends
        sent = []

        def Get_rank(self):
            return 0

        def Get_size(self):
            return 1

        def allgather(self, value):
            return [value]

        def Allreduce(self, send, recv, op):
            self.sent.append(recv.nbytes)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(100, 3)), rng.normal(size=(100, 1))
    net = Network([3, 8, 1], ["relu", "identity"], "mse", dtype="float32", seed=0)
    comm = Counting()
    DistributedTrainer(net, X, Y, comm=comm, batch_size=16, epochs=2, seed=0).run()
    assert comm.sent == ([4 * net.n_params] * 7 + [16]) * 2
