# The one matrix multiply every kernel uses (see gemm.h for the contract).
from cython cimport floating

cdef extern from "gemm.h" nogil:
    ctypedef void (*nn_gemm_epi_fn_f32)(void *ctx, long i0, long j0, long m, long n, float *c,
                                        long ldc) noexcept nogil
    ctypedef void (*nn_gemm_epi_fn_f64)(void *ctx, long i0, long j0, long m, long n, double *c,
                                        long ldc) noexcept nogil
    void nn_gemm_f32(int trans_a, int trans_b, long M, long N, long K,
                     const float *A, long lda, const float *B, long ldb,
                     float beta, float *C, long ldc, int n_threads)
    void nn_gemm_f64(int trans_a, int trans_b, long M, long N, long K,
                     const double *A, long lda, const double *B, long ldb,
                     double beta, double *C, long ldc, int n_threads)
    void nn_gemm_epi_f32(int trans_a, int trans_b, long M, long N, long K,
                         const float *A, long lda, const float *B, long ldb,
                         float beta, float *C, long ldc, int n_threads,
                         nn_gemm_epi_fn_f32 epi, void *ctx)
    void nn_gemm_epi_f64(int trans_a, int trans_b, long M, long N, long K,
                         const double *A, long lda, const double *B, long ldb,
                         double beta, double *C, long ldc, int n_threads,
                         nn_gemm_epi_fn_f64 epi, void *ctx)
    const char *nn_gemm_isa()
    int nn_gemm_last_threads()
    void nn_cpu_id(int *vendor, int *family, int *model)
    double nn_fma_probe(long iters, int width)

cdef extern from "pool.h" nogil:
    ctypedef void (*nn_pool_fn)(void *ctx, long chunk) noexcept nogil
    int nn_pool_run(int n_threads, long n_chunks, nn_pool_fn fn, void *ctx)
    int nn_pool_procs()
    int nn_pool_spinning()
    int nn_pool_in_worker()

# The kernels' threads (pool.h), for the other kernel modules: fn(ctx, c) for c in
# [0, n_chunks) on up to n_threads threads; returns how many it was offered to. Who runs a
# chunk must not change what it computes.
cdef int run_chunks(int n_threads, Py_ssize_t n_chunks, nn_pool_fn fn, void *ctx) noexcept nogil
# The processors this process may run on.
cdef int n_procs() noexcept nogil

cdef void gemm(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
               const floating *A, Py_ssize_t lda,      # IN  op(A): M×K
               const floating *B, Py_ssize_t ldb,      # IN  op(B): K×N
               floating beta,
               floating *C, Py_ssize_t ldc,            # INOUT C: M×N
               int n_threads) noexcept nogil

# The same product, then epi(ctx, i0, j0, m, n, &C[i0, j0], ldc) on every finished block of C
# while it is in cache (gemm.h); epi is an nn_gemm_epi_fn_f32/_f64 matching floating.
cdef void gemm_epi(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                   const floating *A, Py_ssize_t lda, const floating *B, Py_ssize_t ldb,
                   floating beta, floating *C, Py_ssize_t ldc, int n_threads,
                   void *epi, void *ctx) noexcept nogil
