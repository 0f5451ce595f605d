# The one matrix multiply every kernel uses (see gemm.h for the contract).
from cython cimport floating

cdef extern from "gemm.h" nogil:
    void nn_gemm_f32(int trans_a, int trans_b, long M, long N, long K,
                     const float *A, long lda, const float *B, long ldb,
                     float beta, float *C, long ldc, int n_threads)
    void nn_gemm_f64(int trans_a, int trans_b, long M, long N, long K,
                     const double *A, long lda, const double *B, long ldb,
                     double beta, double *C, long ldc, int n_threads)
    const char *nn_gemm_isa()
    int nn_gemm_last_threads()
    void nn_cpu_id(int *vendor, int *family, int *model)
    double nn_fma_probe(long iters, int width)

cdef void gemm(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
               const floating *A, Py_ssize_t lda,      # IN  op(A): M×K
               const floating *B, Py_ssize_t ldb,      # IN  op(B): K×N
               floating beta,
               floating *C, Py_ssize_t ldc,            # INOUT C: M×N
               int n_threads) noexcept nogil
