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
 * counts the entries below the trial in levels of 8 over C (the top level
 * for eight trials at once), the in-block sums lane-wise: the same
 * operations in the same order, so both paths draw the same bits.  Counts
 * go to an int32 array (cleared per row); the keys that received a count are
 * listed (in order of first hit) for the caller in c->nz.
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
 * it) on the stack, longer rows in the workspace.  Workspace (ws_mult = 3,
 * 3 (m + 1) words): nz (m + 1 an_int: each trial writes one past the list)
 * | C (long rows only) | then, up to 2^20 trials, the levels above C (AVX-512
 * path, long rows only) and int32 counts of the m keys; above, counts
 * (m int64) after C[nblk]. */
#define AN_STOCH_STACK_BLOCKS 256   /* a multiple of 8 */

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
 * top level of at most 32 entries.  The lower bound #{b : C[b] < P} (C is
 * nondecreasing) is then the count of the top entries below P, refined level
 * by level by the count below P inside one group of 8: the same block as the
 * binary search, by 8-wide compares. */
#define AN_STOCH_MAXLEV 24
typedef struct {
    const double *lev[AN_STOCH_MAXLEV];
    an_int len[AN_STOCH_MAXLEV];
    int nlev;
} stoch_levels;

static inline an_int stoch_round8(an_int n) { return (n + 7) & ~(an_int)7; }

/* doubles needed above C for nblk blocks */
static an_int stoch_levels_words(an_int nblk)
{
    an_int w = 0;
    for (an_int len = stoch_round8(nblk); len > 32; ) { len = stoch_round8(len / 8); w += len; }
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
    while (len > 32) {
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

/* J[u] = the key of the trial at P[u] (u < nb), as the portable
 * stoch_keys_ (stochastic_impl.inc) finds it: the block by the levels (the
 * top level for eight trials at once: a count per lane of the entries below
 * P), then the same in-block prefix sums a_q of the block's probabilities pv
 * (zero past nv), formed lane-wise in the same order:
 *   odd lanes += the lane below   (a_1 = p_0 + p_1, p_2 + p_3, ...)
 *   lanes 2, 3 += a_1;  lanes 4, 5 += a_3;  lane 6 += a_5
 * and t = #{q < 7 : a_q < P - C[b-1]} (C[-1] = 0 is readable).  Key 7 of a
 * block can have probability 0 only past nv or where the row has a zero
 * (zero_any); only there is t = 7 mended.  x is float (isf) or double; P
 * has room for nb rounded up to 8. */
static inline __attribute__((always_inline)) void
stoch_keys_avx512_(const void *x, const int isf, an_int nv, const stoch_levels *L, an_int blast,
                   int zero_any, const double *P, int nb, an_int *J)
{
    const int top = L->nlev - 1;
    const double *Lt = L->lev[top], *C = L->lev[0];
    const an_int lt = L->len[top];
    const __m512i i3 = _mm512_set1_epi64(3), one = _mm512_set1_epi64(1);
    /* three passes over the trials (short chains of dependent work, many
     * trials in flight): the top level, the block, the key */
    int64_t B[AN_STOCH_CHUNK];
    for (int u = 0; u < nb; u += 8) {   /* top level: #{s : Lt[s] < P} */
        const __m512d p = _mm512_loadu_pd(P + u);
        __m512i cnt = _mm512_setzero_si512();
        for (an_int s = 0; s < lt; s++)
            cnt = _mm512_mask_add_epi64(cnt, _mm512_cmp_pd_mask(p, _mm512_set1_pd(Lt[s]), _CMP_GT_OQ),
                                        cnt, one);
        _mm512_storeu_si512(B + u, cnt);
    }
    double Rs[AN_STOCH_CHUNK];
    for (int u = 0; u < nb; u++) {   /* the blocks, and P - C[b-1] */
        const __m512d p = _mm512_set1_pd(P[u]);
        an_int b = B[u];
        if (top == 1)
            b = 8 * b + __builtin_popcount(_mm512_cmp_pd_mask(_mm512_loadu_pd(C + 8 * b), p, _CMP_LT_OQ));
        else
            for (int l = top - 1; l >= 0; l--)
                b = 8 * b + __builtin_popcount(
                    _mm512_cmp_pd_mask(_mm512_loadu_pd(L->lev[l] + 8 * b), p, _CMP_LT_OQ));
        b = b < blast ? b : blast;
        B[u] = b;
        Rs[u] = P[u] - C[b - 1];
    }
    for (int u = 0; u < nb; u++) {
        const an_int b = B[u];
        const an_int j0 = 8 * b;
        const __mmask8 lm = j0 + 8 <= nv ? (__mmask8)0xFF : (__mmask8)((1u << (nv - j0)) - 1);
        const __m512d pv = isf ? _mm512_cvtps_pd(_mm256_maskz_loadu_ps(lm, (const float *)x + j0))
                               : _mm512_maskz_loadu_pd(lm, (const double *)x + j0);
        __m512d a = _mm512_mask_add_pd(pv, 0xAA, pv, _mm512_movedup_pd(pv));
        a = _mm512_mask_add_pd(a, 0x0C, a, _mm512_permutex_pd(a, 0x55));
        a = _mm512_mask_add_pd(a, 0x30, a, _mm512_permutexvar_pd(i3, a));
        a = _mm512_mask_add_pd(a, 0x40, a, _mm512_permutex_pd(a, 0x55));
        const __m512d R = _mm512_set1_pd(Rs[u]);
        const int t = __builtin_popcount(_mm512_cmp_pd_mask(a, R, _CMP_LT_OQ) & 0x7F);
        J[u] = j0 + t;
        if ((t == 7) & (zero_any | (lm != 0xFF))) {   /* nearest_positive(pv, 7) */
            const unsigned pos = _mm512_cmp_pd_mask(pv, _mm512_setzero_pd(), _CMP_GT_OQ);
            if (!(pos >> 7)) J[u] = j0 + (pos ? 31 - __builtin_clz(pos) : 7);
        }
    }
}
static void stoch_keys_avx512_f(const float *x, an_int nv, const stoch_levels *L, an_int blast,
                                int zero_any, const double *P, int nb, an_int *J)
{
    stoch_keys_avx512_(x, 1, nv, L, blast, zero_any, P, nb, J);
}
static void stoch_keys_avx512_d(const double *x, an_int nv, const stoch_levels *L, an_int blast,
                                int zero_any, const double *P, int nb, an_int *J)
{
    stoch_keys_avx512_(x, 0, nv, L, blast, zero_any, P, nb, J);
}

/* C[b] = run0 + (the block sums up to b) for b < n4 (a multiple of 4), as
 * the portable loop (stochastic_impl.inc) forms them: each block's sum
 * ((y0 + y2) + (y4 + y6)) + ((y1 + y3) + (y5 + y7)) in double, eight
 * blocks side by side (the pairs regrouped across blocks before each level
 * of adds), then within each group of four p1 = s0 + s1, p2 = p1 + s2,
 * p3 = p2 + s3 and C = run + p, run += p3.  Returns run; *zero is set when
 * some x[j] (j < 8 n4) is 0. */
static double stoch_cdf_avx512(const float *x, an_int n4, double run, double *C, int *zero)
{
    const __m512i lo2 = _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0);
    const __m512i hi2 = _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2);
    const __m512i ev = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
    const __m512 fz = _mm512_setzero_ps();
    __mmask16 z = 0;
    for (an_int b8 = 0; b8 < n4; b8 += 8) {
        const float *y = x + 8 * b8;
        const int nk = n4 - b8 >= 8 ? 8 : 4;   /* blocks in this step */
        __m512d D[8], Zp[4], G[2];
        for (int k = 0; k < 8; k++)
            D[k] = k < nk ? _mm512_cvtps_pd(_mm256_loadu_ps(y + 8 * k)) : _mm512_setzero_pd();
        for (int k = 0; k < nk; k += 4)
            z |= _mm512_cmp_ps_mask(_mm512_loadu_ps(y + 8 * k), fz, _CMP_EQ_OQ)
               | _mm512_cmp_ps_mask(_mm512_loadu_ps(y + 8 * k + 16), fz, _CMP_EQ_OQ);
        /* blocks k, k+1: y0 + y2, y1 + y3, y4 + y6, y5 + y7 of each */
        for (int k = 0; k < 4; k++)
            Zp[k] = _mm512_add_pd(_mm512_permutex2var_pd(D[2 * k], lo2, D[2 * k + 1]),
                                  _mm512_permutex2var_pd(D[2 * k], hi2, D[2 * k + 1]));
        /* blocks 4g .. 4g+3: e0 = (y0 + y2) + (y4 + y6), e1 = (y1 + y3) + (y5 + y7) */
        for (int g = 0; g < 2; g++)
            G[g] = _mm512_add_pd(_mm512_permutex2var_pd(Zp[2 * g], lo2, Zp[2 * g + 1]),
                                 _mm512_permutex2var_pd(Zp[2 * g], hi2, Zp[2 * g + 1]));
        /* s_k = e0 + e1, then the prefix within each group of four */
        __m512d V = _mm512_add_pd(_mm512_permutex2var_pd(G[0], ev, G[1]),
                                  _mm512_permutex2var_pd(G[0], od, G[1]));
        V = _mm512_mask_add_pd(V, 0x22, V, _mm512_permutex_pd(V, 0x00));
        V = _mm512_mask_add_pd(V, 0x44, V, _mm512_permutex_pd(V, 0x55));
        V = _mm512_mask_add_pd(V, 0x88, V, _mm512_permutex_pd(V, 0xAA));
        double v[8];
        _mm512_storeu_pd(v, V);
        const double run1 = run + v[3];
        const __m512d Rv = _mm512_mask_blend_pd(0xF0, _mm512_set1_pd(run), _mm512_set1_pd(run1));
        _mm512_mask_storeu_pd(C + b8, nk == 8 ? 0xFF : 0x0F, _mm512_add_pd(Rv, V));
        run = nk == 8 ? run1 + v[7] : run1;
    }
    *zero |= z != 0;
    return run;
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
    .row_f = stochastic_softmax_row_f, .row_d = stochastic_softmax_row_d, .ws_mult = 3,
    .lists_support = 1, .lognorm = AN_LOGNORM_UNIT,
    .vjp_f = an_stochastic_softmax_vjp_f, .vjp_d = an_stochastic_softmax_vjp_d, .vjp_ws_mult = 1 };
