/*
 * stochastic.c -- stochastic softmax (papers.md A7, Stochastic Attention #10).
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
 * block summed in double as a tree, then accumulated); a trial finds its
 * block by a branch-free binary search over C (16 trials side by side) and
 * its key inside the block by
 * 7 compares against C[b-1] + p_0 + ... + p_t.  No trial depends on another,
 * so there is no branch on the data and no sort.  Counts go to an int64
 * array; the keys that received a count are listed (in order of first hit)
 * for the caller in c->nz.
 *
 * Keys with probability 0 (e.g. -inf scores) never receive a count: inside a
 * block such a key's interval is empty (adding 0 is exact), and the one place
 * where rounding could leave it a sliver of width ~1e-16 (the block's last
 * key, bounded by C[b] instead of the in-block sum) is mended by moving the
 * trial to the nearest key of the block that has mass.
 *
 * NaN in a row gives a NaN row; a row of -inf is empty; +inf scores share the
 * mass (softmax's limit) and then get multinomial counts among themselves.
 */
#include <math.h>
#include <string.h>
#include "normalize.h"
#include "normalizers_shared.h"

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
    .lists_support = 1, .lognorm = AN_LOGNORM_UNIT };
