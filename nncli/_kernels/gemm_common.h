/* gemm_common.h -- the type-independent part of our GEMM: portability macros, tunables, the
 * run-time ISA choice and the per-thread packing workspace. Included once by gemm_dispatch.c,
 * before the per-dtype kernels (gemm_kernels.c) and driver (gemm_driver.c).
 *
 *   C[M x N] = op(A)[M x K] * op(B)[K x N] + beta * C          (row-major, strides lda/ldb/ldc)
 *
 * Paths (chosen from the shape only, so results never depend on n_threads):
 *   tiny   : M*N*K small -> plain dot-product loops, no packing, no malloc, no OpenMP.
 *   dot    : A.B^T with a short side <= 16 and K long (AVX2 only): dot products, no packing.
 *   blocked: Goto/BLIS five loops.  B is always packed into zero-padded KC x NR micro-panels
 *            (transposition handled while packing).  A is packed into MR x KC micro-panels when M
 *            is large; for small M the micro-kernel broadcasts straight from A's rows/columns.
 *            Register-tile micro-kernel: AVX2+FMA 6x16 (f32) / 6x8 (f64) selected at run time,
 *            or a portable plain-C 4x8 / 4x4 kernel (vectorised by the compiler at baseline).
 *   Per-thread packing buffers are allocated once and grown (freed at thread exit on pthreads).
 *   OpenMP (only for >= NN_GEMM_PAR_FLOPS flops): disjoint N (or M) ranges of C per thread, one
 *   parallel region per call.  K is never split; each C element is summed in the same order
 *   whatever the thread count, so results are bit-identical for any n_threads.
 *   NNCLI_GEMM_ISA=generic (read once per process) forces the portable path.
 */
#ifndef NNCLI_GEMM_COMMON_H
#define NNCLI_GEMM_COMMON_H

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

#endif /* NNCLI_GEMM_COMMON_H */
