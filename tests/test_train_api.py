"""train(...) takes the optimiser's hyper-parameters by name and integer class labels."""
import numpy as np
import pytest

from nncli import Network, train
from nncli.optim import Optimizer

rng = np.random.default_rng(0)
X = rng.standard_normal((40, 3))
LABELS = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)    # classes 0, 1, 2


def fit(**kw):
    net = Network([3, 5, 3], "tanh", "cross_entropy", dtype="float64", seed=1)
    train(net, X, kw.pop("Y", np.eye(3)[LABELS]), epochs=3, batch_size=8, **kw)
    return net.phi


@pytest.mark.parametrize("name,hyper", [
    ("adam", dict(lr=1e-3, beta1=0.95, beta2=0.99, eps=1e-7, weight_decay=1e-4, clip_norm=1.0)),
    ("adamw", dict(lr=1e-2, beta1=0.5, weight_decay=1e-2)),
    ("momentum", dict(lr=0.05, momentum=0.8)),
    ("nesterov", dict(momentum=0.5)),
    ("rmsprop", dict(beta2=0.9, eps=1e-6)),
    ("adagrad", dict(eps=1e-3)),
])
def test_hyperparameters_by_name_are_the_optimizers(name, hyper):
    by_name = fit(optimizer=name, **hyper)
    np.testing.assert_array_equal(by_name, fit(optimizer=Optimizer(name, **hyper)))
    assert not np.array_equal(by_name, fit(optimizer=name, lr=hyper.get("lr")))


@pytest.mark.parametrize("name,hyper,message", [
    ("sgd", dict(momentum=0.9), "momentum does not apply to the sgd optimizer (it applies to momentum, nesterov)"),
    ("momentum", dict(beta1=0.9), "beta1 does not apply to the momentum optimizer (it applies to adam, adamw)"),
    ("adam", dict(beta2=1.0), "beta2 must be in [0, 1), got 1.0"),
])
def test_hyperparameters_that_do_not_fit_are_refused(name, hyper, message):
    with pytest.raises(ValueError) as e:
        fit(optimizer=name, **hyper)
    assert message in str(e.value)


def test_an_optimizer_object_carries_its_own_hyperparameters():
    # lr beside an Optimizer used to be ignored without a word.
    with pytest.raises(ValueError, match="lr: set the hyper-parameters of an Optimizer"):
        fit(optimizer=Optimizer("adam"), lr=0.1)


def test_integer_labels_train_as_their_one_hot_rows():
    one_hot = fit(optimizer="adam", lr=0.01)
    np.testing.assert_array_equal(fit(optimizer="adam", lr=0.01, Y=LABELS), one_hot)
    np.testing.assert_array_equal(fit(optimizer="adam", lr=0.01, Y=list(LABELS)), one_hot)


def test_integer_labels_in_the_validation_set_and_the_loss():
    net = Network([3, 5, 3], "tanh", "cross_entropy", dtype="float64", seed=1)
    history = train(net, X[:30], LABELS[:30], validation=(X[30:], LABELS[30:]), epochs=2)
    assert history.val_loss[-1] == pytest.approx(net.loss_value(X[30:], np.eye(3)[LABELS[30:]]))
    assert net.loss_value(X, LABELS) == net.loss_value(X, np.eye(3)[LABELS])


def test_integer_labels_for_one_sigmoid_output():
    net = Network([3, 4, 1], "tanh", "bce", dtype="float64", seed=0)
    y = (X[:, 0] > 0).astype(np.int64)
    assert net.loss_value(X, y) == net.loss_value(X, y[:, None].astype(float))
    with pytest.raises(ValueError, match=r"class labels must lie in 0..1 for a network with 1 output; got 2"):
        net.loss_value(X, np.where(y == 1, 2, 0))


@pytest.mark.parametrize("labels,message", [
    (np.r_[LABELS[:-1], 3], r"class labels must lie in 0..2 for a network with 3 outputs; got 3"),
    (np.r_[LABELS[:-1], -1], r"class labels must lie in 0..2 for a network with 3 outputs; got -1"),
    (LABELS[:-1], r"Y must have shape \(40, 3\) or 40 integer class labels, got \(1, 39\)"),
    (LABELS.astype(float), r"Y must have shape \(40, 3\) or 40 integer class labels"),
])
def test_labels_that_do_not_fit_are_refused(labels, message):
    with pytest.raises(ValueError, match=message):
        fit(optimizer="adam", Y=labels)


def test_regression_targets_are_not_labels():
    # A 1-D integer target of a regression network is a column of values, as before.
    net = Network([3, 1], "identity", "mse", dtype="float64", seed=0)
    y = np.arange(40)
    assert net.loss_value(X, y) == net.loss_value(X, y[:, None].astype(float))
