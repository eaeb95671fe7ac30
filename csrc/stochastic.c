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
 * skipping blocks of keys that no draw falls into with one sum.
 * Keys with probability 0 (e.g. -inf scores) never receive a count.
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

/* Exp(1) draws number ctr0 .. ctr0 + n - 1 of a key into e[0..n):
 * E = -log(u), u = an_rand_uniform(key, ctr) in (0, 1), normal (u >= 2^-54).
 * The log is fdlibm's __ieee754_log written branch-free so that it
 * vectorises (< 1 ulp): u = 2^k m with m in [sqrt(2)/2, sqrt(2)), f = m - 1,
 * s = f / (2 + f), log u = k ln2 + f - (f^2/2 - s (f^2/2 + R(s^2))),
 * R the minimax polynomial Lg1..Lg7; no FMA (ISO C contraction off), so every
 * CPU gives the same numbers. */
#define AN_DRAW_CHUNK 256
static void exp_draws(uint64_t key, uint64_t ctr0, an_int n, double *e)
{
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    for (an_int i = 0; i < n; i++) e[i] = an_rand_uniform(key, ctr0 + (uint64_t)i);
    _Pragma("omp simd")
    for (an_int i = 0; i < n; i++) {
        uint64_t b, mb, kb;
        memcpy(&b, &e[i], sizeof b);
        mb = (b & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL;  /* m in [1, 2) */
        kb = (b >> 52) | 0x4330000000000000ULL;                       /* 2^52 + exponent */
        double m, k;
        memcpy(&m, &mb, sizeof m);
        memcpy(&k, &kb, sizeof k);
        k -= 4503599627371519.0;                                      /* 2^52 + 1023 */
        const int big = m > 1.4142135623730951;
        m = big ? 0.5 * m : m;
        k = big ? k + 1.0 : k;
        const double f = m - 1.0, hfsq = 0.5 * f * f, s = f / (2.0 + f);
        const double z = s * s, w = z * z;
        const double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
        const double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
        const double R = t2 + t1;
        e[i] = -(k * ln2_hi - ((hfsq - (s * (hfsq + R) + k * ln2_lo)) - f));
    }
}

/* The draws E_0, E_1, ... of a row in chunks of AN_DRAW_CHUNK: draw_at(d, k)
 * for k increasing (the chunk holding k is regenerated when needed; the
 * generator is stateless, so regenerated draws are the same numbers). */
typedef struct { uint64_t key; int64_t k0, n; double e[AN_DRAW_CHUNK]; } draw_stream;
static inline double draw_at(draw_stream *d, int64_t k)
{
    if (k - d->k0 >= AN_DRAW_CHUNK || k < d->k0) {
        d->k0 = k - k % AN_DRAW_CHUNK;
        const int64_t left = d->n - d->k0;
        exp_draws(d->key, (uint64_t)d->k0, left < AN_DRAW_CHUNK ? left : AN_DRAW_CHUNK, d->e);
    }
    return d->e[k - d->k0];
}

/* Skip blocks: a block of AN_STOCH_OUTER keys, then sub-blocks of
 * AN_STOCH_INNER keys, that no draw falls into are passed with one sum. */
#define AN_STOCH_OUTER 64
#define AN_STOCH_INNER 8
/* The walk leaves x (the probabilities) as it is and records the keys that
 * received draws; AN_STOCH_FLUSH(T, upto) then zeroes x[zeroed .. upto) in one
 * pass and writes those keys' counts (all below upto). */
#define AN_STOCH_HITS 128
#define AN_STOCH_FLUSH(T, upto) do {                                             \
        const an_int up_ = (upto);                                            \
        for (an_int q = zeroed; q < up_; q++) x[q] = 0;                       \
        for (an_int t = 0; t < nhit; t++)                                     \
            x[hit_key[t]] = (T)((double)hit_cnt[t] * invN);                   \
        nhit = 0; zeroed = up_;                                               \
    } while (0)

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
    draw_stream ds;                  /* E_0 .. E_N */                         \
    ds.key = key; ds.n = N + 1;                                               \
    double total_e = 0;                                                       \
    for (ds.k0 = 0; ds.k0 <= N; ds.k0 += AN_DRAW_CHUNK) {                     \
        const int64_t left = N + 1 - ds.k0;                                   \
        const an_int cn = left < AN_DRAW_CHUNK ? left : AN_DRAW_CHUNK;        \
        exp_draws(key, (uint64_t)ds.k0, cn, ds.e);                            \
        for (an_int q = 0; q < cn; q++) total_e += ds.e[q];                   \
    }                                                                         \
    ds.k0 -= AN_DRAW_CHUNK;          /* the last chunk is in ds.e */          \
    double total_p = 0;                                                       \
    _Pragma("omp simd reduction(+:total_p)")                                  \
    for (an_int j = 0; j < nv; j++) total_p += (double)x[j];                  \
    an_int jlast = nv - 1;           /* last key with positive probability */ \
    while (jlast > 0 && !(x[jlast] > 0)) jlast--;                             \
    /* merge the sorted draws U_(k) * total_p against the running CDF, one   \
     * block of keys at a time: a block whose mass does not reach the next   \
     * draw is skipped with one vectorised sum (blocks of AN_STOCH_OUTER      \
     * keys, then of AN_STOCH_INNER inside a block holding draws).  The last  \
     * positive key takes every draw left (its CDF is total_p), absorbing     \
     * rounding at the top. */                                                \
    const double scale = total_p / total_e;                                   \
    const double invN = 1.0 / (double)N;                                      \
    double cdf = 0;                                                           \
    double s = draw_at(&ds, 0);      /* S_1 */                                \
    double next = s * scale;         /* position of the next draw */          \
    int64_t k = 0;                   /* draws placed so far */                \
    an_int j = 0;                                                             \
    an_int hit_key[AN_STOCH_HITS], nhit = 0, zeroed = 0;                      \
    int64_t hit_cnt[AN_STOCH_HITS];                                           \
    while (j < jlast) {                                                       \
        const an_int je = j + AN_STOCH_OUTER < jlast ? j + AN_STOCH_OUTER : jlast; \
        double bs = 0;                                                        \
        _Pragma("omp simd reduction(+:bs)")                                   \
        for (an_int q = j; q < je; q++) bs += (double)x[q];                   \
        if (k >= N || cdf + bs < next) {                                      \
            cdf += bs; j = je; continue;                                      \
        }                                                                     \
        while (j < je) {                                                      \
            const an_int ie = j + AN_STOCH_INNER < je ? j + AN_STOCH_INNER : je; \
            double is = 0;                                                    \
            if (ie - j == 8) {          /* a tree: no chain of 8 additions */ \
                const T *y = x + j;                                           \
                is = (((double)y[0] + (double)y[1]) + ((double)y[2] + (double)y[3])) \
                   + (((double)y[4] + (double)y[5]) + ((double)y[6] + (double)y[7])); \
            } else {                                                          \
                for (an_int q = j; q < ie; q++) is += (double)x[q];           \
            }                                                                 \
            if (k >= N || cdf + is < next) {                                  \
                cdf += is; j = ie; continue;                                  \
            }                                                                 \
            for (; j < ie; j++) {                                             \
                double p = (double)x[j];                                      \
                int64_t cnt = 0;                                              \
                cdf += p;                                                     \
                if (p > 0)                                                    \
                    while (k < N && next <= cdf) {                            \
                        cnt++; k++;                                           \
                        s += draw_at(&ds, k);                                 \
                        next = s * scale;                                     \
                    }                                                         \
                if (cnt) {                                                    \
                    hit_key[nhit] = j; hit_cnt[nhit] = cnt;                   \
                    if (++nhit == AN_STOCH_HITS) AN_STOCH_FLUSH(T, j + 1);     \
                }                                                             \
            }                                                                 \
        }                                                                     \
    }                                                                         \
    AN_STOCH_FLUSH(T, nv);                                                    \
    x[jlast] = (T)((double)(N - k) * invN);                                   \
    return AN_OK;                                                             \
}

AN_STOCHASTIC_ROW(float, f)
AN_STOCHASTIC_ROW(double, d)

const an_normdesc an_norm_stochastic_softmax = {
    .row_f = stochastic_softmax_row_f, .row_d = stochastic_softmax_row_d,
    .nint = 3 };
