/*
 * vjp.h -- vector-Jacobian products (reverse-mode derivatives) of the
 * normalizers.
 *
 * For weights a = f(s; params) of one row or matrix and an upstream gradient
 * g = dL/da, a VJP returns dL/ds = J^T g and dL/dparam for every real
 * parameter.  Row normalizers have a row VJP with the same gather convention
 * as the forward row kernel (normalize.h): the driver gathers the row's
 * visible keys, calls the row VJP and scatters dL/ds back (masked keys get 0).
 * Sinkhorn has a matrix VJP that differentiates through its n_iter
 * log-domain iterations.
 *
 * Length-aware defaults (sigmoid's -log n_i, ssmax's log n_i, relu's 1 / n_i,
 * polynomial's 1 / sqrt n_i) treat n_i as a constant.  stochastic_softmax
 * uses the straight-through estimator: its VJP is softmax's, recomputed from
 * the scores.  Rows that carry no mass (every visible score -inf) and +inf
 * scores (whose weights are a limit, locally constant) get gradient 0.
 */
#ifndef AN_VJP_H
#define AN_VJP_H
#include "normalize.h"

/* Row VJP: x[0..nv) the row's visible scores as the forward row kernel saw
 * them, w[0..nv) its weights, g[0..nv) the upstream gradient; writes
 * dx[0..nv) = J^T g and ADDS to dparam[r] the gradient for real parameter r
 * (the caller zeroes it), in the order of the normalizer's real parameters:
 * its () reals, then its per-row (n) reals; dparam = NULL skips the
 * parameter gradients (and their cost, e.g. relu's logarithms).  c->ws holds
 * ws_mult (m + 1) doubles (the an_vjpdesc's ws_mult).  dx may not alias x, w
 * or g.  Returns AN_OK or an error code. */
typedef int (*an_vjpfn_f)(const float *x, const float *w, const float *g, float *dx,
                          an_int nv, an_rowctx *c, double *dparam);
typedef int (*an_vjpfn_d)(const double *x, const double *w, const double *g, double *dx,
                          an_int nv, an_rowctx *c, double *dparam);

/* Operands of a matrix VJP besides the an_normmat (whose out is unused). */
typedef struct {
    const char *w;  an_int w_n, w_m;     /* weights, or NULL (recomputed) */
    const char *g;  an_int g_n, g_m;     /* upstream gradient */
    char *dx;       an_int dx_n, dx_m;   /* out: d scores (masked entries 0) */
    double dp[AN_MAXPARAM];              /* out: gradient of each () real, this matrix */
    char *drp[2];   an_int drp_s[2];     /* out: gradient of each (n) real (T), or NULL */
    int no_params;                       /* skip the parameter gradients (left 0) */
} an_vjpmat;

/* Matrix VJP (Sinkhorn): reads M (scores, masks, parameters) and V's g
 * (the weights are recomputed, w may be NULL), writes V->dx and V->dp (its
 * parameter gradients are cheap: no_params is ignored).  It parallelises
 * over fixed row blocks itself when called outside a parallel region, with
 * the same result for every thread count. */
typedef int (*an_matvjp_f)(const an_normmat *M, an_vjpmat *V);
typedef int (*an_matvjp_d)(const an_normmat *M, an_vjpmat *V);

typedef struct {
    an_vjpfn_f vjp_f;  an_vjpfn_d vjp_d;     /* row VJP, or NULL */
    an_matvjp_f mat_f; an_matvjp_d mat_d;    /* matrix VJP, or NULL */
    int ws_mult;                             /* row VJP workspace doubles per key */
} an_vjpdesc;

/* The VJP of a normalizer (NULL if it has none). */
const an_vjpdesc *an_vjp_for(const an_normdesc *d);

/* Run a normalizer's VJP over nmat problems: for each matrix k, mats[k]
 * describes the scores and parameters and V[k] the weights, upstream gradient
 * and outputs.  Parallel over all rows (row VJPs) or matrices; the gradient
 * of each () real is summed over the rows of its matrix in row order after
 * the parallel part, so every result is bit-identical for any thread count.
 * Returns AN_OK or an error code; *bad_row gets the row that failed. */
int an_normalize_vjp_f(const an_normdesc *d, const an_normmat *mats, an_vjpmat *V,
                       an_int nmat, an_int *bad_row);
int an_normalize_vjp_d(const an_normdesc *d, const an_normmat *mats, an_vjpmat *V,
                       an_int nmat, an_int *bad_row);

/* One VJP per normalizer (vjp.c, ...): an_vjp_<name>. */
extern const an_vjpdesc an_vjp_softmax, an_vjp_softmax_sink, an_vjp_ssmax,
    an_vjp_sigmoid, an_vjp_relu, an_vjp_polynomial, an_vjp_sparsemax,
    an_vjp_entmax, an_vjp_softpick, an_vjp_nap, an_vjp_affine_softmax,
    an_vjp_stochastic_softmax, an_vjp_sinkhorn;

#endif
