# Inverted dropout on a layer's outputs (see dropout.pyx): masks drawn from a counter-based
# hash, so a mask is a function of (seed, step, layer, row, unit) and needs no generator state.
from cython cimport floating
from libc.stdint cimport int64_t, uint64_t

cdef struct DropoutCall:          # what one forward pass needs to draw its masks
    uint64_t seed                 # the run's dropout seed
    long step                     # the update the batch is for (the optimiser's step count)
    const int64_t *rows           # each row's place in its batch, or NULL: 0, 1, …, B−1 (a
                                  # data-parallel rank holds some of the batch's rows)

cdef void dropout_forward(floating *out,         # OUT  B×n  h ⊙ m
                          floating *mask,        # OUT  B×n  m: 0 (dropped) or 1/(1−p) (kept)
                          const floating *h,     # IN   B×n  the layer's outputs a(f)
                          Py_ssize_t B, Py_ssize_t n, double p, int layer,
                          const DropoutCall *call) noexcept nogil

cdef void dropout_backward(floating *d,          # INOUT ∂L/∂(h ⊙ m) in, ∂L/∂h out
                           const floating *mask, # IN    the forward pass's m
                           Py_ssize_t count) noexcept nogil
