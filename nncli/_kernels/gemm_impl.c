/* gemm_impl.c -- type-generic GEMM template, included once per element type by gemm.c.
 *
 * The includer defines NN_T (float or double) and NN_SUFFIX (f32 or f64).  NN_IS_F32 (1/0) may be
 * defined too; if it is not, it is derived from NN_SUFFIX.  Nothing else is needed.
 *
 *   C[M x N] = op(A)[M x K] * op(B)[K x N] + beta * C          (row-major, strides lda/ldb/ldc)
 *
 * Paths (chosen from the shape only, so results never depend on n_threads):
 *   tiny   : M*N*K small -> plain dot-product loops, no packing, no malloc, no OpenMP.
 *   blocked: Goto/BLIS five loops.  B is always packed into zero-padded KC x NR micro-panels
 *            (transposition handled while packing).  A is packed into MR x KC micro-panels when M
 *            is large; for small M the micro-kernel broadcasts straight from A's rows/columns.
 *            Register-tile micro-kernel: AVX2+FMA 6x16 (f32) / 6x8 (f64) selected at run time,
 *            or a portable plain-C 4x8 / 4x4 kernel (vectorised by the compiler at baseline).
 *   Per-thread packing buffers are allocated once and grown (freed at thread exit on pthreads).
 *   OpenMP (only for >= NN_GEMM_PAR_FLOPS flops): disjoint N (or M) ranges of C per thread, one
 *   parallel region per call.  K is never split; each C element is summed in the same order
 *   whatever the thread count, so results are bit-identical for any n_threads.
 *   NNCLI_GEMM_ISA=generic (read once) forces the portable path.
 */

/* ------------------------------------------------------------------------------------------ */
/* Type-independent part: emitted once.                                                        */
/* ------------------------------------------------------------------------------------------ */
#ifndef NN_GEMM_IMPL_ONCE
#define NN_GEMM_IMPL_ONCE

#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define NN_GEMM_X86 1
#include <immintrin.h>
#define NN_AVX2 __attribute__((target("avx2,fma")))
#else
#define NN_GEMM_X86 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define NN_INLINE static inline __attribute__((always_inline))
#define NN_NOINLINE static __attribute__((noinline))
#define NN_TLS __thread
#define NN_LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define NN_INLINE static inline
#define NN_NOINLINE static
#define NN_TLS _Thread_local
#define NN_LIKELY(x) (x)
#endif

#if defined(__unix__) || defined(__APPLE__)
#define NN_GEMM_PTHREAD 1
#include <pthread.h>
#else
#define NN_GEMM_PTHREAD 0
#endif

#define NN_CAT_(a, b) a##b
#define NN_CAT(a, b) NN_CAT_(a, b)
#define NN_ISF32_PROBE_f32 1
#define NN_ISF32_PROBE_f64 0

/* Tunables (swept on EPYC Zen 3, 2 cores, 512 KB L2/core). */
#ifndef NN_GEMM_TINY_MNK
#define NN_GEMM_TINY_MNK   512L      /* M*N*K at or below: plain loops                       */
#endif
#ifndef NN_GEMM_PAR_FLOPS
#define NN_GEMM_PAR_FLOPS  1000000.0 /* 2*M*N*K at or above: use OpenMP threads                */
#endif
#ifndef NN_GEMM_DOT_K
#define NN_GEMM_DOT_K      192L      /* A.B^T with a side <= 16: dot path when K >= this      */
#endif
#ifndef NN_GEMM_SUP_NCBYTES
#define NN_GEMM_SUP_NCBYTES (128L * 1024)  /* unpacked-A path: packed B block at most this big */
#endif
#ifndef NN_GEMM_PACKA_M
#define NN_GEMM_PACKA_M    96L       /* M above this: pack A (else broadcast from A directly)  */
#endif
/* AVX2 cache blocking (MC multiple of 6; NC multiple of 16); overridable with -D for sweeps */
#ifndef NN_GEMM_MC_F32
#define NN_GEMM_MC_F32 72
#endif
#ifndef NN_GEMM_KC_F32
#define NN_GEMM_KC_F32 384
#endif
#ifndef NN_GEMM_NC_F32
#define NN_GEMM_NC_F32 2048
#endif
#ifndef NN_GEMM_MC_F64
#define NN_GEMM_MC_F64 72
#endif
#ifndef NN_GEMM_KC_F64
#define NN_GEMM_KC_F64 384
#endif
#ifndef NN_GEMM_NC_F64
#define NN_GEMM_NC_F64 1024
#endif

/* ---- ISA selection (cached) ---- */
static int nn_gemm_isa_cache = -1;   /* -1 unknown, 0 generic, 1 avx2+fma */

static int nn_gemm_isa_detect(void)
{
    const char *e = getenv("NNCLI_GEMM_ISA");
    if (e && (strcmp(e, "generic") == 0 || strcmp(e, "GENERIC") == 0)) return 0;
#if NN_GEMM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

static inline int nn_gemm_isa_id(void)
{
    int v = __atomic_load_n(&nn_gemm_isa_cache, __ATOMIC_RELAXED);
    if (v < 0) {
        v = nn_gemm_isa_detect();
        __atomic_store_n(&nn_gemm_isa_cache, v, __ATOMIC_RELAXED);
    }
    return v;
}

const char *nn_gemm_isa(void)
{
    return nn_gemm_isa_id() == 1 ? "avx2" : "generic";
}

/* ---- per-thread workspace (64-byte aligned, grown on demand, never shrinks) ---- */
typedef struct { void *raw; void *p; size_t cap; } nn_gemm_ws_t;
static NN_TLS nn_gemm_ws_t nn_gemm_ws_tls;

#if NN_GEMM_PTHREAD
static pthread_key_t nn_gemm_ws_key;
static pthread_once_t nn_gemm_ws_once = PTHREAD_ONCE_INIT;
static void nn_gemm_ws_free(void *raw) { free(raw); }
static void nn_gemm_ws_key_init(void) { (void)pthread_key_create(&nn_gemm_ws_key, nn_gemm_ws_free); }
#endif

static void *nn_gemm_ws(size_t bytes)
{
    nn_gemm_ws_t *w = &nn_gemm_ws_tls;
    if (NN_LIKELY(w->cap >= bytes)) return w->p;
    size_t cap = bytes + (bytes >> 2) + 4096;
    void *raw = malloc(cap + 64);
    if (!raw) return NULL;
    free(w->raw);
    w->raw = raw;
    w->p = (void *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    w->cap = cap;
#if NN_GEMM_PTHREAD
    pthread_once(&nn_gemm_ws_once, nn_gemm_ws_key_init);
    (void)pthread_setspecific(nn_gemm_ws_key, raw);   /* freed when the thread exits */
#endif
    return w->p;
}

static inline long nn_gemm_min(long a, long b) { return a < b ? a : b; }
static inline long nn_gemm_rup(long a, long m) { return (a + m - 1) / m * m; }

#endif /* NN_GEMM_IMPL_ONCE */

/* ------------------------------------------------------------------------------------------ */
/* Type-dependent part.                                                                         */
/* ------------------------------------------------------------------------------------------ */
#ifdef NN_IS_F32
#define NN_F32_ NN_IS_F32
#else
#define NN_F32_ NN_CAT(NN_ISF32_PROBE_, NN_SUFFIX)
#endif

#define NN_FN(name) NN_CAT(name, NN_SUFFIX)

#if NN_F32_
/* fp32: AVX2 6x16, generic 4x8 */
#define NN_MR   6
#define NN_NR   16
#define NN_MC   NN_GEMM_MC_F32
#define NN_KC   NN_GEMM_KC_F32
#define NN_NC   NN_GEMM_NC_F32
#define NN_GMR  4
#define NN_GNR  8
#define NN_GMC  128
#define NN_GKC  256
#define NN_GNC  2048
#else
/* fp64: AVX2 6x8, generic 4x4 */
#define NN_MR   6
#define NN_NR   8
#define NN_MC   NN_GEMM_MC_F64
#define NN_KC   NN_GEMM_KC_F64
#define NN_NC   NN_GEMM_NC_F64
#define NN_GMR  4
#define NN_GNR  4
#define NN_GMC  128
#define NN_GKC  128
#define NN_GNC  2048
#endif

/* micro-kernel signatures:
 *   packed: a = MR x kc micro-panel (a[k*MR + i]), b = kc x NR micro-panel (b[k*NR + j])
 *   sup   : a(i,k) = a[i*rsa + k*csa], rows 0..mr-1
 * Both write C[i*ldc + j] = acc (beta == 0) or beta*C + acc (beta != 0), full NR columns. */
typedef void (*NN_FN(nn_ukr_packed_t_))(long kc, const NN_T *a, const NN_T *b, NN_T *c, long ldc,
                                        NN_T beta);
typedef void (*NN_FN(nn_ukr_sup_t_))(int mr, long kc, const NN_T *a, long rsa, long csa,
                                     const NN_T *b, NN_T *c, long ldc, NN_T beta);

typedef struct {
    int mr, nr;
    long mc, kc, nc;
    NN_FN(nn_ukr_packed_t_) packed;
    NN_FN(nn_ukr_sup_t_) sup;          /* may be NULL: then A is always packed */
} NN_FN(nn_gemm_cfg_t_);

/* ---- tiny path: plain loops, no packing; 4 output columns at a time (independent chains) ---- */
NN_INLINE void NN_FN(nn_gemm_tiny_body_)(long M, long N, long K, const NN_T *A, const long sai,
                                         const long sak, const NN_T *B, const long sbk,
                                         const long sbj, NN_T beta, NN_T *C, long ldc)
{
    const long N4 = N & ~3L;
    if (N4 < N) {   /* leftover columns: 4 rows at a time */
        long i = 0;
        for (; i + 4 <= M; i += 4) {
            const NN_T *a0 = A + i * sai;
            for (long j = N4; j < N; j++) {
                const NN_T *bj = B + j * sbj;
                NN_T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                for (long k = 0; k < K; k++) {
                    const NN_T b = bj[k * sbk];
                    const NN_T *ak = a0 + k * sak;
                    s0 += ak[0] * b;
                    s1 += ak[sai] * b;
                    s2 += ak[2 * sai] * b;
                    s3 += ak[3 * sai] * b;
                }
                NN_T *c = C + i * ldc + j;
                if (beta == 0) {
                    c[0] = s0; c[ldc] = s1; c[2 * ldc] = s2; c[3 * ldc] = s3;
                } else {
                    c[0] = beta * c[0] + s0; c[ldc] = beta * c[ldc] + s1;
                    c[2 * ldc] = beta * c[2 * ldc] + s2; c[3 * ldc] = beta * c[3 * ldc] + s3;
                }
            }
        }
        for (; i < M; i++)
            for (long j = N4; j < N; j++) {
                const NN_T *ai = A + i * sai, *bj = B + j * sbj;
                NN_T s = 0;
                for (long k = 0; k < K; k++) s += ai[k * sak] * bj[k * sbk];
                C[i * ldc + j] = (beta == 0) ? s : beta * C[i * ldc + j] + s;
            }
    }
    for (long i = 0; i < M; i++) {
        const NN_T *ai = A + i * sai;
        NN_T *ci = C + i * ldc;
        long j = 0;
        for (; j + 4 <= N; j += 4) {
            const NN_T *bj = B + j * sbj;
            NN_T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (long k = 0; k < K; k++) {
                const NN_T a = ai[k * sak];
                const NN_T *bk = bj + k * sbk;
                s0 += a * bk[0];
                s1 += a * bk[sbj];
                s2 += a * bk[2 * sbj];
                s3 += a * bk[3 * sbj];
            }
            if (beta == 0) {
                ci[j] = s0; ci[j + 1] = s1; ci[j + 2] = s2; ci[j + 3] = s3;
            } else {
                ci[j] = beta * ci[j] + s0; ci[j + 1] = beta * ci[j + 1] + s1;
                ci[j + 2] = beta * ci[j + 2] + s2; ci[j + 3] = beta * ci[j + 3] + s3;
            }
        }
    }
}

static void NN_FN(nn_gemm_tiny_)(int ta, int tb, long M, long N, long K, const NN_T *A, long lda,
                                 const NN_T *B, long ldb, NN_T beta, NN_T *C, long ldc)
{
    if (tb) {   /* B stored N x K: unit stride along k */
        if (ta) NN_FN(nn_gemm_tiny_body_)(M, N, K, A, 1, lda, B, 1, ldb, beta, C, ldc);
        else NN_FN(nn_gemm_tiny_body_)(M, N, K, A, lda, 1, B, 1, ldb, beta, C, ldc);
    } else {    /* B stored K x N: unit stride along j */
        if (ta) NN_FN(nn_gemm_tiny_body_)(M, N, K, A, 1, lda, B, ldb, 1, beta, C, ldc);
        else NN_FN(nn_gemm_tiny_body_)(M, N, K, A, lda, 1, B, ldb, 1, beta, C, ldc);
    }
}

/* op(B)[pc:pc+kc, jc:jc+nc] -> panels of nr columns, zero padded: dst[p*kc*nr + k*nr + j].
   nr is a compile-time constant after inlining. */
NN_INLINE void NN_FN(nn_gemm_packB_body_)(int tb, long kc, long nc, const NN_T *B, long ldb, long pc,
                                          long jc, NN_T *dst, const int nr)
{
    for (long jp = 0; jp < nc; jp += nr) {
        const long w = nn_gemm_min(nr, nc - jp);
        NN_T *d = dst + jp * kc;
        if (!tb) {
            const NN_T *s = B + pc * ldb + jc + jp;
            if (w == nr) {
                for (long k = 0; k < kc; k++, s += ldb, d += nr)
                    for (int j = 0; j < nr; j++) d[j] = s[j];
            } else {
                for (long k = 0; k < kc; k++, s += ldb, d += nr) {
                    for (int j = 0; j < nr; j++) d[j] = 0;
                    for (long j = 0; j < w; j++) d[j] = s[j];
                }
            }
        } else {
            const NN_T *s = B + (jc + jp) * ldb + pc;     /* s[j*ldb + k] */
            if (w == nr) {
                long k = 0;
#if NN_GEMM_X86 && defined(__SSE2__)
                /* 4x4 (f32) / 2x2 (f64) register transposes */
#if NN_F32_
                for (; k + 4 <= kc; k += 4, d += 4 * nr)
                    for (int j = 0; j < nr; j += 4) {
                        __m128 r0 = _mm_loadu_ps(s + (j + 0) * ldb + k), r1 = _mm_loadu_ps(s + (j + 1) * ldb + k);
                        __m128 r2 = _mm_loadu_ps(s + (j + 2) * ldb + k), r3 = _mm_loadu_ps(s + (j + 3) * ldb + k);
                        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                        _mm_storeu_ps(d + j, r0); _mm_storeu_ps(d + nr + j, r1);
                        _mm_storeu_ps(d + 2 * nr + j, r2); _mm_storeu_ps(d + 3 * nr + j, r3);
                    }
#else
                for (; k + 2 <= kc; k += 2, d += 2 * nr)
                    for (int j = 0; j < nr; j += 2) {
                        const __m128d r0 = _mm_loadu_pd(s + (j + 0) * ldb + k), r1 = _mm_loadu_pd(s + (j + 1) * ldb + k);
                        _mm_storeu_pd(d + j, _mm_unpacklo_pd(r0, r1));
                        _mm_storeu_pd(d + nr + j, _mm_unpackhi_pd(r0, r1));
                    }
#endif
#endif
                for (; k < kc; k++, d += nr)
                    for (int j = 0; j < nr; j++) d[j] = s[j * ldb + k];
            } else {
                for (long k = 0; k < kc; k++, d += nr) {
                    for (int j = 0; j < nr; j++) d[j] = 0;
                    for (long j = 0; j < w; j++) d[j] = s[j * ldb + k];
                }
            }
        }
    }
}

/* op(A)[ic:ic+mc, pc:pc+kc] -> panels of mr rows, zero padded: dst[p*kc*mr + k*mr + i] */
NN_INLINE void NN_FN(nn_gemm_packA_body_)(int ta, long mc, long kc, const NN_T *A, long lda, long ic,
                                          long pc, NN_T *dst, const int mr)
{
    for (long ip = 0; ip < mc; ip += mr) {
        const long h = nn_gemm_min(mr, mc - ip);
        NN_T *d = dst + ip * kc;
        if (ta) {
            const NN_T *s = A + pc * lda + ic + ip;       /* s[k*lda + i] */
            if (h == mr) {
                for (long k = 0; k < kc; k++, s += lda, d += mr)
                    for (int i = 0; i < mr; i++) d[i] = s[i];
            } else {
                for (long k = 0; k < kc; k++, s += lda, d += mr) {
                    for (int i = 0; i < mr; i++) d[i] = 0;
                    for (long i = 0; i < h; i++) d[i] = s[i];
                }
            }
        } else {
            const NN_T *s = A + (ic + ip) * lda + pc;     /* s[i*lda + k] */
            if (h == mr) {
                for (long k = 0; k < kc; k++, d += mr)
                    for (int i = 0; i < mr; i++) d[i] = s[i * lda + k];
            } else {
                for (long k = 0; k < kc; k++, d += mr) {
                    for (int i = 0; i < mr; i++) d[i] = 0;
                    for (long i = 0; i < h; i++) d[i] = s[i * lda + k];
                }
            }
        }
    }
}

static void NN_FN(nn_gemm_packB_)(int tb, long kc, long nc, const NN_T *B, long ldb, long pc, long jc,
                                  NN_T *dst, int nr)
{
    if (nr == NN_NR) NN_FN(nn_gemm_packB_body_)(tb, kc, nc, B, ldb, pc, jc, dst, NN_NR);
    else NN_FN(nn_gemm_packB_body_)(tb, kc, nc, B, ldb, pc, jc, dst, NN_GNR);
}

static void NN_FN(nn_gemm_packA_)(int ta, long mc, long kc, const NN_T *A, long lda, long ic, long pc,
                                  NN_T *dst, int mr)
{
    if (mr == NN_MR) NN_FN(nn_gemm_packA_body_)(ta, mc, kc, A, lda, ic, pc, dst, NN_MR);
    else NN_FN(nn_gemm_packA_body_)(ta, mc, kc, A, lda, ic, pc, dst, NN_GMR);
}

/* ---- generic micro-kernel (plain C; the compiler vectorises the j loops) ---- */
static void NN_FN(nn_ukr_gen_)(long kc, const NN_T *a, const NN_T *b, NN_T *c, long ldc, NN_T beta)
{
    NN_T acc[NN_GMR][NN_GNR];
    for (int i = 0; i < NN_GMR; i++)
        for (int j = 0; j < NN_GNR; j++) acc[i][j] = 0;
    for (long k = 0; k < kc; k++) {
        for (int i = 0; i < NN_GMR; i++) {
            const NN_T ai = a[i];
            for (int j = 0; j < NN_GNR; j++) acc[i][j] += ai * b[j];
        }
        a += NN_GMR;
        b += NN_GNR;
    }
    if (beta == 0) {
        for (int i = 0; i < NN_GMR; i++)
            for (int j = 0; j < NN_GNR; j++) c[i * ldc + j] = acc[i][j];
    } else {
        for (int i = 0; i < NN_GMR; i++)
            for (int j = 0; j < NN_GNR; j++) c[i * ldc + j] = beta * c[i * ldc + j] + acc[i][j];
    }
}

/* ---- AVX2 + FMA micro-kernels ---- */
#if NN_GEMM_X86
#if NN_F32_
#define NN_VT        __m256
#define NN_VL        8
#define NN_VLOAD     _mm256_loadu_ps
#define NN_VSTORE    _mm256_storeu_ps
#define NN_VBCAST    _mm256_broadcast_ss
#define NN_VFMA      _mm256_fmadd_ps
#define NN_VSET1     _mm256_set1_ps
#define NN_VZERO     _mm256_setzero_ps
#else
#define NN_VT        __m256d
#define NN_VL        4
#define NN_VLOAD     _mm256_loadu_pd
#define NN_VSTORE    _mm256_storeu_pd
#define NN_VBCAST    _mm256_broadcast_sd
#define NN_VFMA      _mm256_fmadd_pd
#define NN_VSET1     _mm256_set1_pd
#define NN_VZERO     _mm256_setzero_pd
#endif

/* mr is a compile-time constant after inlining: unused rows vanish.
   a(i,k) = a[i*rsa + k*csa]; b = packed kc x 2*NN_VL panel. */
NN_AVX2 NN_INLINE void NN_FN(nn_ukr_avx2_body_)(const int mr, long kc, const NN_T *a, const long rsa,
                                                const long csa, const NN_T *b, NN_T *c, long ldc,
                                                NN_T beta)
{
    NN_VT c00 = NN_VZERO(), c01 = NN_VZERO(), c10 = NN_VZERO(), c11 = NN_VZERO();
    NN_VT c20 = NN_VZERO(), c21 = NN_VZERO(), c30 = NN_VZERO(), c31 = NN_VZERO();
    NN_VT c40 = NN_VZERO(), c41 = NN_VZERO(), c50 = NN_VZERO(), c51 = NN_VZERO();
    const NN_T *a0 = a, *a1 = a + rsa, *a2 = a + 2 * rsa, *a3 = a + 3 * rsa, *a4 = a + 4 * rsa,
               *a5 = a + 5 * rsa;
#define NN_STEP(kk)                                                                              \
    do {                                                                                         \
        const NN_VT b0 = NN_VLOAD(b + (kk) * 2 * NN_VL), b1 = NN_VLOAD(b + (kk) * 2 * NN_VL + NN_VL); \
        NN_VT av;                                                                                \
        av = NN_VBCAST(a0 + (kk) * csa); c00 = NN_VFMA(av, b0, c00); c01 = NN_VFMA(av, b1, c01); \
        if (mr > 1) { av = NN_VBCAST(a1 + (kk) * csa); c10 = NN_VFMA(av, b0, c10); c11 = NN_VFMA(av, b1, c11); } \
        if (mr > 2) { av = NN_VBCAST(a2 + (kk) * csa); c20 = NN_VFMA(av, b0, c20); c21 = NN_VFMA(av, b1, c21); } \
        if (mr > 3) { av = NN_VBCAST(a3 + (kk) * csa); c30 = NN_VFMA(av, b0, c30); c31 = NN_VFMA(av, b1, c31); } \
        if (mr > 4) { av = NN_VBCAST(a4 + (kk) * csa); c40 = NN_VFMA(av, b0, c40); c41 = NN_VFMA(av, b1, c41); } \
        if (mr > 5) { av = NN_VBCAST(a5 + (kk) * csa); c50 = NN_VFMA(av, b0, c50); c51 = NN_VFMA(av, b1, c51); } \
    } while (0)
    for (long k = 0; k < kc; k++) {
        NN_STEP(0);
        a0 += csa; a1 += csa; a2 += csa; a3 += csa; a4 += csa; a5 += csa;
        b += 2 * NN_VL;
    }
#undef NN_STEP
#define NN_STROW(r)                                                                              \
    if (mr > r) {                                                                                \
        NN_T *cr = c + (r) * ldc;                                                                \
        if (beta == 0) { NN_VSTORE(cr, c##r##0); NN_VSTORE(cr + NN_VL, c##r##1); }               \
        else {                                                                                   \
            const NN_VT bv = NN_VSET1(beta);                                                     \
            NN_VSTORE(cr, NN_VFMA(bv, NN_VLOAD(cr), c##r##0));                                   \
            NN_VSTORE(cr + NN_VL, NN_VFMA(bv, NN_VLOAD(cr + NN_VL), c##r##1));                   \
        }                                                                                        \
    }
    NN_STROW(0) NN_STROW(1) NN_STROW(2) NN_STROW(3) NN_STROW(4) NN_STROW(5)
#undef NN_STROW
}

NN_AVX2 static void NN_FN(nn_ukr_avx2_packed_)(long kc, const NN_T *a, const NN_T *b, NN_T *c,
                                               long ldc, NN_T beta)
{
    NN_FN(nn_ukr_avx2_body_)(6, kc, a, 1, 6, b, c, ldc, beta);
}

#define NN_SUPV(m, name)                                                                         \
    NN_AVX2 static void name(long kc, const NN_T *a, long rsa, long csa, const NN_T *b, NN_T *c, \
                             long ldc, NN_T beta)                                                \
    {                                                                                            \
        if (csa == 1) NN_FN(nn_ukr_avx2_body_)(m, kc, a, rsa, 1, b, c, ldc, beta);               \
        else if (rsa == 1) NN_FN(nn_ukr_avx2_body_)(m, kc, a, 1, csa, b, c, ldc, beta);          \
        else NN_FN(nn_ukr_avx2_body_)(m, kc, a, rsa, csa, b, c, ldc, beta);                      \
    }
NN_SUPV(1, NN_FN(nn_ukr_avx2_sup1_))
NN_SUPV(2, NN_FN(nn_ukr_avx2_sup2_))
NN_SUPV(3, NN_FN(nn_ukr_avx2_sup3_))
NN_SUPV(4, NN_FN(nn_ukr_avx2_sup4_))
NN_SUPV(5, NN_FN(nn_ukr_avx2_sup5_))
NN_SUPV(6, NN_FN(nn_ukr_avx2_sup6_))
#undef NN_SUPV

static void NN_FN(nn_ukr_avx2_sup_)(int mr, long kc, const NN_T *a, long rsa, long csa,
                                    const NN_T *b, NN_T *c, long ldc, NN_T beta)
{
    switch (mr) {
    case 1: NN_FN(nn_ukr_avx2_sup1_)(kc, a, rsa, csa, b, c, ldc, beta); break;
    case 2: NN_FN(nn_ukr_avx2_sup2_)(kc, a, rsa, csa, b, c, ldc, beta); break;
    case 3: NN_FN(nn_ukr_avx2_sup3_)(kc, a, rsa, csa, b, c, ldc, beta); break;
    case 4: NN_FN(nn_ukr_avx2_sup4_)(kc, a, rsa, csa, b, c, ldc, beta); break;
    case 5: NN_FN(nn_ukr_avx2_sup5_)(kc, a, rsa, csa, b, c, ldc, beta); break;
    default: NN_FN(nn_ukr_avx2_sup6_)(kc, a, rsa, csa, b, c, ldc, beta); break;
    }
}

/* ---- dot path (A.B^T with a short side <= 16 and unit stride along k on both operands) ----
   C[i*rsc + j*csc] = sum_k X[i*ldx + k] * Y[j*ldy + k] for i < M, j < N (N <= 16).
   Both operands are read in place (no packing): an MI x NJ tile of rows of X and Y is dotted
   with vector accumulators along k, over k blocks of 1 KB per row (L1-resident), the vector
   partials carried across blocks and reduced horizontally once at the end.  Each C element has
   its own accumulator chain whatever tile or thread computes it: results never depend on
   n_threads.  Rows past the end of a tile are clamped to the last row and discarded. */
#if NN_F32_
#define NN_DOT_MASK(rem) _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(rem)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define NN_VMLOAD _mm256_maskload_ps
#define NN_VMSTORE _mm256_maskstore_ps
NN_AVX2 NN_INLINE float NN_FN(nn_hsum_)(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
/* horizontal sums of v[0..7] -> one vector */
NN_AVX2 NN_INLINE __m256 NN_FN(nn_hsum_x_)(const __m256 *v)
{
    const __m256 h01 = _mm256_hadd_ps(v[0], v[1]), h23 = _mm256_hadd_ps(v[2], v[3]);
    const __m256 h45 = _mm256_hadd_ps(v[4], v[5]), h67 = _mm256_hadd_ps(v[6], v[7]);
    const __m256 a = _mm256_hadd_ps(h01, h23), b = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}
#else
#define NN_DOT_MASK(rem) _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)(rem)), _mm256_setr_epi64x(0, 1, 2, 3))
#define NN_VMLOAD _mm256_maskload_pd
#define NN_VMSTORE _mm256_maskstore_pd
NN_AVX2 NN_INLINE double NN_FN(nn_hsum_)(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}
/* horizontal sums of v[0..3] -> one vector */
NN_AVX2 NN_INLINE __m256d NN_FN(nn_hsum_x_)(const __m256d *v)
{
    const __m256d h01 = _mm256_hadd_pd(v[0], v[1]), h23 = _mm256_hadd_pd(v[2], v[3]);
    return _mm256_add_pd(_mm256_permute2f128_pd(h01, h23, 0x20), _mm256_permute2f128_pd(h01, h23, 0x31));
}
#endif

NN_AVX2 NN_INLINE void NN_FN(nn_dot_tile_)(const int MI, const int NJ, long kc, const NN_T *x,
                                           long ldx, const NN_T *const *yr, NN_VT *part, long pst,
                                           const int first)
{
    NN_VT acc[6 * 3];
    const NN_T *xr[6];
    for (int r = 0; r < MI; r++) xr[r] = x + r * ldx;
    for (int r = 0; r < MI; r++)
        for (int q = 0; q < NJ; q++) acc[r * NJ + q] = first ? NN_VZERO() : part[r * pst + q];
    long k = 0;
    for (; k + NN_VL <= kc; k += NN_VL) {
        NN_VT yv[3];
        for (int q = 0; q < NJ; q++) yv[q] = NN_VLOAD(yr[q] + k);
        for (int r = 0; r < MI; r++) {
            NN_VT xv = NN_VLOAD(xr[r] + k);
            __asm__("" : "+x"(xv));   /* load x once (gcc would fold it into each FMA) */
            for (int q = 0; q < NJ; q++) acc[r * NJ + q] = NN_VFMA(xv, yv[q], acc[r * NJ + q]);
        }
    }
    if (k < kc) {   /* masked tail: lanes past kc load zeros */
        const __m256i mk = NN_DOT_MASK(kc - k);
        NN_VT yv[3];
        for (int q = 0; q < NJ; q++) yv[q] = NN_VMLOAD(yr[q] + k, mk);
        for (int r = 0; r < MI; r++) {
            const NN_VT xv = NN_VMLOAD(xr[r] + k, mk);
            for (int q = 0; q < NJ; q++) acc[r * NJ + q] = NN_VFMA(xv, yv[q], acc[r * NJ + q]);
        }
    }
    for (int r = 0; r < MI; r++)
        for (int q = 0; q < NJ; q++) part[r * pst + q] = acc[r * NJ + q];
}

/* part[r*NP + j]: vector partial of C(i0 + r, j), NP = N rounded up to NJ; reduced NN_VL at a
   time into sums[] (same layout), then each row of C written from one contiguous row of sums. */
NN_AVX2 NN_INLINE void NN_FN(nn_dot_body_)(const int MI, const int NJ, long M, long N, long K,
                                           const NN_T *X, long ldx, const NN_T *Y, long ldy,
                                           NN_T beta, NN_T *C, long rsc, long csc)
{
    const long KCD = 1024 / (long)sizeof(NN_T);
    const long NP = (N + NJ - 1) / NJ * NJ;
    const long nv = MI * NP;
    NN_VT part[6 * 18 + 8];
    NN_T sums[(6 * 18 + 8) * NN_VL];
    for (long v = nv; v < nv + NN_VL; v++) part[v] = NN_VZERO();   /* reduction padding */
    for (long i = 0; i < M; i += MI) {
        const long i0 = (i + MI <= M) ? i : M - MI >= 0 ? M - MI : 0;  /* last tile: overlap */
        const NN_T *x = X + i0 * ldx;
        const long mi = nn_gemm_min(MI, M - i0);
        for (long kb = 0; kb < K; kb += KCD) {
            const long kc = nn_gemm_min(KCD, K - kb);
            for (long j = 0; j < N; j += NJ) {
                const NN_T *yr[3];
                for (int q = 0; q < NJ; q++) yr[q] = Y + nn_gemm_min(j + q, N - 1) * ldy + kb;
                if (mi == MI)
                    NN_FN(nn_dot_tile_)(MI, NJ, kc, x + kb, ldx, yr, part + j, NP, kb == 0);
                else   /* M < MI: one row at a time */
                    for (long r = 0; r < mi; r++)
                        NN_FN(nn_dot_tile_)(1, NJ, kc, x + r * ldx + kb, ldx, yr, part + r * NP + j,
                                            NP, kb == 0);
            }
        }
        for (long v = 0; v < mi * NP; v += NN_VL)   /* NN_VL partial vectors -> NN_VL sums */
            NN_VSTORE(sums + v, NN_FN(nn_hsum_x_)(part + v));
        for (long r = (i0 < i ? i - i0 : 0); r < mi; r++) {
            const NN_T *sr = sums + r * NP;
            NN_T *cr = C + (i0 + r) * rsc;
            if (csc == 1) {
                if (beta == 0) {   /* (gcc turns a plain copy loop into a memcpy call) */
                    long j = 0;
                    for (; j + NN_VL <= N; j += NN_VL) {
                        NN_VT v = NN_VLOAD(sr + j);
                        __asm__("" : "+x"(v));
                        NN_VSTORE(cr + j, v);
                    }
                    if (j < N) NN_VMSTORE(cr + j, NN_DOT_MASK(N - j), NN_VLOAD(sr + j));
                } else for (long j = 0; j < N; j++) cr[j] = beta * cr[j] + sr[j];
            } else {
                if (beta == 0) for (long j = 0; j < N; j++) cr[j * csc] = sr[j];
                else for (long j = 0; j < N; j++) cr[j * csc] = beta * cr[j * csc] + sr[j];
            }
        }
    }
}

NN_AVX2 static void NN_FN(nn_dot_avx2_)(long M, long N, long K, const NN_T *X, long ldx,
                                        const NN_T *Y, long ldy, NN_T beta, NN_T *C, long rsc,
                                        long csc)
{
    if (N % 3 == 0 || N % 2 != 0)
        NN_FN(nn_dot_body_)(4, 3, M, N, K, X, ldx, Y, ldy, beta, C, rsc, csc);
    else
        NN_FN(nn_dot_body_)(6, 2, M, N, K, X, ldx, Y, ldy, beta, C, rsc, csc);
}
#undef NN_DOT_MASK
#undef NN_VMLOAD
#undef NN_VMSTORE

#undef NN_VT
#undef NN_VL
#undef NN_VLOAD
#undef NN_VSTORE
#undef NN_VBCAST
#undef NN_VFMA
#undef NN_VSET1
#undef NN_VZERO
#endif /* NN_GEMM_X86 */

/* ---- blocked driver over C[0:M, 0:N] (sub-problem of one thread) ---- */
static void NN_FN(nn_gemm_blocked_)(const NN_FN(nn_gemm_cfg_t_) *cfg, int packa, int ta, int tb,
                                    long M, long N, long K, const NN_T *A, long lda, const NN_T *B,
                                    long ldb, NN_T beta, NN_T *C, long rsc, long csc)
{
    const int MR = cfg->mr, NR = cfg->nr;
    /* balanced blocks: KC depends on K only (summation order independent of M/N split) */
    const long nkb = (K + cfg->kc - 1) / cfg->kc;
    const long KCb = (K + nkb - 1) / nkb;
    /* Unpacked A (small M): B's packed block is used by few row tiles only, keep it in L2. */
    long ncmax = cfg->nc;
    if (!packa) {
        const long cap = nn_gemm_rup(NN_GEMM_SUP_NCBYTES / ((long)sizeof(NN_T) * KCb), NR);
        if (cap < ncmax) ncmax = cap > NR ? cap : NR;
    }
    const long nnb = (N + ncmax - 1) / ncmax;
    const long NCb = nn_gemm_rup((N + nnb - 1) / nnb, NR);
    const long nmb = (M + cfg->mc - 1) / cfg->mc;
    const long MCb = nn_gemm_rup((M + nmb - 1) / nmb, MR);

    const long bsz = nn_gemm_rup(KCb * nn_gemm_min(NCb, nn_gemm_rup(N, NR)), 16);
    const long asz = packa ? KCb * nn_gemm_min(MCb, nn_gemm_rup(M, MR)) : 0;
    NN_T *Bp = (NN_T *)nn_gemm_ws((size_t)(bsz + asz) * sizeof(NN_T) + 64 * NN_NR * sizeof(NN_T));
    if (!Bp) { /* out of memory: fall back to plain loops (slow but correct) */
        for (long i = 0; i < M; i++)
            for (long j = 0; j < N; j++) {
                NN_T s = 0;
                for (long k = 0; k < K; k++)
                    s += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
                NN_T *cij = C + i * rsc + j * csc;
                *cij = (beta == 0) ? s : beta * *cij + s;
            }
        return;
    }
    NN_T *Ap = Bp + bsz;
    NN_T *tmp = Ap + asz;                /* MR x NR edge tile (64-byte aligned) */
    tmp = (NN_T *)(((uintptr_t)tmp + 63) & ~(uintptr_t)63);
    const long rsa = ta ? 1 : lda, csa = ta ? lda : 1;

    for (long jc = 0; jc < N; jc += NCb) {
        const long nc = nn_gemm_min(NCb, N - jc);
        for (long pc = 0; pc < K; pc += KCb) {
            const long kc = nn_gemm_min(KCb, K - pc);
            const NN_T bt = (pc == 0) ? beta : (NN_T)1;
            NN_FN(nn_gemm_packB_)(tb, kc, nc, B, ldb, pc, jc, Bp, NR);
            for (long ic = 0; ic < M; ic += MCb) {
                const long mc = nn_gemm_min(MCb, M - ic);
                if (packa) NN_FN(nn_gemm_packA_)(ta, mc, kc, A, lda, ic, pc, Ap, MR);
                for (long jr = 0; jr < nc; jr += NR) {
                    const long nr = nn_gemm_min(NR, nc - jr);
                    const NN_T *bp = Bp + jr * kc;
                    for (long ir = 0; ir < mc; ir += MR) {
                        const long mr = nn_gemm_min(MR, mc - ir);
                        NN_T *cp = C + (ic + ir) * rsc + (jc + jr) * csc;
                        const int full = (csc == 1) && (nr == NR) && (packa ? mr == MR : 1);
                        NN_T *cdst = full ? cp : tmp;
                        const long cld = full ? rsc : NR;
                        const NN_T cb = full ? bt : (NN_T)0;
                        if (packa)
                            cfg->packed(kc, Ap + ir * kc, bp, cdst, cld, cb);
                        else
                            cfg->sup((int)mr, kc, A + (ic + ir) * rsa + pc * csa, rsa, csa, bp, cdst,
                                     cld, cb);
                        if (!full) {
                            if (csc == 1) {
                                for (long i = 0; i < mr; i++) {
                                    NN_T *cr = cp + i * rsc;
                                    const NN_T *tr = tmp + i * NR;
                                    if (bt == 0)
                                        for (long j = 0; j < nr; j++) cr[j] = tr[j];
                                    else
                                        for (long j = 0; j < nr; j++) cr[j] = bt * cr[j] + tr[j];
                                }
                            } else {   /* transposed orientation: C(i,j) at cp[i*rsc + j*csc] */
                                for (long j = 0; j < nr; j++) {
                                    NN_T *cc = cp + j * csc;
                                    if (bt == 0)
                                        for (long i = 0; i < mr; i++) cc[i * rsc] = tmp[i * NR + j];
                                    else
                                        for (long i = 0; i < mr; i++)
                                            cc[i * rsc] = bt * cc[i * rsc] + tmp[i * NR + j];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/* ---- thread split: disjoint ranges of C's N (or M) dimension, one parallel region ---- */
static void NN_FN(nn_gemm_par_)(const NN_FN(nn_gemm_cfg_t_) *cfg, int ta, int tb, long M, long N, long K,
                                const NN_T *A, long lda, const NN_T *B, long ldb, NN_T beta, NN_T *C,
                                long rsc, long csc, int n_threads)
{
    const int packa = cfg->sup ? (M > NN_GEMM_PACKA_M) : 1;
#ifdef _OPENMP
    int nt = n_threads;
    if (nt > 1 && 2.0 * (double)M * (double)N * (double)K >= NN_GEMM_PAR_FLOPS) {
        const int mx = omp_get_max_threads();
        if (nt > mx) nt = mx;
    } else {
        nt = 1;
    }
    if (nt > 1) {
        const long ntn = (N + cfg->nr - 1) / cfg->nr, ntm = (M + cfg->mr - 1) / cfg->mr;
        const int splitn = ntn >= 2L * nt || ntn >= ntm;
        const long tiles = splitn ? ntn : ntm;
        if (tiles < nt) nt = (int)tiles;
        if (nt > 1) {
#pragma omp parallel num_threads(nt)
            {
                const int t = omp_get_thread_num(), T = omp_get_num_threads();
                const long t0 = tiles * t / T, t1 = tiles * (t + 1) / T;
                if (splitn) {
                    const long j0 = t0 * cfg->nr, j1 = nn_gemm_min(t1 * cfg->nr, N);
                    if (j1 > j0)
                        NN_FN(nn_gemm_blocked_)(cfg, packa, ta, tb, M, j1 - j0, K, A, lda,
                                                B + (tb ? j0 * ldb : j0), ldb, beta, C + j0 * csc,
                                                rsc, csc);
                } else {
                    const long i0 = t0 * cfg->mr, i1 = nn_gemm_min(t1 * cfg->mr, M);
                    if (i1 > i0)
                        NN_FN(nn_gemm_blocked_)(cfg, packa, ta, tb, i1 - i0, N, K,
                                                A + (ta ? i0 : i0 * lda), lda, B, ldb, beta,
                                                C + i0 * rsc, rsc, csc);
                }
            }
            return;
        }
    }
#else
    (void)n_threads;
#endif
    NN_FN(nn_gemm_blocked_)(cfg, packa, ta, tb, M, N, K, A, lda, B, ldb, beta, C, rsc, csc);
}

/* ---- public entry ---- */
void NN_FN(nn_gemm_)(int trans_a, int trans_b, long M, long N, long K, const NN_T *A, long lda,
                     const NN_T *B, long ldb, NN_T beta, NN_T *C, long ldc, int n_threads)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (beta == 1) return;
        for (long i = 0; i < M; i++) {
            NN_T *ci = C + i * ldc;
            if (beta == 0) for (long j = 0; j < N; j++) ci[j] = 0;
            else for (long j = 0; j < N; j++) ci[j] *= beta;
        }
        return;
    }
    if (M * N * K <= NN_GEMM_TINY_MNK) {
        NN_FN(nn_gemm_tiny_)(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }

#if NN_GEMM_X86
    /* A.B^T with one side <= 16 long and K long enough: the dot path (no packing). */
    if (!trans_a && trans_b && K >= NN_GEMM_DOT_K && (N <= 16 || M <= 16) && nn_gemm_isa_id() == 1) {
        const int ny = (N <= 16 && (N <= M || M > 16));   /* Y = the short side */
        const long nx = ny ? M : N, nyl = ny ? N : M;
        const NN_T *X = ny ? A : B, *Y = ny ? B : A;
        const long ldx = ny ? lda : ldb, ldy = ny ? ldb : lda;
        const long rsc = ny ? ldc : 1, csc = ny ? 1 : ldc;
#ifdef _OPENMP
        int nt = n_threads;
        if (nt > 1 && 2.0 * (double)M * (double)N * (double)K >= NN_GEMM_PAR_FLOPS && nx >= 24) {
            const int mx = omp_get_max_threads();
            if (nt > mx) nt = mx;
        } else {
            nt = 1;
        }
        if (nt > 1) {
#pragma omp parallel num_threads(nt)
            {
                const int t = omp_get_thread_num(), T = omp_get_num_threads();
                const long blk = (nx + 11) / 12;   /* split on 12-row boundaries */
                const long r0 = nn_gemm_min(blk * t / T * 12, nx);
                const long r1 = nn_gemm_min(blk * (t + 1) / T * 12, nx);
                if (r1 > r0)
                    NN_FN(nn_dot_avx2_)(r1 - r0, nyl, K, X + r0 * ldx, ldx, Y, ldy, beta,
                                        C + r0 * rsc, rsc, csc);
            }
            return;
        }
#endif
        NN_FN(nn_dot_avx2_)(nx, nyl, K, X, ldx, Y, ldy, beta, C, rsc, csc);
        return;
    }
#endif

    NN_FN(nn_gemm_cfg_t_) cfg;
#if NN_GEMM_X86
    if (nn_gemm_isa_id() == 1) {
        cfg.mr = NN_MR; cfg.nr = NN_NR; cfg.mc = NN_MC; cfg.kc = NN_KC; cfg.nc = NN_NC;
        cfg.packed = NN_FN(nn_ukr_avx2_packed_);
        cfg.sup = NN_FN(nn_ukr_avx2_sup_);
    } else
#endif
    {
        cfg.mr = NN_GMR; cfg.nr = NN_GNR; cfg.mc = NN_GMC; cfg.kc = NN_GKC; cfg.nc = NN_GNC;
        cfg.packed = NN_FN(nn_ukr_gen_);
        cfg.sup = 0;
    }

    /* Orientation: C = op(A) op(B), or C^T = op(B)^T op(A)^T (computed with C's strides swapped)
       when that wastes fewer zero-padded lanes (e.g. N = 10 and M = 128).  Same FMA chain per
       element either way, so the result is identical. */
    {
        const double w0 = (double)nn_gemm_rup(M, cfg.mr) * (double)nn_gemm_rup(N, cfg.nr);
        const double w1 = (double)nn_gemm_rup(N, cfg.mr) * (double)nn_gemm_rup(M, cfg.nr);
        if (w1 * 1.15 < w0) {
            const NN_T *t = A; A = B; B = t;
            long tl = lda; lda = ldb; ldb = tl;
            tl = M; M = N; N = tl;
            const int ti = trans_a; trans_a = !trans_b; trans_b = !ti;
            NN_FN(nn_gemm_par_)(&cfg, trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, 1, ldc,
                                n_threads);
            return;
        }
    }
    NN_FN(nn_gemm_par_)(&cfg, trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, 1, n_threads);
}

#undef NN_F32_
#undef NN_FN
#undef NN_MR
#undef NN_NR
#undef NN_MC
#undef NN_KC
#undef NN_NC
#undef NN_GMR
#undef NN_GNR
#undef NN_GMC
#undef NN_GKC
#undef NN_GNC
