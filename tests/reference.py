"""Plain numpy versions of every kernel: slow, obvious, and what the tests trust."""
import math

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])


def sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


ACT = {
    "identity": (lambda f: f, lambda f: np.ones_like(f)),
    "relu": (lambda f: np.maximum(f, 0), lambda f: (f > 0).astype(f.dtype)),
    "leaky_relu": (lambda f: np.where(f > 0, f, 0.01 * f), lambda f: np.where(f > 0, 1.0, 0.01)),
    "elu": (lambda f: np.where(f > 0, f, np.expm1(f)), lambda f: np.where(f > 0, 1.0, np.exp(f))),
    "gelu": (lambda f: 0.5 * f * (1 + _erf(f / np.sqrt(2))),
             lambda f: 0.5 * (1 + _erf(f / np.sqrt(2))) + f * np.exp(-f * f / 2) / np.sqrt(2 * np.pi)),
    "tanh": (np.tanh, lambda f: 1 - np.tanh(f) ** 2),
    "sigmoid": (sigmoid, lambda f: sigmoid(f) * (1 - sigmoid(f))),
    "softplus": (lambda f: np.logaddexp(0, f), sigmoid),
    "sin": (np.sin, np.cos),
}


def loss(name, z, y):
    """(mean loss over rows, dL/dz) in float64."""
    z = z.astype(np.float64)
    y = y.astype(np.float64)
    B, m = z.shape
    d = z - y
    if name == "mse":
        return np.mean(d ** 2), 2 * d / (B * m)
    if name == "mae":
        return np.mean(np.abs(d)), np.sign(d) / (B * m)
    if name == "huber":
        a = np.abs(d)
        return np.mean(np.where(a <= 1, 0.5 * d * d, a - 0.5)), np.where(a <= 1, d, np.sign(d)) / (B * m)
    if name == "cross_entropy":
        zs = z - z.max(1, keepdims=True)
        logp = zs - np.log(np.exp(zs).sum(1, keepdims=True))
        return -np.mean((y * logp).sum(1)), (np.exp(logp) * y.sum(1, keepdims=True) - y) / B
    if name == "bce":
        l = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        return np.mean(l), (sigmoid(z) - y) / (B * m)
    raise KeyError(name)


def network_forward(layers, activations, phi, X):
    """All (f_k, h_k) of a network given its flat φ, by the documented layout."""
    h, off, out = X.astype(np.float64), 0, []
    for n_in, n_out, act in zip(layers[:-1], layers[1:], activations):
        W = phi[off:off + n_in * n_out].reshape(n_out, n_in)
        off += n_in * n_out
        b = phi[off:off + n_out]
        off += n_out
        f = h @ W.T + b
        h = ACT[act][0](f)
        out.append((f, h))
    return out


def _mix64(z):
    z = np.uint64(z)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _mix32(x):
    x = x.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    for shift, mult in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x = ((x ^ (x >> np.uint64(shift))) * np.uint64(mult)) & np.uint64(0xFFFFFFFF)
    return x ^ (x >> np.uint64(16))


def dropout_mask(rows, n, p, layer, seed, step):
    """The dropout kernel's mask, one step of the hash at a time (float64)."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        key = _mix64(_mix64(np.uint64(seed) + golden * np.uint64(step + 1))
                     ^ (golden * np.uint64(layer + 1)))
        threshold = np.uint64(int(p * 2 ** 32))
        j = np.arange(1, n + 1, dtype=np.uint64)
        out = []
        for row in rows:
            row_key = _mix64(key ^ _mix64(np.uint64(row)))
            lo, hi = row_key & np.uint64(0xFFFFFFFF), row_key >> np.uint64(32)
            u = _mix32(((lo + np.uint64(0x9E3779B9) * j) & np.uint64(0xFFFFFFFF)) ^ hi)
            out.append(np.where(u >= threshold, 1 / (1 - p), 0.0))
    return np.array(out)
