# Activation functions a(f) and their derivatives, by integer code (see activations.pyx).
from cython cimport floating

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

cdef void activation_backward(floating *d,          # INOUT dL/dh in, dL/df = dL/dh ⊙ a'(f) out
                              const floating *f,    # IN   pre-activations
                              const floating *h,    # IN   a(f), as stored by the forward pass
                              Py_ssize_t n, int code) noexcept nogil
