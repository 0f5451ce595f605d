/* Placeholder: a plain, correct GEMM (replaced by the packed, vectorised kernel).
 * Included by gemm.c once per dtype with NN_T / NN_SUFFIX defined. */
#define NN_CAT_(a, b) a##b
#define NN_CAT(a, b) NN_CAT_(a, b)
#define NN_FN(name) NN_CAT(name, NN_SUFFIX)

#ifndef NNCLI_GEMM_ONCE
#define NNCLI_GEMM_ONCE
const char *nn_gemm_isa(void) { return "generic"; }
#endif

void NN_FN(nn_gemm_)(int trans_a, int trans_b, long M, long N, long K,
                     const NN_T *A, long lda, const NN_T *B, long ldb,
                     NN_T beta, NN_T *C, long ldc, int n_threads)
{
    (void)n_threads;
    for (long i = 0; i < M; i++) {
        NN_T *c = C + i * ldc;
        if (beta == 0) for (long j = 0; j < N; j++) c[j] = 0;
        for (long p = 0; p < K; p++) {
            NN_T a = trans_a ? A[p * lda + i] : A[i * lda + p];
            if (!trans_b) {
                const NN_T *b = B + p * ldb;
                for (long j = 0; j < N; j++) c[j] += a * b[j];
            } else {
                for (long j = 0; j < N; j++) c[j] += a * B[j * ldb + p];
            }
        }
    }
}
