"""The network: φ layout, initialisation, forward pass and backprop's gradient."""
import numpy as np
import pytest

from nncli import ACTIVATIONS, LOSSES, Network
from nncli.gradcheck import gradient_check

from reference import network_forward, loss as ref_loss


def test_28_parameter_layout():
    net = Network([3, 3, 3, 1], activations="tanh", seed=0, dtype="float64")
    assert net.n_params == 28
    net.phi[:] = np.arange(28)
    # Ω1 (3×3, row-major), β1, Ω2, β2, Ω3 (1×3), β3 — views into the one φ.
    np.testing.assert_array_equal(net.weights[0], np.arange(9).reshape(3, 3))
    np.testing.assert_array_equal(net.biases[0], [9, 10, 11])
    np.testing.assert_array_equal(net.weights[1], np.arange(12, 21).reshape(3, 3))
    np.testing.assert_array_equal(net.biases[1], [21, 22, 23])
    np.testing.assert_array_equal(net.weights[2], [[24, 25, 26]])
    np.testing.assert_array_equal(net.biases[2], [27])
    net.weights[2][0, 0] = -1
    assert net.phi[24] == -1


def test_forward_matches_reference(dtype, rng):
    net = Network([4, 5, 3, 2], activations=["relu", "sigmoid"], seed=1, dtype=np.dtype(dtype).name)
    X = rng.standard_normal((9, 4))
    expected = network_forward(net.layers, net.activations, net.phi.astype(float), X)[-1][1]
    np.testing.assert_allclose(net.forward(X), expected, rtol=1e-5, atol=1e-5)


def test_predict_applies_softmax_for_cross_entropy(rng):
    net = Network([2, 3, 4], loss="cross_entropy", seed=0)
    p = net.predict(rng.standard_normal((5, 2)))
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)


def test_init_is_seeded_and_per_layer():
    a = Network([10, 50, 50, 1], activations=["relu", "tanh"], seed=3)
    b = Network([10, 50, 50, 1], activations=["relu", "tanh"], seed=3)
    assert a.phi.tobytes() == b.phi.tobytes()
    # He for the relu layer: std √(2/10); Glorot-uniform for tanh: std √(2/(50+50)).
    assert abs(a.weights[0].std() - np.sqrt(2 / 10)) < 0.05
    assert abs(a.weights[1].std() - np.sqrt(2 / 100)) < 0.02
    assert not a.biases[0].any()


@pytest.mark.parametrize("bad,match", [
    (dict(layers=[3]), "at least"),
    (dict(layers=[3, 0, 1]), "at least"),
    (dict(layers=[2, 3, 2], activations="swish"), "unknown activation"),
    (dict(layers=[2, 2], loss="hinge"), "unknown loss"),
    (dict(layers=[2, 3, 2], activations=["relu", "sigmoid"], loss="cross_entropy"), "identity"),
    (dict(layers=[2, 3, 2], activations=["relu", "relu", "relu"]), "activations"),
])
def test_invalid_networks_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        Network(**bad)


def make_targets(loss, rng, n, m):
    if loss == "cross_entropy":
        return np.eye(m)[rng.integers(0, m, n)]
    if loss == "bce":
        return rng.integers(0, 2, (n, m)).astype(float)
    return rng.standard_normal((n, m))


@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("loss", list(LOSSES))
def test_gradient_matches_central_differences(act, loss):
    rng = np.random.default_rng(7)
    out_act = "identity" if LOSSES[loss].output != "value" else act
    net = Network([3, 4, 3, 2], activations=[act, act, out_act], loss=loss, dtype="float64")
    # Random biases too, so no pre-activation sits exactly on a kink (relu at 0).
    net.phi[:] = rng.normal(0.0, 0.7, net.n_params)
    X = rng.standard_normal((6, 3))
    Y = make_targets(loss, rng, 6, 2)
    check = gradient_check(net, X, Y)
    assert check.rel <= 1e-6, (act, loss, check.rel, check.parts)
    ref_value, _ = ref_loss(loss, network_forward(net.layers, net.activations, net.phi, X)[-1][1], Y)
    assert check.loss == pytest.approx(ref_value, rel=1e-12)


def test_gradcheck_catches_a_wrong_gradient():
    rng = np.random.default_rng(0)
    net = Network([2, 3, 1], activations="tanh", dtype="float64", seed=0)
    X, Y = rng.standard_normal((5, 2)), rng.standard_normal((5, 1))
    _, g = net.loss_and_gradient(X, Y)
    g[4] *= 1.01
    assert gradient_check(net, X, Y, analytic=g).rel > 1e-4


# -- one layout, layer kinds, and the model file's kind tag ------------------------------------
import json

from nncli._kernels import layers as k_layers
from nncli._kernels.engine import Engine
from nncli.errors import ModelFileError
from nncli.model_io import load_model, save_model
from nncli.network import n_params


def test_one_layout_for_engine_views_and_count():
    sizes = [4, 7, 3]
    slices = k_layers.layout(sizes)
    assert slices == [(0, 7 * 4 + 7), (35, 3 * 7 + 3)]
    assert n_params(sizes) == n_params(sizes, ["dense", "dense"]) == 59
    net = Network(sizes, seed=0)
    assert [(name, s.start, s.stop, shape) for name, s, shape in net.param_parts()] == [
        ("Ω1", 0, 28, (7, 4)), ("β1", 28, 35, (7,)), ("Ω2", 35, 56, (3, 7)), ("β2", 56, 59, (3,))]
    # The engine takes its offsets from the same layout: a φ one short is refused.
    with pytest.raises(ValueError, match="the layers need 59"):
        Engine(sizes, [1, 0], 0, np.zeros(58, np.float32), np.zeros(58, np.float32), 4)


def test_explicit_dense_kinds_train_as_the_default(rng):
    X = rng.standard_normal((20, 3))
    Y = rng.standard_normal((20, 1))
    a = Network([3, 4, 1], seed=2, dtype="float64")
    b = Network([3, 4, 1], seed=2, dtype="float64", kinds=["dense", "dense"])
    assert a.loss_and_gradient(X, Y)[1].tobytes() == b.loss_and_gradient(X, Y)[1].tobytes()


def test_unknown_layer_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown layer kind 'spline'; choose from dense"):
        Network([2, 3, 1], kinds=["dense", "spline"])
    with pytest.raises(ValueError, match="2 layers need 2 kinds"):
        Network([2, 3, 1], kinds=["dense"])
    with pytest.raises(ValueError, match="unknown layer kind 9"):
        k_layers.parts(9, 2, 3)


def rewrite_meta(path, change):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["meta"].tobytes())
    change(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_model_file_tags_each_layer_with_its_kind(tmp_path):
    path = tmp_path / "m.npz"
    save_model(path, Network([2, 3, 1], seed=0))
    with np.load(path, allow_pickle=False) as z:
        assert json.loads(z["meta"].tobytes())["layer_kinds"] == ["dense", "dense"]
    assert load_model(path).network.kinds == ["dense", "dense"]


def test_model_file_without_kind_tags_loads_as_dense(tmp_path):
    path = tmp_path / "old.npz"
    net = Network([2, 3, 1], seed=0)
    save_model(path, net)
    rewrite_meta(path, lambda meta: meta.pop("layer_kinds"))
    loaded = load_model(path).network
    assert loaded.kinds == ["dense", "dense"]
    np.testing.assert_array_equal(loaded.phi, net.phi)


@pytest.mark.parametrize("kinds", [["dense", "conv"], ["dense"], "dense", [1, 2]])
def test_model_file_with_bad_kind_tags_is_refused(tmp_path, kinds):
    path = tmp_path / "bad.npz"
    save_model(path, Network([2, 3, 1], seed=0))
    rewrite_meta(path, lambda meta: meta.update(layer_kinds=kinds))
    with pytest.raises(ModelFileError, match="'layer_kinds' must name one known layer kind per layer"):
        load_model(path)

