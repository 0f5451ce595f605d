"""nncli plot-fit: one-input regression models over their data."""
import os

import numpy as np
import pytest
from click.testing import CliRunner

from nncli.cli import cli
from nncli.model_io import load_model, save_model
from nncli.network import Network
from nncli.plot import architecture, fit_curve
from nncli import train

PNG = b"\x89PNG\r\n\x1a\n"
CURVE = os.path.join(os.path.dirname(__file__), "..", "data", "curve.csv")


@pytest.fixture(scope="module")
def curve(tmp_path_factory):
    """(path, x, y): data/curve.csv when shipped, else the same kind of curve."""
    if os.path.exists(CURVE):
        xy = np.loadtxt(CURVE, delimiter=",", skiprows=1)
        return CURVE, xy[:, 0], xy[:, 1]
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(-3, 3, 200))
    y = np.sin(2 * x) * x / 2 + rng.normal(0, 0.05, 200)
    path = tmp_path_factory.mktemp("data") / "curve.csv"
    path.write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in zip(x, y)))
    return str(path), x, y


@pytest.fixture(scope="module")
def models(curve, tmp_path_factory):
    """relu3.npz and relu6.npz trained through the Python API (no schema: raw units)."""
    _, x, y = curve
    folder = tmp_path_factory.mktemp("models")
    paths = []
    for units in (3, 6):
        net = Network([1, units, 1], "relu", seed=3)
        train(net, x.reshape(-1, 1), y.reshape(-1, 1), lr=0.01, batch_size=16, epochs=60, seed=0)
        paths.append(str(folder / f"relu{units}.npz"))
        save_model(paths[-1], net)
    return paths


def run(*args):
    return CliRunner().invoke(cli, ["plot-fit", *map(str, args)])


def test_two_models_in_one_png(curve, models, tmp_path):
    out = tmp_path / "fit.png"
    r = run(*models, curve[0], "-o", out)
    assert r.exit_code == 0, r.output
    data = out.read_bytes()
    assert data[:8] == PNG and len(data) > 20_000
    assert "2 models, 200 data points" in r.stderr


def test_labels_name_file_and_architecture(curve, models, tmp_path):
    out = tmp_path / "fit.svg"
    r = run(models[0], curve[0], "-o", out, "--title", "just one")
    assert r.exit_code == 0, r.output
    svg = out.read_text()
    assert "relu3.npz (1→3→1 relu)" in svg and "just one" in svg


def test_the_curve_is_the_network_output_without_schema(models):
    model = load_model(models[1])
    grid = np.linspace(-3, 3, 7)
    assert fit_curve(model, grid) == pytest.approx(model.network.predict(grid.reshape(-1, 1))[:, 0])
    assert architecture(model.network) == "1→6→1 relu"


def test_a_relu_curve_is_piecewise_linear(models):
    model = load_model(models[0])
    grid = np.linspace(-4, 4, 2001)
    y = fit_curve(model, grid)
    slopes = np.round(np.diff(y) / np.diff(grid), 4)
    # at most 3 kinks for 3 units: at most 4 distinct slopes (plus the cells holding a kink)
    changes = np.count_nonzero(np.abs(np.diff(slopes)) > 1e-3)
    assert changes <= 2 * 3


def test_models_with_several_inputs_or_outputs_are_refused(curve, tmp_path):
    for layers in ([2, 3, 1], [1, 3, 2]):
        path = tmp_path / f"m{layers[0]}{layers[-1]}.npz"
        save_model(path, Network(layers, "relu", seed=0))
        r = run(path, curve[0], "-o", tmp_path / "x.png")
        assert r.exit_code == 1 and "one input and one output" in r.output
        assert "→".join(map(str, layers)) in r.output
    assert not (tmp_path / "x.png").exists()


def test_usage_and_file_errors(curve, models, tmp_path):
    r = run(curve[0])
    assert r.exit_code == 2 and "at least one MODEL" in r.output
    r = run(models[0], curve[0], "-o", tmp_path / "fit.bmp")
    assert r.exit_code == 2 and ".png, .svg or .pdf" in r.output
    r = run(models[0], tmp_path / "missing.csv", "-o", tmp_path / "f.png")
    assert r.exit_code == 1 and "missing.csv" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n2,oops\n")
    r = run(models[0], bad, "-o", tmp_path / "f.png")
    assert r.exit_code == 1 and "bad.csv:3" in r.output


def test_a_trained_model_is_drawn_in_the_data_units(curve, tmp_path):
    pytest.importorskip("nncli.commands.train")
    model = tmp_path / "curve.npz"
    r = CliRunner().invoke(cli, ["train", curve[0], "--layers", "8", "--activation", "tanh",
                                 "--epochs", "40", "--lr", "0.01", "-o", str(model), "--quiet"])
    assert r.exit_code == 0, r.output
    loaded = load_model(model)
    assert loaded.schema is not None
    x = curve[1]
    # the curve passes the standardised grid through the network and scales the output back
    s = loaded.schema
    raw = loaded.network.predict(((x - s.inputs[0].mean) / s.inputs[0].std).reshape(-1, 1))
    want = raw[:, 0] * s.target_std[0] + s.target_mean[0]
    assert fit_curve(loaded, x) == pytest.approx(want, rel=1e-5, abs=1e-6)
    # trained for a while, it is closer to the data than the mean is
    assert np.mean((fit_curve(loaded, x) - curve[2]) ** 2) < np.var(curve[2])
    out = tmp_path / "fit.png"
    r = run(model, curve[0], "-o", out)
    assert r.exit_code == 0 and out.read_bytes()[:8] == PNG
    other = tmp_path / "other.csv"
    other.write_text("u,v\n1,2\n")
    r = run(model, other, "-o", out)
    assert r.exit_code == 1 and "need the columns 'x' and 'y'" in r.output


def test_a_model_trained_without_header_plots_and_gradchecks_without_the_flag(tmp_path):
    from click.testing import CliRunner
    from nncli.cli import cli
    src = tmp_path / "nh.csv"
    src.write_text("".join(f"{i / 20 - 2},{(i / 20 - 2) ** 2}\n" for i in range(60)))
    r = CliRunner()
    assert r.invoke(cli, ["train", str(src), "--no-header", "--columns", "x,y", "--epochs", "3", "-q",
                          "-o", str(tmp_path / "nh.npz")]).exit_code == 0
    fit = r.invoke(cli, ["plot-fit", str(tmp_path / "nh.npz"), str(src), "-o", str(tmp_path / "f.png")])
    assert fit.exit_code == 0, fit.output
    gc = r.invoke(cli, ["gradcheck", "--model", str(tmp_path / "nh.npz"), str(src)])
    assert gc.exit_code == 0, gc.output
