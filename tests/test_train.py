"""Training end to end through the Python API: it learns, it is reproducible, it stops."""
import numpy as np
import pytest

from nncli import DivergenceError, Network, train
from nncli.training import Trainer

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=float)


def test_xor_is_learned():
    net = Network([2, 4, 1], activations="tanh", seed=0)
    history = train(net, XOR_X, XOR_Y, optimizer="adam", lr=0.05, epochs=500, batch_size=4)
    assert history.train_loss[-1] < 1e-4
    np.testing.assert_allclose(net.predict(XOR_X), XOR_Y, atol=0.02)


def test_xor_with_plain_gradient_descent_full_batch():
    net = Network([2, 8, 1], activations="tanh", dtype="float64", seed=1)
    history = train(net, XOR_X, XOR_Y, optimizer="gd", lr=0.5, epochs=2000, batch_size="full")
    assert history.train_loss[-1] < 1e-3


def test_noisy_curve_is_fitted():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(-3, 3, 300))
    y = np.sin(2 * x) * x / 2 + rng.normal(0, 0.05, x.size)
    net = Network([1, 32, 32, 1], activations="tanh", seed=0)
    train(net, x[:, None], y[:, None], optimizer="adam", lr=0.01, epochs=400, batch_size=32)
    residual = net.predict(x[:, None]).ravel() - y
    assert np.sqrt(np.mean(residual ** 2)) < 0.1  # noise σ is 0.05


def test_sgd_batch_one_on_the_28_parameter_network():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (400, 3))
    Y = (np.tanh(X[:, :1] - X[:, 1:2]) + 0.5 * X[:, 2:] ** 2)
    net = Network([3, 3, 3, 1], activations="tanh", seed=0)
    history = train(net, X, Y, optimizer="sgd", lr=0.02, epochs=60, batch_size=1)
    assert history.train_loss[-1] < 0.2 * history.train_loss[0]


def test_softmax_classifier_learns_blobs():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 3], [3, 0], [-3, -3]])
    labels = rng.integers(0, 3, 600)
    X = centers[labels] + rng.normal(0, 0.7, (600, 2))
    Y = np.eye(3)[labels]
    net = Network([2, 16, 3], activations="relu", loss="cross_entropy", seed=0)
    h = train(net, X, Y, lr=0.01, epochs=30, validation_fraction=0.2, seed=0)
    assert h.column("val_accuracy")[-1] > 0.95
    assert np.mean(net.predict(X).argmax(1) == labels) > 0.95


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_same_seed_same_bytes(dtype, optimizer):
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((257, 5)), rng.standard_normal((257, 2))
    runs = []
    for _ in range(2):
        net = Network([5, 33, 17, 2], activations="gelu", dtype=dtype, seed=9)
        train(net, X, Y, optimizer=optimizer, lr=0.01, epochs=5, batch_size=10, seed=4,
              validation_fraction=0.1, n_threads=2)
        runs.append(net.phi.tobytes())
    assert runs[0] == runs[1]


def test_different_seeds_differ():
    X, Y = np.random.default_rng(0).standard_normal((50, 2)), np.zeros((50, 1))
    a, b = Network([2, 3, 1], seed=1), Network([2, 3, 1], seed=1)
    train(a, X, Y, epochs=2, seed=1)
    train(b, X, Y, epochs=2, seed=2)
    assert a.phi.tobytes() != b.phi.tobytes()


def test_batch_size_full_is_one_step_per_epoch():
    net = Network([2, 3, 1], seed=0)
    trainer = Trainer(net, XOR_X, XOR_Y, optimizer="sgd", batch_size="full", epochs=7)
    trainer.run()
    assert trainer.opt.step_count == 7


def test_last_batch_may_be_smaller():
    net = Network([2, 3, 1], seed=0)
    X, Y = np.random.default_rng(0).standard_normal((10, 2)), np.zeros((10, 1))
    trainer = Trainer(net, X, Y, optimizer="sgd", batch_size=4, epochs=3)
    trainer.run()
    assert trainer.opt.step_count == 9  # batches of 4, 4, 2


def test_divergence_is_reported_with_epoch_and_hint():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((64, 3)) * 100, rng.standard_normal((64, 1)) * 100
    net = Network([3, 16, 1], activations="relu", seed=0)
    with pytest.raises(DivergenceError, match=r"diverged at epoch \d+.*lower learning rate") as err:
        train(net, X, Y, optimizer="sgd", lr=10.0, epochs=50, batch_size=8)
    assert err.value.epoch >= 1


def test_early_stopping_restores_the_best_parameters():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 4))
    Y = X @ rng.standard_normal((4, 1)) + rng.normal(0, 1.0, (60, 1))
    Xv = rng.standard_normal((30, 4))
    Yv = rng.standard_normal((30, 1)) * 3  # unrelated: validation loss soon stops improving
    net = Network([4, 64, 1], activations="relu", seed=0)
    history = train(net, X, Y, lr=0.01, epochs=500, validation=(Xv, Yv), early_stopping=5)
    assert history.stopped_early and len(history.records) < 500
    best = history.best_epoch
    assert history.val_loss[best - 1] == min(history.val_loss)
    assert net.loss_value(Xv, Yv) == pytest.approx(history.val_loss[best - 1], rel=1e-5)


def test_history_records_every_epoch():
    net = Network([2, 3, 1], seed=0)
    h = train(net, XOR_X, XOR_Y, epochs=4, schedule="exponential", lr=0.1, validation=(XOR_X, XOR_Y))
    assert [r.epoch for r in h.records] == [1, 2, 3, 4]
    assert h.records[0].lr == 0.1 and h.records[-1].lr == pytest.approx(0.001)
    assert all(np.isfinite(h.val_loss)) and h.samples == 16


def test_callbacks_can_stop_training():
    net = Network([2, 3, 1], seed=0)
    h = train(net, XOR_X, XOR_Y, epochs=100, callbacks=[lambda rec, tr: rec.epoch == 3])
    assert len(h.records) == 3


def test_readme_xor_snippet():
    # The five lines of the README's Python API section, as a user types them.
    from nncli import Network, train
    X = [[0, 0], [0, 1], [1, 0], [1, 1]]; Y = [[0], [1], [1], [0]]
    net = Network([2, 4, 1], activations="tanh", loss="mse", seed=0)
    train(net, X, Y, optimizer="adam", lr=0.05, epochs=500, batch_size=4)
    assert net.predict(X).round(3).ravel().tolist() == [0.0, 1.0, 1.0, 0.0]


def test_accuracy_counts_rows_not_cells():
    from nncli.training import accuracy
    Y = np.eye(3)[[0, 1, 2, 0]]
    out = np.array([[0.5, 0.3, 0.1], [0.1, 0.9, 0.2], [0.6, 0.1, 0.5], [0.4, 0.3, 0.2]])
    # Most probable class right in rows 0, 1 and 3: the same for softmax and one-hot bce.
    assert accuracy(out, Y, "cross_entropy") == 0.75
    assert accuracy(out, Y, "bce") == 0.75
    multi = np.array([[1, 0, 1], [0, 1, 1]], dtype=float)
    assert accuracy(np.array([[0.9, 0.2, 0.7], [0.1, 0.2, 0.8]]), multi, "bce") == 0.5


def test_validation_fraction_holds_out_the_rows_the_cli_holds_out():
    # nncli train --val-split 0.2 --seed s and train(..., validation_fraction=0.2, seed=s):
    # the same rows, stratified by class (10 of each iris species).
    import os
    from nncli.data import prepare_training, read_csv
    table = read_csv(os.path.join(os.path.dirname(__file__), "..", "data", "iris.csv"))
    for seed in (0, 7):
        d = prepare_training(table, validation_fraction=0.2, seed=seed)
        trainer = Trainer(Network([4, 3], loss="cross_entropy", dtype="float64"), d.X, d.Y,
                          validation_fraction=0.2, seed=seed, epochs=0)
        np.testing.assert_array_equal(trainer.validation[0], d.X[d.val_rows])
        np.testing.assert_array_equal(trainer.X, d.X[d.train_rows])
        assert np.bincount(d.labels[d.val_rows]).tolist() == [10, 10, 10]


def test_validation_fraction_too_small_for_the_data_is_refused():
    with pytest.raises(ValueError, match="holds out no row of 4"):
        Trainer(Network([2, 1]), XOR_X, XOR_Y, validation_fraction=0.1)
