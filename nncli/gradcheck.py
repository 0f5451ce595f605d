"""Backpropagation against central differences, parameter by parameter.

Both sides use the same kernels as training: the analytic gradient is one
forward+backward pass (``Network.loss_and_gradient``); the numerical one perturbs each φ_i
by ±h and evaluates the loss twice. Run it in float64: in float32 the differences drown
in rounding.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class PartError:
    name: str          # e.g. "Ω1" (weights of layer 1) or "β1"
    size: int
    max_abs: float     # max |analytic − numerical|
    rel: float         # max |analytic − numerical| / max(max |analytic|, max |numerical|)


@dataclass
class GradCheck:
    loss: float
    analytic: np.ndarray
    numerical: np.ndarray
    parts: list        # PartError per Ω_k and β_k, in φ order
    max_abs: float
    rel: float         # ‖analytic − numerical‖ / max(‖analytic‖, ‖numerical‖)

    def passed(self, tolerance):
        return self.rel <= tolerance


def _rel(diff, a, b):
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return float(np.max(np.abs(diff), initial=0.0) / scale) if scale > 0 else float(np.max(np.abs(diff), initial=0.0))


def numerical_gradient(network, X, Y, h=1e-6):
    """∂L/∂φ by central differences: (L(φ + h·e_i) − L(φ − h·e_i)) / 2h for every i."""
    phi = network.phi
    grad = np.empty(network.n_params, dtype=np.float64)
    for i in range(network.n_params):
        keep = phi[i]
        phi[i] = keep + h
        up = network.loss_value(X, Y)
        phi[i] = keep - h
        down = network.loss_value(X, Y)
        phi[i] = keep
        grad[i] = (up - down) / (2 * h)
    return grad


def gradient_check(network, X, Y, h=1e-6, analytic=None):
    """Compare backprop's gradient (or `analytic`, if given) with central differences."""
    loss, grad = network.loss_and_gradient(X, Y)
    a = np.asarray(grad if analytic is None else analytic, dtype=np.float64)
    n = numerical_gradient(network, X, Y, h)
    diff = a - n
    parts = []
    for name, s, _ in network.param_parts():
        parts.append(PartError(name, s.stop - s.start, float(np.max(np.abs(diff[s]), initial=0.0)),
                               _rel(diff[s], a[s], n[s])))
    norm = max(np.linalg.norm(a), np.linalg.norm(n))
    rel = float(np.linalg.norm(diff) / norm) if norm > 0 else float(np.linalg.norm(diff))
    return GradCheck(float(loss), a, n, parts, float(np.max(np.abs(diff), initial=0.0)), rel)
