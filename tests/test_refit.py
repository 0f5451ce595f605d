"""The training defaults chosen on benchmarks/quality: early stopping, then a refit on every row."""
import json
import os

import numpy as np
from click.testing import CliRunner

from nncli.cli import cli

DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def train(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


def test_refit_trains_a_new_network_on_every_row_for_the_picked_epochs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    iris = os.path.join(DATA, "iris.csv")
    r = train(iris, "--early-stopping", 3, "--epochs", 60, "--lr", 0.05, "-o", "a.npz", "--json", "-q")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["stopped_early"] and s["refit"]["rows"] == 150
    assert s["refit"]["epochs"] == s["best_epoch"] < s["epochs"]
    plain = json.loads(train(iris, "--early-stopping", 3, "--epochs", 60, "--lr", 0.05, "-o", "b.npz",
                             "--json", "-q", "--no-refit").stdout)
    assert plain["refit"] is None
    # Same validation run, so the same reported metrics; a different saved network.
    assert plain["val_loss"] == s["val_loss"] and plain["best_epoch"] == s["best_epoch"]
    from nncli.model_io import load_model
    a, b = load_model("a.npz"), load_model("b.npz")
    assert not np.array_equal(a.network.phi, b.network.phi)
    assert a.meta["refit"]["epochs"] == s["best_epoch"] and "refit" not in b.meta
    info = CliRunner().invoke(cli, ["info", "a.npz"]).output
    assert f"refit      on all 150 rows for {s['best_epoch']} epochs" in info
    # The refit network is a model like any other.
    ev = json.loads(CliRunner().invoke(cli, ["evaluate", "a.npz", iris, "--json"]).stdout)
    assert ev["accuracy"] > 0.9


def test_early_stopping_default_is_off_without_validation_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = train(os.path.join(DATA, "xor.csv"), "--val-split", 0, "--epochs", 5, "-q", "--json", "-o", "x.npz")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["epochs"] == 5 and s["refit"] is None and not s["stopped_early"]
    r = train(os.path.join(DATA, "xor.csv"), "--val-split", 0, "--early-stopping", 5, "-q")
    assert r.exit_code == 2 and "--early-stopping watches the validation loss" in r.stderr


def test_ensemble_averages_its_members_and_is_one_model_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    iris = os.path.join(DATA, "iris.csv")
    r = train(iris, "--ensemble", 3, "--epochs", 5, "-o", "e.npz", "-q", "--json")
    assert r.exit_code == 0, r.output
    e = json.loads(r.stdout)["ensemble"]
    assert e["members"] == 3 and e["seeds"] == [0, 1, 2] and 0 <= e["val_accuracy"] <= 1
    from nncli.data import encode_features, read_csv
    from nncli.ensemble import Ensemble
    from nncli.model_io import load_model, save_model
    model = load_model("e.npz")
    ens = model.network
    assert isinstance(ens, Ensemble) and len(ens) == 3 and ens.layers == [4, 64, 32, 3]
    assert model.meta["ensemble"]["members"] == 3
    # With --no-refit the held-out rows score the saved ensemble: the same accuracy.
    r = train(iris, "--ensemble", 3, "--epochs", 5, "-o", "n.npz", "-q", "--json", "--no-refit")
    held = json.loads(CliRunner().invoke(cli, ["evaluate", "n.npz", iris, "--held-out", "--json"]).stdout)
    assert held["accuracy"] == json.loads(r.stdout)["ensemble"]["val_accuracy"]
    phis = [m.phi for m in ens.members]
    assert not np.array_equal(phis[0], phis[1]) and not np.array_equal(phis[1], phis[2])
    X = encode_features(read_csv(iris), model.schema)
    mean = np.mean([m.predict(X).astype(np.float64) for m in ens.members], axis=0)
    np.testing.assert_allclose(ens.predict(X), mean, rtol=1e-6)
    # The CLI predicts with the average.
    out = CliRunner().invoke(cli, ["predict", "e.npz", iris, "--proba"]).stdout.splitlines()
    assert float(out[1].split(",")[1]) == np.float32(mean[0, 0])
    # A member alone is a plain model; a file whose ensemble does not fit is refused.
    single = train(iris, "--epochs", 5, "-o", "s.npz", "-q", "--ensemble", 1)
    assert single.exit_code == 0 and "ensemble" not in np.load("s.npz").files
    save_model("bad.npz", ens.members[0], {**model.meta},
               {"ensemble": np.zeros((1, ens.n_params), np.float32)})
    r = CliRunner().invoke(cli, ["info", "bad.npz"])
    assert r.exit_code == 1 and "'ensemble' must be a 2 × 2499 float32 array" in r.stderr


def test_ensemble_refuses_checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = train(os.path.join(DATA, "iris.csv"), "--ensemble", 2, "--checkpoint", "c.npz", "-q")
    assert r.exit_code == 2 and "--ensemble cannot be combined with --checkpoint" in r.stderr


def test_a_small_table_gets_an_ensemble_of_five_by_default_and_a_large_one_a_single_network(
        tmp_path, monkeypatch):
    from nncli import pipeline
    from nncli.model_io import load_model
    monkeypatch.chdir(tmp_path)
    iris = os.path.join(DATA, "iris.csv")
    r = train(iris, "--epochs", 3, "-o", "d.npz")
    assert r.exit_code == 0, r.output
    assert "Training 5 networks 4→64→32→3 (2499 parameters each; the default up to 10,000 rows, " \
           "--ensemble 1 for one) on 120 rows" in r.stderr
    d = load_model("d.npz")
    assert len(d.network) == 5 and d.meta["config"]["ensemble"] == 5
    # what a user gives wins, and the line says no more than the count
    r = train(iris, "--epochs", 3, "-o", "two.npz", "--ensemble", 2)
    assert "Training 2 networks 4→64→32→3 (2499 parameters each) on" in r.stderr
    assert pipeline.default_ensemble(10_000) == 5 and pipeline.default_ensemble(10_001) == 1
    assert pipeline.default_ensemble(100, dense=False) == 1 == pipeline.default_ensemble(100, alone=False)
    # one network where a table has more rows (the threshold lowered here), or a run keeps
    # a checkpoint (it holds one network)
    for args in (["--checkpoint", "ck.npz"], []):
        if not args:
            monkeypatch.setattr(pipeline, "ENSEMBLE_ROWS", 149)
        r = train(iris, "--epochs", 3, "-o", "one.npz", *args)
        assert r.exit_code == 0, r.output
        assert "Training 4→64→32→3 network (2499 parameters) on 120 rows" in r.stderr
        assert load_model("one.npz").meta["config"]["ensemble"] == 1
