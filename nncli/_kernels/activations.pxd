# Activation functions a(f) and their derivatives, by integer code (see activations.pyx).
from cython cimport floating
from libc.math cimport exp, expf

cpdef enum ActivationCode:
    IDENTITY = 0
    RELU = 1
    LEAKY_RELU = 2
    ELU = 3
    GELU = 4
    TANH = 5
    SIGMOID = 6
    SOFTPLUS = 7
    SIN = 8

cdef void activation_forward(floating *h,           # OUT  a(f), n values (may alias f)
                             const floating *f,     # IN   pre-activations
                             Py_ssize_t n, int code) noexcept nogil

cdef void exp_array(floating *y,                   # OUT  e^x, n values (may alias x)
                    const floating *x,             # IN
                    Py_ssize_t n) noexcept nogil

cdef void activation_backward(floating *d,          # INOUT dL/dh in, dL/df = dL/dh ⊙ a'(f) out
                              const floating *f,    # IN   pre-activations
                              const floating *h,    # IN   a(f), as stored by the forward pass
                              Py_ssize_t n, int code) noexcept nogil


cdef inline floating stable_sigmoid(floating x) noexcept nogil:
    """1 / (1 + e^−x) without overflow: never exponentiates a positive number."""
    cdef floating e
    if floating is float:
        e = expf(-x if x >= 0 else x)
    else:
        e = exp(-x if x >= 0 else x)
    return 1 / (1 + e) if x >= 0 else e / (1 + e)
