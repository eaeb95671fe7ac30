/*
 * stochastic.c -- stochastic softmax ([Yadav2026], Stochastic Attention #10).
 *
 *   a~ = c / N,   c ~ Multinomial(N, softmax(s))
 *
 * Randomness comes from the counter-based generator of an_common.h keyed by
 * (seed, stream, row): stream is a per-matrix index supplied by the Python
 * wrapper, so every (matrix, row) draws the same numbers whatever the thread
 * count, the scheduling or the way NumPy chunks the outer loop.
 *
 * Sampling in O(n_i + N log(n_i)) per row, by inversion: the N trials are
 * independent uniforms u_k = an_rand_uniform(key, k) in (0, 1), and trial k
 * lands on the key j with cdf_(j-1) < u_k * cdf_(n_i) <= cdf_j.  The CDF is
 * kept at the ends of blocks of 8 keys, C[b] = sum_{j < 8(b+1)} p_j (each
 * block summed in double as a tree, the blocks accumulated four at a time);
 * a trial finds its block b = #{b : C[b] < u_k cdf_(n_i)} and its key
 * inside the block by 7 compares of p_0 + ... + p_t (a shallow tree of adds)
 * against u_k cdf_(n_i) - C[b-1].  No trial depends on another, so there is
 * no branch on the data and no sort.  The portable path finds the block by
 * a branch-free binary search over C (16 trials side by side); the AVX-512
 * path draws eight uniforms per vector, sums the blocks eight at a time and
 * finds the blocks in levels of 8 over C, then the keys, eight trials at a
 * time in the lanes of vectors (the blocks' probabilities transposed into
 * lanes): the same operations in the same order, so both paths draw the
 * same bits.  Row by row the work is a few passes over data in L1: the
 * exponentials (the one pass over the scores), C, the trials' blocks, their
 * keys, then the counts.  The keys of all the trials are kept and counted
 * in x itself once it is cleared (an int32 count array, cleared per row,
 * where the keys do not fit in the workspace); the keys that received a
 * count are listed (in order of first hit) for the caller in c->nz.
 *
 * Keys with probability 0 (e.g. -inf scores) never receive a count: inside a
 * block such a key's interval is empty (adding 0 is exact), and the one place
 * where rounding could leave it a sliver of width ~1e-16 (the block's last
 * key, bounded by C[b] instead of the in-block sum) is mended by moving the
 * trial to the nearest key of the block that has mass.
 *
 * Above AN_STOCH_BINOMIAL_N trials the counts are drawn instead by
 * sequential binomials in O(n_i) per row whatever N (exact in distribution:
 * c_j ~ Binomial(N - sum_{l<j} c_l, p_j / sum_{l>=j} p_l) is the multinomial
 * factorised key by key), each binomial by Hormann's BTRS transformed
 * rejection (n p >= 10) or by geometric waiting times (n p < 10), from the
 * same counter-based generator.
 *
 * NaN in a row gives a NaN row; a row of -inf is empty; +inf scores share the
 * mass (softmax's limit) and then get multinomial counts among themselves.
 */
#include <math.h>
#include <string.h>
#include "normalize.h"
#include "vjp.h"
#include "normalizers_shared.h"
#include "an_simd.h"

/* cnt[0..n) = 0 (plain stores: AN_NO_MEMCALL) */
AN_NO_MEMCALL static void stoch_zero_counts(int64_t *cnt, an_int n)
{
    for (an_int j = 0; j < n; j++) cnt[j] = 0;
}

/* key of (seed, stream, row) for an_rand_uniform */
static inline uint64_t stochastic_key(int64_t seed, int64_t stream, an_int row)
{
    return an_rand_u64(an_rand_u64((uint64_t)seed, (uint64_t)stream), (uint64_t)row);
}

/* Rows of up to AN_STOCH_STACK_BLOCKS blocks keep C (and the levels above
 * it) on the stack, longer rows in the workspace.  Workspace (ws_mult =
 * AN_STOCH_WS_MULT = 3, 3 (m + 1) words): nz (m + 1 an_int: each trial
 * writes one past the list) | C (long rows only) | then, up to 2^20 trials,
 * the levels above C (AVX-512 path, long rows only) and the keys of all the
 * trials (an_int) where they fit, else int32 counts of the m keys; above
 * 2^20 trials, counts (m int64) after C[nblk]. */
#define AN_STOCH_STACK_BLOCKS 256   /* a multiple of 8 */
#define AN_STOCH_WS_MULT 3

/* Uniforms are drawn AN_STOCH_CHUNK at a time (a multiple of 8). */
#define AN_STOCH_CHUNK 64

/* Trials are placed in batches of AN_STOCH_BATCH: the binary searches of a
 * batch run level by level side by side, so their chains of dependent loads
 * overlap instead of following one another. */
#define AN_STOCH_BATCH 16

/* blk[u] = first b in [0, nblk) with C[b] >= P[u], or nblk: the branch-free
 * lower bound (ceil(log2 nblk) levels whatever the P) */
static inline void stoch_blocks_of(const double *C, an_int nblk, const double *P, an_int *blk)
{
    for (int u = 0; u < AN_STOCH_BATCH; u++) blk[u] = 0;
    for (an_int len = nblk; len > 1; ) {
        const an_int half = len / 2;
        for (int u = 0; u < AN_STOCH_BATCH; u++)     /* no branch */
            blk[u] += half & -(an_int)(C[blk[u] + half - 1] < P[u]);
        len -= half;
    }
    for (int u = 0; u < AN_STOCH_BATCH; u++) blk[u] += C[blk[u]] < P[u];
}

/* ---- the block search by levels of 8 (AVX-512 path) ----
 * lev[0] is C padded with +inf to a multiple of 8; lev[l + 1][s] =
 * lev[l][8 s + 7] (the last of each group of 8, +inf past the end), up to a
 * top level of 8 or 16 entries (two vectors).  The lower bound #{b : C[b] <
 * P} (C is nondecreasing) is then the count of the top entries below P (a
 * binary search lane-wise in the two vectors), refined level by level by
 * the count below P inside one group of 8: the same block as the binary
 * search, by 8-wide compares.  The last entry of every level is C's last or
 * +inf, so no count reaches the end of its level.  With two levels (rows of
 * 129 to 1024 keys) C is also kept as eight tables of 16, tab[q][s] =
 * C[8 s + q] (+inf past the end): the group of 8 below top entry s is then
 * read lane-wise for eight trials by a permute of two vectors per q. */
#define AN_STOCH_MAXLEV 24
typedef struct {
    const double *lev[AN_STOCH_MAXLEV];
    an_int len[AN_STOCH_MAXLEV];
    int nlev;
    double tab[8][16];
} stoch_levels;

static inline an_int stoch_round8(an_int n) { return (n + 7) & ~(an_int)7; }

/* doubles needed above C for nblk blocks */
static an_int stoch_levels_words(an_int nblk)
{
    an_int w = 0;
    for (an_int len = stoch_round8(nblk); len > 16; ) { len = stoch_round8(len / 8); w += len; }
    return w;
}

/* pads C (room for stoch_round8(nblk) doubles) and writes the levels above
 * it into up (stoch_levels_words(nblk) doubles) */
static void stoch_levels_build(double *C, an_int nblk, double *up, stoch_levels *L)
{
    an_int len = stoch_round8(nblk);
    for (an_int b = nblk; b < len; b++) C[b] = INFINITY;
    L->lev[0] = C; L->len[0] = len; L->nlev = 1;
    const double *cur = C;
    while (len > 16) {
        const an_int n1 = len / 8, len1 = stoch_round8(n1);
        for (an_int s = 0; s < n1; s++) up[s] = cur[8 * s + 7];
        for (an_int s = n1; s < len1; s++) up[s] = INFINITY;
        L->lev[L->nlev] = up; L->len[L->nlev++] = len1;
        cur = up; up += len1; len = len1;
    }
}

/* nearest key of the block (down first) with pv > 0 */
static inline int nearest_positive(const double *pv, int t)
{
    for (int u = t; u >= 0; u--) if (pv[u] > 0) return u;
    for (int u = t + 1; u < 8; u++) if (pv[u] > 0) return u;
    return t;
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define AN_STOCH_X86 1
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,popcnt")

/* P[u] = an_rand_uniform(key, ctr0 + u) * run for u < nb (mk = an_mix64(key)),
 * eight counters per vector (the same bits as the scalar form: the 64-bit
 * multiplies and shifts are exact, (h >> 11) converts exactly, the two
 * scalings by 2^-53 and run round as there); P has room for nb rounded up
 * to 8 */
static void stoch_uniforms_avx512(uint64_t mk, uint64_t ctr0, int nb, double run, double *P)
{
    const __m512i K = _mm512_set1_epi64((long long)AN_RAND_CTR_MUL);
    const __m512i G = _mm512_set1_epi64((long long)0x9E3779B97F4A7C15ULL);
    const __m512i M1 = _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ULL);
    const __m512i M2 = _mm512_set1_epi64((long long)0x94D049BB133111EBULL);
    const __m512i mkv = _mm512_set1_epi64((long long)mk), eight = _mm512_set1_epi64(8);
    const __m512d half = _mm512_set1_pd(0.5), ulp = _mm512_set1_pd(1.0 / 9007199254740992.0);
    const __m512d runv = _mm512_set1_pd(run);
    __m512i ctr = _mm512_add_epi64(_mm512_set1_epi64((long long)ctr0),
                                   _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
    for (int u = 0; u < nb; u += 8) {
        __m512i z = _mm512_add_epi64(_mm512_xor_si512(mkv, _mm512_mullo_epi64(ctr, K)), G);
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), M1);
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), M2);
        z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
        const __m512d d = _mm512_cvtepu64_pd(_mm512_srli_epi64(z, 11));
        _mm512_storeu_pd(P + u, _mm512_mul_pd(_mm512_mul_pd(_mm512_add_pd(d, half), ulp), runv));
        ctr = _mm512_add_epi64(ctr, eight);
    }
}

/* Q[q] lane u = R[u] lane q: pairs of rows interleaved within 128-bit
 * lanes, then two levels of 128-bit lane shuffles */
static inline __attribute__((always_inline)) void stoch_transpose8_pd(const __m512d R[8], __m512d Q[8])
{
    __m512d t[8], u[8];
    for (int v = 0; v < 4; v++) {   /* t[2v + h] lane 2i + w = R[2v + w] lane 2i + h */
        t[2 * v] = _mm512_unpacklo_pd(R[2 * v], R[2 * v + 1]);
        t[2 * v + 1] = _mm512_unpackhi_pd(R[2 * v], R[2 * v + 1]);
    }
    /* u[4g + 2h + e]: columns h + 2e and h + 2e + 4 of rows 4g .. 4g + 3 */
    for (int g = 0; g < 2; g++)
        for (int h = 0; h < 2; h++) {
            u[4 * g + 2 * h] = _mm512_shuffle_f64x2(t[4 * g + h], t[4 * g + 2 + h], 0x88);
            u[4 * g + 2 * h + 1] = _mm512_shuffle_f64x2(t[4 * g + h], t[4 * g + 2 + h], 0xDD);
        }
    for (int h = 0; h < 2; h++)
        for (int e = 0; e < 2; e++) {
            Q[h + 2 * e] = _mm512_shuffle_f64x2(u[2 * h + e], u[4 + 2 * h + e], 0x88);
            Q[h + 2 * e + 4] = _mm512_shuffle_f64x2(u[2 * h + e], u[4 + 2 * h + e], 0xDD);
        }
}

/* With two levels: tab[q][s] = C[8 s + q] (+inf past lev[0]), by transposes */
static void stoch_tables_avx512(stoch_levels *L)
{
    if (L->nlev != 2) return;
    const an_int ng = L->len[0] / 8;   /* groups of 8 in lev[0], at most 16 */
    for (int h = 0; h < 2; h++) {
        __m512d R[8], Q[8];
        for (int u = 0; u < 8; u++)
            R[u] = 8 * h + u < ng ? _mm512_loadu_pd(L->lev[0] + 8 * (8 * h + u))
                                  : _mm512_set1_pd(INFINITY);
        stoch_transpose8_pd(R, Q);
        for (int q = 0; q < 8; q++) _mm512_storeu_pd(L->tab[q] + 8 * h, Q[q]);
    }
}

/* Q[q] lane u = p_q, key q of the block of 8 at x + j0[u], for eight
 * blocks, q < 7 (zero past nv: the blocks at or past jt = nv rounded down
 * to 8 are read under the mask tm, the others whole; full: none is past jt,
 * nv a multiple of 8): the rows loaded and transposed; returns the lanes
 * with p_7 > 0.  Float: the rows in pairs of a vector of 16 (the second
 * loaded into the upper half from 8 floats before it, under a mask: no
 * fault there), two levels of two-source permutes to [p_q | p_(q+1)] of
 * all eight rows, each half then converted to double; double: three levels
 * of two-source permutes (stoch_transpose8_pd). */
static inline __attribute__((always_inline)) __mmask8
stoch_cols8_(const void *x, const int isf, const int full, an_int jt, __mmask8 tm,
             const an_int *j0, __m512d Q[7])
{
    __mmask8 lm[8];
    for (int u = 0; u < 8; u++) lm[u] = full || j0[u] < jt ? (__mmask8)0xFF : tm;
    if (isf) {
        const float *xf = (const float *)x;
        __m512 Z[4], U[4];
        for (int k = 0; k < 4; k++)
            Z[k] = full ? _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(xf + j0[2 * k])),
                                             _mm256_loadu_ps(xf + j0[2 * k + 1]), 1)
                        : _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(lm[2 * k], xf + j0[2 * k]),
                                               (__mmask16)((unsigned)lm[2 * k + 1] << 8),
                                               xf + j0[2 * k + 1] - 8);
        /* U[2h + g] lane 4q + u = key 4g + q of row 4h + u */
        const __m512i l1 = _mm512_set_epi32(27, 19, 11, 3, 26, 18, 10, 2, 25, 17, 9, 1, 24, 16, 8, 0);
        const __m512i l1b = _mm512_add_epi32(l1, _mm512_set1_epi32(4));
        U[0] = _mm512_permutex2var_ps(Z[0], l1, Z[1]);
        U[1] = _mm512_permutex2var_ps(Z[0], l1b, Z[1]);
        U[2] = _mm512_permutex2var_ps(Z[2], l1, Z[3]);
        U[3] = _mm512_permutex2var_ps(Z[2], l1b, Z[3]);
        /* [key q of rows 0..7 | key q + 1 of rows 0..7], q = 4g + 2e */
        const __m512i l2 = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
        const __m512i l2b = _mm512_add_epi32(l2, _mm512_set1_epi32(8));
        __mmask8 pos7 = 0;
        for (int g = 0; g < 2; g++)
            for (int e = 0; e < 2; e++) {
                const __m512 V = _mm512_permutex2var_ps(U[g], e ? l2b : l2, U[2 + g]);
                Q[4 * g + 2 * e] = _mm512_cvtps_pd(_mm512_castps512_ps256(V));
                if (g == 1 && e == 1)
                    pos7 = (__mmask8)(_mm512_mask_cmp_ps_mask(0xFF00, V, _mm512_setzero_ps(),
                                                              _CMP_GT_OQ) >> 8);
                else
                    Q[4 * g + 2 * e + 1] = _mm512_cvtps_pd(_mm512_extractf32x8_ps(V, 1));
            }
        return pos7;
    } else {
        const double *xd = (const double *)x;
        __m512d R[8], Q8[8];
        for (int u = 0; u < 8; u++)
            R[u] = full ? _mm512_loadu_pd(xd + j0[u]) : _mm512_maskz_loadu_pd(lm[u], xd + j0[u]);
        stoch_transpose8_pd(R, Q8);
        for (int q = 0; q < 7; q++) Q[q] = Q8[q];
        return _mm512_cmp_pd_mask(Q8[7], _mm512_setzero_pd(), _CMP_GT_OQ);
    }
}

/* J[u0 + u] (u < 8, u0 + u < nb) from the trials' blocks j0[u0 + u] and
 * R = P - C[b-1] (stoch_keys_avx512_) */
static inline __attribute__((always_inline)) void
stoch_keys8_(const void *x, const int isf, const int full, an_int nv, an_int jt, __mmask8 tm,
             const an_int *j0, __m512d R, int u0, int nb, an_int *J)
{
    __m512d Q[7];
    const __mmask8 pos7 = stoch_cols8_(x, isf, full, jt, tm, j0 + u0, Q);
    const __m512d a1 = _mm512_add_pd(Q[0], Q[1]), a3 = _mm512_add_pd(a1, _mm512_add_pd(Q[2], Q[3]));
    const __m512d a5 = _mm512_add_pd(a3, _mm512_add_pd(Q[4], Q[5]));
    const __m512d a2 = _mm512_add_pd(a1, Q[2]), a4 = _mm512_add_pd(a3, Q[4]);
    const __m512d a6 = _mm512_add_pd(a5, Q[6]);
    /* t by halving (the a_q are nondecreasing): bit 2 a_3 < R, bit 1 a_1 or
     * a_5 < R, bit 0 one of a_0, a_2, a_4, a_6 < R */
    const __mmask8 t2 = _mm512_cmp_pd_mask(a3, R, _CMP_LT_OQ);
    const __mmask8 t1 = _mm512_cmp_pd_mask(_mm512_mask_blend_pd(t2, a1, a5), R, _CMP_LT_OQ);
    const __m512d lo = _mm512_mask_blend_pd(t1, Q[0], a2), hi = _mm512_mask_blend_pd(t1, a4, a6);
    const __mmask8 t0 = _mm512_cmp_pd_mask(_mm512_mask_blend_pd(t2, lo, hi), R, _CMP_LT_OQ);
    __m512i t = _mm512_maskz_mov_epi64(t2, _mm512_set1_epi64(4));
    t = _mm512_mask_add_epi64(t, t1, t, _mm512_set1_epi64(2));
    t = _mm512_mask_add_epi64(t, t0, t, _mm512_set1_epi64(1));
    const __mmask8 keep = nb - u0 >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (nb - u0)) - 1);
    _mm512_mask_storeu_epi64(J + u0, keep, _mm512_add_epi64(_mm512_loadu_si512(j0 + u0), t));
    /* t = 7 where key 7 has no mass (past nv, or a zero: rare) */
    __mmask8 mend = t2 & t1 & t0 & ~pos7 & keep;
    for (; mend; mend &= mend - 1) {
        const int u = __builtin_ctz(mend);
        double pv[8];
        const an_int jb = j0[u0 + u];
        for (int q = 0; q < 8; q++)
            pv[q] = jb + q < nv ? (isf ? (double)((const float *)x)[jb + q]
                                       : ((const double *)x)[jb + q]) : 0.0;
        J[u0 + u] = jb + nearest_positive(pv, 7);
    }
}

/* J[u] = the key of the trial at P[u] (u < nb), as the portable
 * stoch_keys_ (stochastic_impl.inc) finds it.  The block: for eight trials
 * at once the count of the top level's entries below P, then the count
 * below P inside one group of 8 on each level down to C (two levels: eight
 * trials at once from the tables, C[b-1] the last entry below P; more: per
 * trial); R = P - C[b-1] (C[-1] = 0).  The key: eight trials side by side,
 * the lanes of their blocks' probabilities (stoch_cols8_, zero past nv)
 * summed in the same order as the portable code,
 *   a_1 = p_0 + p_1, a_2 = a_1 + p_2, a_3 = a_1 + (p_2 + p_3),
 *   a_4 = a_3 + p_4, a_5 = a_3 + (p_4 + p_5), a_6 = a_5 + p_6,
 * and t = #{q < 7 : a_q < R} (a_0 = p_0; the a_q are nondecreasing, so t
 * is found by halving); t = 7 where key 7 has no mass is mended
 * (nearest_positive), as in the portable code.  x is float (isf) or
 * double; P has room for nb rounded up to 8 (the extra lanes are searched,
 * not kept). */
static inline __attribute__((always_inline)) void
stoch_keys_avx512_(const void *x, const int isf, an_int nv, const stoch_levels *L, an_int blast,
                   const double *P, int nb, an_int *J)
{
    const int top = L->nlev - 1;
    const double *Lt = L->lev[top], *C = L->lev[0];
    const an_int jt = nv & ~(an_int)7;
    const __mmask8 tm = (__mmask8)((1u << (nv & 7)) - 1);
    const int full = jt == nv;
    /* top level: #{s : Lt[s] < P} by halving over the 16 entries */
    const __m512d T0 = _mm512_loadu_pd(Lt),
                  T1 = L->len[top] > 8 ? _mm512_loadu_pd(Lt + 8) : _mm512_set1_pd(INFINITY);
    const __m512i one = _mm512_set1_epi64(1);
    int64_t B[AN_STOCH_CHUNK];
    for (int u = 0; u < nb; u += 8) {
        const __m512d p = _mm512_loadu_pd(P + u);
        __m512i cnt = _mm512_setzero_si512();
        for (int h = 8; h >= 1; h /= 2) {
            const __m512d v = _mm512_permutex2var_pd(T0, _mm512_add_epi64(cnt, _mm512_set1_epi64(h - 1)), T1);
            cnt = _mm512_mask_add_epi64(cnt, _mm512_cmp_pd_mask(v, p, _CMP_LT_OQ), cnt, _mm512_set1_epi64(h));
        }
        _mm512_storeu_si512(B + u, cnt);
    }
    /* the blocks (j0 = 8 b) and R = P - C[b-1] of all the trials, then
     * their keys: each step's chains of dependent work overlap those of the
     * other trials */
    an_int j0[AN_STOCH_CHUNK];
    double Rs[AN_STOCH_CHUNK];
    const int nb8 = (nb + 7) & ~7;
    if (top == 1) {
        for (int u0 = 0; u0 < nb; u0 += 8) {
            const __m512d p = _mm512_loadu_pd(P + u0);
            const __m512i s = _mm512_loadu_si512(B + u0);
            /* C[8s - 1] = Lt[s - 1], or C[-1] = 0 */
            __m512d cb = _mm512_maskz_permutex2var_pd(_mm512_cmp_epi64_mask(s, _mm512_setzero_si512(),
                                                                            _MM_CMPINT_GT),
                                                      T0, _mm512_sub_epi64(s, one), T1);
            /* the count below P in the group by halving: C[8s + 3], then
             * C[8s + 1] or C[8s + 5], then C[8s + c] (c even); the last
             * entry found below P is C[b-1] */
#define AN_STOCH_TAB(q) _mm512_permutex2var_pd(_mm512_loadu_pd(L->tab[q]), s, _mm512_loadu_pd(L->tab[q] + 8))
            __m512d v = AN_STOCH_TAB(3);
            const __mmask8 k2 = _mm512_cmp_pd_mask(v, p, _CMP_LT_OQ);
            cb = _mm512_mask_mov_pd(cb, k2, v);
            v = _mm512_mask_blend_pd(k2, AN_STOCH_TAB(1), AN_STOCH_TAB(5));
            const __mmask8 k1 = _mm512_cmp_pd_mask(v, p, _CMP_LT_OQ);
            cb = _mm512_mask_mov_pd(cb, k1, v);
            v = _mm512_mask_blend_pd(k2, _mm512_mask_blend_pd(k1, AN_STOCH_TAB(0), AN_STOCH_TAB(2)),
                                     _mm512_mask_blend_pd(k1, AN_STOCH_TAB(4), AN_STOCH_TAB(6)));
            const __mmask8 k0 = _mm512_cmp_pd_mask(v, p, _CMP_LT_OQ);
            cb = _mm512_mask_mov_pd(cb, k0, v);
#undef AN_STOCH_TAB
            __m512i b = _mm512_mask_add_epi64(_mm512_slli_epi64(s, 3), k2, _mm512_slli_epi64(s, 3),
                                              _mm512_set1_epi64(4));
            b = _mm512_mask_add_epi64(b, k1, b, _mm512_set1_epi64(2));
            b = _mm512_mask_add_epi64(b, k0, b, one);
            const __mmask8 over = _mm512_cmp_epi64_mask(b, _mm512_set1_epi64(blast), _MM_CMPINT_GT);
            if (over) {   /* the portable code's clamp (C[blast] is the total, >= P) */
                b = _mm512_mask_mov_epi64(b, over, _mm512_set1_epi64(blast));
                cb = _mm512_mask_mov_pd(cb, over, _mm512_set1_pd(C[blast - 1]));
            }
            _mm512_storeu_si512(j0 + u0, _mm512_slli_epi64(b, 3));
            _mm512_storeu_pd(Rs + u0, _mm512_sub_pd(p, cb));
        }
    } else for (int u = 0; u < nb8; u++) {   /* more levels: per trial */
        const __m512d p = _mm512_set1_pd(P[u]);
        an_int b = B[u];
        for (int l = top - 1; l >= 0; l--)
            b = 8 * b + __builtin_popcount(
                _mm512_cmp_pd_mask(_mm512_loadu_pd(L->lev[l] + 8 * b), p, _CMP_LT_OQ));
        b = b < blast ? b : blast;
        Rs[u] = P[u] - C[b - 1];
        j0[u] = 8 * b;
    }
    for (int u0 = 0; u0 < nb; u0 += 8) {
        const __m512d R = _mm512_loadu_pd(Rs + u0);
        if (full) stoch_keys8_(x, isf, 1, nv, jt, tm, j0, R, u0, nb, J);
        else stoch_keys8_(x, isf, 0, nv, jt, tm, j0, R, u0, nb, J);
    }
}
static void stoch_keys_avx512_f(const float *x, an_int nv, const stoch_levels *L, an_int blast,
                                const double *P, int nb, an_int *J)
{
    stoch_keys_avx512_(x, 1, nv, L, blast, P, nb, J);
}
static void stoch_keys_avx512_d(const double *x, an_int nv, const stoch_levels *L, an_int blast,
                                const double *P, int nb, an_int *J)
{
    stoch_keys_avx512_(x, 0, nv, L, blast, P, nb, J);
}

/* C[b] = run0 + (the block sums up to b) for b < n4 (a multiple of 4), as
 * the portable loop (stochastic_impl.inc) forms them: each block's sum
 * ((y0 + y2) + (y4 + y6)) + ((y1 + y3) + (y5 + y7)) in double, eight
 * blocks side by side (the pairs regrouped across blocks before each level
 * of adds), then within each group of four p1 = s0 + s1, p2 = p1 + s2,
 * p3 = p2 + s3 and C = run + p, run += p3.  Returns run. */
static double stoch_cdf_avx512(const float *x, an_int n4, double run, double *C)
{
    const __m512i ev = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
    const __m512i i3 = _mm512_set1_epi64(3), i7 = _mm512_set1_epi64(7);
    __m512d runv = _mm512_set1_pd(run);
    for (an_int b8 = 0; b8 < n4; b8 += 8) {
        const float *y = x + 8 * b8;
        const int nk = n4 - b8 >= 8 ? 8 : 4;   /* blocks in this step */
        __m512d D[8], Zp[4], G[2];
        for (int k = 0; k < 8; k++)
            D[k] = k < nk ? _mm512_cvtps_pd(_mm256_loadu_ps(y + 8 * k)) : _mm512_setzero_pd();
        /* blocks k, k+1: y0 + y2, y1 + y3, y4 + y6, y5 + y7 of each (the
         * pairs of 128-bit lanes 0, 2 and 1, 3 of each block) */
        for (int k = 0; k < 4; k++)
            Zp[k] = _mm512_add_pd(_mm512_shuffle_f64x2(D[2 * k], D[2 * k + 1], 0x88),
                                  _mm512_shuffle_f64x2(D[2 * k], D[2 * k + 1], 0xDD));
        /* blocks 4g .. 4g+3: e0 = (y0 + y2) + (y4 + y6), e1 = (y1 + y3) + (y5 + y7) */
        for (int g = 0; g < 2; g++)
            G[g] = _mm512_add_pd(_mm512_shuffle_f64x2(Zp[2 * g], Zp[2 * g + 1], 0x88),
                                 _mm512_shuffle_f64x2(Zp[2 * g], Zp[2 * g + 1], 0xDD));
        /* s_k = e0 + e1, then the prefix within each group of four */
        __m512d V = _mm512_add_pd(_mm512_permutex2var_pd(G[0], ev, G[1]),
                                  _mm512_permutex2var_pd(G[0], od, G[1]));
        V = _mm512_mask_add_pd(V, 0x22, V, _mm512_permutex_pd(V, 0x00));
        V = _mm512_mask_add_pd(V, 0x44, V, _mm512_permutex_pd(V, 0x55));
        V = _mm512_mask_add_pd(V, 0x88, V, _mm512_permutex_pd(V, 0xAA));
        /* run + p3 of the first group in every lane, then of the second
         * (in registers: a scalar read back from the stored V would wait
         * for the store) */
        const __m512d run1 = _mm512_add_pd(runv, _mm512_permutexvar_pd(i3, V));
        _mm512_mask_storeu_pd(C + b8, nk == 8 ? 0xFF : 0x0F,
                              _mm512_add_pd(_mm512_mask_blend_pd(0xF0, runv, run1), V));
        runv = nk == 8 ? _mm512_add_pd(run1, _mm512_permutexvar_pd(i7, V)) : run1;
    }
    return _mm512_cvtsd_f64(runv);
}
#pragma GCC pop_options
#endif

/* Counts of the keys J[0..n) in cnt (zero where not yet hit), the keys
 * listed in nz (after the nnz there) in order of first hit; returns their
 * number. */
static an_int stoch_count(int32_t *cnt, const an_int *J, int n, an_int *nz, an_int nnz)
{
    for (int k = 0; k < n; k++) {
        const an_int j = J[k];
        nz[nnz] = j;
        nnz += cnt[j]++ == 0;
    }
    return nnz;
}

/* Above this many trials the counts come from sequential binomials. */
#define AN_STOCH_BINOMIAL_N ((int64_t)1 << 20)

/* log(k!) - [(k + 1/2) log(k + 1) - (k + 1) + log(2 pi)/2]: the Stirling
 * tail, tabulated for k <= 9 (Hormann 1993, BTRS) */
static double stoch_stirling_tail(double k)
{
    static const double tail[10] = {
        0.0810614667953272, 0.0413406959554092, 0.0276779256849983, 0.02079067210376509,
        0.0166446911898211, 0.0138761288230707, 0.0118967099458917, 0.0104112652619720,
        0.00925546218271273, 0.00833056343336287 };
    if (k <= 9) return tail[(int)k];
    const double kp1sq = (k + 1) * (k + 1);
    return (1.0 / 12 - (1.0 / 360 - 1.0 / 1260 / kp1sq) / kp1sq) / (k + 1);
}

/* Binomial(n, p) for 0 < p <= 1/2, uniforms u(key, *ctr), *ctr advanced.
 * n p < 10: count the geometric waiting times between successes that fit
 * in n trials.  Otherwise BTRS (Hormann 1993, "The generation of binomial
 * random variates", transformed rejection with squeeze), exact rejection
 * against the Stirling form of the binomial probabilities. */
static int64_t stoch_binomial(int64_t n, double p, uint64_t key, uint64_t *ctr)
{
    const double np_ = (double)n * p;
    if (np_ < 10) {
        const double lq = log1p(-p);
        int64_t k = 0;
        double sum = 0;
        for (;;) {
            sum += ceil(log(an_rand_uniform(key, (*ctr)++)) / lq);
            if (sum > (double)n) return k;
            k++;
        }
    }
    const double nd = (double)n, sd = sqrt(np_ * (1 - p));
    const double b = 1.15 + 2.53 * sd, a = -0.0873 + 0.0248 * b + 0.01 * p;
    const double c = np_ + 0.5, vr = 0.92 - 4.2 / b, r = p / (1 - p);
    const double alpha = (2.83 + 5.1 / b) * sd, mo = floor((nd + 1) * p);
    for (;;) {
        const double u = an_rand_uniform(key, (*ctr)++) - 0.5;
        double v = an_rand_uniform(key, (*ctr)++);
        const double us = 0.5 - fabs(u), k = floor((2 * a / us + b) * u + c);
        if (us >= 0.07 && v <= vr) return (int64_t)k;
        if (k < 0 || k > nd) continue;
        v = log(v * alpha / (a / (us * us) + b));
        const double ub = (mo + 0.5) * log((mo + 1) / (r * (nd - mo + 1)))
            + (nd + 1) * log((nd - mo + 1) / (nd - k + 1))
            + (k + 0.5) * log(r * (nd - k + 1) / (k + 1))
            + stoch_stirling_tail(mo) + stoch_stirling_tail(nd - mo)
            - stoch_stirling_tail(k) - stoch_stirling_tail(nd - k);
        if (v <= ub) return (int64_t)k;
    }
}

/* Binomial(n, p) for any p in [0, 1] (p > 1/2 through n - Binomial(n, 1 - p)) */
static int64_t stoch_binomial_any(int64_t n, double p, uint64_t key, uint64_t *ctr)
{
    if (n <= 0 || !(p > 0)) return 0;
    if (p >= 1) return n;
    return p <= 0.5 ? stoch_binomial(n, p, key, ctr) : n - stoch_binomial(n, 1 - p, key, ctr);
}

/* Multinomial(N, p / sum p) counts over p[0..nv) by sequential binomials:
 * c_j ~ Binomial(N - sum_{l<j} c_l, p_j / sum_{l>=j} p_l).  suf: nv doubles
 * of scratch (the suffix sums, read at j before nz[<= j] is written over it,
 * as nz and suf share memory).  Lists the keys with a count in nz (in key
 * order); returns their number. */
static an_int stoch_counts_binomial(const double *p, an_int nv, int64_t N, uint64_t key,
                                    double *suf, an_int *nz, int64_t *cnt)
{
    double run = 0;
    for (an_int j = nv - 1; j >= 0; j--) { run += p[j]; suf[j] = run; }
    uint64_t ctr = 0;
    int64_t left = N;
    an_int nnz = 0;
    for (an_int j = 0; j < nv && left > 0; j++) {
        const double rest = suf[j];
        if (!(p[j] > 0)) continue;
        const int64_t k = stoch_binomial_any(left, p[j] / rest, key, &ctr);
        left -= k;
        if (k > 0) { cnt[j] = k; nz[nnz++] = j; }
    }
    return nnz;
}

/* ---- stochastic_softmax: ints [trials N, seed, stream] ---- */

#define AN_TEMPLATE "stochastic_impl.inc"
#include "an_template.h"

const an_normdesc an_norm_stochastic_softmax = {
    .name = "stochastic_softmax",
    .params = { { "trials", AN_PARAM_INT, 0, 100, { 1.0, INFINITY, 0, NULL }, AN_DOM_SAME },
                { "seed", AN_PARAM_INT, 0, 0, AN_DOM_ANY, AN_DOM_SAME },
                { "stream", AN_PARAM_INT, AN_PF_STREAM, 0, AN_DOM_ANY, AN_DOM_SAME } },
    .nparams = 3,
    .row_f = stochastic_softmax_row_f, .row_d = stochastic_softmax_row_d, .ws_mult = AN_STOCH_WS_MULT,
    .lists_support = 1, .prefetches_next = 1, .lognorm = AN_LOGNORM_UNIT,
    .vjp_f = an_stochastic_softmax_vjp_f, .vjp_d = an_stochastic_softmax_vjp_d, .vjp_ws_mult = 1 };
