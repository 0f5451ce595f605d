"""Losses fused with their output nonlinearity, each with its gradient beside it.

Softmax + cross-entropy per row: m = max z, s = Σ e^(z−m), ℓ = log s + m − Σ y·z
(for one-hot y), dz = (e^(z−m)/s − y)/B. Sigmoid + BCE: ℓ = max(z,0) − z·y + log1p(e^−|z|),
dz = σ(z) − y. Both are stable for any |z|. Sums are accumulated in double.
"""
import numpy as np
from cython cimport floating
from nncli._kernels.activations cimport stable_sigmoid
from libc.math cimport exp, log, log1p, fabs

cdef double HUBER_DELTA = 1.0


cdef inline double row_max_sumexp(const floating *zr, Py_ssize_t m, double *s) noexcept nogil:
    """max z of one row, and s = Σ e^(z − max): the stable pieces of softmax and log-sum-exp."""
    cdef Py_ssize_t j
    cdef double zmax = zr[0], acc = 0.0
    for j in range(1, m):
        if zr[j] > zmax:
            zmax = zr[j]
    for j in range(m):
        acc += exp(zr[j] - zmax)
    s[0] = acc
    return zmax


cdef double loss_forward_backward(floating *dz, const floating *z, const floating *y,
                                  Py_ssize_t B, Py_ssize_t m, int code,
                                  double grad_rows) noexcept nogil:
    cdef Py_ssize_t r, j, k
    cdef double total = 0.0, d, a, zmax, s, ysum, zy, scale
    cdef const floating *zr
    cdef const floating *yr
    if code == CROSS_ENTROPY:
        scale = 1.0 / grad_rows
        for r in range(B):
            zr = z + r * m
            yr = y + r * m
            zmax = row_max_sumexp(zr, m, &s)
            ysum = 0.0
            zy = 0.0
            for j in range(m):
                ysum += yr[j]
                zy += yr[j] * zr[j]
            total += ysum * (log(s) + zmax) - zy
            if dz != NULL:
                for j in range(m):
                    k = r * m + j
                    dz[k] = <floating>((ysum * exp(zr[j] - zmax) / s - yr[j]) * scale)
        return total
    scale = 1.0 / (grad_rows * m)
    for k in range(B * m):
        d = <double>z[k] - <double>y[k]
        if code == MSE:
            total += d * d
            if dz != NULL:
                dz[k] = <floating>(2.0 * d * scale)
        elif code == MAE:
            total += fabs(d)
            if dz != NULL:
                dz[k] = <floating>((1.0 if d > 0 else (-1.0 if d < 0 else 0.0)) * scale)
        elif code == HUBER:
            a = fabs(d)
            if a <= HUBER_DELTA:
                total += 0.5 * d * d
                if dz != NULL:
                    dz[k] = <floating>(d * scale)
            else:
                total += HUBER_DELTA * (a - 0.5 * HUBER_DELTA)
                if dz != NULL:
                    dz[k] = <floating>((HUBER_DELTA if d > 0 else -HUBER_DELTA) * scale)
        elif code == BCE:
            a = z[k]
            total += (a if a > 0 else 0.0) - a * y[k] + log1p(exp(-fabs(a)))
            if dz != NULL:
                dz[k] = <floating>((stable_sigmoid(a) - y[k]) * scale)
    return total / m


cdef void loss_output_transform(floating *z, Py_ssize_t B, Py_ssize_t m, int code) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef double zmax, s
    cdef floating *zr
    if code == CROSS_ENTROPY:
        for r in range(B):
            zr = z + r * m
            zmax = row_max_sumexp(zr, m, &s)
            for j in range(m):
                zr[j] = <floating>(exp(zr[j] - zmax) / s)
    elif code == BCE:
        for j in range(B * m):
            z[j] = <floating>stable_sigmoid(z[j])


def loss_and_grad(floating[:, ::1] z, floating[:, ::1] y, int code):
    """(mean loss over rows, dL/dz) for one batch (testing and the Python API)."""
    if z.shape[0] != y.shape[0] or z.shape[1] != y.shape[1]:
        raise ValueError("z and y must have the same shape")
    cdef Py_ssize_t B = z.shape[0], m = z.shape[1]
    out = np.zeros((B, m), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] dz = out
    cdef double total = 0.0
    if B == 0 or m == 0:
        return 0.0, out
    with nogil:
        total = loss_forward_backward(&dz[0, 0], &z[0, 0], &y[0, 0], B, m, code, <double>B)
    return total / B, out


def output_transform(floating[:, ::1] z, int code):
    """Softmax (cross-entropy) or sigmoid (bce) of raw outputs, in place; returns z."""
    if z.shape[0] and z.shape[1]:
        with nogil:
            loss_output_transform(&z[0, 0], z.shape[0], z.shape[1], code)
    return np.asarray(z)
