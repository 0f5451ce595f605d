"""The dense layer kind's forward and backward, written as the three products of backprop.

forward:  f = h_in·Ωᵀ + β                 (gemm A·Bᵀ), then h_out = a(f)
backward: ∂L/∂Ω = δᵀ·h_in                 (gemm Aᵀ·B)
          ∂L/∂β = Σ_rows δ
          ∂L/∂h_in = δ·Ω                  (gemm A·B)
δ = ∂L/∂f arrives with a′ already applied (layers.pxd: layer_backward), and ∂L/∂h_in goes
back to the previous layer, which applies its own a′.
Gradients are overwritten (gemm with β = 0), so nothing needs zeroing between steps.

A single row through a small layer (SGD on a small network) skips the GEMM call: there the
product is a handful of multiply-adds and the call, not the arithmetic, is the cost.
"""
import numpy as np
from cython cimport floating
from nncli._kernels.gemm cimport gemm, gemm_epi
from nncli._kernels.activations cimport activation_forward, IDENTITY

# Largest layer (inputs × outputs) that one row goes through without GEMM.
cdef Py_ssize_t SMALL_LAYER = 1024


cdef inline bint one_small_row(Py_ssize_t B, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    return B == 1 and n_in * n_out <= SMALL_LAYER


cdef struct ForwardOut:     # what the forward product's epilogue needs
    void *h                  # B×n_out a(f)
    const void *b            # β
    Py_ssize_t ld            # n_out: row stride of f and h
    int activation           # a, or -1: h is f (identity), nothing to apply


cdef void forward_out(void *ctx, long i0, long j0, long m, long n, floating *f,
                      long ldf) noexcept nogil:
    """The forward product's epilogue on the block f[i0:i0+m, j0:j0+n]: f += β, h = a(f)."""
    cdef const ForwardOut *out = <const ForwardOut *>ctx
    cdef const floating *b = <const floating *>out.b + j0
    cdef floating *h = <floating *>out.h + i0 * out.ld + j0
    cdef floating *fr
    cdef long r, j
    for r in range(m):
        fr = f + r * ldf
        for j in range(n):
            fr[j] += b[j]
    if out.activation < 0:
        return
    if n == out.ld and ldf == out.ld:      # whole rows: one call (small layers, many rows)
        activation_forward(h, f, m * n, out.activation)
        return
    for r in range(m):
        activation_forward(h + r * out.ld, f + r * ldf, n, out.activation)


cdef void dense_forward(floating *f, floating *h_out, const floating *h_in,
                        const floating *W, const floating *b,
                        Py_ssize_t B, Py_ssize_t n_in, Py_ssize_t n_out,
                        int activation, int n_threads) noexcept nogil:
    cdef Py_ssize_t j, i
    cdef const floating *w
    cdef floating acc
    cdef ForwardOut out
    if one_small_row(B, n_in, n_out):
        for j in range(n_out):
            w = W + j * n_in
            acc = b[j]
            for i in range(n_in):
                acc = acc + w[i] * h_in[i]
            f[j] = acc
        if activation != IDENTITY or h_out != f:
            activation_forward(h_out, f, n_out, activation)
        return
    # f = h_in·Ωᵀ, then β and a(f) on each finished block of f while it is in cache.
    out.h = h_out
    out.b = b
    out.ld = n_out
    out.activation = activation if activation != IDENTITY or h_out != f else -1
    if floating is float:
        gemm_epi(False, True, B, n_out, n_in, h_in, n_in, W, n_in, <floating>0, f, n_out,
                 n_threads, <void *>forward_out[float], &out)
    else:
        gemm_epi(False, True, B, n_out, n_in, h_in, n_in, W, n_in, <floating>0, f, n_out,
                 n_threads, <void *>forward_out[double], &out)


cdef void dense_backward(floating *dh_in, floating *dW, floating *db, const floating *df,
                         const floating *h_in, const floating *W,
                         Py_ssize_t B, Py_ssize_t n_in, Py_ssize_t n_out,
                         int n_threads) noexcept nogil:
    cdef Py_ssize_t r, j, i
    cdef const floating *dr
    cdef const floating *w
    cdef floating *dw
    cdef floating d
    if one_small_row(B, n_in, n_out):
        # Outer product for ∂L/∂Ω, the row itself for ∂L/∂β, δ·Ω accumulated row by row.
        if dh_in != NULL:
            for i in range(n_in):
                dh_in[i] = 0
        for j in range(n_out):
            d = df[j]
            db[j] = d
            dw = dW + j * n_in
            w = W + j * n_in
            for i in range(n_in):
                dw[i] = d * h_in[i]
            if dh_in != NULL:
                for i in range(n_in):
                    dh_in[i] += d * w[i]
        return
    gemm(True, False, n_out, n_in, B, df, n_out, h_in, n_in, <floating>0, dW, n_in, n_threads)
    for j in range(n_out):
        db[j] = 0
    for r in range(B):
        dr = df + r * n_out
        for j in range(n_out):
            db[j] += dr[j]
    if dh_in != NULL:
        gemm(False, False, B, n_in, n_out, df, n_out, W, n_in, <floating>0, dh_in, n_in, n_threads)


def forward(floating[:, ::1] h_in, floating[:, ::1] W, floating[::1] b, int activation,
            int n_threads=1):
    """(f, a(f)) of one layer (testing)."""
    cdef Py_ssize_t B = h_in.shape[0], n_in = h_in.shape[1], n_out = W.shape[0]
    if W.shape[1] != n_in or b.shape[0] != n_out:
        raise ValueError("shapes of h_in, W and b do not fit")
    dt = np.float32 if floating is float else np.float64
    f_arr = np.empty((B, n_out), dtype=dt)
    h_arr = np.empty((B, n_out), dtype=dt)
    cdef floating[:, ::1] f = f_arr, h = h_arr
    if B and n_out:
        with nogil:
            dense_forward(&f[0, 0], &h[0, 0], &h_in[0, 0] if n_in else NULL,
                          &W[0, 0] if n_in else NULL, &b[0], B, n_in, n_out, activation,
                          n_threads)
    return f_arr, h_arr


def backward(floating[:, ::1] df, floating[:, ::1] h_in, floating[:, ::1] W):
    """(dh_in, dW, db) of one layer given its δ = dL/df (testing)."""
    cdef Py_ssize_t B = df.shape[0], n_out = df.shape[1], n_in = h_in.shape[1]
    if h_in.shape[0] != B or W.shape[0] != n_out or W.shape[1] != n_in:
        raise ValueError("shapes of df, h_in and W do not fit")
    dt = np.float32 if floating is float else np.float64
    dh_arr = np.empty((B, n_in), dtype=dt)
    dW_arr = np.zeros((n_out, n_in), dtype=dt)
    db_arr = np.zeros(n_out, dtype=dt)
    cdef floating[:, ::1] dh = dh_arr, dW = dW_arr
    cdef floating[::1] db = db_arr
    if B and n_in and n_out:
        with nogil:
            dense_backward(&dh[0, 0], &dW[0, 0], &db[0], &df[0, 0], &h_in[0, 0], &W[0, 0],
                           B, n_in, n_out, 1)
    return dh_arr, dW_arr, db_arr
