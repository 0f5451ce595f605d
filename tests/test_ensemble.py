"""--ensemble N trains its members together (nncli.ensemble_training): one pass over the data
per epoch, members on threads, each member the network it would be alone with its seed.
(The averaged prediction and the model file: tests/test_refit.py.)"""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from nncli import pipeline
from nncli.cli import cli
from nncli.ensemble import Ensemble
from nncli.model_io import load_model
from nncli.run import TrainingRun

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
IRIS = os.path.join(DATA, "iris.csv")


def train(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


def arrays(path):
    with np.load(path) as f:
        return f["phi"], f["ensemble"]


def test_each_member_is_the_network_it_would_be_alone(tmp_path):
    # Early stopping with a short patience: the members stop at different epochs, and the
    # ones still training go on without them.
    config = {"epochs": 40, "seed": 3, "lr": 0.05, "early_stopping": 2, "ensemble": 3,
              "threads": 2, "refit": False, "layers": [16], "val_split": 0.2}
    run = TrainingRun(IRIS, config, output=str(tmp_path / "e.npz")).prepare()
    summary = run.train()
    picked = summary["ensemble"]["epochs"]
    assert len(set(picked)) > 1, picked
    ens = load_model(tmp_path / "e.npz").network
    first = run.trainers[0]
    for k in range(3):
        opts = {**run.config, "seed": 3 + k}
        net = pipeline.build_network(run.data, opts)
        alone = pipeline.make_trainer(net, first.X, first.Y, run.validation, opts)
        alone.run()
        assert alone.history.best_epoch == picked[k]
        assert np.array_equal(net.phi, ens.members[k].phi), k


def test_same_seed_and_threads_give_the_same_model_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [IRIS, "--ensemble", 4, "--epochs", 12, "--layers", 16, "--seed", 7, "-q"]
    for name, threads in (("a", 2), ("b", 2), ("c", 1)):
        r = train(*args, "--threads", threads, "-o", f"{name}.npz")
        assert r.exit_code == 0, r.output
    a, b, c = arrays("a.npz"), arrays("b.npz"), arrays("c.npz")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # The kernels give the same bits on any thread count, and so do the members.
    assert all(np.array_equal(x, y) for x, y in zip(a, c))
    phis = [a[0], *a[1]]
    assert all(not np.array_equal(phis[i], phis[j]) for i in range(4) for j in range(i))
    # refit (on by default) trained each member again, and predict/evaluate/export read it
    model = load_model("a.npz")
    assert model.meta["refit"]["rows"] == 150 and len(model.network) == 4
    ev = CliRunner().invoke(cli, ["evaluate", "a.npz", IRIS, "--json"])
    assert ev.exit_code == 0 and json.loads(ev.stdout)["accuracy"] > 0.8
    info = CliRunner().invoke(cli, ["info", "a.npz"]).stdout
    assert "ensemble   4 networks, predictions averaged (seeds [7, 8, 9, 10], epochs [12, 12, 12, 12])" in info


def test_members_with_dropout_draw_their_own_masks_the_same_on_any_thread_count(tmp_path, monkeypatch):
    """Dropout in an ensemble: each member's masks come from its own seed, so the members
    differ from the same members without dropout and the file is the same on 1 or 2 threads."""
    monkeypatch.chdir(tmp_path)
    args = [IRIS, "--ensemble", 3, "--epochs", 8, "--layers", 16, "--seed", 7, "-q"]
    for name, extra in (("a", ["--threads", 2]), ("b", ["--threads", 1]), ("plain", ["--threads", 2])):
        r = train(*args, *(["--dropout", 0.3] if name != "plain" else []), *extra, "-o", f"{name}.npz")
        assert r.exit_code == 0, r.output
    a, b, plain = arrays("a.npz"), arrays("b.npz"), arrays("plain.npz")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not any(np.array_equal(x, y) for x, y in zip([a[0], *a[1]], [plain[0], *plain[1]]))


def test_a_diverging_member_stops_the_run_and_save_diverged_keeps_every_member(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("d.csv", "w") as f:
        f.write("x,y\n" + "".join(f"{i},{i * 1000.0}\n" for i in range(50)))
    r = train("d.csv", "--optimizer", "sgd", "--lr", 100, "--no-standardize", "--layers", 8,
              "--epochs", 50, "-q", "--val-split", 0, "--ensemble", 3, "--threads", 2,
              "-o", "d.npz", "--save-diverged")
    assert r.exit_code == 1 and r.stderr.startswith("Error: training diverged at epoch ")
    assert r.stderr.count("\n") == 1
    model = load_model("d.npz")
    assert isinstance(model.network, Ensemble) and len(model.network) == 3
    assert model.meta["diverged"] is True
    assert all(np.all(np.isfinite(m.phi)) for m in model.network.members)
    # every member back to its φ before the epoch that diverged, on any number of threads
    r = train("d.csv", "--optimizer", "sgd", "--lr", 100, "--no-standardize", "--layers", 8,
              "--epochs", 50, "-q", "--val-split", 0, "--ensemble", 3, "--threads", 1,
              "-o", "d1.npz", "--save-diverged")
    assert r.exit_code == 1
    assert all(np.array_equal(x, y) for x, y in zip(arrays("d.npz"), arrays("d1.npz")))
    r = train("d.csv", "--optimizer", "sgd", "--lr", 100, "--no-standardize", "--layers", 8,
              "--epochs", 50, "-q", "--val-split", 0, "--ensemble", 3, "-o", "n.npz")
    assert r.exit_code == 1 and not os.path.exists("n.npz")


def _write_table(path, n=1200):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2]
    with open(path, "w") as f:
        f.write("a,b,c,y\n" + "".join(f"{a:.5f},{b:.5f},{c:.5f},{t:.5f}\n" for (a, b, c), t in zip(x, y)))


@pytest.mark.parametrize("table", ["regression", "classification"])
def test_a_streamed_ensemble_in_one_block_is_the_in_memory_one(tmp_path, monkeypatch, table):
    monkeypatch.chdir(tmp_path)
    data = "t.csv" if table == "regression" else IRIS
    if table == "regression":
        _write_table(data)
    args = [data, "--ensemble", 3, "--epochs", 4, "--layers", 8, "--seed", 2, "--threads", 2, "-q",
            "--json"]
    mem = train(*args, "--no-cache", "-o", "mem.npz")
    assert mem.exit_code == 0, mem.output
    st = train(*args, "--cache", "c", "--shuffle-block", 100000, "-o", "st.npz")
    assert st.exit_code == 0, st.output
    # with refit (on every row, read from the cache's blocks) on both sides
    assert load_model("st.npz").meta["refit"]["rows"] == (1200 if table == "regression" else 150)
    assert all(np.array_equal(x, y) for x, y in zip(arrays("mem.npz"), arrays("st.npz")))
    # the ensemble scored on the cache's held-out rows as on the in-memory ones
    assert json.loads(st.stdout)["ensemble"] == json.loads(mem.stdout)["ensemble"]


def test_a_streamed_ensemble_reads_each_block_once_per_pass(tmp_path):
    _write_table(tmp_path / "t.csv")
    config = {"epochs": 3, "seed": 1, "layers": [8], "ensemble": 3, "threads": 2, "refit": False,
              "shuffle_block": 300, "val_split": 0.2}
    run = TrainingRun(str(tmp_path / "t.csv"), config, output=str(tmp_path / "s.npz"),
                      cache_dir=str(tmp_path / "c")).prepare()
    blocks = len(run.trainer.blocks)
    assert blocks == 4 and len(run.trainers) == 3
    reads = []
    read_rows = run.cache.read_rows
    run.cache.read_rows = lambda lo, hi, X, Y: (reads.append(lo), read_rows(lo, hi, X, Y))[1]
    run.train()
    # a training pass and a validation pass per epoch for all members at once, then the
    # final metrics (the first member's in the target's units, the ensemble's): one member's
    # reads, where members trained one after another would read three times as much
    assert len(reads) <= 3 * 2 * blocks + 2 * blocks
    ens = load_model(tmp_path / "s.npz").network
    assert len(ens) == 3 and not np.array_equal(ens.members[0].phi, ens.members[1].phi)
    again = TrainingRun(str(tmp_path / "t.csv"), config, output=str(tmp_path / "s2.npz"),
                        cache_dir=str(tmp_path / "c")).prepare()
    again.train()
    assert all(np.array_equal(x, y) for x, y in zip(arrays(tmp_path / "s.npz"),
                                                       arrays(tmp_path / "s2.npz")))


@pytest.mark.parametrize("refit", [True, False])
def test_the_ensemble_record_names_each_members_epochs(tmp_path, monkeypatch, refit):
    monkeypatch.chdir(tmp_path)
    r = train(IRIS, "--ensemble", 2, "--epochs", 30, "--early-stopping", 2, "--lr", 0.05, "--seed", 3,
              "--json", "-q", "-o", "m.npz", *([] if refit else ["--no-refit"]))
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert len(s["ensemble"]["epochs"]) == 2 and s["ensemble"]["epochs"][0] == s["best_epoch"]
    assert (s["refit"] is not None) == refit


def test_a_kan_network_refits_when_asked_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kan = os.path.join(DATA, "kan.csv")
    args = [kan, "--arch", "kan", "--layers", 3, "--epochs", 6, "--seed", 1, "-q", "--json"]
    assert json.loads(train(*args, "-o", "a.npz").stdout)["refit"] is None
    s = json.loads(train(*args, "--refit", "-o", "b.npz").stdout)
    assert s["refit"] == {"epochs": 6, "rows": 2000, "seconds": s["refit"]["seconds"]}
    a, b = load_model("a.npz"), load_model("b.npz")
    assert a.meta["metrics"] == b.meta["metrics"] and not np.array_equal(a.network.phi, b.network.phi)


def test_an_ensemble_of_kan_networks_keeps_each_members_grids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kan = os.path.join(DATA, "kan.csv")
    # A grid refinement half-way (3 → 6 after epoch 10) and a short patience: members that
    # stop before it are refined to the finest grid when the ensemble is put together.
    r = train(kan, "--arch", "kan", "--layers", 3, "--grid", "3,6", "--ensemble", 3, "--epochs", 20,
              "--early-stopping", 2, "--lr", 0.05, "--seed", 4, "--threads", 2, "-q", "--json",
              "--refit", "-o", "k.npz")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["refit"] is not None and s["ensemble"]["val_r2"] > 0.5
    assert min(s["ensemble"]["epochs"]) < 10 < max(s["ensemble"]["epochs"])   # both sides of it
    model = load_model("k.npz")
    ens = model.network
    assert len(ens) == 3 and all(m.options[0]["grid"] == 6 for m in ens.members)
    assert model.meta["layer_options"][0]["grid"] == 6
    # the hidden layer's grid follows its inputs: each member's own
    assert not np.array_equal(ens.members[0].grids[1], ens.members[1].grids[1])
    from nncli.data import encode_features, read_csv
    X = encode_features(read_csv(kan), model.schema)
    mean = np.mean([m.predict(X).astype(np.float64) for m in ens.members], axis=0)
    np.testing.assert_allclose(ens.predict(X), mean, rtol=1e-6)
    ev = CliRunner().invoke(cli, ["evaluate", "k.npz", kan, "--json"])
    assert ev.exit_code == 0 and json.loads(ev.stdout)["r2"] > 0.5
    # a file whose members' knots are missing or do not fit is refused in one line
    with np.load("k.npz") as f:
        arrays = {k: f[k] for k in f.files}
    np.savez("no-knots.npz", **{k: v for k, v in arrays.items() if k != "ensemble_knots"})
    np.savez("bad-knots.npz", **{**arrays, "ensemble_knots": arrays["ensemble_knots"][:1]})
    for name, message in (("no-knots.npz", "an ensemble of KAN networks needs 'ensemble_knots'"),
                          ("bad-knots.npz", "'ensemble_knots' must hold one row of knots per member")):
        r = CliRunner().invoke(cli, ["info", name])
        assert r.exit_code == 1 and message in r.stderr and r.stderr.count("\n") == 1, r.output


def test_a_callback_asking_to_stop_stops_every_member(tmp_path):
    config = {"epochs": 30, "seed": 1, "layers": [8], "ensemble": 3, "threads": 2, "refit": False,
              "early_stopping": 0, "val_split": 0.2}
    run = TrainingRun(IRIS, config, output=str(tmp_path / "s.npz")).prepare()
    seen = []
    run.train([lambda record, trainer: seen.append(record.epoch) or record.epoch == 4])
    assert seen == [1, 2, 3, 4] and [t.epoch for t in run.trainers] == [4, 4, 4]


def test_the_kernels_the_members_run_on_threads_release_the_gil():
    # While one thread is inside Engine.train_epoch / evaluate, another runs Python: were
    # the GIL held for the call, the counter could not move until it returned.
    import threading

    from nncli.network import Network
    from nncli.training import Trainer
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100000, 12)).astype(np.float32)
    Y = rng.normal(size=(100000, 1)).astype(np.float32)
    # calls of some 50 ms each: time enough for the other thread to wake up
    trainer = Trainer(Network([12, 64, 32, 1], ["relu", "relu"], "mse", seed=0), X[:20000], Y[:20000],
                      epochs=1, seed=0, n_threads=1, validation=(X, Y))
    trainer.begin()
    count, stop = [0], []

    def spin():
        while not stop:
            count[0] += 1
    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        moved = []
        for step in (trainer.epoch_train, trainer.epoch_validate):
            most = 0
            for _ in range(3):   # the best of three: a busy machine may wake the other late
                trainer.epoch_start()
                before = count[0]
                step()
                most = max(most, count[0] - before)
            moved.append(most)
    finally:
        stop.append(True)
        spinner.join()
    assert min(moved) > 100, moved


def test_a_streamed_ensemble_validates_on_a_val_data_file(tmp_path, monkeypatch):
    # (the cache of a regression with --val-data holds no held-out rows: an empty array)
    monkeypatch.chdir(tmp_path)
    _write_table("t.csv")
    _write_table("v.csv", n=200)
    args = ["t.csv", "--val-data", "v.csv", "--ensemble", 2, "--epochs", 3, "--layers", 8, "--seed", 2,
            "--threads", 2, "-q", "--json"]
    st = train(*args, "--cache", "c", "--shuffle-block", 500, "-o", "st.npz")
    assert st.exit_code == 0, st.output
    s = json.loads(st.stdout)
    assert s["refit"] is None and s["ensemble"]["val_r2"] is not None
    assert load_model("st.npz").meta["validation"] == {"source": "file", "sha256": sha256_of("v.csv"),
                                                        "rows": 200}


def sha256_of(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
