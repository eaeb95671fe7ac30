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
 * a trial finds its block by a branch-free binary search over C (16 trials
 * side by side) and its key inside the block by 7 compares of
 * p_0 + ... + p_t (a shallow tree of adds) against u_k cdf_(n_i) - C[b-1].
 * No trial depends on another, so there is no branch on the data and no
 * sort.  Counts go to an int64 array (zeroed block by block as the trials
 * first reach a block); the keys that received a count are listed (in
 * order of first hit) for the caller in c->nz.
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

/* Rows of up to AN_STOCH_STACK_BLOCKS blocks keep C on the stack, longer
 * rows in the workspace.  Workspace (ws_mult = 3, 24 (m + 1) bytes):
 * nz (m + 1 an_int: each trial writes one past the list) | C (nblk + 1
 * doubles, long rows only) | counts (m int64). */
#define AN_STOCH_STACK_BLOCKS 256

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

/* nearest key of the block (down first) with pv > 0 */
static inline int nearest_positive(const double *pv, int t)
{
    for (int u = t; u >= 0; u--) if (pv[u] > 0) return u;
    for (int u = t + 1; u < 8; u++) if (pv[u] > 0) return u;
    return t;
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
