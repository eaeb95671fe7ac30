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
 * Sampling in O(N + n_i) per row and O(1) memory: the N sorted uniforms are
 * U_(k) = S_k / S_(N+1) with S_k = E_1 + ... + E_k and E_j ~ Exp(1) i.i.d.
 * (exponential spacings).  A first pass sums the N+1 exponentials; a second
 * pass regenerates them (the generator is stateless) and merges the sorted
 * uniforms against the CDF of softmax(s): c_j = #{k : cdf_(j-1) < U_(k) <= cdf_j}.
 * Keys with probability 0 (e.g. -inf scores) never receive a count.
 *
 * NaN in a row gives a NaN row; a row of -inf is empty; +inf scores share the
 * mass (softmax's limit) and then get multinomial counts among themselves.
 */
#include <math.h>
#include "normalize.h"
#include "normalizers_shared.h"

/* key of (seed, stream, row) for an_rand_uniform */
static inline uint64_t stochastic_key(int64_t seed, int64_t stream, an_int row)
{
    return an_rand_u64(an_rand_u64((uint64_t)seed, (uint64_t)stream), (uint64_t)row);
}

/* Exp(1) draw number ctr of a key */
static inline double exp_draw(uint64_t key, uint64_t ctr)
{
    return -log(an_rand_uniform(key, ctr));
}

/* ---- stochastic_softmax: ints [trials N, seed, stream] ---- */
#define AN_STOCHASTIC_ROW(T, TS)                                              \
static int stochastic_softmax_row_##TS(T *x, an_int nv, an_rowctx *c)         \
{                                                                             \
    int rc = an_softmax_inplace_##TS(x, nv, 1.0);                             \
    if (rc != AN_OK) return rc;                                               \
    if (x[0] != x[0]) return AN_OK;         /* NaN row stays NaN */           \
    const int64_t N = c->mat->ip[0];                                          \
    if (N < 1) return AN_ERR_VALUE;                                           \
    const uint64_t key = stochastic_key(c->mat->ip[1], c->mat->ip[2], c->row); \
    double total_e = 0;                                                       \
    for (int64_t k = 0; k <= N; k++) total_e += exp_draw(key, (uint64_t)k);   \
    double total_p = 0;                                                       \
    an_int jlast = 0;                /* last key with positive probability */ \
    for (an_int j = 0; j < nv; j++) {                                         \
        total_p += (double)x[j];                                              \
        if (x[j] > 0) jlast = j;                                              \
    }                                                                         \
    /* merge U_(k) * total_p against the running (unnormalised) CDF; the     \
     * last positive key takes every draw left (its CDF is total_p), which   \
     * also absorbs rounding at the top end */                                \
    const double scale = total_p / total_e;                                   \
    const double invN = 1.0 / (double)N;                                      \
    double cdf = 0;                                                           \
    double s = exp_draw(key, 0);     /* S_1 */                                \
    int64_t k = 0;                   /* draws placed so far */                \
    for (an_int j = 0; j < nv; j++) {                                         \
        double p = (double)x[j];                                              \
        int64_t cnt = 0;                                                      \
        cdf += p;                                                             \
        if (j == jlast) { cnt = N - k; k = N; }                               \
        else if (p > 0) {                                                     \
            while (k < N && s * scale <= cdf) {                               \
                cnt++; k++;                                                   \
                s += exp_draw(key, (uint64_t)k);                              \
            }                                                                 \
        }                                                                     \
        x[j] = (T)((double)cnt * invN);                                       \
    }                                                                         \
    return AN_OK;                                                             \
}

AN_STOCHASTIC_ROW(float, f)
AN_STOCHASTIC_ROW(double, d)

const an_normdesc an_norm_stochastic_softmax = {
    .row_f = stochastic_softmax_row_f, .row_d = stochastic_softmax_row_d,
    .nint = 3 };
