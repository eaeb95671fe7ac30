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
 * uniforms against the CDF of softmax(s): c_j = #{k : cdf_(j-1) < U_(k) <= cdf_j},
 * skipping blocks of 64 keys that no draw falls into with one vectorised sum.
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
    _Pragma("omp simd reduction(+:total_p)")                                  \
    for (an_int j = 0; j < nv; j++) total_p += (double)x[j];                  \
    an_int jlast = nv - 1;           /* last key with positive probability */ \
    while (jlast > 0 && !(x[jlast] > 0)) jlast--;                             \
    /* merge the sorted draws U_(k) * total_p against the running CDF, one   \
     * block of keys at a time: a block whose mass does not reach the next   \
     * draw is skipped with one vectorised sum.  The last positive key takes \
     * every draw left (its CDF is total_p), absorbing rounding at the top. */ \
    const double scale = total_p / total_e;                                   \
    const double invN = 1.0 / (double)N;                                      \
    double cdf = 0;                                                           \
    double s = exp_draw(key, 0);     /* S_1 */                                \
    double next = s * scale;         /* position of the next draw */          \
    int64_t k = 0;                   /* draws placed so far */                \
    an_int j = 0;                                                             \
    while (j < jlast) {                                                       \
        const an_int je = j + 64 < jlast ? j + 64 : jlast;                    \
        double bs = 0;                                                        \
        _Pragma("omp simd reduction(+:bs)")                                   \
        for (an_int q = j; q < je; q++) bs += (double)x[q];                   \
        if (k >= N || cdf + bs < next) {                                      \
            for (an_int q = j; q < je; q++) x[q] = 0;                         \
            cdf += bs; j = je; continue;                                      \
        }                                                                     \
        for (; j < je; j++) {                                                 \
            double p = (double)x[j];                                          \
            int64_t cnt = 0;                                                  \
            cdf += p;                                                         \
            if (p > 0)                                                        \
                while (k < N && next <= cdf) {                                \
                    cnt++; k++;                                               \
                    s += exp_draw(key, (uint64_t)k);                          \
                    next = s * scale;                                         \
                }                                                             \
            x[j] = (T)((double)cnt * invN);                                   \
        }                                                                     \
    }                                                                         \
    x[jlast] = (T)((double)(N - k) * invN);                                   \
    for (an_int q = jlast + 1; q < nv; q++) x[q] = 0;                         \
    return AN_OK;                                                             \
}

AN_STOCHASTIC_ROW(float, f)
AN_STOCHASTIC_ROW(double, d)

const an_normdesc an_norm_stochastic_softmax = {
    .row_f = stochastic_softmax_row_f, .row_d = stochastic_softmax_row_d,
    .nint = 3 };
