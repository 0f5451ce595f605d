"""Losses, each one function computing ℓ and its gradient ∂ℓ/∂z together, formula above it.

Cross-entropy and BCE are fused with their output nonlinearity (softmax per row, sigmoid),
which keeps both stable for any |z|: softmax + cross-entropy per row uses M = max z and
s = Σ e^(z−M), ℓ = log s + M − z_y, ∂ℓ/∂z = e^(z−M)/s − y; sigmoid + BCE uses the softplus
form. Sums are accumulated in double. loss_forward_backward only dispatches.

Adding a loss: its code in losses.pxd, one function here, one branch in the dispatch, and
one entry in nncli.functions.LOSSES.
"""
import numpy as np
from cython cimport floating
from nncli._kernels.activations cimport stable_sigmoid, exp_array
from libc.math cimport exp, log, log1p, fabs

cdef double HUBER_DELTA = 1.0


cdef inline floating row_max(const floating *zr, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating zmax = zr[0]
    for j in range(1, m):
        if zr[j] > zmax:
            zmax = zr[j]
    return zmax


cdef inline double shifted_exp(floating *e, const floating *zr, Py_ssize_t m,
                               floating zmax) noexcept nogil:
    """e = e^(z − max z) for m logits of a row (e may be zr), in one vector call; returns
    their sum in double: the stable pieces of softmax and log-sum-exp."""
    cdef Py_ssize_t j
    cdef double acc = 0.0
    for j in range(m):
        e[j] = zr[j] - zmax
    exp_array(e, e, m)
    for j in range(m):
        acc += e[j]
    return acc


cdef enum:
    # A row's exponentials when there is no ∂ℓ/∂z row to hold them (evaluation): this many
    # at a time, on the stack.
    EXP_BLOCK = 256


# Each loss returns Σ ℓ over its n values (rows for cross-entropy) in double and, when dz is
# not NULL, writes dz = scale·∂ℓ/∂z beside it; the caller picks the scale (1/B, or 1/(B·m)).

# mse: ℓ = (z − y)²;  ∂ℓ/∂z = 2(z − y)
cdef double mse_loss(floating *dz, const floating *z, const floating *y, Py_ssize_t n,
                     double scale) noexcept nogil:
    cdef Py_ssize_t k
    cdef double total = 0.0, d
    for k in range(n):
        d = <double>z[k] - <double>y[k]
        total += d * d
        if dz != NULL:
            dz[k] = <floating>(2.0 * d * scale)
    return total


# mae: ℓ = |z − y|;  ∂ℓ/∂z = sign(z − y)  (0 at z = y)
cdef double mae_loss(floating *dz, const floating *z, const floating *y, Py_ssize_t n,
                     double scale) noexcept nogil:
    cdef Py_ssize_t k
    cdef double total = 0.0, d
    for k in range(n):
        d = <double>z[k] - <double>y[k]
        total += fabs(d)
        if dz != NULL:
            dz[k] = <floating>((1.0 if d > 0 else (-1.0 if d < 0 else 0.0)) * scale)
    return total


# huber (δ = 1): ℓ = ½d² for |d| ≤ δ, else δ(|d| − ½δ), d = z − y;  ∂ℓ/∂z = d, or δ·sign(d)
cdef double huber_loss(floating *dz, const floating *z, const floating *y, Py_ssize_t n,
                       double scale) noexcept nogil:
    cdef Py_ssize_t k
    cdef double total = 0.0, d, a
    for k in range(n):
        d = <double>z[k] - <double>y[k]
        a = fabs(d)
        if a <= HUBER_DELTA:
            total += 0.5 * d * d
            if dz != NULL:
                dz[k] = <floating>(d * scale)
        else:
            total += HUBER_DELTA * (a - 0.5 * HUBER_DELTA)
            if dz != NULL:
                dz[k] = <floating>((HUBER_DELTA if d > 0 else -HUBER_DELTA) * scale)
    return total


# sigmoid + binary cross-entropy on the logit z: ℓ = max(z, 0) − z·y + log(1 + e^−|z|);
# ∂ℓ/∂z = σ(z) − y
cdef double sigmoid_bce_loss(floating *dz, const floating *z, const floating *y, Py_ssize_t n,
                             double scale) noexcept nogil:
    cdef Py_ssize_t k
    cdef double total = 0.0, a
    for k in range(n):
        a = z[k]
        total += (a if a > 0 else 0.0) - a * y[k] + log1p(exp(-fabs(a)))
        if dz != NULL:
            dz[k] = <floating>((stable_sigmoid(a) - y[k]) * scale)
    return total


# softmax + cross-entropy, per row of m logits: with M = max z and s = Σ e^(z−M),
# ℓ = Σy·(log s + M) − Σ y·z  (= log s + M − z_y for one-hot y);  ∂ℓ/∂z = Σy·e^(z−M)/s − y
cdef double softmax_cross_entropy_loss(floating *dz, const floating *z, const floating *y,
                                       Py_ssize_t B, Py_ssize_t m,
                                       double scale) noexcept nogil:
    cdef Py_ssize_t r, j, j0
    cdef double total = 0.0, s, ysum, zy
    cdef floating zmax
    cdef floating buf[EXP_BLOCK]
    cdef const floating *zr
    cdef const floating *yr
    cdef floating *er = NULL
    for r in range(B):
        zr = z + r * m
        yr = y + r * m
        zmax = row_max(zr, m)
        if dz != NULL:      # e^(z−M) where ∂ℓ/∂z goes, turned into it below
            er = dz + r * m
            s = shifted_exp(er, zr, m, zmax)
        else:
            s = 0.0
            j0 = 0
            while j0 < m:
                s += shifted_exp(buf, zr + j0, min(<Py_ssize_t>EXP_BLOCK, m - j0), zmax)
                j0 += EXP_BLOCK
        ysum = 0.0
        zy = 0.0
        for j in range(m):
            ysum += yr[j]
            zy += yr[j] * zr[j]
        total += ysum * (log(s) + zmax) - zy
        if dz != NULL:
            for j in range(m):
                er[j] = <floating>((ysum * er[j] / s - yr[j]) * scale)
    return total


cdef double loss_forward_backward(floating *dz, const floating *z, const floating *y,
                                  Py_ssize_t B, Py_ssize_t m, int code) noexcept nogil:
    """Dispatch: Σ over rows of the per-row loss, and dz (see losses.pxd)."""
    if code == CROSS_ENTROPY:   # one distribution per row: summed over classes
        return softmax_cross_entropy_loss(dz, z, y, B, m, 1.0 / B)
    # The others average over the m outputs of a row.
    cdef double scale = 1.0 / (<double>B * m), total = 0.0
    if code == MSE:
        total = mse_loss(dz, z, y, B * m, scale)
    elif code == MAE:
        total = mae_loss(dz, z, y, B * m, scale)
    elif code == HUBER:
        total = huber_loss(dz, z, y, B * m, scale)
    elif code == BCE:
        total = sigmoid_bce_loss(dz, z, y, B * m, scale)
    return total / m


cdef void loss_output_transform(floating *z, Py_ssize_t B, Py_ssize_t m, int code) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef double s
    cdef floating *zr
    if code == CROSS_ENTROPY:
        for r in range(B):
            zr = z + r * m
            s = shifted_exp(zr, zr, m, row_max(zr, m))
            for j in range(m):
                zr[j] = <floating>(zr[j] / s)
    elif code == BCE:
        for j in range(B * m):
            z[j] = <floating>stable_sigmoid(z[j])


def loss_and_grad(floating[:, ::1] z, floating[:, ::1] y, int code):
    """(mean loss over rows, dL/dz) for one batch (testing)."""
    if z.shape[0] != y.shape[0] or z.shape[1] != y.shape[1]:
        raise ValueError("z and y must have the same shape")
    cdef Py_ssize_t B = z.shape[0], m = z.shape[1]
    out = np.zeros((B, m), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] dz = out
    cdef double total = 0.0
    if B == 0 or m == 0:
        return 0.0, out
    with nogil:
        total = loss_forward_backward(&dz[0, 0], &z[0, 0], &y[0, 0], B, m, code)
    return total / B, out


def output_transform(floating[:, ::1] z, int code):
    """Softmax (cross-entropy) or sigmoid (bce) of raw outputs, in place; returns z."""
    if z.shape[0] and z.shape[1]:
        with nogil:
            loss_output_transform(&z[0, 0], z.shape[0], z.shape[1], code)
    return np.asarray(z)
