"""nncli gradcheck: backprop vs central differences through the command line."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from nncli.cli import cli
from nncli.functions import ACTIVATIONS, LOSSES
from nncli.model_io import save_model
from nncli.network import Network


def run(*args):
    return CliRunner().invoke(cli, ["gradcheck", *map(str, args)])


def test_default_table():
    r = run()
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "gradcheck: 3→3→3→1 tanh, mse, random data (seed 0)"
    assert lines[1].startswith("P = 28 parameters, 8 rows")
    assert lines[3].split() == ["part", "size", "max", "abs", "error", "rel", "error"]
    parts = [l.split()[:2] for l in lines[4:]]
    assert parts == [["Ω1", "9"], ["β1", "3"], ["Ω2", "9"], ["β2", "3"], ["Ω3", "3"], ["β3", "1"],
                     ["overall", "28"]]
    assert float(lines[-1].split()[-1]) < 1e-6
    assert r.stderr == ""


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_every_activation_and_loss_passes(act, loss):
    out = 3 if loss == "cross_entropy" else 2
    r = run("--layers", f"3,4,3,{out}", "--activation", act, "--loss", loss, "--rows", 6,
            "--seed", 1, "--json")
    assert r.exit_code == 0, (r.output, act, loss)
    d = json.loads(r.stdout)
    assert d["passed"] and d["rel_error"] < 1e-6 and d["loss_function"] == loss
    assert d["activations"] == [act, act, "identity"]
    assert [p["name"] for p in d["parts"]] == ["Ω1", "β1", "Ω2", "β2", "Ω3", "β3"]
    assert sum(p["size"] for p in d["parts"]) == d["n_params"] == 3 * 4 + 4 + 4 * 3 + 3 + 3 * out + out


def test_one_activation_per_hidden_layer_and_no_hidden_layer():
    r = run("--layers", "2,5,4,1", "--activation", "relu,sin", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["activations"] == ["relu", "sin", "identity"]
    r = run("--layers", "2,1", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["activations"] == ["identity"]


def test_a_wrong_gradient_fails_with_exit_1(monkeypatch):
    right = Network.loss_and_gradient

    def wrong(self, X, Y, n_threads=None):
        loss, grad = right(self, X, Y, n_threads)
        grad[5] += 1e-3 * (abs(grad[5]) + 1)      # one entry of Ω1 a little off
        return loss, grad

    monkeypatch.setattr(Network, "loss_and_gradient", wrong)
    r = run()
    assert r.exit_code == 1
    assert "gradcheck failed: relative error" in r.stderr and "above the tolerance 1e-06" in r.stderr
    table = {l.split()[0]: l.split() for l in r.stdout.splitlines()[4:]}
    assert float(table["Ω1"][-1]) > 1e-5 and float(table["β1"][-1]) < 1e-6
    r = run("--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["passed"] is False
    # a loose enough tolerance lets it through
    assert run("--tolerance", 0.1).exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["--activation", "tanh,relu", "--layers", "3,3,3,3,1"], "2 activations for 3 hidden layers"),
    (["--activation", "swish"], "'swish' is not one of identity, relu"),
    (["--layers", "3"], "at least an input and an output"),
    (["--layers", "3,x,1"], "Invalid value for '--layers': 'x': not a whole number"),
    (["--layers", "3,0,1"], "Invalid value for '--layers': '0': must be a whole number of at least 1"),
    (["--loss", "hinge"], "'hinge' is not one of"),
    (["data.csv"], "DATA is only read with --model"),
    (["--model", "m.npz"], "--model needs a DATA file"),
    (["--layers", "200,200,1"], "more than 20000 parameters"),
])
def test_usage_errors(args, message):
    r = run(*args)
    assert r.exit_code == 2 and message in r.output


def test_a_saved_model_on_its_data(tmp_path):
    pytest.importorskip("nncli.commands.train")
    data = tmp_path / "d.csv"
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (40, 2))
    lines = ["a,b,label"] + [f"{a:.4f},{b:.4f},{'yes' if a * b > 0 else 'no'}" for a, b in X]
    data.write_text("\n".join(lines) + "\n")
    model = tmp_path / "m.npz"
    r = CliRunner().invoke(cli, ["train", str(data), "--layers", "4", "--activation", "tanh",
                                 "--epochs", "5", "-o", str(model), "--quiet"])
    assert r.exit_code == 0, r.output
    r = run("--model", model, data, "--rows", 10, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["passed"] and d["rows"] == 10 and d["layers"] == [2, 4, 2]
    assert d["loss_function"] == "cross_entropy"
    r = run("--model", model, data, "--layers", "2,2")
    assert r.exit_code == 2 and "cannot be combined with --model" in r.output


def test_a_model_without_schema_or_a_bad_file(tmp_path):
    net = Network([2, 3, 1], "tanh", seed=0)
    save_model(tmp_path / "api.npz", net)
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,3\n")
    r = run("--model", tmp_path / "api.npz", tmp_path / "d.csv")
    assert r.exit_code == 1 and "no data schema" in r.output
    (tmp_path / "junk.npz").write_text("not a model")
    r = run("--model", tmp_path / "junk.npz", tmp_path / "d.csv")
    assert r.exit_code == 1 and "not an nncli model file" in r.output
