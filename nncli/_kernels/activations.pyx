"""Activations and their derivatives, side by side so each can be checked against the other.

The backward rule reuses what the forward pass stored: tanh' = 1 − h², σ' = h(1 − h),
elu' = h + 1 for f < 0. Each branch is a plain loop over contiguous memory that gcc
vectorises where the function allows it.
"""
import numpy as np
from cython cimport floating
from libc.math cimport (exp, expm1, log1p, tanh, erf, sin, cos, fabs,
                        expf, expm1f, log1pf, tanhf, erff, sinf, cosf)

cdef double LEAKY_SLOPE = 0.01     # torch / Keras default negative slope
cdef double ELU_ALPHA = 1.0
cdef double INV_SQRT2 = 0.70710678118654752440
cdef double INV_SQRT_2PI = 0.39894228040143267794


# libm in the layer's own precision: the float versions are about twice as fast, and
# float32 training gains nothing from a double-precision tanh.
cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)

cdef inline floating _expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)

cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)

cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)

cdef inline floating _erf(floating x) noexcept nogil:
    if floating is float:
        return erff(x)
    else:
        return erf(x)

cdef inline floating _sin(floating x) noexcept nogil:
    if floating is float:
        return sinf(x)
    else:
        return sin(x)

cdef inline floating _cos(floating x) noexcept nogil:
    if floating is float:
        return cosf(x)
    else:
        return cos(x)

cdef void activation_forward(floating *h, const floating *f, Py_ssize_t n, int code) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x
    # Constants in locals: a module-level global might alias h, which stops vectorisation.
    cdef floating slope = <floating>LEAKY_SLOPE, alpha = <floating>ELU_ALPHA
    cdef floating inv_sqrt2 = <floating>INV_SQRT2
    if code == IDENTITY:
        if h != f:
            for i in range(n):
                h[i] = f[i]
    elif code == RELU:
        for i in range(n):
            h[i] = f[i] if f[i] > 0 else <floating>0
    elif code == LEAKY_RELU:
        for i in range(n):
            h[i] = f[i] if f[i] > 0 else f[i] * slope
    elif code == ELU:
        for i in range(n):
            h[i] = f[i] if f[i] > 0 else alpha * _expm1(f[i])
    elif code == GELU:  # exact form x·Φ(x), as torch's default
        for i in range(n):
            x = f[i]
            h[i] = <floating>0.5 * x * (1 + _erf(x * inv_sqrt2))
    elif code == TANH:
        for i in range(n):
            h[i] = _tanh(f[i])
    elif code == SIGMOID:
        for i in range(n):
            h[i] = stable_sigmoid(f[i])
    elif code == SOFTPLUS:  # max(x, 0) + log(1 + e^−|x|): no overflow
        for i in range(n):
            x = f[i]
            h[i] = (x if x > 0 else 0) + _log1p(_exp(-fabs(x)))
    elif code == SIN:
        for i in range(n):
            h[i] = _sin(f[i])


cdef void activation_backward(floating *d, const floating *f, const floating *h,
                              Py_ssize_t n, int code) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x
    cdef floating slope = <floating>LEAKY_SLOPE, alpha = <floating>ELU_ALPHA
    cdef floating inv_sqrt2 = <floating>INV_SQRT2, inv_sqrt_2pi = <floating>INV_SQRT_2PI
    # In place, so that d, f and h are three distinct buffers and gcc vectorises every
    # loop (it cannot prove an output that may alias an input is safe).
    if code == IDENTITY:
        return
    # Piecewise derivatives as selects (d = f > 0 ? d : …), a form gcc turns into vector
    # blends; a branch would be mispredicted half the time on random signs.
    elif code == RELU:
        for i in range(n):
            d[i] = d[i] if f[i] > 0 else <floating>0
    elif code == LEAKY_RELU:
        for i in range(n):
            d[i] = d[i] if f[i] > 0 else d[i] * slope
    elif code == ELU:  # a'(f) = α·e^f = h + α for f < 0
        for i in range(n):
            d[i] = d[i] if f[i] > 0 else d[i] * (h[i] + alpha)
    elif code == GELU:  # Φ(x) + x·φ(x)
        for i in range(n):
            x = f[i]
            d[i] *= (<floating>0.5 * (1 + _erf(x * inv_sqrt2))
                     + x * inv_sqrt_2pi * _exp(<floating>-0.5 * x * x))
    elif code == TANH:
        for i in range(n):
            d[i] *= (1 - h[i] * h[i])
    elif code == SIGMOID:
        for i in range(n):
            d[i] *= h[i] * (1 - h[i])
    elif code == SOFTPLUS:  # a' = σ(f)
        for i in range(n):
            d[i] *= stable_sigmoid(f[i])
    elif code == SIN:
        for i in range(n):
            d[i] *= _cos(f[i])


def forward(floating[::1] f, int code):
    """a(f) for a 1-D array (testing and the Python API)."""
    out = np.empty(f.shape[0], dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] h = out
    if f.shape[0]:
        with nogil:
            activation_forward(&h[0], &f[0], f.shape[0], code)
    return out


def backward(floating[::1] dh, floating[::1] f, floating[::1] h, int code):
    """dL/df from dL/dh, f and h = a(f) (testing)."""
    if not (dh.shape[0] == f.shape[0] == h.shape[0]):
        raise ValueError("dh, f and h must have the same length")
    out = np.array(dh, dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] df = out
    if f.shape[0]:
        with nogil:
            activation_backward(&df[0], &f[0], &h[0], f.shape[0], code)
    return out
