"""Activations a(f) and their derivatives a′(f): each a pair of inline functions, side by side.

`<name>_fwd(f)` is h = a(f); `<name>_bwd(d, f, h)` is d·a′(f), where d = ∂L/∂h and h = a(f) is
what the forward pass stored, so that the derivative can reuse it (tanh′ = 1 − h²,
σ′ = h(1 − h), elu′ = h + α for f < 0). activation_forward / activation_backward only
dispatch: one switch per call, then a plain loop over contiguous memory calling the pair,
which gcc inlines and vectorises where the function allows it.

Layers whose function needs a transcendental (tanh, sigmoid, gelu, elu, softplus, sin) go
through vmath.c instead when the CPU has AVX2+FMA: 8 (float32) or 4 (float64) lanes of
polynomial approximations with stated ulp bounds (vmath.c, tests/test_vmath.py) in place of
scalar libm calls, which gcc cannot vectorise (float64 erf stays libm, per lane). The generic
ISA (NNCLI_GEMM_ISA=generic, or no AVX2+FMA) keeps the libm pairs below.

Adding an activation: its code in activations.pxd, a pair here, a branch in each dispatch,
and one entry in nncli.functions.ACTIVATIONS.
"""
import numpy as np
from cython cimport floating

cdef extern from "vmath.h" nogil:
    int nn_vm_f32(int fn, float *y, const float *x, long n)
    int nn_vact_fwd_f32(int code, float *h, const float *f, long n)
    int nn_vact_bwd_f32(int code, float *d, const float *f, long n)
    int nn_vm_f64(int fn, double *y, const double *x, long n)
    int nn_vact_fwd_f64(int code, double *h, const double *f, long n)
    int nn_vact_bwd_f64(int code, double *d, const double *f, long n)
    int nn_vm_enabled()
    int NN_VM_EXP, NN_VM_EXPM1, NN_VM_TANH, NN_VM_SIGMOID, NN_VM_LOG1P, NN_VM_ERF, NN_VM_SIN, NN_VM_COS
from libc.math cimport (exp, expm1, log1p, tanh, erf, sin, cos, fabs,
                        expf, expm1f, log1pf, tanhf, erff, sinf, cosf)


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


# The constants are literals inside the pairs: a module-level global might alias the output
# array, which stops vectorisation. Piecewise derivatives are selects (d if f > 0 else …), a
# form gcc turns into vector blends (with -fno-trapping-math); a branch would be mispredicted
# half the time on random signs.

# relu: a = max(f, 0);  a′ = 1 if f > 0 else 0
cdef inline floating relu_fwd(floating f) noexcept nogil:
    return f if f > 0 else <floating>0

cdef inline floating relu_bwd(floating d, floating f, floating h) noexcept nogil:
    return d if f > 0 else <floating>0


# leaky_relu: a = f if f > 0 else 0.01·f (torch / Keras default slope);  a′ = 1 or 0.01
cdef inline floating leaky_relu_fwd(floating f) noexcept nogil:
    return f if f > 0 else f * <floating>0.01

cdef inline floating leaky_relu_bwd(floating d, floating f, floating h) noexcept nogil:
    return d if f > 0 else d * <floating>0.01


# elu (α = 1): a = f if f > 0 else α(e^f − 1);  a′ = 1, or α·e^f = h + α for f < 0
cdef inline floating elu_fwd(floating f) noexcept nogil:
    return f if f > 0 else _expm1(f)

cdef inline floating elu_bwd(floating d, floating f, floating h) noexcept nogil:
    return d if f > 0 else d * (h + <floating>1)


# gelu, the exact form as torch's default: a = f·Φ(f);  a′ = Φ(f) + f·φ(f),
# Φ(f) = (1 + erf(f/√2))/2, φ(f) = e^(−f²/2)/√(2π)
cdef inline floating gelu_fwd(floating f) noexcept nogil:
    return <floating>0.5 * f * (1 + _erf(f * <floating>0.70710678118654752440))

cdef inline floating gelu_bwd(floating d, floating f, floating h) noexcept nogil:
    return d * (<floating>0.5 * (1 + _erf(f * <floating>0.70710678118654752440))
                + f * <floating>0.39894228040143267794 * _exp(<floating>-0.5 * f * f))


# tanh: a = tanh f;  a′ = 1 − h²
cdef inline floating tanh_fwd(floating f) noexcept nogil:
    return _tanh(f)

cdef inline floating tanh_bwd(floating d, floating f, floating h) noexcept nogil:
    return d * (1 - h * h)


# sigmoid: a = σ(f) = 1/(1 + e^−f);  a′ = h(1 − h)
cdef inline floating sigmoid_fwd(floating f) noexcept nogil:
    return stable_sigmoid(f)

cdef inline floating sigmoid_bwd(floating d, floating f, floating h) noexcept nogil:
    return d * (h * (1 - h))


# softplus: a = log(1 + e^f), computed as max(f, 0) + log(1 + e^−|f|) (no overflow);  a′ = σ(f)
cdef inline floating softplus_fwd(floating f) noexcept nogil:
    return (f if f > 0 else 0) + _log1p(_exp(-fabs(f)))

cdef inline floating softplus_bwd(floating d, floating f, floating h) noexcept nogil:
    return d * stable_sigmoid(f)


# sin: a = sin f;  a′ = cos f
cdef inline floating sin_fwd(floating f) noexcept nogil:
    return _sin(f)

cdef inline floating sin_bwd(floating d, floating f, floating h) noexcept nogil:
    return d * _cos(f)


cdef void exp_array(floating *y, const floating *x, Py_ssize_t n) noexcept nogil:
    """y = e^x element-wise: the vector code where it runs (a softmax's exponentials are most
    of a classifier's loss), else libm in the array's precision."""
    cdef Py_ssize_t i
    cdef int ok
    if floating is float:
        ok = nn_vm_f32(NN_VM_EXP, y, x, n)
    else:
        ok = nn_vm_f64(NN_VM_EXP, y, x, n)
    if not ok:
        for i in range(n):
            y[i] = _exp(x[i])


cdef void activation_forward(floating *h, const floating *f, Py_ssize_t n, int code) noexcept nogil:
    """h = a(f) over n values (identity: a copy, or nothing when h is f)."""
    cdef Py_ssize_t i
    if code > LEAKY_RELU:
        if floating is float:
            if nn_vact_fwd_f32(code, h, f, n):
                return
        else:
            if nn_vact_fwd_f64(code, h, f, n):
                return
    if code == IDENTITY:
        if h != f:
            for i in range(n):
                h[i] = f[i]
    elif code == RELU:
        for i in range(n):
            h[i] = relu_fwd(f[i])
    elif code == LEAKY_RELU:
        for i in range(n):
            h[i] = leaky_relu_fwd(f[i])
    elif code == ELU:
        for i in range(n):
            h[i] = elu_fwd(f[i])
    elif code == GELU:
        for i in range(n):
            h[i] = gelu_fwd(f[i])
    elif code == TANH:
        for i in range(n):
            h[i] = tanh_fwd(f[i])
    elif code == SIGMOID:
        for i in range(n):
            h[i] = sigmoid_fwd(f[i])
    elif code == SOFTPLUS:
        for i in range(n):
            h[i] = softplus_fwd(f[i])
    elif code == SIN:
        for i in range(n):
            h[i] = sin_fwd(f[i])


cdef void activation_backward(floating *d, const floating *f, const floating *h,
                              Py_ssize_t n, int code) noexcept nogil:
    """d ← d·a′(f) in place (identity: nothing to do)."""
    cdef Py_ssize_t i
    # In place, so that d, f and h are three distinct buffers and gcc vectorises every
    # loop (it cannot prove an output that may alias an input is safe).
    if code == GELU or code == SOFTPLUS or code == SIN:
        if floating is float:
            if nn_vact_bwd_f32(code, d, f, n):
                return
        else:
            if nn_vact_bwd_f64(code, d, f, n):
                return
    if code == RELU:
        for i in range(n):
            d[i] = relu_bwd(d[i], f[i], h[i])
    elif code == LEAKY_RELU:
        for i in range(n):
            d[i] = leaky_relu_bwd(d[i], f[i], h[i])
    elif code == ELU:
        for i in range(n):
            d[i] = elu_bwd(d[i], f[i], h[i])
    elif code == GELU:
        for i in range(n):
            d[i] = gelu_bwd(d[i], f[i], h[i])
    elif code == TANH:
        for i in range(n):
            d[i] = tanh_bwd(d[i], f[i], h[i])
    elif code == SIGMOID:
        for i in range(n):
            d[i] = sigmoid_bwd(d[i], f[i], h[i])
    elif code == SOFTPLUS:
        for i in range(n):
            d[i] = softplus_bwd(d[i], f[i], h[i])
    elif code == SIN:
        for i in range(n):
            d[i] = sin_bwd(d[i], f[i], h[i])


def forward(floating[::1] f, int code):
    """a(f) for a 1-D array (testing)."""
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


VMATH = {"exp": NN_VM_EXP, "expm1": NN_VM_EXPM1, "tanh": NN_VM_TANH, "sigmoid": NN_VM_SIGMOID,
         "log1p": NN_VM_LOG1P, "erf": NN_VM_ERF, "sin": NN_VM_SIN, "cos": NN_VM_COS}


def vmath_enabled():
    """True when float32 activations use the vectorised transcendentals (AVX2+FMA)."""
    return bool(nn_vm_enabled())


def vmath(str name, floating[::1] x):
    """The vectorised `name` (a key of VMATH) of x, float32 or float64 (testing); None when
    the vector code does not run on this CPU (or for float64 erf, which has none)."""
    out = np.empty(x.shape[0], dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] y = out
    cdef int fn = VMATH[name], ok = 1
    if x.shape[0]:
        with nogil:
            if floating is float:
                ok = nn_vm_f32(fn, &y[0], &x[0], x.shape[0])
            else:
                ok = nn_vm_f64(fn, &y[0], &x[0], x.shape[0])
    return out if ok else None
