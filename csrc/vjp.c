/*
 * vjp.c -- row VJPs of the row normalizers (see vjp.h for the convention).
 *
 * Notation: x the visible scores of a row, a = w its weights, g the upstream
 * gradient, <u, v> = sum_j u_j v_j.  Every kernel computes in double and
 * rounds dx once; each kernel's comment gives its formulas.  Kernels are
 * written once as macros over the real type T (float, double).
 */
#include <float.h>
#include <string.h>
#include "vjp.h"
#include "an_simd.h"

/* Row state shared by the kernels: the row maximum, and for a NaN row (dx all
 * NaN) or a row whose weights are a limit (+inf scores) or carry no mass
 * (all -inf) the early exit.  ROW_CHECK(zero) fills dx and returns when the
 * row is NaN, or when it has +inf scores or only -inf scores and `zero`. */
#define AN_VJP_FILL(T, TS)                                                    \
static void vjp_fill_##TS(T *dx, an_int nv, T v)                              \
{ for (an_int k = 0; k < nv; k++) dx[k] = v; }
AN_VJP_FILL(float, f)
AN_VJP_FILL(double, d)

#define ROW_MAX(TS, VOPS)                                                     \
    const double mx = (double)VOPS->max(x, nv);                               \
    if (mx != mx) { vjp_fill_##TS(dx, nv, NAN); return AN_OK; }
#define ROW_INF_ZERO(TS)                                                      \
    if (mx == INFINITY || mx == -INFINITY) { vjp_fill_##TS(dx, nv, 0); return AN_OK; }

/* ---- softmax core: a = softmax(mul x) ----
 *   t_j = a_j (g_j - <a, g>),   dx_j = mul t_j,
 *   returns <a, g>; *xdot = sum_{a_j > 0} t_j (x_j - ref)
 * (d/dmul of <g, a> is sum_j t_j x_j, and sum_j t_j = 0 makes any ref exact). */
#define AN_SOFTMAX_CORE(T, TS)                                                \
static double smx_core_##TS(const T *x, const T *a, const T *g, T *dx, an_int nv, \
                            double mul, double ref, double *xdot)             \
{                                                                             \
    double q = 0, xd = 0;                                                     \
    for (an_int k = 0; k < nv; k++) q += (double)a[k] * (double)g[k];         \
    for (an_int k = 0; k < nv; k++) {                                         \
        const double ak = (double)a[k], t = ak * ((double)g[k] - q);          \
        dx[k] = (T)(mul * t);                                                 \
        xd += ak != 0 ? t * ((double)x[k] - ref) : 0.0;                       \
    }                                                                         \
    if (xdot) *xdot = xd;                                                     \
    return q;                                                                 \
}
AN_SOFTMAX_CORE(float, f)
AN_SOFTMAX_CORE(double, d)

/* softmax of x into p[0..nv) (T; x finite max mx), by the vectorised
 * exp-and-sum of the forward kernels */
#define AN_SOFTMAX_INTO(T, TS, VOPS)                                          \
static const T *softmax_into_##TS(const T *x, an_int nv, double mx, T *p)     \
{                                                                             \
    memcpy(p, x, sizeof(T) * (size_t)nv);                                     \
    const double s = VOPS->exp_shift_sum(p, nv, (T)mx, (T)1);                 \
    VOPS->scale(p, nv, (T)(1.0 / s));                                         \
    return p;                                                                 \
}
AN_SOFTMAX_INTO(float, f, an_vf)
AN_SOFTMAX_INTO(double, d, an_vd)

/* ---- softmax:  a = softmax(x / T),  p[0] = T ----
 *   dx = a (g - <a, g>) / T,   dT = -(1 / T^2) sum_j a_j (g_j - <a, g>) x_j */
#define AN_SOFTMAX_VJP(T, TS, VOPS, TMAX)                                     \
static int softmax_vjp_##TS(const T *x, const T *w, const T *g, T *dx, an_int nv, \
                            an_rowctx *c, double *dp)                         \
{                                                                             \
    ROW_MAX(TS, VOPS) ROW_INF_ZERO(TS)                                        \
    const double mul_d = 1.0 / c->mat->p[0];                                  \
    const double mul = mul_d > (double)TMAX ? (double)TMAX : mul_d;           \
    double xd;                                                                \
    smx_core_##TS(x, w, g, dx, nv, mul, mx, dp ? &xd : NULL);                 \
    if (dp) dp[0] += -mul * mul * xd;                                         \
    return AN_OK;                                                             \
}
AN_SOFTMAX_VJP(float, f, an_vf, FLT_MAX)
AN_SOFTMAX_VJP(double, d, an_vd, DBL_MAX)
const an_vjpdesc an_vjp_softmax = { .vjp_f = softmax_vjp_f, .vjp_d = softmax_vjp_d };

/* ---- softmax_sink:  a_j = e^{x_j} / (e^{sink} + sum_k e^{x_k}) ----
 *   dx = a (g - <a, g>),   dsink = -a_sink <a, g>,   a_sink = 1 - sum a
 * a_sink is taken from the largest weight: a_sink = a_j* e^{sink - x_j*}
 * (no cancellation when a_sink is tiny).  sink = +inf: weights 0 (or a
 * limit), gradient 0. */
#define AN_SOFTMAX_SINK_VJP(T, TS, VOPS)                                      \
static int softmax_sink_vjp_##TS(const T *x, const T *w, const T *g, T *dx, an_int nv, \
                                 an_rowctx *c, double *dp)                    \
{                                                                             \
    const double sink = c->mat->p[0];                                         \
    ROW_MAX(TS, VOPS) ROW_INF_ZERO(TS)                                        \
    if (sink == INFINITY) { vjp_fill_##TS(dx, nv, 0); return AN_OK; }         \
    const double q = smx_core_##TS(x, w, g, dx, nv, 1.0, mx, NULL);           \
    if (sink == -INFINITY || !dp) return AN_OK;                               \
    an_int jm = 0;                                                            \
    while ((double)x[jm] != mx) jm++;                                         \
    const double wm = (double)w[jm];                                          \
    if (wm > 0) dp[0] += -exp(log(wm) + (sink - mx)) * q;                     \
    return AN_OK;                                                             \
}
AN_SOFTMAX_SINK_VJP(float, f, an_vf)
AN_SOFTMAX_SINK_VJP(double, d, an_vd)
const an_vjpdesc an_vjp_softmax_sink = {
    .vjp_f = softmax_sink_vjp_f, .vjp_d = softmax_sink_vjp_d };

/* ---- ssmax:  a = softmax(mu x),  mu = c log n_i  (n_i constant) ----
 *   dx = mu a (g - <a, g>),   dc = log(n_i) sum_j a_j (g_j - <a, g>) x_j
 * At mu = 0 (c = 0 or n_i = 1) a is uniform over the finite scores and the
 * same formulas give the derivative from above. */
#define AN_SSMAX_VJP(T, TS, VOPS)                                             \
static int ssmax_vjp_##TS(const T *x, const T *w, const T *g, T *dx, an_int nv, \
                          an_rowctx *c, double *dp)                           \
{                                                                             \
    ROW_MAX(TS, VOPS) ROW_INF_ZERO(TS)                                        \
    const double ln = log((double)nv), mul = c->mat->p[0] * ln;               \
    double xd;                                                                \
    smx_core_##TS(x, w, g, dx, nv, mul > 0 ? mul : 0.0, mx, dp ? &xd : NULL); \
    if (dp) dp[0] += ln * xd;                                                 \
    return AN_OK;                                                             \
}
AN_SSMAX_VJP(float, f, an_vf)
AN_SSMAX_VJP(double, d, an_vd)
const an_vjpdesc an_vjp_ssmax = { .vjp_f = ssmax_vjp_f, .vjp_d = ssmax_vjp_d };

/* ---- sigmoid:  a_j = sigma(x_j + b) ----
 *   dx_j = g_j sigma(v) sigma(-v) = g_j e / (1 + e)^2,  v = x_j + b, e = exp(-|v|)
 *   db = sum_j dx_j   (only for a given bias; the default -log n_i is a constant) */
#define AN_SIGMOID_VJP(T, TS, VOPS)                                           \
static int sigmoid_vjp_##TS(const T *x, const T *w, const T *g, T *dx, an_int nv, \
                            an_rowctx *c, double *dp)                         \
{                                                                             \
    (void)w;                                                                  \
    const double b = c->mat->ip[0] ? -log((double)nv) : c->mat->p[0];         \
    T *e = (T *)c->ws;                                                        \
    for (an_int k = 0; k < nv; k++) e[k] = (T)-fabs((double)x[k] + b);        \
    VOPS->exp_shift_sum(e, nv, (T)0, (T)1);       /* e = exp(-|v|) */         \
    double sum = 0;                                                           \
    for (an_int k = 0; k < nv; k++) {                                         \
        const double ek = (double)e[k], u = 1.0 + ek;                         \
        const double d = (double)g[k] * (ek / (u * u));                       \
        dx[k] = (T)d; sum += d;                                               \
    }                                                                         \
    if (dp && !c->mat->ip[0]) dp[0] += sum;                                   \
    return AN_OK;                                                             \
}
AN_SIGMOID_VJP(float, f, an_vf)
AN_SIGMOID_VJP(double, d, an_vd)
const an_vjpdesc an_vjp_sigmoid = {
    .vjp_f = sigmoid_vjp_f, .vjp_d = sigmoid_vjp_d, .ws_mult = 1 };

/* ---- powers:  a_j = sgn(x_j)^p |x_j|^p / L  on the x_j where the map is on ----
 *   dx_j = g_j p x_j^(p-1) / L,   dp = sum_j g_j a_j log |x_j|
 * relu: L = n_i, only x_j > 0 (0 elsewhere, the subgradient 0 at x_j = 0);
 * polynomial: L = sqrt(n_i), integer p, every x_j (x_j = 0 adds nothing to dp). */
#define AN_POWER_VJP(T, TS)                                                   \
static void power_vjp_##TS(const T *x, const T *g, T *dx, an_int nv, double p, \
                           double len, int positive_only, double *dp)         \
{                                                                             \
    double sp = 0;                                                            \
    for (an_int k = 0; k < nv; k++) {                                         \
        const double v = (double)x[k], gk = (double)g[k];                     \
        if (v != v) { dx[k] = (T)NAN; sp += NAN; continue; }                  \
        if ((positive_only && !(v > 0)) || v == 0) { dx[k] = 0; continue; }   \
        const double pm1 = p == 1.0 ? 1.0 : p == 2.0 ? v : p == 3.0 ? v * v   \
                         : pow(v, p - 1.0);                                   \
        dx[k] = (T)(gk * p * pm1 / len);                                      \
        if (dp) sp += gk * (v * pm1 / len) * log(fabs(v));                    \
    }                                                                         \
    if (dp) dp[0] += sp;                                                      \
}                                                                             \
static int relu_vjp_##TS(const T *x, const T *w, const T *g, T *dx, an_int nv, \
                         an_rowctx *c, double *dp)                            \
{                                                                             \
    (void)w;                                                                  \
    power_vjp_##TS(x, g, dx, nv, c->mat->p[0], (double)nv, 1, dp);            \
    return AN_OK;                                                             \
}                                                                             \
static int polynomial_vjp_##TS(const T *x, const T *w, const T *g, T *dx, an_int nv, \
                               an_rowctx *c, double *dp)                      \
{                                                                             \
    (void)w;                                                                  \
    power_vjp_##TS(x, g, dx, nv, c->mat->p[0], sqrt((double)nv), 0, dp);      \
    return AN_OK;                                                             \
}
AN_POWER_VJP(float, f)
AN_POWER_VJP(double, d)
const an_vjpdesc an_vjp_relu = { .vjp_f = relu_vjp_f, .vjp_d = relu_vjp_d };
const an_vjpdesc an_vjp_polynomial = { .vjp_f = polynomial_vjp_f, .vjp_d = polynomial_vjp_d };

/* ---- softpick, in the forward's stable form with M = max x (j* its index):
 *   t_k = e^{x_k - M} - e^{-M},  D = sum_{x_k finite} |t_k| + eps,  a_j = [t_j]_+ / D
 *   h_k = ([t_k > 0] g_k - <a, g> sgn t_k) / D          (dL/dt_k)
 *   dx_k = h_k e^{x_k - M} - [k = j*] sum_l h_l t_l     (dt_l/dM = -t_l)
 *   deps = -<a, g> / D
 * max x <= 0 (weights identically 0 nearby) or +inf scores: gradient 0. */
#define AN_SOFTPICK_VJP(T, TS, VOPS)                                          \
static int softpick_vjp_##TS(const T *x, const T *w, const T *g, T *dx, an_int nv, \
                             an_rowctx *c, double *dp)                        \
{                                                                             \
    (void)w;                                                                  \
    ROW_MAX(TS, VOPS)                                                         \
    if (mx == INFINITY || !(mx > 0)) { vjp_fill_##TS(dx, nv, 0); return AN_OK; } \
    const double c0 = exp(-mx);                                               \
    T *E = (T *)c->ws;                                                        \
    memcpy(E, x, sizeof(T) * (size_t)nv);                                     \
    VOPS->exp_shift_sum(E, nv, (T)mx, (T)1);      /* E = exp(x - M) */        \
    double D = c->mat->p[0], num = 0;                                         \
    an_int jm = 0;                                                            \
    for (an_int k = 0; k < nv; k++) {                                         \
        const double v = (double)x[k];                                        \
        if (v == mx) jm = k;                                                  \
        if (v == -INFINITY) continue;                                         \
        const double t = (double)E[k] - c0;                                   \
        D += fabs(t);                                                         \
        num += t > 0 ? (double)g[k] * t : 0.0;                                \
    }                                                                         \
    const double q = num / D, iD = 1.0 / D;                                   \
    double ht = 0;                                                            \
    for (an_int k = 0; k < nv; k++) {                                         \
        /* x = -inf: E = 0 and t = -c0 would count; such keys are out */      \
        const double ek = (double)E[k], t = ek - c0;                          \
        const double sg = t > 0 ? 1.0 : (t < 0 ? -1.0 : 0.0);                 \
        double h = ((t > 0 ? (double)g[k] : 0.0) - q * sg) * iD;              \
        h = x[k] == -INFINITY ? 0.0 : h;                                      \
        dx[k] = (T)(h * ek);                                                  \
        ht += h * t;                                                          \
    }                                                                         \
    dx[jm] = (T)((double)dx[jm] - ht);                                        \
    if (dp) dp[0] += -q / D;                                                  \
    return AN_OK;                                                             \
}
AN_SOFTPICK_VJP(float, f, an_vf)
AN_SOFTPICK_VJP(double, d, an_vd)
const an_vjpdesc an_vjp_softpick = {
    .vjp_f = softpick_vjp_f, .vjp_d = softpick_vjp_d, .ws_mult = 1 };

/* ---- NAP:  a_j = G d_j / (sigma + eps) + B,  d = x - mean x,  sigma^2 = <d, d> / n ----
 *   S = <g, d>,  den = sigma + eps
 *   dx_l = G (g_l - mean g) / den - G S d_l / (den^2 n sigma)   (2nd term 0 at sigma = 0)
 *   dG = S / den,  dB = sum g,  deps = -G S / den^2
 * Scores beyond 1e100 are scaled by inv = 1 / max |x| first (as the forward);
 * with infinite scores the weights standardise their signs (eps -> 0): then
 * dx = 0, dG = <g, z> with z those standardised signs, dB = sum g, deps = 0. */
#define AN_NAP_VJP(T, TS)                                                     \
static int nap_vjp_##TS(const T *x, const T *w, const T *g, T *dx, an_int nv, \
                        an_rowctx *c, double *dp)                             \
{                                                                             \
    (void)w;                                                                  \
    const double G = c->mat->p[0], eps = c->mat->p[2], len = (double)nv;      \
    double amax = 0, gs = 0;                                                  \
    int nan = 0, ninf = 0;                                                    \
    for (an_int k = 0; k < nv; k++) {                                         \
        const double v = (double)x[k], a = fabs(v);                           \
        nan |= v != v; ninf += a == INFINITY;                                 \
        amax = a > amax ? a : amax;                                           \
        gs += (double)g[k];                                                   \
    }                                                                         \
    double dnull[3];                                                          \
    if (!dp) dp = dnull;                                                      \
    if (nan) { vjp_fill_##TS(dx, nv, NAN); dp[0] += NAN; dp[1] += NAN; dp[2] += NAN; return AN_OK; } \
    dp[1] += gs;                                                              \
    if (ninf) {                                                               \
        double mu = 0, var = 0, S = 0;                                        \
        for (an_int k = 0; k < nv; k++) {                                     \
            const double v = (double)x[k];                                    \
            mu += v == INFINITY ? 1.0 : (v == -INFINITY ? -1.0 : 0.0);        \
        }                                                                     \
        mu /= len;                                                            \
        for (an_int k = 0; k < nv; k++) {                                     \
            const double v = (double)x[k];                                    \
            const double u = (v == INFINITY ? 1.0 : (v == -INFINITY ? -1.0 : 0.0)) - mu; \
            var += u * u; S += (double)g[k] * u;                              \
        }                                                                     \
        const double sd = sqrt(var / len);                                    \
        if (sd > 0) dp[0] += S / sd;                                          \
        vjp_fill_##TS(dx, nv, 0);                                             \
        return AN_OK;                                                         \
    }                                                                         \
    const double inv = amax > 1e100 ? 1.0 / amax : 1.0, pivot = (double)x[0] * inv; \
    double sum = 0, var = 0, S = 0;                                           \
    for (an_int k = 0; k < nv; k++) sum += (double)x[k] * inv - pivot;        \
    const double mean = sum / len;                                            \
    for (an_int k = 0; k < nv; k++) {                                         \
        const double d = ((double)x[k] * inv - pivot) - mean;                 \
        var += d * d; S += (double)g[k] * d;                                  \
    }                                                                         \
    /* scaled: d' = inv d, sigma' = inv sigma, den' = inv den, S' = inv S */  \
    const double sd = sqrt(var / len), den = sd + eps * inv;                  \
    const double rden = den > 0 ? den : 1.0;                                  \
    const double a1 = G * inv / rden, gm = gs / len;                          \
    const double a2 = sd > 0 ? G * inv * (S / (rden * rden)) / (len * sd) : 0.0; \
    for (an_int k = 0; k < nv; k++) {                                         \
        const double d = ((double)x[k] * inv - pivot) - mean;                 \
        dx[k] = (T)(a1 * ((double)g[k] - gm) - a2 * d);                       \
    }                                                                         \
    dp[0] += S / rden;                                                        \
    dp[2] += -G * inv * S / (rden * rden);                                    \
    return AN_OK;                                                             \
}
AN_NAP_VJP(float, f)
AN_NAP_VJP(double, d)
const an_vjpdesc an_vjp_nap = { .vjp_f = nap_vjp_f, .vjp_d = nap_vjp_d };

/* ---- affine_softmax:  a_j = alpha_i p_j + beta_i,  p = softmax(x) ----
 *   dx = alpha p (g - <p, g>),   dalpha = <p, g>,   dbeta = sum g
 * p is recomputed in double (workspace) rather than read back from the
 * weights, which would divide by alpha.  A row with +inf scores has p the
 * equal shares of the +inf entries (dx 0); a row of -inf is empty (all 0). */
#define AN_AFFINE_VJP(T, TS, VOPS)                                            \
static int affine_softmax_vjp_##TS(const T *x, const T *w, const T *g, T *dx, an_int nv, \
                                   an_rowctx *c, double *dp)                  \
{                                                                             \
    (void)w;                                                                  \
    ROW_MAX(TS, VOPS)                                                         \
    if (mx == -INFINITY) { vjp_fill_##TS(dx, nv, 0); return AN_OK; }          \
    double gs = 0, dnull[2];                                                  \
    if (!dp) dp = dnull;                                                      \
    for (an_int k = 0; k < nv; k++) gs += (double)g[k];                       \
    dp[1] += gs;                                                              \
    if (mx == INFINITY) {                                                     \
        double cnt = 0, sg = 0;                                               \
        for (an_int k = 0; k < nv; k++)                                       \
            if (x[k] == INFINITY) { cnt += 1; sg += (double)g[k]; }           \
        dp[0] += sg / cnt;                                                    \
        vjp_fill_##TS(dx, nv, 0);                                             \
        return AN_OK;                                                         \
    }                                                                         \
    const double alpha = AN_ROWPARAM(T, c->mat, 0, c->row);                   \
    const T *p = softmax_into_##TS(x, nv, mx, (T *)c->ws);                    \
    double q = 0;                                                             \
    for (an_int k = 0; k < nv; k++) q += (double)p[k] * (double)g[k];         \
    for (an_int k = 0; k < nv; k++) dx[k] = (T)(alpha * (double)p[k] * ((double)g[k] - q)); \
    dp[0] += q;                                                               \
    return AN_OK;                                                             \
}
AN_AFFINE_VJP(float, f, an_vf)
AN_AFFINE_VJP(double, d, an_vd)
const an_vjpdesc an_vjp_affine_softmax = {
    .vjp_f = affine_softmax_vjp_f, .vjp_d = affine_softmax_vjp_d, .ws_mult = 1 };

/* ---- stochastic_softmax: straight-through estimator, the VJP of
 * softmax(x) (recomputed; the sampled weights are not differentiable):
 *   dx = p (g - <p, g>),  p = softmax(x) */
#define AN_STOCHASTIC_VJP(T, TS, VOPS)                                        \
static int stochastic_softmax_vjp_##TS(const T *x, const T *w, const T *g, T *dx, \
                                       an_int nv, an_rowctx *c, double *dp)   \
{                                                                             \
    (void)w; (void)dp;                                                        \
    ROW_MAX(TS, VOPS) ROW_INF_ZERO(TS)                                        \
    const T *p = softmax_into_##TS(x, nv, mx, (T *)c->ws);                    \
    double q = 0;                                                             \
    for (an_int k = 0; k < nv; k++) q += (double)p[k] * (double)g[k];         \
    for (an_int k = 0; k < nv; k++) dx[k] = (T)((double)p[k] * ((double)g[k] - q)); \
    return AN_OK;                                                             \
}
AN_STOCHASTIC_VJP(float, f, an_vf)
AN_STOCHASTIC_VJP(double, d, an_vd)
const an_vjpdesc an_vjp_stochastic_softmax = {
    .vjp_f = stochastic_softmax_vjp_f, .vjp_d = stochastic_softmax_vjp_d, .ws_mult = 1 };

/* ---- sparsemax and alpha-entmax (Peters, Niculae & Martins 2019):
 * on the support S = {a_j > 0}, with s_j = a_j^(2 - alpha) (s_j = 1 for
 * sparsemax) and s_j = 0 off the support,
 *   dx = s g - s <s, g> / sum s
 * and (Correia, Niculae & Martins 2019), with b = 1 / (alpha - 1),
 * r = s / sum s and H = sum_j a_j log a_j,
 *   da_j/dalpha = b^2 (a_j - r_j) - b (a_j log a_j - r_j H)
 * (implicit differentiation of sum_j a_j = 1; shift-free, so the same on the
 * exact and the bisection paths).  alpha = 1 is softmax, whose derivative in
 * alpha is the limit of the formula above:
 *   da_j/dalpha = (a_j / 2) (sum_k a_k (log a_k)^2 - (log a_j)^2). */
#define AN_ENTMAX_VJP(T, TS, VOPS)                                            \
static int entmax_grad_##TS(const T *x, const T *w, const T *g, T *dx, an_int nv, \
                            double alpha, double *dalpha)                     \
{                                                                             \
    ROW_MAX(TS, VOPS) ROW_INF_ZERO(TS)                                        \
    if (alpha == 1.0) {                                                       \
        smx_core_##TS(x, w, g, dx, nv, 1.0, mx, NULL);                        \
        if (dalpha) {                                                         \
            /* log a_j = x_j - lse, lse from the largest weight */            \
            an_int jm = 0;                                                    \
            while ((double)x[jm] != mx) jm++;                                 \
            const double lse = mx - log((double)w[jm]);                       \
            double Q = 0, gd = 0, gq = 0;                                     \
            for (an_int k = 0; k < nv; k++) {                                 \
                const double a = (double)w[k];                                \
                if (!(a > 0)) continue;                                       \
                const double L = (double)x[k] - lse;                          \
                Q += a * L * L; gd += (double)g[k] * a * L * L; gq += (double)g[k] * a; \
            }                                                                 \
            *dalpha += 0.5 * (Q * gq - gd);                                   \
        }                                                                     \
        return AN_OK;                                                         \
    }                                                                         \
    const double e2 = 2.0 - alpha;                                            \
    double ss = 0, sg = 0;                                                    \
    for (an_int k = 0; k < nv; k++) {                                         \
        const double a = (double)w[k];                                        \
        if (!(a > 0)) continue;                                               \
        const double s = e2 == 0 ? 1.0 : pow(a, e2);                          \
        ss += s; sg += s * (double)g[k];                                      \
    }                                                                         \
    if (!(ss > 0)) { vjp_fill_##TS(dx, nv, 0); return AN_OK; }                \
    const double q = sg / ss;                                                 \
    double H = 0, ga = 0, gr = 0, gal = 0;                                    \
    for (an_int k = 0; k < nv; k++) {                                         \
        const double a = (double)w[k];                                        \
        if (!(a > 0)) { dx[k] = 0; continue; }                                \
        const double s = e2 == 0 ? 1.0 : pow(a, e2), gk = (double)g[k];       \
        dx[k] = (T)(s * (gk - q));                                            \
        const double al = a * log(a);                                         \
        H += al; ga += gk * a; gr += gk * s; gal += gk * al;                  \
    }                                                                         \
    if (dalpha) {                                                             \
        const double b = 1.0 / (alpha - 1.0);                                 \
        gr /= ss;                                                             \
        *dalpha += b * b * (ga - gr) - b * (gal - gr * H);                    \
    }                                                                         \
    return AN_OK;                                                             \
}                                                                             \
static int sparsemax_vjp_##TS(const T *x, const T *w, const T *g, T *dx, an_int nv, \
                              an_rowctx *c, double *dp)                       \
{ (void)c; (void)dp; return entmax_grad_##TS(x, w, g, dx, nv, 2.0, NULL); }   \
static int entmax_vjp_##TS(const T *x, const T *w, const T *g, T *dx, an_int nv, \
                           an_rowctx *c, double *dp)                          \
{ return entmax_grad_##TS(x, w, g, dx, nv, c->mat->p[0], dp); }
AN_ENTMAX_VJP(float, f, an_vf)
AN_ENTMAX_VJP(double, d, an_vd)
const an_vjpdesc an_vjp_sparsemax = { .vjp_f = sparsemax_vjp_f, .vjp_d = sparsemax_vjp_d };
const an_vjpdesc an_vjp_entmax = { .vjp_f = entmax_vjp_f, .vjp_d = entmax_vjp_d };

/* ---- lookup ---- */
const an_vjpdesc *an_vjp_for(const an_normdesc *d)
{
#define AN_VJP_CASE(nm) if (d == &an_norm_##nm) return &an_vjp_##nm;
    AN_ALL_NORMALIZERS(AN_VJP_CASE)
#undef AN_VJP_CASE
    return NULL;
}
