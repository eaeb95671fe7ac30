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
