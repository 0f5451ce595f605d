/* gemm_common.h -- the type-independent part of our GEMM: portability macros, tunables, the
 * run-time ISA choice and the per-thread packing workspace. Included once by gemm_dispatch.c,
 * before the per-dtype kernels (gemm_kernels.c) and driver (gemm_driver.c).
 *
 *   C[M x N] = op(A)[M x K] * op(B)[K x N] + beta * C          (row-major, strides lda/ldb/ldc)
 *
 * Paths (chosen from the shape only, so results never depend on n_threads):
 *   tiny   : M*N*K small -> plain dot-product loops, no packing, no malloc, no threads.
 *   dot    : A.B^T with a short side <= 16 and K long (AVX2 only): dot products, no packing.
 *   blocked: Goto/BLIS five loops.  B is packed into zero-padded KC x NR micro-panels
 *            (transposition handled while packing), except on the AVX-512 path when B is stored
 *            K x N and one row tile of A (M <= 12) or a short K (<= NN_GEMM_SMALL_K) would read
 *            a packed B once: then the kernel reads B's rows in place, masking the last columns.
 *            A is packed into MR x KC micro-panels when M is large and K is not short (on one
 *            thread all of A's rows once per K block when N takes several column blocks; for
 *            the chunks of a threaded split along N all of op(A) once first); else the
 *            micro-kernel broadcasts straight from A's rows/columns.
 *            AVX-512: a row of full tiles in one kernel call (a panel); K <= 16 with A's rows
 *            in place: kernels compiled for each K on 6 x 64 (f32) / 6 x 32 (f64) tiles, all
 *            of a block's rows in one call.  K blocks of at most
 *            NN_GEMM_ROWS_OUTER_KC (all, on the AVX-512 path) sweep the tiles along C's rows,
 *            longer ones down B's micro-panels (which stay in L1).
 *            Register-tile micro-kernel, selected at run time: AVX-512 12x32 (f32) / 12x16 (f64)
 *            with its KC/MC from this CPU's L1d/L2 sizes, AVX2+FMA 6x16 / 6x8 (blocking swept on
 *            Zen 3), or a portable plain-C 4x8 / 4x4 kernel (vectorised by the compiler).
 *   Per-thread packing buffers are allocated once and grown (freed at thread exit on pthreads).
 *   Threads (only for >= nn_gemm_par_flops() flops): disjoint N (or M: whichever repacks less)
 *   ranges of C in chunks, claimed by the caller and the workers of pool.h.  K is never split;
 *   each C element is summed in the same order whatever the thread count, so results are
 *   bit-identical for any n_threads.
 *   NNCLI_GEMM_ISA=generic or =avx2 (read once per process) caps the path.
 */
#ifndef NNCLI_GEMM_COMMON_H
#define NNCLI_GEMM_COMMON_H

#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <stdint.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif
#include "pool.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define NN_GEMM_X86 1
#include <immintrin.h>
#define NN_AVX2 __attribute__((target("avx2,fma")))
#define NN_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
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
#define NN_GEMM_PAR_FLOPS  1000000.0 /* 2*M*N*K at or above: use the pool's threads           */
#endif
#ifndef NN_GEMM_CHUNKS_PER_THREAD
#define NN_GEMM_CHUNKS_PER_THREAD 1  /* chunks of a threaded product, per thread               */
#endif
#ifndef NN_GEMM_GUIDED_ROW_TILES
#define NN_GEMM_GUIDED_ROW_TILES 64L /* row tiles per thread at or above: guided chunks of rows */
#endif
#ifndef NN_GEMM_GUIDED_MAX_B
#define NN_GEMM_GUIDED_MAX_B 1048576.0 /* ... and op(B) at most this many numbers (2048^3's 4 M
                                        packed again per chunk cost 4-6 % on two threads) */
#endif
#ifndef NN_GEMM_GUIDED_MIN
#define NN_GEMM_GUIDED_MIN 16L       /* guided chunks: at least this many row tiles            */
#endif
#define NN_GEMM_MAX_CHUNKS 32
#ifndef NN_GEMM_PREPACK_MIN
#define NN_GEMM_PREPACK_MIN 65536.0  /* M*K at or above: a split along N packs op(A) once first */
#endif
#ifndef NN_GEMM_PREPACK_MAX_BYTES    /* ... and up to this size: a larger packed op(A) comes   */
#define NN_GEMM_PREPACK_MAX_BYTES (4.0 * 1024 * 1024)  /* back from memory; each chunk packs  */
#endif                               /* its K blocks of it instead, while they are in cache    */
#ifndef NN_GEMM_DOT_K
#define NN_GEMM_DOT_K      192L      /* A.B^T with a side <= 16: dot path when K >= this      */
#endif
#ifndef NN_GEMM_SUP_NCBYTES
#define NN_GEMM_SUP_NCBYTES (128L * 1024)  /* unpacked-A path: packed B block at most this big */
#endif
#ifndef NN_GEMM_ROWS_OUTER_KC
#define NN_GEMM_ROWS_OUTER_KC 64L    /* K blocks this short: tiles swept along C's rows       */
#endif
#ifndef NN_GEMM_SMALL_K
#define NN_GEMM_SMALL_K    32L       /* K at or below: no packing where a kernel can read in place */
#endif
#ifndef NN_GEMM_PACKA_ALL_BYTES
#define NN_GEMM_PACKA_ALL_BYTES (8.0 * 1024 * 1024)   /* one thread: A packed whole per K block up to this */
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

/* AVX-512 cache blocking: derived at run time from this CPU's L1d and L2 sizes
   (nn_gemm_z_blocks below); these are the fallbacks when the sizes are unknown, and -D
   overrides them for sweeps (then the run-time choice is off). */
#if defined(NN_GEMM_ZMC_F32) || defined(NN_GEMM_ZKC_F32) || defined(NN_GEMM_ZMC_F64) || \
    defined(NN_GEMM_ZKC_F64) || defined(NN_GEMM_ZNC_F32) || defined(NN_GEMM_ZNC_F64)
#define NN_GEMM_Z_FIXED 1
#endif
#ifndef NN_GEMM_ZMC_F32
#define NN_GEMM_ZMC_F32 192
#endif
#ifndef NN_GEMM_ZKC_F32
#define NN_GEMM_ZKC_F32 384
#endif
#ifndef NN_GEMM_ZNC_F32
#define NN_GEMM_ZNC_F32 832
#endif
#ifndef NN_GEMM_ZMC_F64
#define NN_GEMM_ZMC_F64 144
#endif
#ifndef NN_GEMM_ZKC_F64
#define NN_GEMM_ZKC_F64 256
#endif
#ifndef NN_GEMM_ZNC_F64
#define NN_GEMM_ZNC_F64 640
#endif

/* ---- ISA selection (cached) ----
 * avx512: CPUs with AVX-512F (the OS saving zmm state: libgcc checks XCR0);
 * avx2: AVX2 + FMA (Zen 1/2/3, Haswell and later); generic: anything else.
 * NNCLI_GEMM_ISA=generic or =avx2 caps the choice (tests; Zen-like runs on an Intel CPU). */
static int nn_gemm_isa_cache = -1;   /* -1 unknown, 0 generic, 1 avx2+fma, 2 avx512 */

static int nn_gemm_isa_detect(void)
{
    const char *e = getenv("NNCLI_GEMM_ISA");
    int cap = 2;
    if (e && (strcmp(e, "generic") == 0 || strcmp(e, "GENERIC") == 0)) return 0;
    if (e && (strcmp(e, "avx2") == 0 || strcmp(e, "AVX2") == 0)) cap = 1;
#if NN_GEMM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        if (cap >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("avx512vl"))
            return 2;
        return 1;
    }
#endif
    (void)cap;
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
    const int id = nn_gemm_isa_id();
    return id == 2 ? "avx512" : id == 1 ? "avx2" : "generic";
}

/* ---- CPU facts for tuning and benchmarks: vendor (0 other, 1 Intel, 2 AMD), family, model ---- */
void nn_cpu_id(int *vendor, int *family, int *model)
{
    *vendor = 0; *family = 0; *model = 0;
#if NN_GEMM_X86
    __builtin_cpu_init();
    *vendor = __builtin_cpu_is("intel") ? 1 : __builtin_cpu_is("amd") ? 2 : 0;
    unsigned int a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    const unsigned base_f = (a >> 8) & 0xf, base_m = (a >> 4) & 0xf;
    *family = (int)(base_f == 0xf ? base_f + ((a >> 20) & 0xff) : base_f);
    *model = (int)((base_f == 0x6 || base_f == 0xf) ? (((a >> 16) & 0xf) << 4) + base_m : base_m);
#endif
}

static inline long nn_gemm_min(long a, long b) { return a < b ? a : b; }
static inline long nn_gemm_rup(long a, long m) { return (a + m - 1) / m * m; }

/* ---- AVX-512 blocking from the cache sizes (read once) ----
 * The 12 x 32 (f32) / 12 x 16 (f64) kernel reads B's micro-panel at 128 bytes per K step
 * whatever the type, and A's 12-row micro-panel at 12 elements per K step.  The AVX-512 path
 * sweeps the tiles of a block along C's rows (row tiles outer): A's micro-panel (KC x 12) stays
 * in L1 while B's micro-panels stream from a packed KC x NC block kept in L2, and C is written
 * along its rows.  (The other order, B's micro-panel in L1 and A's block streaming from L2,
 * lost 5-10 % at 2048^3 float32 on the Xeon family 6 model 167: its packed B block spilled
 * from L2 to L3.)
 *   KC = L1d / 128, and A's micro-panel (12 x KC elements) at most half of L1d: a 48 KB L1d
 *       gives 384 for f32 (the best of a 256-512 sweep there; 32 KB: 256) and 256 for f64
 *       (12 x 384 x 8 B = 36 KB of A left little room for B's lines streaming past: 2048^3
 *       f64 went from 0.94-1.01x OpenBLAS with 384 to 1.00-1.09x with 256);
 *   MC: MC x KC elements about L2 / 7 (2 MB: 192 rows f32, 144 f64; 84-336 f32 rows could
 *       not be told apart);
 *   NC: the packed B block KC x NC about 5/8 of L2 (2 MB: 832 f32 / 640 f64 columns; 768 and
 *       1024 f32 were alike, 4096 (L3-resident) and 512 slower).
 * Zero when a size is unknown: the compile-time values above are used. */
static long nn_gemm_zkc_rt[2], nn_gemm_zmc_rt[2], nn_gemm_znc_rt[2];   /* [f64]; 0: not derived */
static int nn_gemm_zblk_done;

static void nn_gemm_z_blocks(int f64, long *mc, long *kc, long *nc)
{
    if (!__atomic_load_n(&nn_gemm_zblk_done, __ATOMIC_ACQUIRE)) {
        long l1 = 0, l2 = 0;
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && !defined(NN_GEMM_Z_FIXED)
        l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE);
        l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
        for (int t = 0; t < 2; t++) {   /* t = 1: f64 */
            long k = 0, m = 0, n = 0;
            if (l1 >= 16384 && l2 >= 131072) {
                const long es = t ? 8 : 4, nr = t ? 16 : 32;
                k = nn_gemm_min(l1 / 128, l1 / 2 / (12 * es)) / 32 * 32;
                k = k < 128 ? 128 : k > 512 ? 512 : k;
                m = l2 / 7 / (k * es) / 12 * 12;
                m = m < 48 ? 48 : m > 480 ? 480 : m;
                n = l2 / 8 * 5 / (k * es) / nr * nr;
                n = n < 4 * nr ? 4 * nr : n > 8192 ? 8192 : n;
            }
            /* threads racing here store the same values */
            __atomic_store_n(&nn_gemm_zkc_rt[t], k, __ATOMIC_RELAXED);
            __atomic_store_n(&nn_gemm_zmc_rt[t], m, __ATOMIC_RELAXED);
            __atomic_store_n(&nn_gemm_znc_rt[t], n, __ATOMIC_RELAXED);
        }
        __atomic_store_n(&nn_gemm_zblk_done, 1, __ATOMIC_RELEASE);
    }
    if (__atomic_load_n(&nn_gemm_zkc_rt[f64], __ATOMIC_RELAXED)) {
        *mc = __atomic_load_n(&nn_gemm_zmc_rt[f64], __ATOMIC_RELAXED);
        *kc = __atomic_load_n(&nn_gemm_zkc_rt[f64], __ATOMIC_RELAXED);
        *nc = __atomic_load_n(&nn_gemm_znc_rt[f64], __ATOMIC_RELAXED);
    }
}

/* ---- FMA throughput probe (benchmarks): `iters` rounds of 12 independent FMA chains on
 * 256-bit (width 256) or 512-bit (width 512) float vectors.  Returns a value that depends on
 * every chain so the loop cannot be removed; flops = iters * 12 * (width / 32) * 2.
 * Returns NaN when the CPU lacks the ISA. ---- */
#if NN_GEMM_X86
NN_AVX2 static float nn_fma_probe256(long iters)
{
    __m256 c[12];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) c[i] = _mm256_set1_ps((float)i);
    for (long t = 0; t < iters; t++)
        for (int i = 0; i < 12; i++) c[i] = _mm256_fmadd_ps(c[i], a, b);
    __m256 s = c[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, c[i]);
    float o[8];
    _mm256_storeu_ps(o, s);
    return o[0] + o[7];
}
__attribute__((target("avx512f,avx2,fma"))) static float nn_fma_probe512(long iters)
{
    __m512 c[12];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) c[i] = _mm512_set1_ps((float)i);
    for (long t = 0; t < iters; t++)
        for (int i = 0; i < 12; i++) c[i] = _mm512_fmadd_ps(c[i], a, b);
    __m512 s = c[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, c[i]);
    return _mm512_reduce_add_ps(s);
}
#endif

double nn_fma_probe(long iters, int width)
{
#if NN_GEMM_X86
    __builtin_cpu_init();
    if (width == 256 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return nn_fma_probe256(iters);
    if (width == 512 && __builtin_cpu_supports("avx512f"))
        return nn_fma_probe512(iters);
#endif
    (void)iters; (void)width;
    return __builtin_nan("");
}

/* ---- threads ----
 * The caller's n_threads decides (capped by the processors this process may run on, in
 * pool.c): nothing else in the process changes it -- OpenMP's nthreads-var, which
 * torch.set_num_threads(1) lowers, is not consulted.  Products run their chunks on pool.h's
 * workers.
 * nn_gemm_last_threads(): how many threads the calling thread's last product was split for
 * (1 when it ran serially; tiny products are not recorded) -- a kernel-level check for tests. */
static NN_TLS int nn_gemm_last_nt = 1;
static inline void nn_gemm_note_threads(int t) { nn_gemm_last_nt = t; }
/* The threads a product may use: the caller's n_threads, at most the processors (the chunk
   counts are computed from it, so they must not count threads that cannot run). */
static inline int nn_gemm_threads(int n_threads)
{
    const int procs = nn_pool_procs();
    return n_threads < procs ? n_threads : procs;
}

/* Threads pay above a fixed time of serial work (handing chunks to a worker costs a few us,
   and on a busy machine the second thread may not get a core at once): NN_GEMM_PAR_FLOPS was
   set for the AVX2 kernels; the AVX-512 ones do the same product in about half the time. */
static inline double nn_gemm_par_flops(int isa_id)
{
    return isa_id == 2 ? 2.0 * NN_GEMM_PAR_FLOPS : NN_GEMM_PAR_FLOPS;
}
int nn_gemm_last_threads(void) { return nn_gemm_last_nt; }

/* ---- per-thread workspaces (64-byte aligned, grown on demand, never shrink) ----
 * Slot NN_WS_OWN: the calling thread's packing buffers; slot NN_WS_SHARED: an operand the
 * calling thread packs once for the workers of a threaded product to read. */
enum { NN_WS_OWN = 0, NN_WS_SHARED = 1, NN_WS_SLOTS = 2 };
typedef struct { void *raw; void *p; size_t cap; } nn_gemm_ws_t;
static NN_TLS nn_gemm_ws_t nn_gemm_ws_tls[NN_WS_SLOTS];

#if NN_GEMM_PTHREAD
static pthread_key_t nn_gemm_ws_key[NN_WS_SLOTS];
static pthread_once_t nn_gemm_ws_once = PTHREAD_ONCE_INIT;
static void nn_gemm_ws_free(void *raw) { free(raw); }
static void nn_gemm_ws_key_init(void)
{
    for (int i = 0; i < NN_WS_SLOTS; i++) (void)pthread_key_create(&nn_gemm_ws_key[i], nn_gemm_ws_free);
}
#endif

static void *nn_gemm_ws(int slot, size_t bytes)
{
    nn_gemm_ws_t *w = &nn_gemm_ws_tls[slot];
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
    (void)pthread_setspecific(nn_gemm_ws_key[slot], raw);   /* freed when the thread exits */
#endif
    return w->p;
}

#endif /* NNCLI_GEMM_COMMON_H */
