"""Inverted dropout: during training each hidden unit's output is kept with probability
1 − p and scaled by 1/(1 − p), or set to 0; at predict time the layer is left as it is (the
scaling makes its expected output during training the output predict sees).

    forward:  o = h ⊙ m,   m_rj = 1/(1−p) if u(seed, step, layer, row, j) ≥ p else 0
    backward: ∂L/∂h = ∂L/∂o ⊙ m     (the same m: the engine keeps it beside F_k and H_k)

The masks come from a counter-based generator instead of a stateful one: a unit's draw is a
hash of (seed, step, layer, row, unit) — splitmix64's finaliser for the keys of a layer and of
a row, then a 32-bit hash (lowbias32) of the row's key and the unit's index (row: the row's
place in its batch). So the mask of a batch depends neither on the thread count nor on what
was drawn before it: a run resumed from a checkpoint (which stores the step) draws the masks
the uninterrupted run drew, each update and layer gets new masks, a streamed run draws what
training in memory draws, and a data-parallel rank draws for its rows what one process draws
for them (it passes their places in the global batch). A fixed step gives a fixed mask, which
is what a gradient check needs. A unit is kept when its 32-bit draw is at least ⌊p·2³²⌋ (p is
rounded down to a multiple of 2⁻³², 2.3e-10). The row loop is C (dropout_impl.h), compiled
for AVX2 too and chosen at run time, with a branch-free keep test: a mask costs under a
nanosecond per unit there, little beside the layer's product (n_in multiply-adds per unit).
"""
import numpy as np
from cython cimport floating
from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef extern from "dropout_impl.h" nogil:
    void nn_dropout_row_f32(float *out, float *mask, const float *h, long n, uint32_t lo,
                            uint32_t hi, uint32_t threshold, float keep)
    void nn_dropout_row_f64(double *out, double *mask, const double *h, long n, uint32_t lo,
                            uint32_t hi, uint32_t threshold, double keep)

cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL    # 2⁶⁴/φ, splitmix64's increment


cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    """splitmix64's finaliser (Steele, Lea & Flood 2014; Vigna's constants)."""
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef void dropout_forward(floating *out, floating *mask, const floating *h,
                          Py_ssize_t B, Py_ssize_t n, double p, int layer,
                          const DropoutCall *call) noexcept nogil:
    cdef floating keep = <floating>(1.0 / (1.0 - p))
    cdef uint32_t threshold = <uint32_t>(p * 4294967296.0)   # ⌊p·2³²⌋ (p < 1: it fits)
    # One 64-bit key per (seed, step, layer), one per row; the units' draws (dropout_impl.h)
    # hash the row's key with their index.
    cdef uint64_t key = mix64(mix64(call.seed + GOLDEN * (<uint64_t>call.step + 1))
                              ^ (GOLDEN * <uint64_t>(layer + 1)))
    cdef uint64_t row_key
    cdef int64_t row
    cdef Py_ssize_t r
    for r in range(B):
        row = call.rows[r] if call.rows != NULL else r
        row_key = mix64(key ^ mix64(<uint64_t>row))
        if floating is float:
            nn_dropout_row_f32(out + r * n, mask + r * n, h + r * n, n, <uint32_t>row_key,
                               <uint32_t>(row_key >> 32), threshold, keep)
        else:
            nn_dropout_row_f64(out + r * n, mask + r * n, h + r * n, n, <uint32_t>row_key,
                               <uint32_t>(row_key >> 32), threshold, keep)


cdef void dropout_backward(floating *d, const floating *mask, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        d[i] *= mask[i]


def mask(rows, Py_ssize_t n, double p, int layer, seed, long step, dtype=np.float64):
    """The mask m (len(rows)×n: 0 or 1/(1−p)) the engine draws at update `step` for the
    rows at places `rows` of their batch, on `layer`'s outputs (0-based) (testing)."""
    if not 0 <= p < 1:
        raise ValueError("p must lie in [0, 1)")
    cdef int64_t[::1] r = np.ascontiguousarray(rows, dtype=np.int64)
    cdef Py_ssize_t B = r.shape[0]
    cdef DropoutCall call
    call.seed = <uint64_t>int(seed)
    call.step = step
    call.rows = &r[0] if B else NULL
    h = np.ones((B, n), dtype=dtype)
    m = np.empty((B, n), dtype=dtype)
    out = np.empty((B, n), dtype=dtype)
    cdef double[:, ::1] h64, m64, o64
    cdef float[:, ::1] h32, m32, o32
    if B == 0 or n == 0:
        return m
    if m.dtype == np.float64:
        h64, m64, o64 = h, m, out
        with nogil:
            dropout_forward(&o64[0, 0], &m64[0, 0], &h64[0, 0], B, n, p, layer, &call)
    else:
        h32, m32, o32 = h, m, out
        with nogil:
            dropout_forward(&o32[0, 0], &m32[0, 0], &h32[0, 0], B, n, p, layer, &call)
    return m
