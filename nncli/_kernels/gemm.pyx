"""Matrix multiply: the fused-type front of the C kernel (gemm_dispatch.c and what it includes).

The arithmetic lives in C because the micro-kernel needs intrinsics and per-function
target attributes (runtime AVX2 dispatch), which Cython cannot express. The dense layer's
products go through `gemm`, except one row through a small layer (dense.pyx).
"""
import numpy as np
cimport numpy as cnp
from cython cimport floating

cdef extern from *:
    """
    #if defined(_WIN32)
    static void nn_sleep_us(unsigned us) { (void)us; }   /* no pool workers there */
    #else
    #include <unistd.h>
    static void nn_sleep_us(unsigned us) { usleep(us); }
    #endif
    """
    void sleep_us "nn_sleep_us"(unsigned us) noexcept nogil

cnp.import_array()


cdef void gemm(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
               const floating *A, Py_ssize_t lda, const floating *B, Py_ssize_t ldb,
               floating beta, floating *C, Py_ssize_t ldc, int n_threads) noexcept nogil:
    if floating is float:
        nn_gemm_f32(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, n_threads)
    else:
        nn_gemm_f64(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, n_threads)


cdef void gemm_epi(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                   const floating *A, Py_ssize_t lda, const floating *B, Py_ssize_t ldb,
                   floating beta, floating *C, Py_ssize_t ldc, int n_threads,
                   void *epi, void *ctx) noexcept nogil:
    if floating is float:
        nn_gemm_epi_f32(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, n_threads,
                        <nn_gemm_epi_fn_f32>epi, ctx)
    else:
        nn_gemm_epi_f64(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, n_threads,
                        <nn_gemm_epi_fn_f64>epi, ctx)


cdef int run_chunks(int n_threads, Py_ssize_t n_chunks, nn_pool_fn fn, void *ctx) noexcept nogil:
    return nn_pool_run(n_threads, n_chunks, fn, ctx)


cdef int n_procs() noexcept nogil:
    return nn_pool_procs()


cdef struct CountJob:
    long *counts
    long spin
    unsigned late_us


cdef void count_chunk(void *ctx, long c) noexcept nogil:
    cdef CountJob *job = <CountJob *>ctx
    cdef long i
    cdef volatile long sink = 0
    for i in range(job.spin):      # some work, so that chunks overlap between threads
        sink += i
    if job.late_us and nn_pool_in_worker():
        sleep_us(job.late_us)      # a worker that finishes late, as a preempted one does
    job.counts[c] += 1


def pool_check(int n_threads, long n_chunks, long repeats, long spin=200,
               unsigned late_us=0, bint until_contended=False):
    """For tests of the thread pool: run a job of n_chunks chunks `repeats` times on up to
    n_threads threads, each chunk adding one to its own counter; returns the counters (every
    one must equal `repeats`) and the largest number of threads a job was offered to.
    late_us: chunks run by a worker sleep that long first; until_contended: stop early once the
    pool stops its workers' spinning (repeats is then the most jobs run)."""
    counts = np.zeros(max(n_chunks, 0), dtype=np.int64)
    cdef long[::1] view = counts
    cdef CountJob job
    cdef long r
    cdef int offered = 0, t
    job.counts = &view[0] if n_chunks > 0 else NULL
    job.spin = spin
    job.late_us = late_us
    with nogil:
        for r in range(repeats):
            t = nn_pool_run(n_threads, n_chunks, count_chunk, &job)
            if t > offered:
                offered = t
            if until_contended and not nn_pool_spinning():
                break
    return counts, offered


def pool_spinning():
    """Whether the pool's workers spin between jobs now (False while it finds the machine
    contended: pool.h) — for tests."""
    return bool(nn_pool_spinning())


def isa():
    """Name of the GEMM code path chosen for this CPU ('avx512', 'avx2' or 'generic')."""
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


def matmul(cnp.ndarray a, cnp.ndarray b, bint trans_a=False, bint trans_b=False,
           cnp.ndarray out=None, bint accumulate=False, int n_threads=1):
    """op(a) @ op(b) through our kernel (for tests and benchmarks). a, b (and out) are
    C-contiguous 2-D arrays of one dtype, float32 or float64. Plain arrays, not memoryviews:
    acquiring three typed memoryviews costs a few µs per call, which would dwarf the kernel on
    the small products benchmarked against numpy (training calls the kernel from C)."""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError("a and b must be 2-D")
    dt = a.dtype
    if dt != np.float32 and dt != np.float64:
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    if b.dtype != dt or (out is not None and out.dtype != dt):
        raise ValueError("a, b and out must share one dtype")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_IS_C_CONTIGUOUS(b)):
        raise ValueError("a and b must be C-contiguous")
    cdef Py_ssize_t ra = a.shape[0], ca = a.shape[1], rb = b.shape[0], cb = b.shape[1]
    cdef Py_ssize_t M = ca if trans_a else ra
    cdef Py_ssize_t K = ra if trans_a else ca
    cdef Py_ssize_t Kb = cb if trans_b else rb
    cdef Py_ssize_t N = rb if trans_b else cb
    if K != Kb:
        raise ValueError(f"inner dimensions differ: {K} vs {Kb}")
    if out is None:
        out = np.empty((M, N), dtype=dt)
    elif out.ndim != 2 or out.shape[0] != M or out.shape[1] != N:
        raise ValueError(f"out has shape {np.shape(out)}, expected ({M}, {N})")
    elif not cnp.PyArray_IS_C_CONTIGUOUS(out):
        raise ValueError("out must be C-contiguous")
    cdef bint f32 = dt == np.float32
    # Empty operands: their data pointers are never read by the kernel.
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *pc = cnp.PyArray_DATA(out)
    with nogil:
        if f32:
            gemm(trans_a, trans_b, M, N, K, <const float *>pa, ca, <const float *>pb, cb,
                 <float>(1 if accumulate else 0), <float *>pc, N, n_threads)
        else:
            gemm(trans_a, trans_b, M, N, K, <const double *>pa, ca, <const double *>pb, cb,
                 <double>(1 if accumulate else 0), <double *>pc, N, n_threads)
    return out
