"""Inverted dropout (--dropout, train(dropout=…)): the kernel's masks, the gradient through
them, one SGD step worked by hand, determinism, and that predict/validation never see it."""
import json

import numpy as np
import pytest

from nncli import Network, train
from nncli._kernels import dropout as k_drop
from nncli.model_io import load_model
from nncli.training import Trainer, dropout_seed

from conftest import data, invoke
from reference import dropout_mask


# -- the masks -------------------------------------------------------------------------------
def test_masks_keep_one_minus_p_scaled_and_differ_by_step_layer_row_and_seed(dtype):
    p = 0.3
    m = k_drop.mask(np.arange(500), 200, p, 0, 11, 5, dtype)
    keep = dtype(1 / (1 - p))
    assert m.dtype == dtype and np.unique(m).tolist() == [0, keep]
    assert abs((m == 0).mean() - p) < 0.005                 # 100k draws: σ ≈ 0.0015
    again = k_drop.mask(np.arange(500), 200, p, 0, 11, 5, dtype)
    assert np.array_equal(m, again)                           # a function of its key
    for other in (k_drop.mask(np.arange(500), 200, p, 0, 11, 6, dtype),    # next update
                  k_drop.mask(np.arange(500), 200, p, 1, 11, 5, dtype),    # next layer
                  k_drop.mask(np.arange(500), 200, p, 0, 12, 5, dtype),    # another seed
                  k_drop.mask(np.arange(1, 501), 200, p, 0, 11, 5, dtype)):  # rows moved
        # independent masks agree where both keep or both drop: 0.7² + 0.3² = 0.58
        assert abs((other == m).mean() - 0.58) < 0.01
    # a row's mask depends on its place alone: rows 7 and 8 drawn on their own
    assert np.array_equal(k_drop.mask([7, 8], 200, p, 0, 11, 5, dtype), m[7:9])
    assert not k_drop.mask(np.arange(3), 10, 0.0, 0, 1, 0).min() == 0   # p = 0 keeps all


def test_the_kernel_draws_the_reference_mask(dtype):
    """The C row loop (AVX2 clone or baseline) against the hash written out in numpy."""
    rows = [0, 1, 5, 2 ** 40]
    got = k_drop.mask(rows, 37, 0.35, 2, 2 ** 63 + 12345, 17, dtype)
    want = dropout_mask(rows, 37, 0.35, 2, 2 ** 63 + 12345, 17)
    np.testing.assert_array_equal(got, want.astype(dtype))


# -- the gradient through a fixed mask -------------------------------------------------------
@pytest.mark.parametrize("kinds,loss", [(None, "mse"), (None, "cross_entropy"),
                                        (["kan", "dense"], "mse")])
def test_gradient_check_with_dropout(kinds, loss, rng):
    """float64: backprop through a fixed mask (one update's) against central differences of
    the loss through the same mask."""
    layers = [3, 6, 5, 2] if kinds is None else [3, 4, 2]
    net = Network(layers, "tanh", loss, dtype="float64", seed=3, kinds=kinds)
    X = rng.normal(size=(9, 3))
    Y = (np.eye(2)[rng.integers(0, 2, 9)] if loss == "cross_entropy" else rng.normal(size=(9, 2)))
    engine = net.engine(len(X), 1)
    engine.set_dropout([0.4] * (len(layers) - 2) + [0.0], seed=99)
    engine.loss_and_gradient(X, Y, dropout_step=7)
    analytic = net.grad.copy()
    engine.loss_and_gradient(X, Y)                            # no step: no dropout
    assert np.abs(analytic - net.grad).max() > 1e-3           # the mask mattered
    numeric, h = np.empty_like(analytic), 1e-6
    for i in range(net.n_params):
        keep = net.phi[i]
        net.phi[i] = keep + h
        up = engine.loss_and_gradient(X, Y, dropout_step=7)
        net.phi[i] = keep - h
        down = engine.loss_and_gradient(X, Y, dropout_step=7)
        net.phi[i] = keep
        numeric[i] = (up - down) / (2 * h)
    assert np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric) < 1e-7


def test_one_sgd_step_worked_by_hand(dtype):
    """1 → 2 (identity) → 1 network, mse, one row x = 1, y = 0, dropout 0.5 on the hidden
    layer, SGD with α = 0.1. Seed 1's mask for that row at the first update is m = [2, 0]:
        f1 = Ω1·x + β1 = [0.5, −1],  o1 = f1 ⊙ m = [1, 0]
        z  = Ω2·o1 + β2 = 1·1 + 2·0 = 1,  L = (z − y)² = 1,  ∂L/∂z = 2(z − y) = 2
        ∂L/∂Ω2 = 2·o1 = [2, 0],  ∂L/∂β2 = 2
        ∂L/∂o1 = 2·Ω2 = [2, 4],  ∂L/∂f1 = ∂L/∂o1 ⊙ m = [4, 0]
        ∂L/∂Ω1 = [4, 0]·x = [[4], [0]],  ∂L/∂β1 = [4, 0]
    φ − 0.1·∂L/∂φ: Ω1 = [[0.1], [−1]], β1 = [−0.4, 0], Ω2 = [[0.8, 2]], β2 = [−0.2]."""
    assert k_drop.mask([0], 2, 0.5, 0, dropout_seed(1), 0).tolist() == [[2, 0]]
    net = Network([1, 2, 1], "identity", "mse", dtype=np.dtype(dtype).name, seed=0)
    net.weights[0][:] = [[0.5], [-1.0]]
    net.weights[1][:] = [[1.0, 2.0]]
    net.biases[0][:] = 0
    net.biases[1][:] = 0
    h = train(net, [[1.0]], [[0.0]], optimizer="sgd", lr=0.1, batch_size=1, epochs=1, seed=1,
              dropout=0.5)
    assert h.train_loss == [1.0]
    assert net.weights[0].ravel().tolist() == pytest.approx([0.1, -1.0], abs=1e-7)
    assert net.biases[0].tolist() == pytest.approx([-0.4, 0.0], abs=1e-7)
    assert net.weights[1].ravel().tolist() == pytest.approx([0.8, 2.0], abs=1e-7)
    assert net.biases[1].tolist() == pytest.approx([-0.2], abs=1e-7)


def test_ranks_drawing_their_rows_places_sum_to_one_process():
    """--distributed: each rank passes its rows' places in the global batch, so the ranks'
    gradients (scaled by their share) add up to the single process's, masks included."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(10, 3)), rng.normal(size=(10, 1))
    net = Network([3, 8, 1], "tanh", "mse", dtype="float64", seed=1)
    engine = net.engine(10, 1)
    engine.set_dropout([0.5, 0.0], seed=5)
    whole = engine.loss_and_gradient(X, Y, dropout_step=3) * 10
    expect = net.grad.copy()
    total, summed = 0.0, np.zeros_like(expect)
    for rank in range(2):   # rank r holds rows r, r+2, …: places r, r+2, … of the batch
        local = np.arange(rank, 10, 2)
        total += engine.batch_gradient(X, Y, local, len(local) / 10, 3, local.astype(np.int64))
        summed += net.grad
    assert total == pytest.approx(whole, rel=1e-12)
    np.testing.assert_allclose(summed, expect, rtol=1e-12, atol=1e-15)


# -- training with it ------------------------------------------------------------------------
def _run(dropout, seed=4, optimizer="adam", threads=1, dtype="float32"):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    Y = np.tanh(X[:, :1] - X[:, 1:2]) + 0.1 * rng.normal(size=(120, 1))
    net = Network([4, 16, 8, 1], "relu", "mse", dtype=dtype, seed=1)
    h = train(net, X, Y, optimizer=optimizer, epochs=3, batch_size=None if optimizer == "irprop"
              else 16, seed=seed, dropout=dropout, n_threads=threads, validation_fraction=0.25)
    return net, h


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "irprop"])
def test_same_seed_same_model_bit_for_bit_and_rate_zero_is_no_dropout(optimizer):
    plain, _ = _run(None, optimizer=optimizer)
    zero, _ = _run(0.0, optimizer=optimizer)
    assert zero.phi.tobytes() == plain.phi.tobytes()          # rate 0 ≡ no dropout
    a, _ = _run([0.2, 0.5], optimizer=optimizer)
    b, _ = _run([0.2, 0.5], optimizer=optimizer, threads=2)   # threads change no bit
    c, _ = _run([0.2, 0.5], seed=5, optimizer=optimizer)
    assert a.phi.tobytes() == b.phi.tobytes()
    assert a.phi.tobytes() != plain.phi.tobytes() and a.phi.tobytes() != c.phi.tobytes()


def test_validation_and_predict_see_no_dropout():
    net, h = _run(0.5, dtype="float64")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    # predict: the plain forward pass of φ (no mask, no 1/(1−p))
    hid = X
    for W, b, act in zip(net.weights, net.biases, net.activations):
        hid = hid @ W.T + b
        hid = np.maximum(hid, 0) if act == "relu" else hid
    np.testing.assert_allclose(net.predict(X), hid, rtol=1e-12)
    # the validation loss recorded for the last epoch is the loss without dropout
    assert h.records[-1].val_loss == pytest.approx(_val_loss_of(net), rel=1e-12)   # chunked sums


def _val_loss_of(net):
    """The loss of net on the rows validation_fraction=0.25 held out in _run."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    Y = np.tanh(X[:, :1] - X[:, 1:2]) + 0.1 * rng.normal(size=(120, 1))
    from nncli.data import validation_split
    _, val = validation_split(120, 0.25, 4, None)
    return net.loss_value(X[val], Y[val])


def test_a_resumed_run_draws_the_masks_the_whole_run_draws():
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(64, 3)), rng.normal(size=(64, 1))

    def trainer(epochs):
        net = Network([3, 8, 1], "tanh", "mse", seed=0)
        return Trainer(net, X, Y, epochs=epochs, batch_size=8, seed=3, dropout=0.3)
    whole = trainer(4)
    whole.run()
    first = trainer(2)
    first.run()
    state = json.loads(json.dumps(first.state_dict()))
    rest = trainer(4)
    rest.load_state(state, {k: v.copy() for k, v in first.arrays().items()})
    rest.run()
    assert rest.net.phi.tobytes() == whole.net.phi.tobytes()


@pytest.mark.parametrize("dropout,message", [
    (1.0, "dropout must be in [0, 1), got 1.0"),
    ([0.1, 0.2, 0.3], "dropout takes one rate or one per hidden layer (2), got 3")])
def test_the_api_refuses_bad_rates(dropout, message):
    with pytest.raises(ValueError) as e:
        _run(dropout)
    assert str(e.value) == message


# -- the command line ------------------------------------------------------------------------
def test_cli_dropout_is_recorded_shown_and_deterministic(runner):
    iris = data("iris.csv")
    args = ["--layers", "8,8", "--epochs", 3, "--threads", 1, "-q"]
    for name, extra in (("a.npz", ["--dropout", "0.1,0.3"]), ("b.npz", ["--dropout", "0.1,0.3"]),
                        ("c.npz", ["--dropout", "0.1,0.3", "--seed", 1]), ("d.npz", []),
                        ("e.npz", ["--dropout", "0"])):
        r = invoke(runner, "train", iris, *args, *extra, "-o", name)
        assert r.exit_code == 0, r.output
    phi = {n: load_model(n).network.phi.tobytes() for n in
           ("a.npz", "b.npz", "c.npz", "d.npz", "e.npz")}
    assert phi["a.npz"] == phi["b.npz"] != phi["c.npz"]
    assert phi["d.npz"] == phi["e.npz"] != phi["a.npz"]
    assert load_model("a.npz").meta["config"]["dropout"] == [0.1, 0.3]
    assert "dropout=0.1,0.3" in invoke(runner, "info", "a.npz").output
    assert "dropout" not in invoke(runner, "info", "d.npz").output
    # predict uses φ as saved: twice the same, and what the loaded network computes
    once = invoke(runner, "predict", "a.npz", iris, "--proba").output
    assert once == invoke(runner, "predict", "a.npz", iris, "--proba").output


def test_a_streamed_run_draws_the_masks_training_in_memory_draws(runner):
    """One block of the cache: the same batches at the same updates as in memory, so the
    same masks (keyed by a row's place in its batch, not its number in the data)."""
    args = [data("iris.csv"), "--layers", "8", "--epochs", 3, "--dropout", 0.4, "--no-refit",
            "--threads", 1, "-q"]
    assert invoke(runner, "train", *args, "--no-cache", "-o", "mem.npz").exit_code == 0
    assert invoke(runner, "train", *args, "--cache", "c", "--shuffle-block", 100000,
                  "-o", "st.npz").exit_code == 0
    assert load_model("st.npz").meta["config"]["streamed"]
    assert (load_model("st.npz").network.phi.tobytes()
            == load_model("mem.npz").network.phi.tobytes())


@pytest.mark.parametrize("extra,message", [
    (["--dropout", "1"], "Invalid value for '--dropout': '1': must be in [0, 1)"),
    (["--dropout", "0.2,x"], "Invalid value for '--dropout': 'x': not a number"),
    (["--dropout", "0.1,0.2,0.3"], "Error: dropout takes one rate or one per hidden layer (2), got 3"),
    (["--dropout", "0.2", "--optimizer", "lbfgs"],
     "Error: dropout makes the loss random, which L-BFGS's line search"),
    (["--dropout", "0.2", "--arch", "kan", "--layers", "3"],
     "Error: dropout on hidden layer 1 feeds a KAN layer"),
    (["--dropout", "0.2", "--layers", ""], "Error: dropout applies to hidden layers"),
])
def test_cli_refuses_bad_dropout_in_one_line(runner, extra, message):
    r = runner.invoke(__import__("nncli.cli").cli.cli,
                      ["train", data("iris.csv"), "--epochs", "1", *extra, "-o", "m.npz"])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert message in lines[-1] and lines[-1].startswith("Error:")
    assert not any(line.startswith("Traceback") for line in lines)
