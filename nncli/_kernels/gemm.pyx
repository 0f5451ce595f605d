"""Matrix multiply: the fused-type front of the C kernel (gemm_dispatch.c and what it includes).

The arithmetic lives in C because the micro-kernel needs intrinsics and per-function
target attributes (runtime AVX2 dispatch), which Cython cannot express. The dense layer's
products go through `gemm`, except one row through a small layer (dense.pyx).
"""
import numpy as np
cimport numpy as cnp
from cython cimport floating

cnp.import_array()


cdef void gemm(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
               const floating *A, Py_ssize_t lda, const floating *B, Py_ssize_t ldb,
               floating beta, floating *C, Py_ssize_t ldc, int n_threads) noexcept nogil:
    if floating is float:
        nn_gemm_f32(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, n_threads)
    else:
        nn_gemm_f64(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, n_threads)


def isa():
    """Name of the GEMM code path chosen for this CPU ('avx2' or 'generic')."""
    return nn_gemm_isa().decode()


def last_threads():
    """How many threads the last product this thread ran used (1: serial) — for tests."""
    return nn_gemm_last_threads()


def cpu():
    """(vendor, family, model) of this CPU from CPUID, e.g. ('intel', 6, 167), ('amd', 25, 1)."""
    cdef int v, f, m
    nn_cpu_id(&v, &f, &m)
    return ({1: "intel", 2: "amd"}.get(v, "other"), f, m)


def fma_probe(long iters, int width=256):
    """Run `iters` rounds of 12 independent FMA chains on 256- or 512-bit float vectors
    (benchmarks: time it for the CPU's FMA peak; flops = iters·12·width/32·2). Returns a
    checksum, NaN when the CPU lacks the instructions."""
    cdef double r
    with nogil:
        r = nn_fma_probe(iters, width)
    return r


def matmul(floating[:, ::1] a, floating[:, ::1] b, bint trans_a=False, bint trans_b=False,
           floating[:, ::1] out=None, bint accumulate=False, int n_threads=1):
    """op(a) @ op(b) through our kernel (for tests and benchmarks)."""
    cdef Py_ssize_t M = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t K = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t Kb = b.shape[1] if trans_b else b.shape[0]
    cdef Py_ssize_t N = b.shape[0] if trans_b else b.shape[1]
    if K != Kb:
        raise ValueError(f"inner dimensions differ: {K} vs {Kb}")
    if out is None:
        out = np.empty((M, N), dtype=np.float32 if floating is float else np.float64)
    if out.shape[0] != M or out.shape[1] != N:
        raise ValueError(f"out has shape ({out.shape[0]}, {out.shape[1]}), expected ({M}, {N})")
    cdef floating beta = 1 if accumulate else 0
    # Empty operands: pointers of zero-size views may be NULL; the kernel never reads them.
    cdef const floating *pa = &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL
    cdef const floating *pb = &b[0, 0] if b.shape[0] > 0 and b.shape[1] > 0 else NULL
    cdef floating *pc = &out[0, 0] if M > 0 and N > 0 else NULL
    with nogil:
        gemm(trans_a, trans_b, M, N, K, pa, a.shape[1], pb, b.shape[1], beta, pc, N, n_threads)
    return np.asarray(out)
