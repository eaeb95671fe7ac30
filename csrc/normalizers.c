/*
 * normalizers.c -- row kernels of the softmax family and the elementwise maps.
 * Formulas: shared/papers.md section A; each kernel's comment gives its own.
 * Kernels are written once as macros over the real type T (float, double).
 */
#include <float.h>
#include "normalize.h"
#include "an_simd.h"
#include "normalizers_shared.h"

/* ---- shared: in-place softmax of x[0..nv) at inverse temperature mul ----
 *   a_j = exp(mul (x_j - max x)) / sum_k exp(mul (x_k - max x))
 * Limits: if max x = +inf the mass is shared equally by the +inf entries;
 * if every x is -inf the row has no mass (AN_ROW_EMPTY); NaN anywhere gives
 * a NaN row.  mul is clamped to the largest finite T so that a tiny
 * temperature means argmax, never 0 * inf.  Used by softmax, ssmax,
 * affine_softmax, stochastic_softmax, entmax(alpha=1) and sinkhorn(n_iter=1). */
#define AN_SOFTMAX_INPLACE(T, TS, VOPS, TMAX)                                 \
int an_softmax_inplace_##TS(T *x, an_int nv, double mul_d)                    \
{                                                                             \
    T mul = mul_d > (double)TMAX ? TMAX : (T)mul_d;                           \
    T mx = VOPS->max(x, nv);                                                  \
    if (mx != mx) { for (an_int k = 0; k < nv; k++) x[k] = (T)NAN; return AN_OK; } \
    if (mx == -INFINITY) return AN_ROW_EMPTY;                                 \
    if (mx == INFINITY) {                                                     \
        an_int cnt = 0;                                                       \
        for (an_int k = 0; k < nv; k++) cnt += (x[k] == INFINITY);            \
        for (an_int k = 0; k < nv; k++) x[k] = x[k] == INFINITY ? (T)1 / (T)cnt : (T)0; \
        return AN_OK;                                                         \
    }                                                                         \
    double sum = VOPS->exp_shift_sum(x, nv, mx, mul);                         \
    VOPS->scale(x, nv, (T)(1.0 / sum));                                       \
    return AN_OK;                                                             \
}
AN_SOFTMAX_INPLACE(float, f, an_vf, FLT_MAX)
AN_SOFTMAX_INPLACE(double, d, an_vd, DBL_MAX)

/* ---- softmax:  a = softmax(s / T),  p[0] = temperature T > 0 ---- */
static int softmax_row_f(float *x, an_int nv, an_rowctx *c)
{ return an_softmax_inplace_f(x, nv, 1.0 / c->mat->p[0]); }
static int softmax_row_d(double *x, an_int nv, an_rowctx *c)
{ return an_softmax_inplace_d(x, nv, 1.0 / c->mat->p[0]); }
const an_normdesc an_norm_softmax = {
    .row_f = softmax_row_f, .row_d = softmax_row_d, .nreal = 1 };

/* ======================================================================== */
/* Softmax family and elementwise maps (H1).  Every kernel below is written  */
/* once as a macro over T; x[0..nv) holds the row's visible scores, nv = n_i. */
/* ======================================================================== */

/* Give the mass of a row equally to its entries equal to +inf; `extra` more
 * +inf competitors (e.g. a sink at +inf) take their share elsewhere.  Shared
 * by the +inf limits of softmax_sink and softpick. */
#define AN_POSINF_SHARE(T, TS)                                                \
static void posinf_share_##TS(T *x, an_int nv, an_int extra)                  \
{                                                                             \
    an_int cnt = extra;                                                       \
    for (an_int k = 0; k < nv; k++) cnt += (x[k] == INFINITY);                \
    for (an_int k = 0; k < nv; k++)                                           \
        x[k] = x[k] == INFINITY ? (T)(1.0 / (double)cnt) : (T)0;              \
}
AN_POSINF_SHARE(float, f)
AN_POSINF_SHARE(double, d)

static void fill_nan_f(float *x, an_int nv) { for (an_int k = 0; k < nv; k++) x[k] = NAN; }
static void fill_nan_d(double *x, an_int nv) { for (an_int k = 0; k < nv; k++) x[k] = NAN; }

/* ---- softmax_sink (papers A, attention sinks #4; "softmax_1" at sink = 0):
 *   a_j = exp(s_j) / (exp(sink) + sum_k exp(s_k)),   p[0] = sink
 * Stable form: M = max(max s, sink) is subtracted from every exponent.
 * sink = -inf is softmax exactly (same code path).  Limits: sink = +inf gives
 * zeros (or, with +inf scores, each +inf score and the sink share equally);
 * +inf scores share the mass as in softmax; a row of -inf scores with a finite
 * sink gives all weights 0 (the sink takes the mass; not an empty row). ---- */
#define AN_SOFTMAX_SINK(T, TS, VOPS)                                          \
static int softmax_sink_row_##TS(T *x, an_int nv, an_rowctx *c)               \
{                                                                             \
    const double sink = c->mat->p[0];                                         \
    if (sink == -INFINITY) return an_softmax_inplace_##TS(x, nv, 1.0);        \
    T mx = VOPS->max(x, nv);                                                  \
    if (mx != mx) { fill_nan_##TS(x, nv); return AN_OK; }                     \
    if (mx == INFINITY || sink == INFINITY) {                                 \
        posinf_share_##TS(x, nv, sink == INFINITY);                           \
        return AN_OK;                                                         \
    }                                                                         \
    const double shift = (double)mx > sink ? (double)mx : sink;               \
    double sum = VOPS->exp_shift_sum(x, nv, (T)shift, (T)1);                  \
    sum += exp(sink - shift);                                                 \
    VOPS->scale(x, nv, (T)(1.0 / sum));                                       \
    return AN_OK;                                                             \
}
AN_SOFTMAX_SINK(float, f, an_vf)
AN_SOFTMAX_SINK(double, d, an_vd)
const an_normdesc an_norm_softmax_sink = {
    .row_f = softmax_sink_row_f, .row_d = softmax_sink_row_d, .nreal = 1 };

/* ---- ssmax, Scalable-Softmax (papers A0 "SSMax", #11):
 *   a = softmax(c * log(n_i) * s),   p[0] = c >= 0
 * n_i = 1 gives log 1 = 0, i.e. weight 1 on the single key.  When the
 * multiplier c log n_i is 0 (n_i = 1 or c = 0) the result is its limit
 * from above: uniform over the finite scores, -inf scores get 0, +inf
 * scores share the mass, a NaN gives a NaN row. ---- */
#define AN_SSMAX(T, TS)                                                       \
static int ssmax_row_##TS(T *x, an_int nv, an_rowctx *c)                      \
{                                                                             \
    const double mul = c->mat->p[0] * log((double)nv);                        \
    if (!(mul > 0)) {   /* 0 (or 0 * inf): the mul -> 0+ limit */             \
        for (an_int k = 0; k < nv; k++)                                       \
            if (x[k] == x[k] && x[k] != INFINITY && x[k] != -INFINITY) x[k] = 0; \
        return an_softmax_inplace_##TS(x, nv, 1.0);                           \
    }                                                                         \
    return an_softmax_inplace_##TS(x, nv, mul);                               \
}
AN_SSMAX(float, f)
AN_SSMAX(double, d)
const an_normdesc an_norm_ssmax = { .row_f = ssmax_row_f, .row_d = ssmax_row_d, .nreal = 1 };

/* ---- sigmoid attention (papers A4, #6, #9):
 *   a_j = sigma(s_j + b),  b = p[0], or b = -log(n_i) when ip[0] (the default)
 * sigma(v) = 1 / (1 + exp(-v)) evaluated without overflow as
 * e = exp(-|v|), v >= 0 ? 1/(1+e) : e/(1+e).  No row normalisation, so a
 * row of -inf scores is all 0 (not an empty row). ---- */
#define AN_SIGMOID(T, TS, VOPS)                                               \
static int sigmoid_row_##TS(T *x, an_int nv, an_rowctx *c)                    \
{                                                                             \
    const double b = c->mat->ip[0] ? -log((double)nv) : c->mat->p[0];         \
    VOPS->sigmoid_shift(x, nv, (T)b);                                         \
    return AN_OK;                                                             \
}
AN_SIGMOID(float, f, an_vf)
AN_SIGMOID(double, d, an_vd)
const an_normdesc an_norm_sigmoid = {
    .row_f = sigmoid_row_f, .row_d = sigmoid_row_d, .nreal = 1, .nint = 1 };

/* ---- ReLU attention (papers A12, #4):
 *   a_j = max(s_j, 0)^p / n_i,   p = p[0] > 0
 * Computed in double and rounded once; NaN stays NaN, +inf gives +inf. ---- */
/* num / den in double for T = double (correctly rounded); for T = float
 * num * (1 / den), a multiply instead of a division per key: its error, an
 * ulp of double, can move the float result by one ulp only when the quotient
 * lies that close to a float rounding boundary */
#define AN_DIV_N(T, num, den, rden) (sizeof(T) == sizeof(float) ? (num) * (rden) : (num) / (den))
#define AN_RELU(T, TS)                                                        \
static int relu_row_##TS(T *x, an_int nv, an_rowctx *c)                       \
{                                                                             \
    const double p = c->mat->p[0], len = (double)nv, rl = 1.0 / len;          \
    if (p == 1.0) {                                                           \
        _Pragma("omp simd")                                                   \
        for (an_int k = 0; k < nv; k++) {                                     \
            double v = (double)x[k];                                          \
            x[k] = (T)(AN_DIV_N(T, v <= 0 ? 0.0 : v, len, rl));               \
        }                                                                     \
    } else if (p == 2.0) {                                                    \
        _Pragma("omp simd")                                                   \
        for (an_int k = 0; k < nv; k++) {                                     \
            double v = (double)x[k];                                          \
            v = v <= 0 ? 0.0 : v;                                             \
            x[k] = (T)(AN_DIV_N(T, v * v, len, rl));                          \
        }                                                                     \
    } else {                                                                  \
        for (an_int k = 0; k < nv; k++) {                                     \
            double v = (double)x[k];                                          \
            x[k] = (T)(v <= 0 ? 0.0 : pow(v, p) / len);                       \
        }                                                                     \
    }                                                                         \
    return AN_OK;                                                             \
}
AN_RELU(float, f)
AN_RELU(double, d)
const an_normdesc an_norm_relu = { .row_f = relu_row_f, .row_d = relu_row_d, .nreal = 1 };

/* ---- polynomial attention (papers A3, #3):
 *   a_j = s_j^p / sqrt(n_i),   p = p[0] a positive integer (checked in Python)
 * Integer p keeps the formula defined for negative scores (odd p keeps the
 * sign).  No max subtraction (papers A3); computed in double, rounded once
 * (AN_DIV_N). ---- */
#define AN_POLYNOMIAL(T, TS)                                                  \
static int polynomial_row_##TS(T *x, an_int nv, an_rowctx *c)                 \
{                                                                             \
    const double p = c->mat->p[0], root = sqrt((double)nv), rr = 1.0 / root;  \
    if (p == 1.0) {                                                           \
        _Pragma("omp simd")                                                   \
        for (an_int k = 0; k < nv; k++) x[k] = (T)(AN_DIV_N(T, (double)x[k], root, rr)); \
    } else if (p == 2.0) {                                                    \
        _Pragma("omp simd")                                                   \
        for (an_int k = 0; k < nv; k++) {                                     \
            double v = (double)x[k];                                          \
            x[k] = (T)(AN_DIV_N(T, v * v, root, rr));                         \
        }                                                                     \
    } else if (p == 3.0) {                                                    \
        _Pragma("omp simd")                                                   \
        for (an_int k = 0; k < nv; k++) {                                     \
            double v = (double)x[k];                                          \
            x[k] = (T)(AN_DIV_N(T, v * v * v, root, rr));                     \
        }                                                                     \
    } else {                                                                  \
        for (an_int k = 0; k < nv; k++) x[k] = (T)(pow((double)x[k], p) / root); \
    }                                                                         \
    return AN_OK;                                                             \
}
AN_POLYNOMIAL(float, f)
AN_POLYNOMIAL(double, d)
const an_normdesc an_norm_polynomial = {
    .row_f = polynomial_row_f, .row_d = polynomial_row_d, .nreal = 1 };

/* ---- softpick (papers A13):
 *   a_j = ReLU(e^{s_j} - 1) / (sum_k |e^{s_k} - 1| + eps),   eps = p[0] > 0
 * in the stable form of papers A13 with m = max s:
 *   a_j = ReLU(e^{s_j - m} - e^{-m}) / (sum_{k: s_k finite} |e^{s_k - m} - e^{-m}| + eps)
 * (eps enters the scaled denominator, as in the reference code).  Rows sum
 * to <= 1.  max s <= 0 (including a row of -inf) gives all zeros, not an empty
 * row; +inf scores share the mass equally (the limit); NaN gives a NaN row. ---- */
#define AN_SOFTPICK(T, TS, VOPS)                                              \
static int softpick_row_##TS(T *x, an_int nv, an_rowctx *c)                   \
{                                                                             \
    T mx = VOPS->max(x, nv);                                                  \
    if (mx != mx) { fill_nan_##TS(x, nv); return AN_OK; }                     \
    if (mx == INFINITY) { posinf_share_##TS(x, nv, 0); return AN_OK; }        \
    if (!(mx > 0)) { for (an_int k = 0; k < nv; k++) x[k] = 0; return AN_OK; } \
    double den = VOPS->softpick_terms(x, nv, mx, (T)exp(-(double)mx))        \
                 + c->mat->p[0];                                              \
    /* den = 0 only if every term is 0 (eps underflowed to 0 in float32);    \
     * 1/den may overflow T (den ~ a subnormal eps): then x_k <= den, divide */ \
    const T inv = den > 0 ? (T)(1.0 / den) : (T)0;                            \
    if (inv - inv == 0) VOPS->scale(x, nv, inv);                              \
    else for (an_int k = 0; k < nv; k++) x[k] = (T)((double)x[k] / den);      \
    return AN_OK;                                                             \
}
AN_SOFTPICK(float, f, an_vf)
AN_SOFTPICK(double, d, an_vd)
const an_normdesc an_norm_softpick = {
    .row_f = softpick_row_f, .row_d = softpick_row_d, .nreal = 1 };

/* ---- NAP, Normalized Attention Pooling (papers A1, title paper):
 *   a_j = g (s_j - mu) / (sigma + eps) + b,  mu, sigma = mean and population
 *   std of the visible scores;  p = [g, b, eps]
 * Statistics in double, two passes, on y = s * inv where inv = 1 unless
 * max |s| > 1e100 (then inv = 1 / max |s|, so sums and squares cannot
 * overflow; eps is rescaled with it), shifted by the pivot y_0 (mean =
 * y_0 + mean(y - y_0)) so a constant row has deviations exactly 0 instead of
 * rounding noise that a tiny eps would blow up to +-1.  Limits with infinite scores: the
 * standardisation is scale-free, so it becomes that of u_j = +1 / -1 / 0 for
 * s_j = +inf / -inf / finite (eps / sigma -> 0); a constant row (e.g. all
 * -inf) gives (s - mu) = 0, i.e. weights b.  NaN gives a NaN row. ---- */
#define AN_NAP(T, TS, VOPS)                                                   \
static void nap_apply_##TS(T *x, an_int nv, double inv, double g, double b,   \
                           double eps)                                        \
{                                                                             \
    const double len = (double)nv, pivot = (double)x[0] * inv;                \
    double sum = 0, var = 0;                                                  \
    _Pragma("omp simd reduction(+:sum)")                                      \
    for (an_int k = 0; k < nv; k++) sum += (double)x[k] * inv - pivot;        \
    const double mean = sum / len;             /* of y - pivot */             \
    _Pragma("omp simd reduction(+:var)")                                      \
    for (an_int k = 0; k < nv; k++) {                                         \
        double d = ((double)x[k] * inv - pivot) - mean;                       \
        var += d * d;                                                         \
    }                                                                         \
    /* |d| / den <= sqrt(nv) when sigma > 0 and d = 0 when sigma = 0, so      \
     * g * (d / den) neither overflows nor forms 0 * inf (g / den could). */  \
    const double den = sqrt(var / len) + eps * inv;                           \
    const double rden = den > 0 ? den : 1.0;   /* den 0: constant row, eps 0 */ \
    _Pragma("omp simd")                                                       \
    for (an_int k = 0; k < nv; k++)                                           \
        x[k] = (T)(g * ((((double)x[k] * inv - pivot) - mean) / rden) + b);   \
}                                                                             \
/* Fast path when no rescaling is needed (inv = 1): the same two passes as   \
 * nap_apply in double lanes (VOPS->dev_sums), the mean pass doubling as the  \
 * NaN/inf check (its sum is finite iff every score is finite, as float      \
 * sums cannot overflow a double), then one output pass multiplying by       \
 * 1 / den (dividing if that overflows).  Returns 0 if the row needs the      \
 * general path (non-finite scores, or double scores beyond 1e100). */       \
static int nap_fast_##TS(T *x, an_int nv, double g, double b, double eps)    \
{                                                                             \
    const double len = (double)nv, pivot = (double)x[0];                      \
    double sq;                                                                \
    const double sum = VOPS->dev_sums(x, nv, pivot, 0.0, &sq);               \
    if (!(sum - sum == 0)) return 0;                                          \
    if (sizeof(T) == sizeof(double)) {   /* |s| <= 1e100 as in nap_row */     \
        const double bound = 1e100 - (pivot < 0 ? -pivot : pivot);            \
        if (!(bound > 0) || !(sq <= bound * bound)) return 0;                 \
    }                                                                         \
    const double mean = sum / len;             /* of s - pivot */             \
    double var;                                                               \
    VOPS->dev_sums(x, nv, pivot, mean, &var);                                 \
    const double den = sqrt(var / len) + eps;                                 \
    const double rden = den > 0 ? den : 1.0;   /* den 0: constant row, eps 0 */ \
    const double r = 1.0 / rden;                                              \
    if (r - r == 0) { VOPS->dev_affine(x, nv, pivot, mean, r, g, b); return 1; } \
    for (an_int k = 0; k < nv; k++)                                           \
        x[k] = (T)(g * ((((double)x[k] - pivot) - mean) / rden) + b);         \
    return 1;                                                                 \
}                                                                             \
static int nap_row_##TS(T *x, an_int nv, an_rowctx *c)                        \
{                                                                             \
    const double g = c->mat->p[0], b = c->mat->p[1], eps = c->mat->p[2];      \
    if (nap_fast_##TS(x, nv, g, b, eps)) return AN_OK;                        \
    double amax = 0;                                                          \
    int nan = 0, ninf = 0;                                                    \
    _Pragma("omp simd reduction(max:amax) reduction(|:nan) reduction(+:ninf)") \
    for (an_int k = 0; k < nv; k++) {                                         \
        double v = (double)x[k], a = v < 0 ? -v : v;                          \
        nan |= v != v;                                                        \
        ninf += a == INFINITY;                                                \
        amax = a > amax ? a : amax;                                           \
    }                                                                         \
    if (nan) { fill_nan_##TS(x, nv); return AN_OK; }                          \
    if (ninf) {   /* standardise the signs of the infinities, eps -> 0 */     \
        for (an_int k = 0; k < nv; k++)                                       \
            x[k] = x[k] == INFINITY ? (T)1 : (x[k] == -INFINITY ? (T)-1 : (T)0); \
        nap_apply_##TS(x, nv, 1.0, g, b, 0.0);                                \
        return AN_OK;                                                         \
    }                                                                         \
    nap_apply_##TS(x, nv, amax > 1e100 ? 1.0 / amax : 1.0, g, b, eps);        \
    return AN_OK;                                                             \
}
AN_NAP(float, f, an_vf)
AN_NAP(double, d, an_vd)
const an_normdesc an_norm_nap = { .row_f = nap_row_f, .row_d = nap_row_d, .nreal = 3 };

/* ---- affine_softmax, Affine-Scaled Attention (papers A2, #2):
 *   a_j = alpha_i * softmax(s)_j + beta_i   on the visible keys of row i
 * alpha_i, beta_i: per-row (n) parameters rp[0], rp[1].  Masked keys stay 0
 * (beta is added to visible keys only); a row of -inf scores is empty as for
 * softmax. ---- */
#define AN_AFFINE_SOFTMAX(T, TS)                                              \
static int affine_softmax_row_##TS(T *x, an_int nv, an_rowctx *c)             \
{                                                                             \
    int rc = an_softmax_inplace_##TS(x, nv, 1.0);                             \
    if (rc) return rc;                                                        \
    const double a = AN_ROWPARAM(T, c->mat, 0, c->row);                       \
    const double b = AN_ROWPARAM(T, c->mat, 1, c->row);                       \
    _Pragma("omp simd")                                                       \
    for (an_int k = 0; k < nv; k++) x[k] = (T)(a * (double)x[k] + b);         \
    return AN_OK;                                                             \
}
AN_AFFINE_SOFTMAX(float, f)
AN_AFFINE_SOFTMAX(double, d)
const an_normdesc an_norm_affine_softmax = {
    .row_f = affine_softmax_row_f, .row_d = affine_softmax_row_d, .nrowp = 2 };
