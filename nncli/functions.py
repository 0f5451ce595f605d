"""Registries of layer kinds, activations and losses, keyed by the name a user types.

The CLI builds its choices from these dicts and the network looks names up here; the
arithmetic itself lives in the Cython kernels (``nncli._kernels.layers`` / ``dense`` /
``activations`` / ``losses``), selected by the integer code stored with each entry.
"""
from dataclasses import dataclass

from nncli._kernels.activations import ActivationCode
from nncli._kernels.layers import LayerKind
from nncli._kernels.losses import LossCode


@dataclass(frozen=True)
class Kind:
    name: str
    code: int
    doc: str


@dataclass(frozen=True)
class Activation:
    name: str
    code: int
    init: str          # default initialisation for a layer feeding this activation
    doc: str


@dataclass(frozen=True)
class Loss:
    name: str
    code: int
    task: str          # the task it suits: regression or classification
    output: str        # what predict returns: 'value', 'softmax' or 'sigmoid'
    doc: str


# The model file tags each layer with its kind's name; files without tags are all dense.
LAYER_KINDS = {k.name: k for k in [
    Kind("dense", LayerKind.DENSE, "fully connected: f = h·Ωᵀ + β"),
    Kind("kan", LayerKind.KAN, "Kolmogorov–Arnold: f_j = Σ_i wb·silu(h_i) + ws·spline_ji(h_i)"),
]}

ACTIVATIONS = {a.name: a for a in [
    Activation("identity", ActivationCode.IDENTITY, "glorot", "a(f) = f"),
    Activation("relu", ActivationCode.RELU, "he", "max(f, 0)"),
    Activation("leaky_relu", ActivationCode.LEAKY_RELU, "he", "f if f > 0 else 0.01·f"),
    Activation("elu", ActivationCode.ELU, "he", "f if f > 0 else e^f − 1"),
    Activation("gelu", ActivationCode.GELU, "he", "f·Φ(f), Φ the normal CDF"),
    Activation("tanh", ActivationCode.TANH, "glorot", "tanh(f)"),
    Activation("sigmoid", ActivationCode.SIGMOID, "glorot", "1 / (1 + e^−f)"),
    Activation("softplus", ActivationCode.SOFTPLUS, "glorot", "log(1 + e^f)"),
    Activation("sin", ActivationCode.SIN, "glorot", "sin(f)"),
]}

LOSSES = {l.name: l for l in [
    Loss("mse", LossCode.MSE, "regression", "value", "mean squared error"),
    Loss("mae", LossCode.MAE, "regression", "value", "mean absolute error"),
    Loss("huber", LossCode.HUBER, "regression", "value", "Huber loss, δ = 1"),
    Loss("cross_entropy", LossCode.CROSS_ENTROPY, "classification", "softmax",
         "softmax fused with cross-entropy (multi-class)"),
    Loss("bce", LossCode.BCE, "classification", "sigmoid",
         "sigmoid fused with binary cross-entropy (two classes or multi-label)"),
]}

INITS = ("auto", "he", "glorot", "normal", "uniform")


def lookup(registry, name, what):
    """registry[name], or a ValueError listing the valid names."""
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; choose from {', '.join(registry)}") from None
