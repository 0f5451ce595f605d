"""nncli gradcheck: backprop vs central differences through the command line."""
import json
import os

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
    assert lines[3].split() == ["part", "size", "skipped", "max", "abs", "error", "rel", "error"]
    parts = [l.split()[:3] for l in lines[4:]]
    assert parts == [["Ω1", "9", "0"], ["β1", "3", "0"], ["Ω2", "9", "0"], ["β2", "3", "0"],
                     ["Ω3", "3", "0"], ["β3", "1", "0"], ["overall", "28", "0"]]
    assert float(lines[-1].split()[-1]) < 1e-6
    assert r.stderr == ""


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_every_activation_and_loss_passes(act, loss):
    out = 3 if loss == "cross_entropy" else 2
    r = run("--inputs", 3, "--layers", "4,3", "--outputs", out, "--activation", act, "--loss", loss, "--rows", 6,
            "--seed", 1, "--json")
    assert r.exit_code == 0, (r.output, act, loss)
    d = json.loads(r.stdout)
    assert d["passed"] and d["rel_error"] < 1e-6 and d["loss_function"] == loss
    assert d["activations"] == [act, act, "identity"]
    assert [p["name"] for p in d["parts"]] == ["Ω1", "β1", "Ω2", "β2", "Ω3", "β3"]
    assert sum(p["size"] for p in d["parts"]) == d["n_params"] == 3 * 4 + 4 + 4 * 3 + 3 + 3 * out + out


def test_one_activation_per_hidden_layer_and_no_hidden_layer():
    r = run("--inputs", 2, "--layers", "5,4", "--activation", "relu,sin", "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == 0 and d["activations"] == ["relu", "sin", "identity"]
    assert d["layers"] == [2, 5, 4, 1]
    r = run("--inputs", 2, "--layers", "", "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == 0 and d["activations"] == ["identity"] and d["layers"] == [2, 1]


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
    (["--activation", "tanh,relu", "--layers", "3,3,3"], "2 activations for 3 hidden layers"),
    (["--activation", "swish"], "'swish' is not one of identity, relu"),
    (["--layers", "3,x"], "Invalid value for '--layers': 'x': not a whole number"),
    (["--layers", "3,0"], "Invalid value for '--layers': '0': must be a whole number of at least 1"),
    (["--inputs", "0"], "--inputs"),
    (["--outputs", "0"], "--outputs"),
    (["--loss", "hinge"], "'hinge' is not one of"),
    (["data.csv"], "DATA is only read with --model"),
    (["--model", "m.npz"], "--model needs a DATA file"),
    (["--inputs", "200", "--layers", "200"], "more than 20000 parameters"),
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
    assert r.exit_code == 2 and "--layers describes a new network" in r.output
    r = run("--model", model, data, "--inputs", "2")
    assert r.exit_code == 2 and "--inputs describes a new network" in r.output


def test_a_model_without_schema_or_a_bad_file(tmp_path):
    net = Network([2, 3, 1], "tanh", seed=0)
    save_model(tmp_path / "api.npz", net)
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,3\n")
    r = run("--model", tmp_path / "api.npz", tmp_path / "d.csv")
    assert r.exit_code == 1 and "no data schema" in r.output
    (tmp_path / "junk.npz").write_text("not a model")
    r = run("--model", tmp_path / "junk.npz", tmp_path / "d.csv")
    assert r.exit_code == 1 and "not an nncli model file" in r.output


def test_layers_means_hidden_widths_as_in_train(tmp_path):
    """The same --layers value gives the same network in train and gradcheck."""
    data = tmp_path / "d.csv"
    data.write_text("a,b,c,y\n" + "".join(f"{i},{i % 3},{i % 5},{i * 0.5}\n" for i in range(20)))
    r = CliRunner().invoke(cli, ["train", str(data), "--layers", "5,4", "--epochs", "1", "-q",
                                 "-o", str(tmp_path / "m.npz"), "--json"])
    assert r.exit_code == 0, r.output
    trained = json.loads(r.stdout)["layers"]
    checked = json.loads(run("--layers", "5,4", "--json").stdout)["layers"]
    assert trained == checked == [3, 5, 4, 1]


def _help_examples():
    from nncli.commands.gradcheck import command
    return [line.split()[2:] for line in command.help.splitlines()
            if line.strip().startswith("nncli gradcheck")]


def test_every_help_example_runs(tmp_path, monkeypatch):
    examples = _help_examples()
    assert len(examples) == 4
    repo = os.path.join(os.path.dirname(__file__), "..")
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.abspath(os.path.join(repo, "data")), "data")
    r = CliRunner().invoke(cli, ["train", "data/iris.csv", "--epochs", "20", "-q"])
    assert r.exit_code == 0 and os.path.exists("iris.npz"), r.output
    for args in examples:
        r = run(*args)
        assert r.exit_code == 0, (args, r.output)
        assert "overall" in r.stdout or json.loads(r.stdout)["passed"]


def _dead_unit_model(tmp_path):
    """A trained relu model whose first hidden unit is dead: its weights and bias are 0, so
    its pre-activation is exactly 0 on every row, the kink of relu."""
    from nncli.model_io import load_model
    data = tmp_path / "d.csv"
    rng = np.random.default_rng(3)
    X = rng.uniform(-2, 2, (30, 2))
    data.write_text("a,b,y\n" + "".join(f"{a:.4f},{b:.4f},{a - 2 * b:.4f}\n" for a, b in X))
    path = tmp_path / "relu.npz"
    r = CliRunner().invoke(cli, ["train", str(data), "--layers", "5", "--activation", "relu",
                                 "--epochs", "20", "-q", "-o", str(path)])
    assert r.exit_code == 0, r.output
    model = load_model(path)
    net = model.network
    net.weights[0][0, :] = 0.0
    net.biases[0][0] = 0.0
    save_model(path, net, model.meta)
    return path, data


def test_a_dead_relu_unit_is_skipped_not_failed(tmp_path):
    model, data = _dead_unit_model(tmp_path)
    r = run("--model", model, data, "--rows", 30, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["passed"] and d["rel_error"] < 1e-6
    # the dead unit's 2 weights and bias straddle the kink; nothing else is near one here
    assert d["skipped"] == 3 and [p["skipped"] for p in d["parts"]] == [2, 1, 0, 0]
    assert "across its kink" in d["skipped_reason"]
    r = run("--model", model, data, "--rows", 30)
    assert r.exit_code == 0
    assert "3 skipped: a step of ±h moves a pre-activation of relu/leaky_relu/elu" in r.stdout


def test_the_skipped_parameters_are_the_ones_central_differences_get_wrong(tmp_path):
    from nncli.data import encode_features, encode_targets, read_csv
    from nncli.gradcheck import gradient_check
    from nncli.model_io import load_model
    model_path, data = _dead_unit_model(tmp_path)
    model = load_model(model_path)
    table = read_csv(data)
    X, Y = encode_features(table, model.schema), encode_targets(table, model.schema)
    net = Network(model.network.layers, model.network.activations, "mse", dtype="float64",
                  phi=model.network.phi)
    check = gradient_check(net, X, Y)
    off = np.abs(check.analytic - check.numerical)
    scale = np.abs(check.numerical).max()
    # Without skipping, the check would fail on exactly these parameters.
    assert (off[check.skipped] > 1e-3 * scale).all()
    assert (off[~check.skipped] < 1e-6 * scale).all()
