/* gemm_kernels.c -- the per-dtype compute kernels of our GEMM: register-tile parameters, the
 * portable micro-kernel, the AVX2+FMA micro-kernels (packed and unpacked-A "sup") and the AVX2
 * dot path. A template: gemm_dispatch.c includes it once per element type, after defining
 * NN_T (float or double), NN_SUFFIX (f32 or f64) and NN_IS_F32 (1 or 0), and then includes
 * gemm_driver.c, which uses these kernels and #undefs the per-type parameters defined here.
 * Needs gemm_common.h.
 */

/* ---- per-type parameters (undefined at the end of gemm_driver.c) ---- */
#define NN_FN(name) NN_CAT(name, NN_SUFFIX)

#if NN_IS_F32
/* fp32: AVX2 6x16, generic 4x8 */
#define NN_MR   6
#define NN_NR   16
#define NN_MC   NN_GEMM_MC_F32
#define NN_KC   NN_GEMM_KC_F32
#define NN_NC   NN_GEMM_NC_F32
#define NN_ZMC  NN_GEMM_ZMC_F32
#define NN_ZKC  NN_GEMM_ZKC_F32
#define NN_ZNC  NN_GEMM_ZNC_F32
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
#define NN_ZMC  NN_GEMM_ZMC_F64
#define NN_ZKC  NN_GEMM_ZKC_F64
#define NN_ZNC  NN_GEMM_ZNC_F64
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

/*   edge  : an mr x nr tile (mr <= MR, nr <= NR) written straight into C with masked stores
 *           (AVX-512), instead of through a temporary tile; b(k, j) = b[k*ldb + j], a packed
 *           micro-panel (ldb = NR) or B's rows in place (B's row stride; masked loads) */
typedef void (*NN_FN(nn_ukr_edge_t_))(int mr, int nr, long kc, const NN_T *a, long rsa, long csa,
                                      const NN_T *b, long ldb, NN_T *c, long ldc, NN_T beta);

/*   panel : rows 0..r-1 (r <= mr, returned) of nt full column tiles along a row of C, A's mr
 *           rows as for sup (or a packed micro-panel: rsa 1, csa MR); tile t reads
 *           b + t*NR*bcol with row stride bk */
typedef long (*NN_FN(nn_ukr_panel_t_))(int mr, long nt, long kc, const NN_T *a, long rsa,
                                       long csa, const NN_T *b, long bcol, long bk, NN_T *c,
                                       long ldc, NN_T beta);

typedef struct {
    int mr, nr;
    long mc, kc, nc;
    NN_FN(nn_ukr_packed_t_) packed;
    NN_FN(nn_ukr_sup_t_) sup;          /* may be NULL: then A is always packed */
    NN_FN(nn_ukr_edge_t_) edge;        /* may be NULL: edges go through a temporary tile, and
                                          B is always packed */
    NN_FN(nn_ukr_panel_t_) panel;      /* may be NULL: one call per tile */
    long rows_outer_kc;                /* K blocks up to this long: row tiles outer */
} NN_FN(nn_gemm_cfg_t_);

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
#if NN_IS_F32
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
#if NN_IS_F32
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

/* ---- AVX-512 micro-kernels (chosen at run time on CPUs with avx512f: Intel server cores
   have two 512-bit FMA pipes, twice the AVX2 rate) ----
   12 x 32 (f32) / 12 x 16 (f64): 24 zmm accumulators + 2 for B + 1 broadcast of 32 registers;
   24 independent FMA chains cover 2 pipes x 4-cycle latency three times over.  The K loop is
   unrolled by 4 and prefetches B's micro-panel 8 steps ahead (A's micro-panel is small and
   streams from L1/L2 on its own).  Arrays of accumulators indexed by constants after full
   unrolling stay in registers. */
#define NN_ZMR 12
#if NN_IS_F32
#define NN_ZT        __m512
#define NN_ZL        16
#define NN_ZNR       32
#define NN_ZLOAD     _mm512_loadu_ps
#define NN_ZSTORE    _mm512_storeu_ps
#define NN_ZSET1     _mm512_set1_ps
#define NN_ZFMA      _mm512_fmadd_ps
#define NN_ZZERO     _mm512_setzero_ps
#define NN_ZMASK     __mmask16
#define NN_ZMSTORE   _mm512_mask_storeu_ps
#define NN_ZMLOAD    _mm512_maskz_loadu_ps
#else
#define NN_ZT        __m512d
#define NN_ZL        8
#define NN_ZNR       16
#define NN_ZLOAD     _mm512_loadu_pd
#define NN_ZSTORE    _mm512_storeu_pd
#define NN_ZSET1     _mm512_set1_pd
#define NN_ZFMA      _mm512_fmadd_pd
#define NN_ZZERO     _mm512_setzero_pd
#define NN_ZMASK     __mmask8
#define NN_ZMSTORE   _mm512_mask_storeu_pd
#define NN_ZMLOAD    _mm512_maskz_loadu_pd
#endif

/* b(k, j) = b[k*bk + j]: bk = NN_ZNR for a packed micro-panel, B's row stride when B is read in
   place (then bmask: columns nr.. are masked off in the loads too, they may lie past B's end). */
NN_AVX512 NN_INLINE void NN_FN(nn_ukr_avx512_body_)(const int mr, long kc, const NN_T *a,
                                                    const long rsa, const long csa, const NN_T *b,
                                                    const long bk, NN_T *c, long ldc, NN_T beta,
                                                    const int masked, const int nr, const int bmask)
{
    NN_ZT c0[NN_ZMR], c1[NN_ZMR];
    const unsigned full = (1u << NN_ZL) - 1;
    const NN_ZMASK k0 = (NN_ZMASK)(nr >= NN_ZL ? full : (1u << nr) - 1);
    const NN_ZMASK k1 = (NN_ZMASK)(nr >= 2 * NN_ZL ? full : nr > NN_ZL ? (1u << (nr - NN_ZL)) - 1 : 0);
#pragma GCC unroll 12
    for (int i = 0; i < NN_ZMR; i++)
        if (i < mr && !bmask) {   /* the C tile row, two lines (not for edge/in-place tiles) */
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * ldc + NN_ZNR - 1), _MM_HINT_T0);
        }
#pragma GCC unroll 12
    for (int i = 0; i < NN_ZMR; i++) { c0[i] = NN_ZZERO(); c1[i] = NN_ZZERO(); }
#pragma GCC unroll 4
    for (long k = 0; k < kc; k++) {
        const NN_ZT b0 = bmask ? NN_ZMLOAD(k0, b) : NN_ZLOAD(b);
        const NN_ZT b1 = bmask ? NN_ZMLOAD(k1, b + NN_ZL) : NN_ZLOAD(b + NN_ZL);
        _mm_prefetch((const char *)(b + 8 * bk), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + 8 * bk + NN_ZL), _MM_HINT_T0);
#pragma GCC unroll 12
        for (int i = 0; i < NN_ZMR; i++)
            if (i < mr) {
                const NN_ZT av = NN_ZSET1(a[i * rsa]);
                c0[i] = NN_ZFMA(av, b0, c0[i]);
                c1[i] = NN_ZFMA(av, b1, c1[i]);
            }
        a += csa;
        b += bk;
    }
    if (masked) {   /* columns nr.. of the tile are outside C: masked loads and stores */
#pragma GCC unroll 12
        for (int i = 0; i < NN_ZMR; i++)
            if (i < mr) {
                NN_T *cr = c + i * ldc;
                if (beta == 0) {
                    NN_ZMSTORE(cr, k0, c0[i]);
                    NN_ZMSTORE(cr + NN_ZL, k1, c1[i]);
                } else {
                    const NN_ZT bv = NN_ZSET1(beta);
                    NN_ZMSTORE(cr, k0, NN_ZFMA(bv, NN_ZMLOAD(k0, cr), c0[i]));
                    NN_ZMSTORE(cr + NN_ZL, k1, NN_ZFMA(bv, NN_ZMLOAD(k1, cr + NN_ZL), c1[i]));
                }
            }
        return;
    }
#pragma GCC unroll 12
    for (int i = 0; i < NN_ZMR; i++)
        if (i < mr) {
            NN_T *cr = c + i * ldc;
            if (beta == 0) { NN_ZSTORE(cr, c0[i]); NN_ZSTORE(cr + NN_ZL, c1[i]); }
            else {
                const NN_ZT bv = NN_ZSET1(beta);
                NN_ZSTORE(cr, NN_ZFMA(bv, NN_ZLOAD(cr), c0[i]));
                NN_ZSTORE(cr + NN_ZL, NN_ZFMA(bv, NN_ZLOAD(cr + NN_ZL), c1[i]));
            }
        }
}

NN_AVX512 static void NN_FN(nn_ukr_avx512_packed_)(long kc, const NN_T *a, const NN_T *b, NN_T *c,
                                                   long ldc, NN_T beta)
{
    NN_FN(nn_ukr_avx512_body_)(NN_ZMR, kc, a, 1, NN_ZMR, b, NN_ZNR, c, ldc, beta, 0, NN_ZNR, 0);
}

/* ---- rows of tiles in one call (the driver's rows-outer sweep, C row-major) ----
   panel: C[0:mr, 0:nt*NN_ZNR] for one K block; column tile t reads B at b + t*NN_ZNR*bcol
   (bcol = kc: packed micro-panels; bcol = 1: B's rows in place) with row stride bk.  Returns
   the rows it computed (the driver does the rest tile by tile): what it saves is the driver's
   call per tile (two indirect calls and the tile's set-up).
   - K <= NN_ZPANEL_K with A's rows in place (A's row stride rsa, unit stride along k): a
     kernel compiled for that K, on 6 x 64 (f32) / 6 x 32 (f64) tiles -- two column tiles at a
     time: 4 loads of B and 6 broadcasts per 24 FMAs, and each row of C written 256 bytes at a
     time (with K = 10, 128 x 128 x 10 (δ·Ω of a 10-output layer), storing C is a large part of
     the work, and numpy's arrays start 48 bytes into a cache line: a 128-byte row piece
     touches 3 lines, a 256-byte one 5).  Rows in groups of 6.  No B prefetching (a few rows,
     in L1); C's row pieces prefetched when a tile starts (256 x 2048 x 10: C comes from L3).
   - otherwise 12 full rows on the 12 x NN_ZNR body (0 rows for fewer).
   Every C element gets the same FMA sequence as on the per-tile kernels (k ascending from a
   zeroed accumulator), whichever kernel computes it: the results do not depend on the path. */
#define NN_ZPANEL_K 16

/* 6 rows x W column tiles (W = 1 or 2; tile w's B at bw[w]), A's rows in place */
NN_AVX512 NN_INLINE void NN_FN(nn_ukr_avx512_r6_)(const int W, long kc, const NN_T *a,
                                                  const long rsa, const NN_T *b0p,
                                                  const NN_T *b1p, const long bk, NN_T *c,
                                                  long ldc, NN_T beta)
{
    NN_ZT acc[6][4];
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
#pragma GCC unroll 4
        for (int v = 0; v < 2 * W; v++) acc[i][v] = NN_ZZERO();
#pragma GCC unroll 5
        for (int l = 0; l <= 2 * W; l++)   /* every line of the row piece, also when misaligned */
            _mm_prefetch((const char *)(c + i * ldc + (l < 2 * W ? l * NN_ZL : 2 * W * NN_ZL - 1)),
                         _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (long k = 0; k < kc; k++) {
        NN_ZT bv[4];
        bv[0] = NN_ZLOAD(b0p);
        bv[1] = NN_ZLOAD(b0p + NN_ZL);
        if (W > 1) { bv[2] = NN_ZLOAD(b1p); bv[3] = NN_ZLOAD(b1p + NN_ZL); }
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            const NN_ZT av = NN_ZSET1(a[i * rsa]);
#pragma GCC unroll 4
            for (int v = 0; v < 2 * W; v++) acc[i][v] = NN_ZFMA(av, bv[v], acc[i][v]);
        }
        a += 1;
        b0p += bk;
        b1p += bk;
    }
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
        NN_T *cr = c + i * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < 2 * W; v++) {
            NN_T *cv = cr + v * NN_ZL;
            if (beta == 0) NN_ZSTORE(cv, acc[i][v]);
            else NN_ZSTORE(cv, NN_ZFMA(NN_ZSET1(beta), NN_ZLOAD(cv), acc[i][v]));
        }
    }
}

/* ng groups of 6 rows, nt column tiles, K fixed */
#define NN_PANELK(K)                                                                             \
    NN_AVX512 static void NN_FN(NN_CAT(nn_ukr_avx512_panel_k, K))(long ng, long nt,              \
                                                                  const NN_T *a, long rsa,       \
                                                                  const NN_T *b, long bcol,      \
                                                                  long bk, NN_T *c, long ldc,    \
                                                                  NN_T beta)                     \
    {                                                                                            \
        const long tstep = NN_ZNR * bcol;                                                        \
        for (long g = 0; g < ng; g++) {                                                          \
            const NN_T *ag = a + g * 6 * rsa;                                                    \
            NN_T *cg = c + g * 6 * ldc;                                                          \
            long t = 0;                                                                          \
            for (; t + 2 <= nt; t += 2)                                                          \
                NN_FN(nn_ukr_avx512_r6_)(2, K, ag, rsa, b + t * tstep, b + (t + 1) * tstep, bk,  \
                                         cg + t * NN_ZNR, ldc, beta);                            \
            if (t < nt)                                                                          \
                NN_FN(nn_ukr_avx512_r6_)(1, K, ag, rsa, b + t * tstep, b, bk, cg + t * NN_ZNR,   \
                                         ldc, beta);                                             \
        }                                                                                        \
    }
NN_PANELK(1) NN_PANELK(2) NN_PANELK(3) NN_PANELK(4) NN_PANELK(5) NN_PANELK(6) NN_PANELK(7)
NN_PANELK(8) NN_PANELK(9) NN_PANELK(10) NN_PANELK(11) NN_PANELK(12) NN_PANELK(13)
NN_PANELK(14) NN_PANELK(15) NN_PANELK(16)
#undef NN_PANELK

/* 12 rows, any K: the 12 x NN_ZNR body per column tile */
#define NN_PANELZ(name, RSA, CSA)                                                                \
    NN_AVX512 static void name(long nt, long kc, const NN_T *a, long rsa, long csa,             \
                               const NN_T *b, long bcol, long bk, NN_T *c, long ldc, NN_T beta)  \
    {                                                                                            \
        (void)rsa; (void)csa;                                                                    \
        for (long t = 0; t < nt; t++)                                                            \
            NN_FN(nn_ukr_avx512_body_)(NN_ZMR, kc, a, RSA, CSA, b + t * NN_ZNR * bcol, bk,       \
                                       c + t * NN_ZNR, ldc, beta, 0, NN_ZNR, 0);              \
    }
NN_PANELZ(NN_FN(nn_ukr_avx512_panel_packed_), 1, NN_ZMR)
NN_PANELZ(NN_FN(nn_ukr_avx512_panel_rows_), rsa, 1)
NN_PANELZ(NN_FN(nn_ukr_avx512_panel_cols_), 1, csa)
#undef NN_PANELZ

static long NN_FN(nn_ukr_avx512_panel_)(int mr, long nt, long kc, const NN_T *a, long rsa,
                                        long csa, const NN_T *b, long bcol, long bk, NN_T *c,
                                        long ldc, NN_T beta)
{
    typedef void (*panelk_t)(long, long, const NN_T *, long, const NN_T *, long, long, NN_T *,
                             long, NN_T);
    static const panelk_t tabk[NN_ZPANEL_K] = {
        NN_FN(nn_ukr_avx512_panel_k1), NN_FN(nn_ukr_avx512_panel_k2),
        NN_FN(nn_ukr_avx512_panel_k3), NN_FN(nn_ukr_avx512_panel_k4),
        NN_FN(nn_ukr_avx512_panel_k5), NN_FN(nn_ukr_avx512_panel_k6),
        NN_FN(nn_ukr_avx512_panel_k7), NN_FN(nn_ukr_avx512_panel_k8),
        NN_FN(nn_ukr_avx512_panel_k9), NN_FN(nn_ukr_avx512_panel_k10),
        NN_FN(nn_ukr_avx512_panel_k11), NN_FN(nn_ukr_avx512_panel_k12),
        NN_FN(nn_ukr_avx512_panel_k13), NN_FN(nn_ukr_avx512_panel_k14),
        NN_FN(nn_ukr_avx512_panel_k15), NN_FN(nn_ukr_avx512_panel_k16)};
    if (csa == 1 && kc >= 1 && kc <= NN_ZPANEL_K) {
        const long ng = mr / 6;
        if (ng) tabk[kc - 1](ng, nt, a, rsa, b, bcol, bk, c, ldc, beta);
        return ng * 6;
    }
    if (mr != NN_ZMR) return 0;
    if (rsa == 1 && csa == NN_ZMR)
        NN_FN(nn_ukr_avx512_panel_packed_)(nt, kc, a, rsa, csa, b, bcol, bk, c, ldc, beta);
    else if (csa == 1)
        NN_FN(nn_ukr_avx512_panel_rows_)(nt, kc, a, rsa, csa, b, bcol, bk, c, ldc, beta);
    else
        NN_FN(nn_ukr_avx512_panel_cols_)(nt, kc, a, rsa, csa, b, bcol, bk, c, ldc, beta);
    return NN_ZMR;
}
#undef NN_ZPANEL_K

/* the 12 fixed-mr instances of a kernel, for a table indexed by mr - 1 */
#define NN_ZTAB(name)                                                                            \
    {NN_FN(NN_CAT(name, 1)), NN_FN(NN_CAT(name, 2)), NN_FN(NN_CAT(name, 3)),                     \
     NN_FN(NN_CAT(name, 4)), NN_FN(NN_CAT(name, 5)), NN_FN(NN_CAT(name, 6)),                     \
     NN_FN(NN_CAT(name, 7)), NN_FN(NN_CAT(name, 8)), NN_FN(NN_CAT(name, 9)),                     \
     NN_FN(NN_CAT(name, 10)), NN_FN(NN_CAT(name, 11)), NN_FN(NN_CAT(name, 12))}

#define NN_SUPZ(m)                                                                               \
    NN_AVX512 static void NN_FN(NN_CAT(nn_ukr_avx512_sup, m))(long kc, const NN_T *a, long rsa,  \
                                                              long csa, const NN_T *b, NN_T *c,  \
                                                              long ldc, NN_T beta)               \
    {                                                                                            \
        if (csa == 1)                                                                            \
            NN_FN(nn_ukr_avx512_body_)(m, kc, a, rsa, 1, b, NN_ZNR, c, ldc, beta, 0, NN_ZNR, 0);  \
        else if (rsa == 1)                                                                       \
            NN_FN(nn_ukr_avx512_body_)(m, kc, a, 1, csa, b, NN_ZNR, c, ldc, beta, 0, NN_ZNR, 0);  \
        else NN_FN(nn_ukr_avx512_body_)(m, kc, a, rsa, csa, b, NN_ZNR, c, ldc, beta, 0, NN_ZNR, 0); \
    }
NN_SUPZ(1) NN_SUPZ(2) NN_SUPZ(3) NN_SUPZ(4) NN_SUPZ(5) NN_SUPZ(6)
NN_SUPZ(7) NN_SUPZ(8) NN_SUPZ(9) NN_SUPZ(10) NN_SUPZ(11) NN_SUPZ(12)
#undef NN_SUPZ

static void NN_FN(nn_ukr_avx512_sup_)(int mr, long kc, const NN_T *a, long rsa, long csa,
                                      const NN_T *b, NN_T *c, long ldc, NN_T beta)
{
    typedef void (*fixed_t)(long, const NN_T *, long, long, const NN_T *, NN_T *, long, NN_T);
    static const fixed_t tab[NN_ZMR] = NN_ZTAB(nn_ukr_avx512_sup);
    tab[(mr < 1 ? 1 : mr > NN_ZMR ? NN_ZMR : mr) - 1](kc, a, rsa, csa, b, c, ldc, beta);
}

/* any mr x nr tile, masked (corner tiles, and tiles reading B in place):
   A strided (packed panels: rsa 1, csa MR); b(k, j) = b[k*ldb + j] (a packed micro-panel:
   ldb = NN_ZNR; B's rows in place: B's row stride, where a packed B would be read once). */
#define NN_EDGEZ(m)                                                                              \
    NN_AVX512 static void NN_FN(NN_CAT(nn_ukr_avx512_edge, m))(int nr, long kc, const NN_T *a,   \
                                                               long rsa, long csa,               \
                                                               const NN_T *b, long ldb, NN_T *c, \
                                                               long ldc, NN_T beta)              \
    {                                                                                            \
        if (rsa == 1)                                                                            \
            NN_FN(nn_ukr_avx512_body_)(m, kc, a, 1, csa, b, ldb, c, ldc, beta, 1, nr, 1);         \
        else NN_FN(nn_ukr_avx512_body_)(m, kc, a, rsa, csa, b, ldb, c, ldc, beta, 1, nr, 1);      \
    }
NN_EDGEZ(1) NN_EDGEZ(2) NN_EDGEZ(3) NN_EDGEZ(4) NN_EDGEZ(5) NN_EDGEZ(6)
NN_EDGEZ(7) NN_EDGEZ(8) NN_EDGEZ(9) NN_EDGEZ(10) NN_EDGEZ(11) NN_EDGEZ(12)
#undef NN_EDGEZ

static void NN_FN(nn_ukr_avx512_edge_)(int mr, int nr, long kc, const NN_T *a, long rsa, long csa,
                                       const NN_T *b, long ldb, NN_T *c, long ldc, NN_T beta)
{
    typedef void (*edge_t)(int, long, const NN_T *, long, long, const NN_T *, long, NN_T *, long,
                           NN_T);
    static const edge_t tab[NN_ZMR] = NN_ZTAB(nn_ukr_avx512_edge);
    tab[(mr < 1 ? 1 : mr > NN_ZMR ? NN_ZMR : mr) - 1](nr, kc, a, rsa, csa, b, ldb, c, ldc, beta);
}
#undef NN_ZTAB
#undef NN_ZT
#undef NN_ZL
#undef NN_ZLOAD
#undef NN_ZSTORE
#undef NN_ZSET1
#undef NN_ZFMA
#undef NN_ZZERO
#undef NN_ZMASK
#undef NN_ZMSTORE
#undef NN_ZMLOAD

#undef NN_VT
#undef NN_VL
#undef NN_VLOAD
#undef NN_VSTORE
#undef NN_VBCAST
#undef NN_VFMA
#undef NN_VSET1
#undef NN_VZERO
#endif /* NN_GEMM_X86 */
