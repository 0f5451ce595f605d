/* gemm_harness.c -- our GEMM against numpy's own OpenBLAS, one thread, in thread CPU time.
 *
 * For tuning the kernels on a shared machine: wall-clock timings there swing by 10-20 % as
 * other processes take the cores; the CPU time of the calling thread counts only the time the
 * product actually ran (cache and frequency effects of the neighbours remain).  Both libraries
 * run in this thread (OpenBLAS is set to one thread), interleaved, best of REPS blocks.
 * It #includes the kernel sources, so -D tunables (NN_GEMM_ZKC_F32=..., see gemm_common.h)
 * can be swept without rebuilding the extension.  benchmarks/README.md shows how to build it.
 *
 *   gemm_harness [REPS] [NAME,NAME,...]     (names: substrings of the case names below)
 *   OBLAS=path/to/libscipy_openblas64_*.so must be set; ALIGN=0..63 places every array that
 *   many bytes past a 64-byte boundary (default 16).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <time.h>
#include "gemm_dispatch.c"
#include "pool.c"   /* the kernels' threads (a separate file in the extension) */

/* numpy's OpenBLAS: 64-bit integers, symbols prefixed scipy_ and suffixed 64_ */
typedef void (*sgemm_t)(int, int, int, long, long, long, float, const float *, long,
                        const float *, long, float, float *, long);
typedef void (*dgemm_t)(int, int, int, long, long, long, double, const double *, long,
                        const double *, long, double, double *, long);
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* issue 12's shapes: square products, then the mnist (784-256-128-10, batch 128) and wide
   (512-2048-2048-10, batch 256) training products in dense.pyx's layouts */
typedef struct { const char *name; long M, N, K; int ta, tb, f64; } case_t;
static const case_t cases[] = {
    {"f32 512^3", 512, 512, 512, 0, 0, 0}, {"f32 1024^3", 1024, 1024, 1024, 0, 0, 0},
    {"f32 2048^3", 2048, 2048, 2048, 0, 0, 0}, {"f64 512^3", 512, 512, 512, 0, 0, 1},
    {"f64 1024^3", 1024, 1024, 1024, 0, 0, 1}, {"f64 2048^3", 2048, 2048, 2048, 0, 0, 1},
    {"mn L1 fwd", 128, 256, 784, 0, 1, 0}, {"mn L1 dW", 256, 784, 128, 1, 0, 0},
    {"mn L2 fwd", 128, 128, 256, 0, 1, 0}, {"mn L2 dW", 128, 256, 128, 1, 0, 0},
    {"mn L2 dh", 128, 256, 128, 0, 0, 0}, {"mn L3 fwd", 128, 10, 128, 0, 1, 0},
    {"mn L3 dW", 10, 128, 128, 1, 0, 0}, {"mn L3 dh", 128, 128, 10, 0, 0, 0},
    {"wd L1 fwd", 256, 2048, 512, 0, 1, 0}, {"wd L1 dW", 2048, 512, 256, 1, 0, 0},
    {"wd L2 fwd", 256, 2048, 2048, 0, 1, 0}, {"wd L2 dW", 2048, 2048, 256, 1, 0, 0},
    {"wd L2 dh", 256, 2048, 2048, 0, 0, 0}, {"wd L3 fwd", 256, 10, 2048, 0, 1, 0},
    {"wd L3 dW", 10, 2048, 256, 1, 0, 0}, {"wd L3 dh", 256, 2048, 10, 0, 0, 0},
};

/* Every array starts ALIGN bytes past a 64-byte boundary (default 16; numpy's arrays start 16
   or 48 bytes into a cache line): with malloc's own placement, C for ours and C for OpenBLAS
   could differ (one product's stores splitting cache lines, the other's not; 128 x 128 x 10 moved
   by 10 % with it). */
static long align_off = 16;
static void *alloc_at(size_t bytes)
{
    char *raw = malloc(bytes + 192);
    if (!raw) { fprintf(stderr, "out of memory\n"); exit(2); }
    char *p = (char *)(((uintptr_t)raw + 64 + 63) & ~(uintptr_t)63) + align_off;
    memcpy(p - sizeof raw, &raw, sizeof raw);   /* >= 64 bytes before p are ours */
    return p;
}
static void free_at(void *p)
{
    char *raw;
    memcpy(&raw, (char *)p - sizeof raw, sizeof raw);
    free(raw);
}

static int selected(const char *name, const char *filter)
{
    if (!*filter) return 1;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", filter);
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ","))
        if (strstr(name, t)) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const int reps = argc > 1 ? atoi(argv[1]) : 5;
    const char *filter = argc > 2 ? argv[2] : "";
    const char *lib = getenv("OBLAS");
    if (getenv("ALIGN")) align_off = atol(getenv("ALIGN")) & 63;
    void *h = lib ? dlopen(lib, RTLD_NOW) : NULL;
    if (!h) { fprintf(stderr, "set OBLAS to numpy's OpenBLAS library (%s)\n", dlerror()); return 2; }
    sgemm_t sg = (sgemm_t)dlsym(h, "scipy_cblas_sgemm64_");
    dgemm_t dg = (dgemm_t)dlsym(h, "scipy_cblas_dgemm64_");
    void (*set_threads)(int) = (void (*)(int))dlsym(h, "scipy_openblas_set_num_threads64_");
    if (!sg || !dg || !set_threads) { fprintf(stderr, "not numpy's OpenBLAS: %s\n", lib); return 2; }
    set_threads(1);
    printf("path %s; ratio = OpenBLAS time / ours (> 1: ours faster)\n", nn_gemm_isa());
    double logsum = 0, worst = 1e9;
    int n_cases = 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const case_t s = cases[c];
        if (!selected(s.name, filter)) continue;
        const long M = s.M, N = s.N, K = s.K, lda = s.ta ? M : K, ldb = s.tb ? K : N;
        const size_t es = s.f64 ? 8 : 4;
        char *A = alloc_at(M * K * es), *B = alloc_at(K * N * es), *C1 = alloc_at(M * N * es),
             *C2 = alloc_at(M * N * es);
        for (long i = 0; i < M * K; i++)
            if (s.f64) ((double *)A)[i] = sin(i * 0.37); else ((float *)A)[i] = sinf(i * 0.37f);
        for (long i = 0; i < K * N; i++)
            if (s.f64) ((double *)B)[i] = cos(i * 0.11); else ((float *)B)[i] = cosf(i * 0.11f);
        const double flops = 2.0 * M * N * K;
        const long calls = (long)(3e7 / flops) + 1;   /* a block of >= 30 MFLOP */
        double best_ours = 1e30, best_ref = 1e30;
        for (int r = 0; r < reps; r++) {
            double t = cpu_now();
            for (long i = 0; i < calls; i++)
                if (s.f64) nn_gemm_f64(s.ta, s.tb, M, N, K, (double *)A, lda, (double *)B, ldb, 0, (double *)C1, N, 1);
                else nn_gemm_f32(s.ta, s.tb, M, N, K, (float *)A, lda, (float *)B, ldb, 0, (float *)C1, N, 1);
            t = (cpu_now() - t) / calls;
            if (t < best_ours) best_ours = t;
            t = cpu_now();
            for (long i = 0; i < calls; i++)
                if (s.f64) dg(ROW_MAJOR, s.ta ? TRANS : NO_TRANS, s.tb ? TRANS : NO_TRANS, M, N, K, 1.0,
                              (double *)A, lda, (double *)B, ldb, 0.0, (double *)C2, N);
                else sg(ROW_MAJOR, s.ta ? TRANS : NO_TRANS, s.tb ? TRANS : NO_TRANS, M, N, K, 1.0f,
                        (float *)A, lda, (float *)B, ldb, 0.0f, (float *)C2, N);
            t = (cpu_now() - t) / calls;
            if (t < best_ref) best_ref = t;
        }
        double err = 0, mx = 0;
        for (long i = 0; i < M * N; i++) {
            const double a = s.f64 ? ((double *)C1)[i] : ((float *)C1)[i];
            const double b = s.f64 ? ((double *)C2)[i] : ((float *)C2)[i];
            if (fabs(a - b) > err) err = fabs(a - b);
            if (fabs(b) > mx) mx = fabs(b);
        }
        const double ratio = best_ref / best_ours;
        printf("%-12s ours %6.1f  OpenBLAS %6.1f GFLOP/s  ratio %.3f  rel. diff %.1e\n", s.name,
               flops / best_ours / 1e9, flops / best_ref / 1e9, ratio, err / (mx + 1e-30));
        logsum += log(ratio);
        worst = ratio < worst ? ratio : worst;
        n_cases++;
        free_at(A); free_at(B); free_at(C1); free_at(C2);
    }
    if (n_cases) printf("geomean %.3f  min %.3f\n", exp(logsum / n_cases), worst);
    return 0;
}
