/* vmath.c -- float32 transcendentals on 8 lanes (AVX2 + FMA), for the activations.
 *
 * Compiled at the baseline ISA; the vector functions carry target("avx2,fma") and run only
 * when the CPU has both (checked once), as the GEMM does. NNCLI_GEMM_ISA=generic turns them
 * off too, so the portable build's scalar libm path stays tested.
 *
 * Methods (Cephes single precision, Moshier; Eigen for erf), results against correctly
 * rounded values, measured over the whole float32 range by tests/test_vmath.py:
 *   exp      x = n·ln2 + r, |r| ≤ ln2/2 (ln2 in two parts), degree-5 polynomial, 2^n applied
 *            as two factors so subnormal results round once               ≤ 1 ulp
 *   expm1    |x| < 0.35: degree-7 Taylor polynomial; else exp(x) − 1      ≤ 2 ulp
 *   tanh     |x| < 0.625: odd polynomial (Cephes tanhf); else
 *            sign(x)·(1 − 2/(e^{2|x|} + 1))                               ≤ 2 ulp
 *   sigmoid  e = e^{−|x|}: 1/(1+e) or e/(1+e) (never overflows)           ≤ 2 ulp
 *   log1p    u = 1 + x, log(u)·x/(u − 1) (Goldberg), log by frexp + degree-8 polynomial
 *                                                                         ≤ 2 ulp
 *   erf      x·P(x²)/Q(x²) on [−4, 4] (Eigen's rational), ±1 beyond; 2x/√π for |x| < 2^−12
 *                                                                         ≤ 3 ulp
 *   sin/cos  reduction by π/4 in three parts (exact for |x| ≤ 8192), Cephes polynomials on
 *            the octant; lanes beyond 8192, ±inf or NaN go to libm       ≤ 2 ulp
 * NaN in gives NaN out, ±inf and ±0 give libm's results (checked by the tests). */
#include "vmath.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define NN_VM_X86 1
#include <immintrin.h>
#define NN_VM __attribute__((target("avx2,fma")))
#define NN_VMI static inline __attribute__((always_inline, target("avx2,fma")))
#else
#define NN_VM_X86 0
#endif

static int nn_vm_state = -1;

int nn_vm_enabled(void)
{
    int v = __atomic_load_n(&nn_vm_state, __ATOMIC_RELAXED);
    if (v < 0) {
        v = 0;
#if NN_VM_X86
        const char *e = getenv("NNCLI_GEMM_ISA");
        __builtin_cpu_init();
        if (!(e && (strcmp(e, "generic") == 0 || strcmp(e, "GENERIC") == 0))
            && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            v = 1;
#endif
        __atomic_store_n(&nn_vm_state, v, __ATOMIC_RELAXED);
    }
    return v;
}

#if NN_VM_X86
#define S1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ABS(x) _mm256_andnot_ps(S1(-0.0f), (x))
#define SIGN(x) _mm256_and_ps(S1(-0.0f), (x))
#define LT(a, b) _mm256_cmp_ps((a), (b), _CMP_LT_OQ)
#define GT(a, b) _mm256_cmp_ps((a), (b), _CMP_GT_OQ)
#define ISNAN(a) _mm256_cmp_ps((a), (a), _CMP_UNORD_Q)
#define SEL(m, a, b) _mm256_blendv_ps((b), (a), (m))   /* m ? a : b */

/* 2^n for integer-valued n in [-126, 127] */
NN_VMI __m256 nn_pow2i(__m256i n)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

NN_VMI __m256 nn_v_exp(__m256 x)
{
    const __m256 hi = S1(88.72283935546875f), lo = S1(-103.97208404541015625f);
    const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, S1(-110.f)), S1(90.f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, S1(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, S1(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, S1(-2.12194440e-4f), r);
    __m256 p = S1(1.9875691500E-4f);
    p = FMA(p, r, S1(1.3981999507E-3f));
    p = FMA(p, r, S1(8.3334519073E-3f));
    p = FMA(p, r, S1(4.1665795894E-2f));
    p = FMA(p, r, S1(1.6666665459E-1f));
    p = FMA(p, r, S1(5.0000001201E-1f));
    __m256 y = _mm256_add_ps(FMA(p, _mm256_mul_ps(r, r), r), S1(1.0f));
    /* 2^n in two factors (n in [-159, 130]): each normal, one rounding into subnormals */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1);
    const __m256i n2 = _mm256_sub_epi32(ni, n1);
    y = _mm256_mul_ps(_mm256_mul_ps(y, nn_pow2i(n1)), nn_pow2i(n2));
    y = SEL(GT(x, hi), S1(INFINITY), y);
    y = SEL(LT(x, lo), _mm256_setzero_ps(), y);
    return SEL(ISNAN(x), x, y);
}

NN_VMI __m256 nn_v_expm1(__m256 x)
{
    /* x(1 + x/2 + x²/6 + … + x⁶/5040) for |x| < 0.35 */
    __m256 p = S1(1.f / 5040.f);
    p = FMA(p, x, S1(1.f / 720.f));
    p = FMA(p, x, S1(1.f / 120.f));
    p = FMA(p, x, S1(1.f / 24.f));
    p = FMA(p, x, S1(1.f / 6.f));
    p = FMA(p, x, S1(0.5f));
    const __m256 small = FMA(_mm256_mul_ps(p, x), x, x);
    const __m256 big = _mm256_sub_ps(nn_v_exp(x), S1(1.0f));
    const __m256 r = SEL(LT(ABS(x), S1(0.35f)), small, big);
    return SEL(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_EQ_OQ), x, r);   /* ±0 */
}

NN_VMI __m256 nn_v_tanh(__m256 x)
{
    const __m256 ax = ABS(x);
    const __m256 z = _mm256_mul_ps(x, x);
    __m256 p = S1(-5.70498872745E-3f);
    p = FMA(p, z, S1(2.06390887954E-2f));
    p = FMA(p, z, S1(-5.37397155531E-2f));
    p = FMA(p, z, S1(1.33314422036E-1f));
    p = FMA(p, z, S1(-3.33332819422E-1f));
    const __m256 small = FMA(_mm256_mul_ps(p, z), ax, ax);
    const __m256 e = nn_v_exp(_mm256_add_ps(ax, ax));
    const __m256 big = _mm256_sub_ps(S1(1.0f), _mm256_div_ps(S1(2.0f), _mm256_add_ps(e, S1(1.0f))));
    /* on |x|, then x's sign (tanh is odd; keeps −0) */
    const __m256 r = _mm256_or_ps(SEL(LT(ax, S1(0.625f)), small, big), SIGN(x));
    return SEL(ISNAN(x), x, r);
}

NN_VMI __m256 nn_v_sigmoid(__m256 x)
{
    const __m256 e = nn_v_exp(_mm256_or_ps(ABS(x), S1(-0.0f)));   /* e^{-|x|} */
    const __m256 num = SEL(LT(x, _mm256_setzero_ps()), e, S1(1.0f));
    return _mm256_div_ps(num, _mm256_add_ps(S1(1.0f), e));
}

/* natural log of u > 0, normal, finite */
NN_VMI __m256 nn_v_log_pos(__m256 u)
{
    const __m256i bits = _mm256_castps_si256(u);
    __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(126)));
    __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                                                   _mm256_set1_epi32(0x3f000000)));   /* [0.5, 1) */
    const __m256 lt = LT(m, S1(0.707106781186547524f));
    e = _mm256_sub_ps(e, _mm256_and_ps(lt, S1(1.0f)));
    m = _mm256_sub_ps(_mm256_add_ps(m, _mm256_and_ps(lt, m)), S1(1.0f));
    const __m256 z = _mm256_mul_ps(m, m);
    __m256 y = S1(7.0376836292E-2f);
    y = FMA(y, m, S1(-1.1514610310E-1f));
    y = FMA(y, m, S1(1.1676998740E-1f));
    y = FMA(y, m, S1(-1.2420140846E-1f));
    y = FMA(y, m, S1(1.4249322787E-1f));
    y = FMA(y, m, S1(-1.6668057665E-1f));
    y = FMA(y, m, S1(2.0000714765E-1f));
    y = FMA(y, m, S1(-2.4999993993E-1f));
    y = FMA(y, m, S1(3.3333331174E-1f));
    y = _mm256_mul_ps(_mm256_mul_ps(y, m), z);
    y = FMA(e, S1(-2.12194440e-4f), y);
    y = FMA(z, S1(-0.5f), y);
    return FMA(e, S1(0.693359375f), _mm256_add_ps(m, y));
}

NN_VMI __m256 nn_v_log1p(__m256 x)
{
    const __m256 u = _mm256_add_ps(S1(1.0f), x);
    const __m256 d = _mm256_sub_ps(u, S1(1.0f));
    const __m256 us = _mm256_max_ps(u, S1(1e-30f));   /* keep log's argument in range */
    __m256 r = _mm256_mul_ps(nn_v_log_pos(us), _mm256_div_ps(x, d));   /* x/d ≈ 1: no overflow */
    r = SEL(_mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_EQ_OQ), x, r);    /* u == 1: x */
    r = SEL(_mm256_cmp_ps(u, S1(INFINITY), _CMP_EQ_OQ), u, r);           /* +inf */
    r = SEL(_mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_EQ_OQ), S1(-INFINITY), r);
    r = SEL(LT(u, _mm256_setzero_ps()), S1(NAN), r);
    return SEL(ISNAN(x), x, r);
}

NN_VMI __m256 nn_v_erf(__m256 x0)
{
    const __m256 x = _mm256_min_ps(_mm256_max_ps(x0, S1(-4.f)), S1(4.f));
    const __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = S1(-2.72614225801306e-10f);
    p = FMA(x2, p, S1(2.77068142495902e-08f));
    p = FMA(x2, p, S1(-2.10102402082508e-06f));
    p = FMA(x2, p, S1(-5.69250639462346e-05f));
    p = FMA(x2, p, S1(-7.34990630326855e-04f));
    p = FMA(x2, p, S1(-2.95459980854025e-03f));
    p = FMA(x2, p, S1(-1.60960333262415e-02f));
    p = _mm256_mul_ps(x, p);
    __m256 q = S1(-1.45660718464996e-05f);
    q = FMA(x2, q, S1(-2.13374055278905e-04f));
    q = FMA(x2, q, S1(-1.68282697438203e-03f));
    q = FMA(x2, q, S1(-7.37332916720468e-03f));
    q = FMA(x2, q, S1(-1.42647390514189e-02f));
    __m256 r = _mm256_div_ps(p, q);
    r = SEL(LT(ABS(x0), S1(0x1p-12f)), _mm256_mul_ps(x0, S1(1.12837916709551257f)), r);
    return SEL(ISNAN(x0), x0, r);
}

/* sin (cosine = 0) or cos (cosine = 1) of |x| ≤ 8192 */
NN_VMI __m256 nn_v_sincos(__m256 x, const int cosine)
{
    const __m256 ax = ABS(x);
    __m256i j = _mm256_cvttps_epi32(_mm256_mul_ps(ax, S1(1.27323954473516f)));  /* 4/π */
    j = _mm256_and_si256(_mm256_add_epi32(j, _mm256_set1_epi32(1)), _mm256_set1_epi32(~1));
    const __m256 y = _mm256_cvtepi32_ps(j);
    __m256 r = _mm256_fnmadd_ps(y, S1(0.78515625f), ax);
    r = _mm256_fnmadd_ps(y, S1(2.4187564849853515625e-4f), r);
    r = _mm256_fnmadd_ps(y, S1(3.77489497744594108e-8f), r);
    if (cosine) j = _mm256_add_epi32(j, _mm256_set1_epi32(2));
    /* octant j (even): 0 → sin r, 2 → cos r, 4 → −sin r, 6 → −cos r */
    const __m256 z = _mm256_mul_ps(r, r);
    __m256 s = S1(-1.9515295891E-4f);
    s = FMA(s, z, S1(8.3321608736E-3f));
    s = FMA(s, z, S1(-1.6666654611E-1f));
    s = FMA(_mm256_mul_ps(s, z), r, r);
    __m256 c = S1(2.443315711809948E-5f);
    c = FMA(c, z, S1(-1.388731625493765E-3f));
    c = FMA(c, z, S1(4.166664568298827E-2f));
    c = FMA(_mm256_mul_ps(c, z), z, FMA(z, S1(-0.5f), S1(1.0f)));
    const __m256 usecos = _mm256_castsi256_ps(
        _mm256_cmpeq_epi32(_mm256_and_si256(j, _mm256_set1_epi32(2)), _mm256_set1_epi32(2)));
    __m256 v = SEL(usecos, c, s);
    const __m256 neg = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_and_si256(j, _mm256_set1_epi32(4)), 29));
    v = _mm256_xor_ps(v, neg);
    if (!cosine) v = _mm256_xor_ps(v, SIGN(x));   /* sin is odd */
    return v;
}

NN_VMI __m256 nn_v_apply(const int fn, __m256 x)
{
    switch (fn) {
    case NN_VM_EXP: return nn_v_exp(x);
    case NN_VM_EXPM1: return nn_v_expm1(x);
    case NN_VM_TANH: return nn_v_tanh(x);
    case NN_VM_SIGMOID: return nn_v_sigmoid(x);
    case NN_VM_LOG1P: return nn_v_log1p(x);
    case NN_VM_ERF: return nn_v_erf(x);
    case NN_VM_SIN: return nn_v_sincos(x, 0);
    default: return nn_v_sincos(x, 1);
    }
}

/* sin/cos: lanes with |x| > 8192, ±inf or NaN go to libm. */
NN_VMI __m256 nn_v_apply_checked(const int fn, __m256 x)
{
    __m256 y = nn_v_apply(fn, x);
    if (fn == NN_VM_SIN || fn == NN_VM_COS) {
        const __m256 bad = _mm256_cmp_ps(ABS(x), S1(8192.f), _CMP_NLE_UQ);   /* !(|x| <= 8192) */
        if (_mm256_movemask_ps(bad)) {
            float xs[8], ys[8];
            _mm256_storeu_ps(xs, x);
            _mm256_storeu_ps(ys, y);
            for (int i = 0; i < 8; i++)
                if (!(fabsf(xs[i]) <= 8192.f)) ys[i] = fn == NN_VM_SIN ? sinf(xs[i]) : cosf(xs[i]);
            y = _mm256_loadu_ps(ys);
        }
    }
    return y;
}

/* y[i] = fn(x[i]); the tail through a zero-padded block of 8 */
NN_VM static void nn_vm_array(const int fn, float *y, const float *x, long n)
{
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, nn_v_apply_checked(fn, _mm256_loadu_ps(x + i)));
    if (i < n) {
        float t[8] = {0};
        memcpy(t, x + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(t, nn_v_apply_checked(fn, _mm256_loadu_ps(t)));
        memcpy(y + i, t, (size_t)(n - i) * sizeof(float));
    }
}

/* activation codes (activations.pxd) */
enum { A_ELU = 3, A_GELU = 4, A_TANH = 5, A_SIGMOID = 6, A_SOFTPLUS = 7, A_SIN = 8 };

NN_VMI __m256 nn_v_act_fwd(const int code, __m256 f)
{
    const __m256 zero = _mm256_setzero_ps();
    switch (code) {
    case A_ELU: return SEL(GT(f, zero), f, nn_v_expm1(_mm256_min_ps(f, zero)));
    case A_GELU:
        return _mm256_mul_ps(_mm256_mul_ps(S1(0.5f), f),
                             _mm256_add_ps(S1(1.0f), nn_v_erf(_mm256_mul_ps(f, S1(0.70710678118654752f)))));
    case A_TANH: return nn_v_tanh(f);
    case A_SIGMOID: return nn_v_sigmoid(f);
    case A_SOFTPLUS:
        return _mm256_add_ps(_mm256_max_ps(f, zero),
                             nn_v_log1p(nn_v_exp(_mm256_or_ps(ABS(f), S1(-0.0f)))));
    default: return nn_v_apply_checked(NN_VM_SIN, f);
    }
}

NN_VMI __m256 nn_v_act_bwd(const int code, __m256 d, __m256 f)
{
    switch (code) {
    case A_GELU: {
        const __m256 cdf = _mm256_mul_ps(S1(0.5f), _mm256_add_ps(S1(1.0f),
                                         nn_v_erf(_mm256_mul_ps(f, S1(0.70710678118654752f)))));
        const __m256 pdf = _mm256_mul_ps(S1(0.39894228040143267794f),
                                         nn_v_exp(_mm256_mul_ps(S1(-0.5f), _mm256_mul_ps(f, f))));
        return _mm256_mul_ps(d, FMA(f, pdf, cdf));
    }
    case A_SOFTPLUS: return _mm256_mul_ps(d, nn_v_sigmoid(f));
    default: return _mm256_mul_ps(d, nn_v_apply_checked(NN_VM_COS, f));
    }
}

NN_VM static void nn_vact_fwd_avx2(const int code, float *h, const float *f, long n)
{
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(h + i, nn_v_act_fwd(code, _mm256_loadu_ps(f + i)));
    if (i < n) {
        float t[8] = {0};
        memcpy(t, f + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(t, nn_v_act_fwd(code, _mm256_loadu_ps(t)));
        memcpy(h + i, t, (size_t)(n - i) * sizeof(float));
    }
}

NN_VM static void nn_vact_bwd_avx2(const int code, float *d, const float *f, long n)
{
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, nn_v_act_bwd(code, _mm256_loadu_ps(d + i), _mm256_loadu_ps(f + i)));
    if (i < n) {
        float td[8] = {0}, tf[8] = {0};
        memcpy(td, d + i, (size_t)(n - i) * sizeof(float));
        memcpy(tf, f + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(td, nn_v_act_bwd(code, _mm256_loadu_ps(td), _mm256_loadu_ps(tf)));
        memcpy(d + i, td, (size_t)(n - i) * sizeof(float));
    }
}

/* ======================= float64: 4 lanes ======================= */
#define D1 _mm256_set1_pd
#define DFMA _mm256_fmadd_pd
#define DABS(x) _mm256_andnot_pd(D1(-0.0), (x))
#define DSIGN(x) _mm256_and_pd(D1(-0.0), (x))
#define DLT(a, b) _mm256_cmp_pd((a), (b), _CMP_LT_OQ)
#define DGT(a, b) _mm256_cmp_pd((a), (b), _CMP_GT_OQ)
#define DEQ(a, b) _mm256_cmp_pd((a), (b), _CMP_EQ_OQ)
#define DISNAN(a) _mm256_cmp_pd((a), (a), _CMP_UNORD_Q)
#define DSEL(m, a, b) _mm256_blendv_pd((b), (a), (m))

/* 2^n for integer-valued n (as double) in [-1022, 1023]: the magic 1.5·2^52 puts n in the low
   bits (AVX2 has no double → int64 conversion) */
NN_VMI __m256d nn_d_pow2(__m256d n)
{
    const __m256d magic = D1(6755399441055744.0);
    const __m256i ni = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n, magic)),
                                        _mm256_castpd_si256(magic));
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(ni, _mm256_set1_epi64x(1023)), 52));
}

/* Horner with 1/k! coefficients: sum_{k=k0}^{k1} r^(k-k0)/k! */
NN_VMI __m256d nn_d_taylor(__m256d r, const int k0, const int k1)
{
    double c = 1.0;
    for (int k = 2; k <= k1; k++) c /= k;   /* 1/k1! (constant-folded) */
    __m256d p = D1(c);
    for (int k = k1 - 1; k >= k0; k--) {
        c *= (k + 1);                         /* 1/k! */
        p = DFMA(p, r, D1(c));
    }
    return p;
}

NN_VMI __m256d nn_d_exp(__m256d x)
{
    const __m256d xc = _mm256_min_pd(_mm256_max_pd(x, D1(-760.0)), D1(720.0));
    const __m256d n = _mm256_round_pd(_mm256_mul_pd(xc, D1(1.4426950408889634074)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(n, D1(6.93147180369123816490e-01), xc);
    r = _mm256_fnmadd_pd(n, D1(1.90821492927058770002e-10), r);
    /* e^r = 1 + r + r²·(1/2! + r/3! + … + r^12/14!), |r| ≤ 0.347 */
    const __m256d p = nn_d_taylor(r, 2, 14);
    __m256d y = _mm256_add_pd(DFMA(p, _mm256_mul_pd(r, r), r), D1(1.0));
    const __m256d n1 = _mm256_floor_pd(_mm256_mul_pd(n, D1(0.5)));
    y = _mm256_mul_pd(_mm256_mul_pd(y, nn_d_pow2(n1)), nn_d_pow2(_mm256_sub_pd(n, n1)));
    y = DSEL(DGT(x, D1(709.782712893383973096)), D1(INFINITY), y);
    y = DSEL(DLT(x, D1(-745.1332191019412076235)), _mm256_setzero_pd(), y);
    return DSEL(DISNAN(x), x, y);
}

NN_VMI __m256d nn_d_expm1(__m256d x)
{
    /* |x| < 0.35: x + x²·(1/2! + x/3! + … + x^14/16!) */
    const __m256d small = DFMA(_mm256_mul_pd(x, x), nn_d_taylor(x, 2, 16), x);
    const __m256d big = _mm256_sub_pd(nn_d_exp(x), D1(1.0));
    const __m256d r = DSEL(DLT(DABS(x), D1(0.35)), small, big);
    return DSEL(DEQ(x, _mm256_setzero_pd()), x, r);   /* ±0 */
}

NN_VMI __m256d nn_d_tanh(__m256d x)
{
    /* on |x| (≤ 20: beyond, tanh rounds to 1), e^{2|x|} − 1 = e: tanh = e / (e + 2) */
    const __m256d ax = _mm256_min_pd(DABS(x), D1(20.0));
    const __m256d e = nn_d_expm1(_mm256_add_pd(ax, ax));
    const __m256d r = _mm256_or_pd(_mm256_div_pd(e, _mm256_add_pd(e, D1(2.0))), DSIGN(x));
    return DSEL(DISNAN(x), x, r);
}

NN_VMI __m256d nn_d_sigmoid(__m256d x)
{
    const __m256d e = nn_d_exp(_mm256_or_pd(DABS(x), D1(-0.0)));
    const __m256d num = DSEL(DLT(x, _mm256_setzero_pd()), e, D1(1.0));
    return _mm256_div_pd(num, _mm256_add_pd(D1(1.0), e));
}

/* log of normal finite u > 0: u = 2^e·m, m in [√½, √2), log m = 2·atanh((m−1)/(m+1)) */
NN_VMI __m256d nn_d_log_pos(__m256d u)
{
    const __m256i bits = _mm256_castpd_si256(u);
    const __m256d two52 = D1(4503599627370496.0);
    __m256d e = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(bits, 52),
                                                                  _mm256_castpd_si256(two52))),
                              two52);
    e = _mm256_sub_pd(e, D1(1022.0));
    __m256d m = _mm256_castsi256_pd(_mm256_or_si256(
        _mm256_and_si256(bits, _mm256_set1_epi64x(0x000fffffffffffffLL)),
        _mm256_set1_epi64x(0x3fe0000000000000LL)));                       /* [0.5, 1) */
    const __m256d lt = DLT(m, D1(0.70710678118654752440));
    e = _mm256_sub_pd(e, _mm256_and_pd(lt, D1(1.0)));
    m = _mm256_add_pd(m, _mm256_and_pd(lt, m));
    const __m256d f = _mm256_sub_pd(m, D1(1.0));
    const __m256d s = _mm256_div_pd(f, _mm256_add_pd(f, D1(2.0)));
    const __m256d z = _mm256_mul_pd(s, s);
    __m256d p = D1(1.0 / 25);
    for (int k = 23; k >= 3; k -= 2) p = DFMA(p, z, D1(1.0 / k));
    /* log m = 2s + 2s·z·p = f − (f − 2s) + …: written as 2s(1 + z·p) */
    const __m256d lm = DFMA(_mm256_mul_pd(_mm256_add_pd(s, s), z), p, _mm256_add_pd(s, s));
    return DFMA(e, D1(6.93147180369123816490e-01), DFMA(e, D1(1.90821492927058770002e-10), lm));
}

NN_VMI __m256d nn_d_log1p(__m256d x)
{
    const __m256d u = _mm256_add_pd(D1(1.0), x);
    const __m256d d = _mm256_sub_pd(u, D1(1.0));
    const __m256d us = _mm256_max_pd(u, D1(1e-300));
    __m256d r = _mm256_mul_pd(nn_d_log_pos(us), _mm256_div_pd(x, d));
    r = DSEL(DEQ(d, _mm256_setzero_pd()), x, r);
    r = DSEL(DEQ(u, D1(INFINITY)), u, r);
    r = DSEL(DEQ(u, _mm256_setzero_pd()), D1(-INFINITY), r);
    r = DSEL(DLT(u, _mm256_setzero_pd()), D1(NAN), r);
    return DSEL(DISNAN(x), x, r);
}

/* sin (cosine 0) or cos (1) for |x| ≤ 65536: octant j of π/4 (three-part π/4, Cephes' DP1-3),
   Taylor polynomials to r^17 / r^18 on |r| ≤ π/4 */
NN_VMI __m256d nn_d_sincos(__m256d x, const int cosine)
{
    const __m256d ax = DABS(x);
    __m256d y = _mm256_floor_pd(_mm256_mul_pd(ax, D1(1.27323954473516268615)));
    y = _mm256_add_pd(y, _mm256_and_pd(D1(1.0), _mm256_castsi256_pd(_mm256_cmpeq_epi64(
        _mm256_and_si256(_mm256_castpd_si256(_mm256_add_pd(y, D1(6755399441055744.0))),
                         _mm256_set1_epi64x(1)), _mm256_set1_epi64x(1)))));   /* odd j → j+1 */
    __m256d r = _mm256_fnmadd_pd(y, D1(7.85398125648498535156E-1), ax);
    r = _mm256_fnmadd_pd(y, D1(3.77489470793079817668E-8), r);
    r = _mm256_fnmadd_pd(y, D1(2.69515142907905952645E-15), r);
    __m256i j = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(y, D1(6755399441055744.0))),
                                 _mm256_castpd_si256(D1(6755399441055744.0)));
    if (cosine) j = _mm256_add_epi64(j, _mm256_set1_epi64x(2));
    const __m256d z = _mm256_mul_pd(r, r);
    /* sin r = r + r·z·(−1/3! + z/5! − …), cos r = 1 − z/2 + z²·(1/4! − z/6! + …) */
    double c = 1.0;
    for (int k = 2; k <= 17; k++) c /= k;            /* 1/17! */
    __m256d ps = D1(c);
    for (int k = 15; k >= 3; k -= 2) { c *= (double)(k + 1) * (k + 2); ps = DFMA(ps, z, D1((((k - 1) / 2) % 2) ? -c : c)); }
    const __m256d sn = DFMA(_mm256_mul_pd(r, z), ps, r);
    c = 1.0;
    for (int k = 2; k <= 18; k++) c /= k;            /* 1/18! */
    __m256d pc = D1(-c);
    for (int k = 16; k >= 4; k -= 2) { c *= (double)(k + 1) * (k + 2); pc = DFMA(pc, z, D1(((k / 2) % 2) ? -c : c)); }
    const __m256d cs = DFMA(_mm256_mul_pd(z, z), pc, DFMA(z, D1(-0.5), D1(1.0)));
    const __m256d usecos = _mm256_castsi256_pd(_mm256_cmpeq_epi64(
        _mm256_and_si256(j, _mm256_set1_epi64x(2)), _mm256_set1_epi64x(2)));
    __m256d v = DSEL(usecos, cs, sn);
    v = _mm256_xor_pd(v, _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_and_si256(j, _mm256_set1_epi64x(4)), 61)));
    if (!cosine) v = _mm256_xor_pd(v, DSIGN(x));
    return v;
}

NN_VMI __m256d nn_d_apply(const int fn, __m256d x)
{
    switch (fn) {
    case NN_VM_EXP: return nn_d_exp(x);
    case NN_VM_EXPM1: return nn_d_expm1(x);
    case NN_VM_TANH: return nn_d_tanh(x);
    case NN_VM_SIGMOID: return nn_d_sigmoid(x);
    case NN_VM_LOG1P: return nn_d_log1p(x);
    case NN_VM_SIN: case NN_VM_COS: {
        __m256d y = nn_d_sincos(x, fn == NN_VM_COS);
        if (_mm256_movemask_pd(_mm256_cmp_pd(DABS(x), D1(65536.0), _CMP_NLE_UQ))) {
            double xs[4], ys[4];
            _mm256_storeu_pd(xs, x);
            _mm256_storeu_pd(ys, y);
            for (int i = 0; i < 4; i++)
                if (!(fabs(xs[i]) <= 65536.0)) ys[i] = fn == NN_VM_SIN ? sin(xs[i]) : cos(xs[i]);
            y = _mm256_loadu_pd(ys);
        }
        return y;
    }
    default: {   /* erf: libm per lane (no vector version in float64) */
        double xs[4];
        _mm256_storeu_pd(xs, x);
        for (int i = 0; i < 4; i++) xs[i] = erf(xs[i]);
        return _mm256_loadu_pd(xs);
    }
    }
}

NN_VM static void nn_vmd_array(const int fn, double *y, const double *x, long n)
{
    long i = 0;
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(y + i, nn_d_apply(fn, _mm256_loadu_pd(x + i)));
    if (i < n) {
        double t[4] = {0};
        memcpy(t, x + i, (size_t)(n - i) * sizeof(double));
        _mm256_storeu_pd(t, nn_d_apply(fn, _mm256_loadu_pd(t)));
        memcpy(y + i, t, (size_t)(n - i) * sizeof(double));
    }
}

NN_VMI __m256d nn_d_act_fwd(const int code, __m256d f)
{
    const __m256d zero = _mm256_setzero_pd();
    switch (code) {
    case A_ELU: return DSEL(DGT(f, zero), f, nn_d_expm1(_mm256_min_pd(f, zero)));
    case A_GELU:
        return _mm256_mul_pd(_mm256_mul_pd(D1(0.5), f), _mm256_add_pd(D1(1.0),
                             nn_d_apply(NN_VM_ERF, _mm256_mul_pd(f, D1(0.70710678118654752440)))));
    case A_TANH: return nn_d_tanh(f);
    case A_SIGMOID: return nn_d_sigmoid(f);
    case A_SOFTPLUS:
        return _mm256_add_pd(_mm256_max_pd(f, zero),
                             nn_d_log1p(nn_d_exp(_mm256_or_pd(DABS(f), D1(-0.0)))));
    default: return nn_d_apply(NN_VM_SIN, f);
    }
}

NN_VMI __m256d nn_d_act_bwd(const int code, __m256d d, __m256d f)
{
    switch (code) {
    case A_GELU: {
        const __m256d cdf = _mm256_mul_pd(D1(0.5), _mm256_add_pd(D1(1.0),
                                          nn_d_apply(NN_VM_ERF, _mm256_mul_pd(f, D1(0.70710678118654752440)))));
        const __m256d pdf = _mm256_mul_pd(D1(0.39894228040143267794),
                                          nn_d_exp(_mm256_mul_pd(D1(-0.5), _mm256_mul_pd(f, f))));
        return _mm256_mul_pd(d, DFMA(f, pdf, cdf));
    }
    case A_SOFTPLUS: return _mm256_mul_pd(d, nn_d_sigmoid(f));
    default: return _mm256_mul_pd(d, nn_d_apply(NN_VM_COS, f));
    }
}

NN_VM static void nn_vactd_fwd_avx2(const int code, double *h, const double *f, long n)
{
    long i = 0;
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(h + i, nn_d_act_fwd(code, _mm256_loadu_pd(f + i)));
    if (i < n) {
        double t[4] = {0};
        memcpy(t, f + i, (size_t)(n - i) * sizeof(double));
        _mm256_storeu_pd(t, nn_d_act_fwd(code, _mm256_loadu_pd(t)));
        memcpy(h + i, t, (size_t)(n - i) * sizeof(double));
    }
}

NN_VM static void nn_vactd_bwd_avx2(const int code, double *d, const double *f, long n)
{
    long i = 0;
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(d + i, nn_d_act_bwd(code, _mm256_loadu_pd(d + i), _mm256_loadu_pd(f + i)));
    if (i < n) {
        double td[4] = {0}, tf[4] = {0};
        memcpy(td, d + i, (size_t)(n - i) * sizeof(double));
        memcpy(tf, f + i, (size_t)(n - i) * sizeof(double));
        _mm256_storeu_pd(td, nn_d_act_bwd(code, _mm256_loadu_pd(td), _mm256_loadu_pd(tf)));
        memcpy(d + i, td, (size_t)(n - i) * sizeof(double));
    }
}
#endif /* NN_VM_X86 */

int nn_vm_f32(int fn, float *y, const float *x, long n)
{
#if NN_VM_X86
    if (fn >= 0 && fn < NN_VM_COUNT && nn_vm_enabled()) {
        nn_vm_array(fn, y, x, n);
        return 1;
    }
#endif
    (void)fn; (void)y; (void)x; (void)n;
    return 0;
}

int nn_vact_fwd_f32(int code, float *h, const float *f, long n)
{
#if NN_VM_X86
    if (code >= A_ELU && code <= A_SIN && nn_vm_enabled()) {
        nn_vact_fwd_avx2(code, h, f, n);
        return 1;
    }
#endif
    (void)code; (void)h; (void)f; (void)n;
    return 0;
}

int nn_vact_bwd_f32(int code, float *d, const float *f, long n)
{
#if NN_VM_X86
    if ((code == A_GELU || code == A_SOFTPLUS || code == A_SIN) && nn_vm_enabled()) {
        nn_vact_bwd_avx2(code, d, f, n);
        return 1;
    }
#endif
    (void)code; (void)d; (void)f; (void)n;
    return 0;
}

int nn_vm_f64(int fn, double *y, const double *x, long n)
{
#if NN_VM_X86
    if (fn >= 0 && fn < NN_VM_COUNT && fn != NN_VM_ERF && nn_vm_enabled()) {
        nn_vmd_array(fn, y, x, n);
        return 1;
    }
#endif
    (void)fn; (void)y; (void)x; (void)n;
    return 0;
}

int nn_vact_fwd_f64(int code, double *h, const double *f, long n)
{
#if NN_VM_X86
    if (code >= A_ELU && code <= A_SIN && nn_vm_enabled()) {
        nn_vactd_fwd_avx2(code, h, f, n);
        return 1;
    }
#endif
    (void)code; (void)h; (void)f; (void)n;
    return 0;
}

int nn_vact_bwd_f64(int code, double *d, const double *f, long n)
{
#if NN_VM_X86
    if ((code == A_GELU || code == A_SOFTPLUS || code == A_SIN) && nn_vm_enabled()) {
        nn_vactd_bwd_avx2(code, d, f, n);
        return 1;
    }
#endif
    (void)code; (void)d; (void)f; (void)n;
    return 0;
}
