"""Backpropagation against central differences, parameter by parameter.

Both sides use the same kernels as training: the analytic gradient is one
forward+backward pass (``Network.loss_and_gradient``); the numerical one perturbs each φ_i
by ±h and evaluates the loss twice. Run it in float64: in float32 the differences drown
in rounding.

Central differences measure a derivative only where the loss is differentiable between
φ − h·e_i and φ + h·e_i. relu, leaky_relu and elu change branch where a pre-activation f_k
crosses 0 (mae where an output crosses its target): a trained network with a dead unit
(weights and bias 0, so f_k = 0 exactly) sits on such a kink, and there the difference
quotient is the mean of the two one-sided slopes, not the derivative backprop computes.
A parameter whose ±h steps put any f_k (or residual) on different sides of its kink is
therefore skipped, and counted, rather than compared.
"""
from dataclasses import dataclass

import numpy as np

from nncli.network import Network

#: Activations whose branch changes where f crosses 0.
KINKED_ACTIVATIONS = ("relu", "leaky_relu", "elu")
#: Losses whose branch changes where an output crosses its target.
KINKED_LOSSES = ("mae",)
SKIP_REASON = ("a step of ±h moves a pre-activation of relu/leaky_relu/elu (or an mae "
               "residual) across its kink at 0, where central differences do not measure "
               "the derivative")


@dataclass
class PartError:
    name: str          # e.g. "Ω1" (weights of layer 1) or "β1"
    size: int
    max_abs: float     # max |analytic − numerical| over the parameters checked
    rel: float         # max |analytic − numerical| / max(max |analytic|, max |numerical|)
    skipped: int = 0   # parameters of this part not compared (at a kink)


@dataclass
class GradCheck:
    loss: float
    analytic: np.ndarray
    numerical: np.ndarray
    parts: list        # PartError per Ω_k and β_k, in φ order
    max_abs: float
    rel: float         # ‖analytic − numerical‖ / max(‖analytic‖, ‖numerical‖), checked parameters
    skipped: np.ndarray  # bool (P,): parameters at a kink, not compared

    def passed(self, tolerance):
        return self.rel <= tolerance

    @property
    def n_skipped(self):
        return int(self.skipped.sum())


def _rel(diff, a, b):
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return float(np.max(np.abs(diff), initial=0.0) / scale) if scale > 0 else float(np.max(np.abs(diff), initial=0.0))


class _Branches:
    """The branch every kinked function of `network` is on, for the rows of X: the sign
    pattern of f_k for each relu/leaky_relu/elu layer k (from a network cut after layer k,
    so f_k comes from the same kernels), and of output − target for mae."""

    def __init__(self, network, X, Y):
        self.network, self.X, self.Y = network, X, Y
        self.cuts = []
        ends = [r.stop for r in network.layer_ranges()]
        for k, act in enumerate(network.activations, start=1):
            if act in KINKED_ACTIVATIONS:
                cut = Network(network.layers[:k + 1], network.activations[:k - 1] + ["identity"],
                              "mse", dtype="float64", phi=network.phi[:ends[k - 1]],
                              kinds=network.kinds[:k], options=network.options[:k],
                              grids=network.grids[:k])
                self.cuts.append((cut, ends[k - 1]))
        self.residual = network.loss in KINKED_LOSSES

    def __bool__(self):
        return bool(self.cuts) or self.residual

    def pattern(self):
        """The current branches as one bool array."""
        phi = self.network.phi
        parts = []
        for cut, end in self.cuts:
            cut.phi[:] = phi[:end]
            parts.append(cut.forward(self.X).ravel() > 0)
        if self.residual:
            parts.append((self.network.predict(self.X) - self.Y).ravel() > 0)
        return np.concatenate(parts)


def numerical_gradient(network, X, Y, h=1e-6):
    """∂L/∂φ by central differences: (L(φ + h·e_i) − L(φ − h·e_i)) / 2h for every i.

    Returns ``(gradient, at_kink)``: ``at_kink[i]`` is true where the two steps of φ_i fall
    on different branches of a kinked activation or loss (the quotient is not ∂L/∂φ_i)."""
    phi = network.phi
    grad = np.empty(network.n_params, dtype=np.float64)
    at_kink = np.zeros(network.n_params, dtype=bool)
    branches = _Branches(network, X, Y)
    for i in range(network.n_params):
        keep = phi[i]
        phi[i] = keep + h
        up = network.loss_value(X, Y)
        above = branches.pattern() if branches else None
        phi[i] = keep - h
        down = network.loss_value(X, Y)
        if branches:
            at_kink[i] = not np.array_equal(above, branches.pattern())
        phi[i] = keep
        grad[i] = (up - down) / (2 * h)
    return grad, at_kink


def gradient_check(network, X, Y, h=1e-6, analytic=None):
    """Compare backprop's gradient (or `analytic`, if given) with central differences, over
    the parameters not at a kink (see the module's docstring)."""
    loss, grad = network.loss_and_gradient(X, Y)
    a = np.asarray(grad if analytic is None else analytic, dtype=np.float64)
    n, skipped = numerical_gradient(network, X, Y, h)
    checked = ~skipped
    diff = np.where(checked, a - n, 0.0)
    parts = []
    for name, s, _ in network.param_parts():
        c = checked[s]
        parts.append(PartError(name, s.stop - s.start, float(np.max(np.abs(diff[s]), initial=0.0)),
                               _rel(diff[s], a[s][c], n[s][c]), int((~c).sum())))
    norm = max(np.linalg.norm(a[checked]), np.linalg.norm(n[checked]))
    rel = float(np.linalg.norm(diff) / norm) if norm > 0 else float(np.linalg.norm(diff))
    return GradCheck(float(loss), a, n, parts, float(np.max(np.abs(diff), initial=0.0)), rel, skipped)
