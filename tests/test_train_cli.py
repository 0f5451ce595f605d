"""nncli train's guards and reports: files it must not overwrite, early stopping without
validation, diverged models, regression metrics in original units, evaluate --held-out."""
import json
import os
import shutil

import pytest
from click.testing import CliRunner

from nncli.cli import cli

DATA = os.path.join(os.path.dirname(__file__), "..", "data")


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(os.path.join(DATA, "iris.csv"), "iris.csv")
    return tmp_path


def train(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


# -- training never destroys the user's data ----------------------------------------------
@pytest.mark.parametrize("args, names", [
    (["iris.csv", "-o", "iris.csv"], "the training data and the model (-o)"),
    (["iris.csv", "--loss-log", "./iris.csv"], "the training data and --loss-log"),
    (["iris.csv", "--checkpoint", "iris.csv"], "the training data and --checkpoint"),
    (["iris.csv", "--val-data", "v.csv", "--loss-log", "v.csv"], "--val-data and --loss-log"),
    (["iris.csv", "-o", "m.npz", "--loss-log", "m.npz"], "the model (-o) and --loss-log"),
    (["iris.csv", "-o", "m.npz", "--checkpoint", "sub/../m.npz"], "the model (-o) and --checkpoint"),
    (["iris.csv", "--loss-log", "l.csv", "--checkpoint", "l.csv"], "--loss-log and --checkpoint"),
])
def test_a_file_the_run_would_overwrite_is_a_usage_error(here, args, names):
    os.mkdir("sub")
    shutil.copy("iris.csv", "v.csv")
    before = {f: open(f, "rb").read() for f in ("iris.csv", "v.csv")}
    r = train(*args, "-q")
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith(f"Error: {names} are the same file") and "own path" in r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert {f: open(f, "rb").read() for f in before} == before
    assert sorted(os.listdir()) == ["iris.csv", "sub", "v.csv"]   # nothing written


def test_a_link_to_the_data_is_the_data(here):
    os.symlink("iris.csv", "link.npz")
    before = open("iris.csv", "rb").read()
    r = train("iris.csv", "-o", "link.npz", "-q")
    assert r.exit_code == 2 and "the training data and the model (-o)" in r.stderr
    assert open("iris.csv", "rb").read() == before


def test_resume_may_keep_writing_its_checkpoint(here):
    assert train("iris.csv", "--epochs", 4, "--checkpoint", "ck.npz", "--checkpoint-every", 2, "-q").exit_code == 0
    r = train("iris.csv", "--resume", "ck.npz", "--checkpoint", "ck.npz", "-q", "-o", "b.npz")
    assert r.exit_code == 0, r.output
    r = train("iris.csv", "--resume", "ck.npz", "-q", "-o", "ck.npz")
    assert r.exit_code == 2 and "--resume and the model (-o) are the same file" in r.stderr


# -- early stopping needs validation data -------------------------------------------------
def test_early_stopping_without_validation_is_a_usage_error(here):
    r = train("iris.csv", "--early-stopping", 3, "--val-split", 0, "-q")
    assert r.exit_code == 2, r.output
    assert "--early-stopping watches the validation loss" in r.stderr
    assert "--val-split 0.2 or --val-data FILE" in r.stderr and not os.path.exists("iris.npz")
    with open("five.csv", "w") as f:
        f.write("x,y\n1,1.5\n2,2.5\n3,3.5\n4,4.5\n5,5.5\n")
    r = train("five.csv", "--early-stopping", 3, "--val-split", 0.05, "-q")
    assert r.exit_code == 2 and "--val-split 0.05 holds out no row of 5" in r.stderr, r.output


def test_early_stopping_without_validation_in_the_api():
    import numpy as np

    from nncli import Network, train as api_train
    X = np.zeros((8, 2))
    with pytest.raises(ValueError, match="early_stopping watches the validation loss"):
        api_train(Network([2, 1]), X, X[:, :1], early_stopping=3)


# -- a diverged model says so -------------------------------------------------------------
def test_a_diverged_model_says_so_in_info_and_warns_at_predict(here):
    with open("d.csv", "w") as f:
        f.write("x,y\n" + "".join(f"{i},{i * 1000.0}\n" for i in range(50)))
    r = train("d.csv", "--optimizer", "sgd", "--lr", 100, "--no-standardize", "--layers", 8,
              "--epochs", 50, "-q", "--val-split", 0, "-o", "d.npz", "--save-diverged")
    assert r.exit_code == 1 and os.path.exists("d.npz")
    epoch = int(r.stderr.split("diverged at epoch ")[1].split(":")[0])
    info = CliRunner().invoke(cli, ["info", "d.npz"])
    assert f"diverged   yes — saved by --save-diverged at epoch {epoch}," in info.stdout
    assert json.loads(CliRunner().invoke(cli, ["info", "d.npz", "--json"]).stdout)["diverged_epoch"] == epoch
    for command in (["predict", "d.npz", "d.csv"], ["evaluate", "d.npz", "d.csv"]):
        out = CliRunner().invoke(cli, command)
        assert out.exit_code == 0, out.output
        assert out.stderr.count("\n") == 1
        assert out.stderr.startswith(f"Warning: d.npz was saved by --save-diverged at epoch {epoch}")
    healthy = train("d.csv", "-q", "--epochs", 2, "-o", "ok.npz")
    assert healthy.exit_code == 0
    assert CliRunner().invoke(cli, ["predict", "ok.npz", "d.csv"]).stderr == ""
    assert "diverged" not in CliRunner().invoke(cli, ["info", "ok.npz"]).stdout


# -- regression metrics in the target's units; evaluate --held-out -------------------------
def evaluate(*args):
    return CliRunner().invoke(cli, ["evaluate", *map(str, args)])


def test_regression_reports_validation_metrics_in_the_targets_units(here):
    shutil.copy(os.path.join(DATA, "curve.csv"), "curve.csv")
    with open("big.csv", "w") as f:   # the curve's target in thousands: same fit, other units
        lines = open("curve.csv").read().splitlines()
        f.write(lines[0] + "\n" + "".join(f"{x},{float(y) * 1000}\n" for x, y in
                                           (line.split(",") for line in lines[1:])))
    runs = {}
    for name in ("curve", "big"):
        r = train(f"{name}.csv", "--layers", 16, "--activation", "tanh", "--epochs", 40, "--lr", 0.01, "--ensemble", 1,
                  "--json", "--threads", 1, "--no-refit")
        assert r.exit_code == 0, r.output
        runs[name] = json.loads(r.stdout)
        assert f"val RMSE {runs[name]['val_rmse']:.4g}, MAE {runs[name]['val_mae']:.4g}, R² " in r.stderr
        # exactly what evaluate --held-out computes on the rows the model held out
        held = json.loads(evaluate(f"{name}.npz", f"{name}.csv", "--held-out", "--json", "--threads", 1).stdout)
        assert held["rows"] == 40
        for k in ("rmse", "mae", "r2"):
            assert held[k] == runs[name][f"val_{k}"]
    small, big = runs["curve"], runs["big"]
    # the standardised loss is the same; RMSE and MAE scale with the units, R² does not
    assert big["val_loss"] == pytest.approx(small["val_loss"], rel=1e-3)
    assert big["val_rmse"] == pytest.approx(1000 * small["val_rmse"], rel=1e-3)
    assert big["val_mae"] == pytest.approx(1000 * small["val_mae"], rel=1e-3)
    assert big["val_r2"] == pytest.approx(small["val_r2"], rel=1e-3)
    meta = json.loads(CliRunner().invoke(cli, ["info", "big.npz", "--json"]).stdout)
    assert meta["metrics"]["val_rmse"] == big["val_rmse"]


def test_held_out_scores_exactly_the_validation_rows(here):
    r = train("iris.csv", "--epochs", 30, "--seed", 5, "--val-split", 0.3, "--json", "-q", "--no-refit")
    summary = json.loads(r.stdout)
    held = json.loads(evaluate("iris.npz", "iris.csv", "--held-out", "--json").stdout)
    assert held["rows"] == 45 and held["accuracy"] == summary["val_accuracy"]
    assert [c["support"] for c in held["per_class"].values()] == [15, 15, 15]
    whole = json.loads(evaluate("iris.npz", "iris.csv", "--json").stdout)
    assert whole["rows"] == 150


def test_held_out_after_dropping_rows_with_missing_values(here):
    with open("gaps.csv", "w") as f:
        f.write("a,b,y\n" + "".join(f"{i},{'' if i % 6 == 0 else i % 5},{i % 2}\n" for i in range(60)))
    r = train("gaps.csv", "--impute", "drop", "--epochs", 5, "-q", "--json", "--no-refit", "--ensemble", 1)
    assert r.exit_code == 0, r.output
    held = evaluate("gaps.npz", "gaps.csv", "--held-out", "--json")
    assert held.exit_code == 0, held.output
    assert json.loads(held.stdout)["accuracy"] == json.loads(r.stdout)["val_accuracy"]


def test_held_out_is_refused_when_the_rows_are_unknown(here):
    assert train("iris.csv", "--epochs", 2, "-q", "--no-refit").exit_code == 0
    with open("other.csv", "w") as f:
        f.write(open("iris.csv").read() + "5.0,3.0,1.5,0.2,setosa\n")
    r = evaluate("iris.npz", "other.csv", "--held-out")
    assert r.exit_code == 2 and "is not the data iris.npz was trained on" in r.stderr
    shutil.copy("iris.csv", "v.csv")
    assert train("iris.csv", "--epochs", 2, "-q", "--val-data", "v.csv", "-o", "vd.npz").exit_code == 0
    r = evaluate("vd.npz", "iris.csv", "--held-out")
    assert r.exit_code == 2 and "--val-data file" in r.stderr
    assert train("iris.csv", "--epochs", 2, "-q", "--val-split", 0, "-o", "none.npz").exit_code == 0
    r = evaluate("none.npz", "iris.csv", "--held-out")
    assert r.exit_code == 2 and "held out no rows" in r.stderr and len(r.stderr.splitlines()) == 1
    # A refit model learned from the held-out rows too: they cannot score it.
    assert train("iris.csv", "--epochs", 2, "-q", "-o", "refit.npz").exit_code == 0
    r = evaluate("refit.npz", "iris.csv", "--held-out")
    assert r.exit_code == 2 and "refit on every row" in r.stderr and "--no-refit" in r.stderr


def test_devices_may_take_several_outputs(here):
    from nncli.run import TrainingRun
    TrainingRun("iris.csv", {}, output="m.npz", loss_log=os.devnull, checkpoint=os.devnull)._check_paths()


def test_held_out_reads_the_file_as_training_read_it(here):
    with open("nh.csv", "w") as f:
        f.write("".join(f"{i % 7};{(i * 3) % 5};{'ab'[i % 2]}\n" for i in range(40)))
    r = train("nh.csv", "--no-header", "--columns", "p,q,k", "--target", "k", "--epochs", 3, "--ensemble", 1,
              "-q", "--json", "--val-split", 0.25, "--no-refit")
    assert r.exit_code == 0, r.output
    held = evaluate("nh.npz", "nh.csv", "--held-out", "--json")
    assert held.exit_code == 0, held.output
    assert json.loads(held.stdout)["rows"] == 10
    assert json.loads(held.stdout)["accuracy"] == json.loads(r.stdout)["val_accuracy"]
