"""Class weights and label smoothing: the loss and gradient they give, by hand and against
central differences, and the CLI options."""
import numpy as np
import pytest
from click.testing import CliRunner

from nncli import targets as T
from nncli.cli import cli
from nncli.errors import ConfigError
from nncli.gradcheck import gradient_check
from nncli.network import Network


def logits_net(b):
    """2 inputs → 3 logits, Ω = 0 and β = b: the logits are b whatever the input."""
    net = Network([2, 3], [], "cross_entropy", dtype="float64")
    net.phi[:] = 0.0
    net.phi[6:] = b
    return net


def test_weighted_cross_entropy_by_hand():
    # z = (1, 2, 0), class 0, weight 2:  s = e + e² + 1 = 11.1073…, p = e^z / s
    # ℓ = 2 · (log s − 1) = 2 · 1.4076 = 2.8152;  ∂ℓ/∂β = 2 · (p − e_0)
    net = logits_net([1.0, 2.0, 0.0])
    X = np.zeros((1, 2))
    Y = T.shape_targets(np.array([[1.0, 0, 0]]), np.array([2.0, 1.0, 1.0]))
    assert Y.tolist() == [[2.0, 0, 0]]
    loss, grad = net.loss_and_gradient(X, Y)
    s = np.e + np.e ** 2 + 1
    p = np.array([np.e, np.e ** 2, 1]) / s
    assert loss == pytest.approx(2 * (np.log(s) - 1), rel=1e-12)
    assert grad[6:] == pytest.approx(2 * (p - [1, 0, 0]), rel=1e-12)
    assert grad[:6] == pytest.approx(0.0)   # the input is 0: no weight gradient


def test_label_smoothing_by_hand():
    # ε = 0.3 over 3 classes, class 1: y = (0.1, 0.8, 0.1); ℓ = −Σ y log p; ∂ℓ/∂β = p − y
    net = logits_net([1.0, 2.0, 0.0])
    Y = T.shape_targets(np.array([[0.0, 1, 0]]), smoothing=0.3)
    assert Y[0] == pytest.approx([0.1, 0.8, 0.1])
    loss, grad = net.loss_and_gradient(np.zeros((1, 2)), Y)
    p = np.exp([1.0, 2.0, 0.0]) / np.exp([1.0, 2.0, 0.0]).sum()
    assert loss == pytest.approx(-(Y[0] * np.log(p)).sum(), rel=1e-12)
    assert grad[6:] == pytest.approx(p - Y[0], rel=1e-12)


def test_weighted_smoothed_targets_pass_the_gradient_check():
    rng = np.random.default_rng(0)
    net = Network([3, 5, 4], ["tanh"], "cross_entropy", dtype="float64", seed=1)
    X = rng.normal(size=(12, 3))
    labels = rng.integers(0, 4, size=12)
    Y = T.shape_targets(np.eye(4)[labels], T.class_weights("balanced", list("abcd"), labels), 0.1)
    check = gradient_check(net, X, Y)
    assert check.passed(1e-7), check.rel


def test_class_weights():
    labels = np.array([0, 0, 0, 1])
    assert T.class_weights("balanced", ["a", "b"], labels) == pytest.approx([4 / 6, 2.0])
    assert T.class_weights("b=3", ["a", "b"], labels).tolist() == [1.0, 3.0]
    assert T.class_weights(None, ["a", "b"], labels) is None
    for bad, said in (("c=1", "not a class"), ("a=x", "must be a number"), ("a=-1", "positive"),
                      ("heavy", "'balanced' or CLASS=WEIGHT")):
        with pytest.raises(ConfigError, match=said):
            T.class_weights(bad, ["a", "b"], labels)


def test_cli_class_weight_and_label_smoothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = "".join(f"{i % 7},{i % 3},{'rare' if i % 10 == 0 else 'common'}\n" for i in range(80))
    (tmp_path / "s.csv").write_text("a,b,y\n" + rows)
    r = CliRunner().invoke(cli, ["train", "s.csv", "--class-weight", "balanced", "--label-smoothing",
                                 "0.1", "--epochs", "3", "-q", "--json"])
    assert r.exit_code == 0, r.output
    from nncli.model_io import load_model
    config = load_model("s.npz").meta["config"]
    assert config["class_weight"] == "balanced" and config["label_smoothing"] == 0.1
    r = CliRunner().invoke(cli, ["train", "s.csv", "--class-weight", "balanced", "--task",
                                 "regression", "--target", "a", "--epochs", "1", "-q"])
    assert r.exit_code == 2 and "apply to classification" in r.stderr
