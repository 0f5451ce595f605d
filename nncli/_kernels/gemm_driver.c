/* gemm_driver.c -- the per-dtype driver of our GEMM: the tiny path, packing, the blocked
 * Goto/BLIS loops over the micro-kernels of gemm_kernels.c, the thread split, and the public
 * entry nn_gemm_<suffix>. A template, included by gemm_dispatch.c right after gemm_kernels.c
 * for each element type; it #undefs the per-type parameters at its end.
 */

/* An epilogue: a function called on each finished block of C (see gemm.h), with its context. */
typedef struct {
    NN_FN(nn_gemm_epi_fn_) fn;
    void *ctx;
} NN_FN(nn_gemm_epi_t_);

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

/* Packing: the kc x n slice S(k, j) = s[k*rs + j*cs] into zero-padded panels of r columns,
   dst[(j/r)*kc*r + k*r + j%r] (op(B) packs with r = NR, op(A) as its transpose with r = MR).
   In an epoch the source usually comes from memory (the optimiser step streamed the whole of
   φ and its moments through the caches since), so the order of reading is what counts:
   - rows of S contiguous (cs == 1): for B's panels (r whole cache lines), four panels at a
     time along k: 4·r numbers of a row per visit instead of r (two lines, a new page each:
     too short for the prefetcher); A's panels (MR numbers, not whole lines) one at a time;
   - columns of S contiguous (rs == 1, the transposing pack): one cache line of each of the
     panel's r columns per step, through 4x4 (f32) / 2x2 (f64) register transposes, with the
     next line of every column prefetched; the old order read 16 bytes of each column per
     step and relied on the line staying in L1 -- but columns 8 KB apart share an L1 set.
   On the Xeon of issue 12, packing a cold 2048 x 2048 f32 Ω in 256-deep blocks: straight
   2.3-2.4 -> 2.0-2.1 ms, transposing 3.0-3.4 -> 2.5-2.7 ms.  r is a compile-time constant
   after inlining; the packed values are the same, so results do not change. */
#define NN_PACK_LINE (64 / (long)sizeof(NN_T))   /* numbers per cache line */
NN_INLINE void NN_FN(nn_gemm_pack_)(long kc, long n, const NN_T *s, long rs, long cs, NN_T *dst,
                                    const int r)
{
    if (cs == 1) {
        const long nfull = n / r * r;
        if (r % NN_PACK_LINE == 0) {   /* B's panels, whole lines: four panels per visit */
            for (long j0 = 0; j0 < nfull; j0 += 4L * r) {
                const long j1 = nn_gemm_min(j0 + 4L * r, nfull);
                for (long k = 0; k < kc; k++) {
                    const NN_T *sk = s + k * rs;
                    for (long jp = j0; jp < j1; jp += r) {
                        NN_T *d = dst + jp * kc + k * r;
                        for (int j = 0; j < r; j++) d[j] = sk[jp + j];
                    }
                }
            }
        } else {   /* A's panels of MR rows: panel by panel, each line is reused at once */
            for (long jp = 0; jp < nfull; jp += r) {
                const NN_T *sk = s + jp;
                NN_T *d = dst + jp * kc;
                for (long k = 0; k < kc; k++, sk += rs, d += r)
                    for (int j = 0; j < r; j++) d[j] = sk[j];
            }
        }
        if (nfull < n) {
            const long w = n - nfull;
            NN_T *d = dst + nfull * kc;
            for (long k = 0; k < kc; k++, d += r) {
                const NN_T *sk = s + k * rs + nfull;
                for (long j = 0; j < w; j++) d[j] = sk[j];
                for (long j = w; j < r; j++) d[j] = 0;
            }
        }
        return;
    }
    /* Prefetching pays for blocks that come from memory (Ω of a wide layer); a small block
       is likely in cache already, and the prefetches were 10% of packing 128 x 128. */
    const int prefetch = (double)kc * (double)n * sizeof(NN_T) >= 256.0 * 1024;
    for (long jp = 0; jp < n; jp += r) {        /* rs == 1: column j of S is s + j*cs */
        const long w = nn_gemm_min(r, n - jp);
        const NN_T *sp = s + jp * cs;
        NN_T *d = dst + jp * kc;
        for (long k0 = 0; k0 < kc; k0 += NN_PACK_LINE) {
            const long k1 = nn_gemm_min(k0 + NN_PACK_LINE, kc);
#if NN_GEMM_X86 && defined(__SSE2__)
            if (prefetch && k1 < kc)
                for (long j = 0; j < w; j++) _mm_prefetch((const char *)(sp + j * cs + k1), _MM_HINT_T0);
#endif
            long j = 0;
#if NN_GEMM_X86 && defined(__SSE2__)
#if NN_IS_F32
            for (; j + 4 <= w; j += 4) {
                const NN_T *c0 = sp + j * cs, *c1 = c0 + cs, *c2 = c1 + cs, *c3 = c2 + cs;
                long k = k0;
                for (; k + 4 <= k1; k += 4) {
                    __m128 r0 = _mm_loadu_ps(c0 + k), r1 = _mm_loadu_ps(c1 + k);
                    __m128 r2 = _mm_loadu_ps(c2 + k), r3 = _mm_loadu_ps(c3 + k);
                    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                    NN_T *dk = d + k * r + j;
                    _mm_storeu_ps(dk, r0); _mm_storeu_ps(dk + r, r1);
                    _mm_storeu_ps(dk + 2 * r, r2); _mm_storeu_ps(dk + 3 * r, r3);
                }
                for (; k < k1; k++) {
                    NN_T *dk = d + k * r + j;
                    dk[0] = c0[k]; dk[1] = c1[k]; dk[2] = c2[k]; dk[3] = c3[k];
                }
            }
#else
            for (; j + 2 <= w; j += 2) {
                const NN_T *c0 = sp + j * cs, *c1 = c0 + cs;
                long k = k0;
                for (; k + 2 <= k1; k += 2) {
                    const __m128d r0 = _mm_loadu_pd(c0 + k), r1 = _mm_loadu_pd(c1 + k);
                    NN_T *dk = d + k * r + j;
                    _mm_storeu_pd(dk, _mm_unpacklo_pd(r0, r1));
                    _mm_storeu_pd(dk + r, _mm_unpackhi_pd(r0, r1));
                }
                for (; k < k1; k++) {
                    NN_T *dk = d + k * r + j;
                    dk[0] = c0[k]; dk[1] = c1[k];
                }
            }
#endif
#endif
            for (; j < w; j++) {
                const NN_T *c = sp + j * cs;
                for (long k = k0; k < k1; k++) d[k * r + j] = c[k];
            }
            if (w < r)
                for (long k = k0; k < k1; k++)
                    for (long jj = w; jj < r; jj++) d[k * r + jj] = 0;
        }
    }
}
#undef NN_PACK_LINE

/* op(B)[pc:pc+kc, jc:jc+nc] -> panels of nr columns: dst[p*kc*nr + k*nr + j] */
NN_INLINE void NN_FN(nn_gemm_packB_body_)(int tb, long kc, long nc, const NN_T *B, long ldb, long pc,
                                          long jc, NN_T *dst, const int nr)
{
    if (tb) NN_FN(nn_gemm_pack_)(kc, nc, B + jc * ldb + pc, 1, ldb, dst, nr);   /* B is N x K */
    else NN_FN(nn_gemm_pack_)(kc, nc, B + pc * ldb + jc, ldb, 1, dst, nr);
}

/* op(A)[ic:ic+mc, pc:pc+kc] -> panels of mr rows: dst[p*kc*mr + k*mr + i] */
NN_INLINE void NN_FN(nn_gemm_packA_body_)(int ta, long mc, long kc, const NN_T *A, long lda, long ic,
                                          long pc, NN_T *dst, const int mr)
{
    if (ta) NN_FN(nn_gemm_pack_)(kc, mc, A + pc * lda + ic, lda, 1, dst, mr);   /* A is K x M */
    else NN_FN(nn_gemm_pack_)(kc, mc, A + ic * lda + pc, 1, lda, dst, mr);
}

#if NN_GEMM_X86
/* The packing loops compiled for the ISA of the kernel they feed (wider loads and stores;
   they are only called on the paths chosen for a CPU that has that ISA). */
NN_AVX512 static void NN_FN(nn_gemm_packB_z_)(int tb, long kc, long nc, const NN_T *B, long ldb,
                                              long pc, long jc, NN_T *dst)
{
    NN_FN(nn_gemm_packB_body_)(tb, kc, nc, B, ldb, pc, jc, dst, NN_ZNR);
}
NN_AVX512 static void NN_FN(nn_gemm_packA_z_)(int ta, long mc, long kc, const NN_T *A, long lda,
                                              long ic, long pc, NN_T *dst)
{
    NN_FN(nn_gemm_packA_body_)(ta, mc, kc, A, lda, ic, pc, dst, NN_ZMR);
}
NN_AVX2 static void NN_FN(nn_gemm_packB_y_)(int tb, long kc, long nc, const NN_T *B, long ldb,
                                            long pc, long jc, NN_T *dst)
{
    NN_FN(nn_gemm_packB_body_)(tb, kc, nc, B, ldb, pc, jc, dst, NN_NR);
}
NN_AVX2 static void NN_FN(nn_gemm_packA_y_)(int ta, long mc, long kc, const NN_T *A, long lda,
                                            long ic, long pc, NN_T *dst)
{
    NN_FN(nn_gemm_packA_body_)(ta, mc, kc, A, lda, ic, pc, dst, NN_MR);
}
#endif

static void NN_FN(nn_gemm_packB_)(int tb, long kc, long nc, const NN_T *B, long ldb, long pc, long jc,
                                  NN_T *dst, int nr)
{
#if NN_GEMM_X86
    if (nr == NN_ZNR) NN_FN(nn_gemm_packB_z_)(tb, kc, nc, B, ldb, pc, jc, dst);
    else if (nr == NN_NR) NN_FN(nn_gemm_packB_y_)(tb, kc, nc, B, ldb, pc, jc, dst);
    else
#endif
    NN_FN(nn_gemm_packB_body_)(tb, kc, nc, B, ldb, pc, jc, dst, NN_GNR);
}

static void NN_FN(nn_gemm_packA_)(int ta, long mc, long kc, const NN_T *A, long lda, long ic, long pc,
                                  NN_T *dst, int mr)
{
#if NN_GEMM_X86
    if (mr == NN_ZMR) NN_FN(nn_gemm_packA_z_)(ta, mc, kc, A, lda, ic, pc, dst);
    else if (mr == NN_MR) NN_FN(nn_gemm_packA_y_)(ta, mc, kc, A, lda, ic, pc, dst);
    else
#endif
    NN_FN(nn_gemm_packA_body_)(ta, mc, kc, A, lda, ic, pc, dst, NN_GMR);
}

/* ---- one MR x NR tile of C: C[ir.., jr..] (+)= A-panel . B-panel over one K block ----
   ap: A's packed micro-panel (packa) or A's rows read in place; bp: B's packed micro-panel, or
   B's rows in place (bk = ldb: cfg->edge, which masks columns past nr). */
NN_INLINE void NN_FN(nn_gemm_tile_)(const NN_FN(nn_gemm_cfg_t_) *cfg, int packa, long bk, long mr,
                                    long nr, long kc, const NN_T *ap, long rsa, long csa,
                                    const NN_T *bp, NN_T *cp, long rsc, long csc, NN_T bt, NN_T *tmp)
{
    const int MR = cfg->mr, NR = cfg->nr;
    const int full = (csc == 1) && (nr == NR) && (packa ? mr == MR : 1);
    if (bk || (!full && csc == 1 && cfg->edge)) {   /* B in place, or a corner: masked */
        cfg->edge((int)mr, (int)nr, kc, ap, rsa, csa, bp, bk ? bk : NR, cp, rsc, bt);
        return;
    }
    NN_T *cdst = full ? cp : tmp;
    const long cld = full ? rsc : NR;
    const NN_T cb = full ? bt : (NN_T)0;
    if (packa)
        cfg->packed(kc, ap, bp, cdst, cld, cb);
    else
        cfg->sup((int)mr, kc, ap, rsa, csa, bp, cdst, cld, cb);
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
                    for (long i = 0; i < mr; i++) cc[i * rsc] = bt * cc[i * rsc] + tmp[i * NR + j];
            }
        }
    }
}

/* ---- K and M blocks: balanced, from K (and M) only, so the summation order of a C element
   does not depend on how N is split, and the chunks of a split along N block A alike ---- */
static void NN_FN(nn_gemm_kmblocks_)(const NN_FN(nn_gemm_cfg_t_) *cfg, long M, long K, long *KCb,
                                     long *MCb)
{
    const long nkb = (K + cfg->kc - 1) / cfg->kc;
    const long nmb = (M + cfg->mc - 1) / cfg->mc;
    *KCb = (K + nkb - 1) / nkb;
    *MCb = nn_gemm_rup((M + nmb - 1) / nmb, cfg->mr);
}

/* ---- blocked driver over C[0:M, 0:N] (sub-problem of one thread) ----
   preA: op(A) already packed, block by block (nn_gemm_prepack_chunk_), or NULL. */
static void NN_FN(nn_gemm_blocked_)(const NN_FN(nn_gemm_cfg_t_) *cfg, int packa, int ta, int tb,
                                    long M, long N, long K, const NN_T *A, long lda, const NN_T *B,
                                    long ldb, NN_T beta, NN_T *C, long rsc, long csc,
                                    const NN_FN(nn_gemm_epi_t_) *epi, long i_off, long j_off,
                                    const NN_T *preA)
{
    const int MR = cfg->mr, NR = cfg->nr;
    long KCb, MCb;
    NN_FN(nn_gemm_kmblocks_)(cfg, M, K, &KCb, &MCb);
    const long nmbA = (M + MCb - 1) / MCb;   /* M blocks of a pre-packed A */
    /* Unpacked A (small M): B's packed block is used by few row tiles only, keep it in L2. */
    long ncmax = cfg->nc;
    if (!packa) {
        const long cap = nn_gemm_rup(NN_GEMM_SUP_NCBYTES / ((long)sizeof(NN_T) * KCb), NR);
        if (cap < ncmax) ncmax = cap > NR ? cap : NR;
    }
    const long nnb = (N + ncmax - 1) / ncmax;
    const long NCb = nn_gemm_rup((N + nnb - 1) / nnb, NR);

    const long bsz = nn_gemm_rup(KCb * nn_gemm_min(NCb, nn_gemm_rup(N, NR)), 16);
    /* One thread, N in several column blocks: all of A's rows packed once per K block (K
       blocks outer, column blocks inner), not each MC x KC block again for every column block
       (2048^3 f64: 4 times, 8 % of the time).  Packing all of op(A) first instead (as the
       chunks of a split along N share it) was 3-4 % slower at 2048^3 f64: 32 MB packed ahead
       come back from memory, one K block of it (4 MB) is read while still in cache. */
    const int aall = packa && !preA && nnb > 1 &&
                     (double)KCb * (double)nn_gemm_rup(M, MR) * sizeof(NN_T) <= NN_GEMM_PACKA_ALL_BYTES;
    const long asz = packa && !preA ? KCb * (aall ? nn_gemm_rup(M, MR) : nn_gemm_min(MCb, nn_gemm_rup(M, MR))) : 0;
    NN_T *Bp = (NN_T *)nn_gemm_ws(NN_WS_OWN, (size_t)(bsz + asz + MR * NR) * sizeof(NN_T) + 64);
    if (!Bp) { /* out of memory: fall back to plain loops (slow but correct) */
        for (long i = 0; i < M; i++)
            for (long j = 0; j < N; j++) {
                NN_T s = 0;
                for (long k = 0; k < K; k++)
                    s += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
                NN_T *cij = C + i * rsc + j * csc;
                *cij = (beta == 0) ? s : beta * *cij + s;
            }
        if (epi) epi->fn(epi->ctx, i_off, j_off, M, N, C, rsc);
        return;
    }
    NN_T *const Aown = Bp + bsz;
    const NN_T *Ap = Aown;
    NN_T *tmp = Aown + asz;              /* MR x NR edge tile (64-byte aligned) */
    tmp = (NN_T *)(((uintptr_t)tmp + 63) & ~(uintptr_t)63);
    const long rsa = ta ? 1 : lda, csa = ta ? lda : 1;
    /* B stored K x N read in place when packing it would not pay: one row tile of A (a packed B
       would be read once), or a short K (B is a few rows, L1-resident as it is) */
    const int inplaceb = cfg->edge && !tb && csc == 1 && (M <= MR || K <= NN_GEMM_SMALL_K);

    /* Rows of tiles outer (short or B-in-place K blocks; every block on the AVX-512 path):
       consecutive tiles write along C's rows (C streams through the prefetchers; with a short
       K, writing C is most of the work), A's micro-panel stays in L1 and B's block in L2.
       Columns of tiles outer (long K blocks, AVX2 and generic: their blocking was swept so):
       B's KC x NR micro-panel stays in L1 under every row tile. */
    for (long u = 0; u < (aall ? K : N); u += (aall ? KCb : NCb)) {
        for (long v = 0; v < (aall ? N : K); v += (aall ? NCb : KCb)) {
            const long jc = aall ? v : u, pc = aall ? u : v;
            const long nc = nn_gemm_min(NCb, N - jc), kc = nn_gemm_min(KCb, K - pc);
            const NN_T bt = (pc == 0) ? beta : (NN_T)1;
            if (aall && jc == 0)   /* all of A's rows for this K block, MC rows at a time */
                for (long ic = 0; ic < M; ic += MCb)
                    NN_FN(nn_gemm_packA_)(ta, nn_gemm_min(MCb, M - ic), kc, A, lda, ic, pc,
                                          Aown + ic * kc, MR);
            if (!inplaceb) NN_FN(nn_gemm_packB_)(tb, kc, nc, B, ldb, pc, jc, Bp, NR);
            const NN_T *B0 = inplaceb ? B + pc * ldb + jc : Bp;
            const long bk = inplaceb ? ldb : 0, bstep = inplaceb ? 1 : kc;
            const int rows_outer = inplaceb || kc <= cfg->rows_outer_kc;
            for (long ic = 0; ic < M; ic += MCb) {
                const long mc = nn_gemm_min(MCb, M - ic);
                if (packa && preA)
                    Ap = preA + ((pc / KCb) * nmbA + ic / MCb) * KCb * MCb;
                else if (aall)
                    Ap = Aown + ic * kc;
                else if (packa)
                    NN_FN(nn_gemm_packA_)(ta, mc, kc, A, lda, ic, pc, Aown, MR);
#define NN_TILE_AT(ir, jr)                                                                       \
    NN_FN(nn_gemm_tile_)(cfg, packa, bk, nn_gemm_min(MR, mc - (ir)), nn_gemm_min(NR, nc - (jr)),  \
                         kc, packa ? Ap + (ir) * kc : A + (ic + (ir)) * rsa + pc * csa,          \
                         packa ? 1 : rsa, packa ? MR : csa, B0 + (jr) * bstep,                   \
                         C + (ic + (ir)) * rsc + (jc + (jr)) * csc, rsc, csc, bt, tmp)
                /* rows of tiles: their full column tiles in panel calls where the kernels
                   have them (rows a panel leaves, and the last column tile: per tile); with
                   A's rows in place, first one call for the whole block (the short-K kernels
                   take any number of rows) */
                const long ntf = (rows_outer && cfg->panel && csc == 1) ? nc / NR : 0;
                long rdone = 0;
                if (ntf && !packa && mc > MR)
                    rdone = cfg->panel((int)mc, ntf, kc, A + ic * rsa + pc * csa, rsa, csa, B0,
                                       bstep, bk ? bk : NR, C + ic * rsc + jc, rsc, bt);
                if (rdone) {
                    for (long ir = rdone; ir < mc; ir += MR)
                        for (long jr = 0; jr < ntf * NR; jr += NR) NN_TILE_AT(ir, jr);
                    if (ntf * NR < nc)
                        for (long ir = 0; ir < mc; ir += MR) NN_TILE_AT(ir, ntf * NR);
                } else if (rows_outer) {
                    for (long ir = 0; ir < mc; ir += MR) {
                        const long mr = nn_gemm_min(MR, mc - ir);
                        const NN_T *ap = packa ? Ap + ir * kc : A + (ic + ir) * rsa + pc * csa;
                        const long ra = packa ? 1 : rsa, ca = packa ? MR : csa;
                        long jr = 0;
                        if (ntf) {
                            const long r = cfg->panel((int)mr, ntf, kc, ap, ra, ca, B0, bstep,
                                                      bk ? bk : NR, C + (ic + ir) * rsc + jc, rsc, bt);
                            if (r < mr)   /* its remaining rows (A in place here) */
                                for (; jr < ntf * NR; jr += NR)
                                    NN_FN(nn_gemm_tile_)(cfg, packa, bk, mr - r, NR, kc,
                                                         packa ? ap + r : ap + r * rsa, ra, ca,
                                                         B0 + jr * bstep,
                                                         C + (ic + ir + r) * rsc + jc + jr, rsc,
                                                         csc, bt, tmp);
                            jr = ntf * NR;
                        }
                        for (; jr < nc; jr += NR) NN_TILE_AT(ir, jr);
                    }
                } else {
                    for (long jr = 0; jr < nc; jr += NR)
                        for (long ir = 0; ir < mc; ir += MR) NN_TILE_AT(ir, jr);
                }
#undef NN_TILE_AT
                /* The block C[ic:ic+mc, jc:jc+nc] is final after the last K block: hand it to
                   the epilogue while it is still in cache (row-major here: epi is only passed
                   with csc == 1). */
                if (epi && pc + kc >= K)
                    epi->fn(epi->ctx, i_off + ic, j_off + jc, mc, nc, C + ic * rsc + jc * csc, rsc);
            }
        }
    }
}

/* ---- thread split: disjoint ranges of C's N (or M) dimension, chunks on the pool ---- */
typedef struct {
    const NN_FN(nn_gemm_cfg_t_) *cfg;
    int packa, ta, tb, splitn;
    long M, N, K, tiles, nch;
    long bound[NN_GEMM_MAX_CHUNKS + 1];   /* chunk c: tiles bound[c] .. bound[c+1] */
    const NN_T *A, *B;
    long lda, ldb, rsc, csc;
    NN_T beta;
    NN_T *C;
    const NN_FN(nn_gemm_epi_t_) *epi;
    NN_T *preA;                  /* op(A) packed once for all chunks of a split along N, or NULL */
    long KCb, MCb, nmbA;         /* its blocks (nn_gemm_kmblocks_) */
} NN_FN(nn_gemm_split_t_);

/* Chunk c of packing op(A) for a split along N: block (K block c / nmbA, M block c % nmbA),
   laid out as nn_gemm_blocked_ reads it. */
static void NN_FN(nn_gemm_prepack_chunk_)(void *p, long c)
{
    const NN_FN(nn_gemm_split_t_) *s = (const NN_FN(nn_gemm_split_t_) *)p;
    const long pc = (c / s->nmbA) * s->KCb, ic = (c % s->nmbA) * s->MCb;
    NN_FN(nn_gemm_packA_)(s->ta, nn_gemm_min(s->MCb, s->M - ic), nn_gemm_min(s->KCb, s->K - pc),
                          s->A, s->lda, ic, pc, s->preA + c * s->KCb * s->MCb, s->cfg->mr);
}

/* The chunks' boundaries, fixed by the shape (never by who runs them): one chunk per thread,
   or, for products of many rows, guided: each chunk a quarter (1/(2·threads)) of the row
   tiles left, down to NN_GEMM_GUIDED_MIN tiles. On a machine whose other core is busy the
   worker runs at half speed or later, and the caller then takes most of the small chunks at
   the end instead of waiting for the worker's half of the product. Each chunk of rows packs
   all of op(B), small beside its rows' work there. */
static void NN_FN(nn_gemm_chunk_bounds_)(NN_FN(nn_gemm_split_t_) *s, int nt, int guided)
{
    s->bound[0] = 0;
    if (!guided) {
        for (long c = 1; c <= s->nch; c++) s->bound[c] = s->tiles * c / s->nch;
        return;
    }
    long c = 0, left = s->tiles;
    while (left > 0) {
        long take = (left + 2L * nt - 1) / (2L * nt);
        if (take < NN_GEMM_GUIDED_MIN) take = NN_GEMM_GUIDED_MIN;
        if (take > left || c == NN_GEMM_MAX_CHUNKS - 1) take = left;
        s->bound[c + 1] = s->bound[c] + take;
        left -= take;
        c++;
    }
    s->nch = c;
}

/* Chunk ch of the split: tiles t0..t1 of the split dimension. */
static void NN_FN(nn_gemm_split_chunk_)(void *p, long ch)
{
    const NN_FN(nn_gemm_split_t_) *s = (const NN_FN(nn_gemm_split_t_) *)p;
    const NN_FN(nn_gemm_cfg_t_) *cfg = s->cfg;
    const long t0 = s->bound[ch], t1 = s->bound[ch + 1];
    if (s->splitn) {
        const long j0 = t0 * cfg->nr, j1 = nn_gemm_min(t1 * cfg->nr, s->N);
        if (j1 > j0)
            NN_FN(nn_gemm_blocked_)(cfg, s->packa, s->ta, s->tb, s->M, j1 - j0, s->K, s->A, s->lda,
                                    s->B + (s->tb ? j0 * s->ldb : j0), s->ldb, s->beta,
                                    s->C + j0 * s->csc, s->rsc, s->csc, s->epi, 0, j0, s->preA);
    } else {
        const long i0 = t0 * cfg->mr, i1 = nn_gemm_min(t1 * cfg->mr, s->M);
        if (i1 > i0)
            NN_FN(nn_gemm_blocked_)(cfg, s->packa, s->ta, s->tb, i1 - i0, s->N, s->K,
                                    s->A + (s->ta ? i0 : i0 * s->lda), s->lda, s->B, s->ldb,
                                    s->beta, s->C + i0 * s->rsc, s->rsc, s->csc, s->epi, i0, 0,
                                    (const NN_T *)0);
    }
}

/* op(A) packed once, block by block on up to nt threads, into the calling thread's shared
   workspace (s->KCb, MCb, nmbA set); NULL when that workspace cannot be had. */
static NN_T *NN_FN(nn_gemm_prepack_)(NN_FN(nn_gemm_split_t_) *s, int nt)
{
    NN_FN(nn_gemm_kmblocks_)(s->cfg, s->M, s->K, &s->KCb, &s->MCb);
    s->nmbA = (s->M + s->MCb - 1) / s->MCb;
    const long nblocks = ((s->K + s->KCb - 1) / s->KCb) * s->nmbA;
    s->preA = (NN_T *)nn_gemm_ws(NN_WS_SHARED, (size_t)(nblocks * s->KCb * s->MCb) * sizeof(NN_T));
    if (s->preA) nn_pool_run(nt, nblocks, NN_FN(nn_gemm_prepack_chunk_), (void *)s);
    return s->preA;
}

static void NN_FN(nn_gemm_par_)(const NN_FN(nn_gemm_cfg_t_) *cfg, int ta, int tb, long M, long N, long K,
                                const NN_T *A, long lda, const NN_T *B, long ldb, NN_T beta, NN_T *C,
                                long rsc, long csc, int n_threads, const NN_FN(nn_gemm_epi_t_) *epi)
{
    /* A read in place for few rows, or a short K (its rows are short: nothing to gain) */
    const int packa = cfg->sup ? (M > NN_GEMM_PACKA_M && K > NN_GEMM_SMALL_K) : 1;
    int nt = nn_gemm_threads(n_threads);
    if (nt > 1 && 2.0 * (double)M * (double)N * (double)K < nn_gemm_par_flops(nn_gemm_isa_id()))
        nt = 1;
    if (nt > 1) {
        const long ntn = (N + cfg->nr - 1) / cfg->nr, ntm = (M + cfg->mr - 1) / cfg->mr;
        int splitn = ntn >= 2L * nt || ntn >= ntm;
        if (splitn && ntm >= 2L * nt) {
            /* Both ways give every thread a chunk: split the way that packs less. A chunk
               along N packs all of op(A) (once per NC block of the chunk) unless op(A) is
               large enough to be packed once for all (NN_GEMM_PREPACK_MIN); a chunk along M
               packs all of op(B), and its rows of op(A) once per NC block. */
            const double ch = (double)NN_GEMM_CHUNKS_PER_THREAD * nt;
            const long wch = (ntn + (long)ch - 1) / (long)ch * cfg->nr;   /* an N chunk */
            const double nblk = (double)((N + cfg->nc - 1) / cfg->nc);
            const double nblk_ch = (double)((wch + cfg->nc - 1) / cfg->nc);
            const double mk = packa ? (double)M * (double)K : 0.0, kn = (double)K * (double)N;
            const double along_n = (mk >= NN_GEMM_PREPACK_MIN ? mk : ch * nblk_ch * mk) + kn;
            if (nblk * mk + ch * kn < along_n) splitn = 0;
        }
        /* Many rows (predict's chunks of 4096) and a small op(B), which every chunk of rows
           packs again: guided chunks of rows (below) */
        const int guided = ntm >= NN_GEMM_GUIDED_ROW_TILES * nt &&
                           (double)N * (double)K <= NN_GEMM_GUIDED_MAX_B;
        if (guided) splitn = 0;
        const long tiles = splitn ? ntn : ntm;
        if (tiles < nt) nt = (int)tiles;
        if (nt > 1) {
/* One chunk of tiles per thread (products of many rows: guided chunks, see
   nn_gemm_chunk_bounds_), claimed from the pool: on a busy machine, where a worker
   does not get a core at once, the caller claims the worker's chunk too and never waits for
   it. (Finer chunks balance better in theory; on a quiet machine two per thread cost 5 % of a
   two-thread mnist epoch against one.) The chunks are fixed by the shape and each C
   element's sum does not depend on who computes it: results stay bit-identical.
   A split along N would have every chunk pack all of op(A): a large op(A) is packed once
   first, block by block on the pool, into the calling thread's shared workspace, and the
   chunks read it (12 % of a two-thread mnist epoch had gone to packing A four times). A small
   one is packed by each chunk at the same time: one more hand-over to the workers would cost
   more than the half of a small pack it saves. Nor is one larger than NN_GEMM_PREPACK_MAX_BYTES
   (2048^3 on two threads: 32 MB of f64 packed ahead were read back from memory; without it,
   in alternated builds, f32 2048^3 295-328 -> 336-351 GFLOP/s, f64 159-167 -> 162-178): each
   chunk packs its K blocks of op(A) itself (twice the packing, but into cache). */
            const long nch = nn_gemm_min(tiles, (long)NN_GEMM_CHUNKS_PER_THREAD * nt);
            NN_FN(nn_gemm_split_t_) s = {.cfg = cfg, .packa = packa, .ta = ta, .tb = tb,
                                         .splitn = splitn, .M = M, .N = N, .K = K, .tiles = tiles,
                                         .nch = nch, .A = A, .B = B, .lda = lda, .ldb = ldb,
                                         .rsc = rsc, .csc = csc, .beta = beta, .C = C, .epi = epi};
            NN_FN(nn_gemm_chunk_bounds_)(&s, nt, guided);
            if (splitn && packa && s.nch > 1 && (double)M * (double)K >= NN_GEMM_PREPACK_MIN
                && (double)M * (double)K * sizeof(NN_T) <= NN_GEMM_PREPACK_MAX_BYTES)
                s.preA = NN_FN(nn_gemm_prepack_)(&s, nt);
            nn_gemm_note_threads(nn_pool_run(nt, s.nch, NN_FN(nn_gemm_split_chunk_), (void *)&s));
            return;
        }
    }
    nn_gemm_note_threads(1);
    /* One thread: with several blocks of N columns (wide layers: N = 2048 is 3 blocks) the
       blocked loops pack op(A) once per K block (see aall there). */
    NN_FN(nn_gemm_blocked_)(cfg, packa, ta, tb, M, N, K, A, lda, B, ldb, beta, C, rsc, csc, epi, 0, 0,
                            (const NN_T *)0);
}

/* ---- the dot path's split: 12-row blocks of the long side, chunks on the pool ---- */
#if NN_GEMM_X86
typedef struct {
    long nx, nyl, K, blocks, nch;
    const NN_T *X;
    long ldx;
    const NN_T *Y;
    long ldy;
    NN_T beta;
    NN_T *C;
    long rsc, csc;
} NN_FN(nn_gemm_dot_t_);

static void NN_FN(nn_gemm_dot_chunk_)(void *p, long ch)
{
    const NN_FN(nn_gemm_dot_t_) *d = (const NN_FN(nn_gemm_dot_t_) *)p;
    const long r0 = nn_gemm_min(d->blocks * ch / d->nch * 12, d->nx);
    const long r1 = nn_gemm_min(d->blocks * (ch + 1) / d->nch * 12, d->nx);
    if (r1 > r0)
        NN_FN(nn_dot_avx2_)(r1 - r0, d->nyl, d->K, d->X + r0 * d->ldx, d->ldx, d->Y, d->ldy,
                            d->beta, d->C + r0 * d->rsc, d->rsc, d->csc);
}
#endif

/* ---- public entries ---- */
static void NN_FN(nn_gemm_run_)(int trans_a, int trans_b, long M, long N, long K, const NN_T *A,
                                long lda, const NN_T *B, long ldb, NN_T beta, NN_T *C, long ldc,
                                int n_threads, const NN_FN(nn_gemm_epi_t_) *epi);

void NN_FN(nn_gemm_)(int trans_a, int trans_b, long M, long N, long K, const NN_T *A, long lda,
                     const NN_T *B, long ldb, NN_T beta, NN_T *C, long ldc, int n_threads)
{
    NN_FN(nn_gemm_run_)(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, n_threads, 0);
}

void NN_FN(nn_gemm_epi_)(int trans_a, int trans_b, long M, long N, long K, const NN_T *A, long lda,
                         const NN_T *B, long ldb, NN_T beta, NN_T *C, long ldc, int n_threads,
                         NN_FN(nn_gemm_epi_fn_) epi, void *ctx)
{
    const NN_FN(nn_gemm_epi_t_) e = {epi, ctx};
    NN_FN(nn_gemm_run_)(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, n_threads,
                        epi ? &e : 0);
}

/* The paths that do not go through the blocked loops hand the whole of C to the epilogue at
   the end (small products: C is still in cache). */
static void NN_FN(nn_gemm_run_)(int trans_a, int trans_b, long M, long N, long K, const NN_T *A,
                                long lda, const NN_T *B, long ldb, NN_T beta, NN_T *C, long ldc,
                                int n_threads, const NN_FN(nn_gemm_epi_t_) *epi)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (beta != 1)
            for (long i = 0; i < M; i++) {
                NN_T *ci = C + i * ldc;
                if (beta == 0) for (long j = 0; j < N; j++) ci[j] = 0;
                else for (long j = 0; j < N; j++) ci[j] *= beta;
            }
        if (epi) epi->fn(epi->ctx, 0, 0, M, N, C, ldc);
        return;
    }
    if (M * N * K <= NN_GEMM_TINY_MNK) {
        NN_FN(nn_gemm_tiny_)(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc);
        if (epi) epi->fn(epi->ctx, 0, 0, M, N, C, ldc);
        return;
    }

#if NN_GEMM_X86
    /* A.B^T with one side <= 16 long and K long enough: the dot path (no packing). */
    if (!trans_a && trans_b && K >= NN_GEMM_DOT_K && (N <= 16 || M <= 16) && nn_gemm_isa_id() >= 1) {
        const int ny = (N <= 16 && (N <= M || M > 16));   /* Y = the short side */
        const long nx = ny ? M : N, nyl = ny ? N : M;
        const NN_T *X = ny ? A : B, *Y = ny ? B : A;
        const long ldx = ny ? lda : ldb, ldy = ny ? ldb : lda;
        const long rsc = ny ? ldc : 1, csc = ny ? 1 : ldc;
        /* (the dot path runs AVX2 code on every x86 CPU: the AVX2 threshold) */
        const int nt = nn_gemm_threads(n_threads);
        if (nt > 1 && 2.0 * (double)M * (double)N * (double)K >= nn_gemm_par_flops(1) && nx >= 24) {
            /* 12-row blocks of X, in chunks as nn_gemm_par_'s */
            const long blocks = (nx + 11) / 12;
            const long nch = nn_gemm_min(blocks, (long)NN_GEMM_CHUNKS_PER_THREAD * nt);
            const NN_FN(nn_gemm_dot_t_) d = {nx, nyl, K, blocks, nch, X, ldx, Y, ldy, beta, C, rsc, csc};
            nn_gemm_note_threads(nn_pool_run(nt, nch, NN_FN(nn_gemm_dot_chunk_), (void *)&d));
            if (epi) epi->fn(epi->ctx, 0, 0, M, N, C, ldc);
            return;
        }
        nn_gemm_note_threads(1);
        NN_FN(nn_dot_avx2_)(nx, nyl, K, X, ldx, Y, ldy, beta, C, rsc, csc);
        if (epi) epi->fn(epi->ctx, 0, 0, M, N, C, ldc);
        return;
    }
#endif

    NN_FN(nn_gemm_cfg_t_) cfg;
#if NN_GEMM_X86
    if (nn_gemm_isa_id() == 2) {
        cfg.mr = NN_ZMR; cfg.nr = NN_ZNR; cfg.mc = NN_ZMC; cfg.kc = NN_ZKC; cfg.nc = NN_ZNC;
        nn_gemm_z_blocks(!NN_IS_F32, &cfg.mc, &cfg.kc, &cfg.nc);
        cfg.rows_outer_kc = cfg.kc;
        cfg.packed = NN_FN(nn_ukr_avx512_packed_);
        cfg.sup = NN_FN(nn_ukr_avx512_sup_);
        cfg.edge = NN_FN(nn_ukr_avx512_edge_);
        cfg.panel = NN_FN(nn_ukr_avx512_panel_);
    } else if (nn_gemm_isa_id() == 1) {
        cfg.mr = NN_MR; cfg.nr = NN_NR; cfg.mc = NN_MC; cfg.kc = NN_KC; cfg.nc = NN_NC;
        cfg.packed = NN_FN(nn_ukr_avx2_packed_);
        cfg.sup = NN_FN(nn_ukr_avx2_sup_);
        cfg.edge = 0;
        cfg.panel = 0;
        cfg.rows_outer_kc = NN_GEMM_ROWS_OUTER_KC;
    } else
#endif
    {
        cfg.mr = NN_GMR; cfg.nr = NN_GNR; cfg.mc = NN_GMC; cfg.kc = NN_GKC; cfg.nc = NN_GNC;
        cfg.packed = NN_FN(nn_ukr_gen_);
        cfg.sup = 0;
        cfg.edge = 0;
        cfg.panel = 0;
        cfg.rows_outer_kc = NN_GEMM_ROWS_OUTER_KC;
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
                                n_threads, 0);
            /* C was written transposed, block by block: the epilogue sees it whole (in the
               caller's orientation) */
            if (epi) epi->fn(epi->ctx, 0, 0, N, M, C, ldc);
            return;
        }
    }
    NN_FN(nn_gemm_par_)(&cfg, trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, 1, n_threads,
                        epi);
}

#undef NN_FN
#undef NN_ZMR
#undef NN_ZNR
#undef NN_ZMC
#undef NN_ZKC
#undef NN_ZNC
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
