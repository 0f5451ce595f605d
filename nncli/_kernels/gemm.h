/* Our matrix multiply: row-major C[M×N] = op(A)[M×K] · op(B)[K×N] + beta·C.
 *
 * op(A) = A (stored M×K, row stride lda) when trans_a == 0, else Aᵀ (A stored K×M).
 * op(B) = B (stored K×N, row stride ldb) when trans_b == 0, else Bᵀ (B stored N×K).
 * beta is 0 (overwrite: C is never read) or 1 (accumulate).
 * n_threads is an upper bound on threads (pool.h); results are identical for any n_threads
 * because K is never split (each C element has one fixed summation order).
 *
 * One source is compiled twice, for float and for double (see gemm_dispatch.c). */
#ifndef NNCLI_GEMM_H
#define NNCLI_GEMM_H

/* An epilogue: called once per finished block of C -- rows i0..i0+m-1, columns j0..j0+n-1, all
 * of K summed, c = &C[i0][j0] with row stride ldc -- while the block is still in cache.  The
 * blocks tile C exactly once; with threads, epilogues of different blocks run concurrently.
 * Use it for element-wise work on the result (bias, activation, an update that reads it). */
typedef void (*nn_gemm_epi_fn_f32)(void *ctx, long i0, long j0, long m, long n, float *c, long ldc);
typedef void (*nn_gemm_epi_fn_f64)(void *ctx, long i0, long j0, long m, long n, double *c, long ldc);

void nn_gemm_f32(int trans_a, int trans_b, long M, long N, long K,
                 const float *A, long lda, const float *B, long ldb,
                 float beta, float *C, long ldc, int n_threads);
void nn_gemm_f64(int trans_a, int trans_b, long M, long N, long K,
                 const double *A, long lda, const double *B, long ldb,
                 double beta, double *C, long ldc, int n_threads);
/* The same product, then epi(ctx, ...) over every block of C (epi may be NULL). */
void nn_gemm_epi_f32(int trans_a, int trans_b, long M, long N, long K,
                     const float *A, long lda, const float *B, long ldb,
                     float beta, float *C, long ldc, int n_threads,
                     nn_gemm_epi_fn_f32 epi, void *ctx);
void nn_gemm_epi_f64(int trans_a, int trans_b, long M, long N, long K,
                     const double *A, long lda, const double *B, long ldb,
                     double beta, double *C, long ldc, int n_threads,
                     nn_gemm_epi_fn_f64 epi, void *ctx);
/* Which code path runs on this CPU: "avx512", "avx2" or "generic". */
const char *nn_gemm_isa(void);
/* Team size of the calling thread's last product (1 if it ran serially). */
int nn_gemm_last_threads(void);
/* CPU vendor (0 other, 1 Intel, 2 AMD), family and model, from CPUID. */
void nn_cpu_id(int *vendor, int *family, int *model);
/* FMA throughput probe for benchmarks (see gemm_common.h); NaN without the ISA. */
double nn_fma_probe(long iters, int width);

#endif
