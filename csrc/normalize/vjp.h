/*
 * vjp.h -- vector-Jacobian products (reverse-mode derivatives) of the
 * normalizers.
 *
 * For weights a = f(s; params) of one row or matrix and an upstream gradient
 * g = dL/da, a VJP returns dL/ds = J^T g and dL/dparam for every real
 * parameter.  A normalizer's VJP is in its descriptor (normalize.h): a row
 * VJP (vjp_f, vjp_d) with the gather convention of the row kernel -- the
 * driver gathers the row's visible keys, calls the row VJP and scatters
 * dL/ds back (masked keys get 0) -- or, for Sinkhorn, a matrix VJP
 * (mat_vjp_f, mat_vjp_d) that differentiates through its n_iter log-domain
 * iterations.
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

/* Run d's VJP over nmat problems: for each matrix k, mats[k] describes the
 * scores and parameters and V[k] the weights, upstream gradient and outputs.
 * Parallel over all rows (row VJPs) or matrices; the gradient of each
 * per-matrix real is summed over the rows of its matrix in row order after
 * the parallel part, so every result is bit-identical for any thread count.
 * Returns AN_OK or an error code (AN_ERR_VALUE if d has no VJP); *bad_row
 * gets the row that failed. */
int an_normalize_vjp_f(const an_normdesc *d, const an_normmat *mats, an_vjpmat *V,
                       an_int nmat, an_int *bad_row);
int an_normalize_vjp_d(const an_normdesc *d, const an_normmat *mats, an_vjpmat *V,
                       an_int nmat, an_int *bad_row);

/* The VJP kernels the descriptors point to (vjp_impl.inc, sinkhorn_vjp_impl.inc;
 * stick-breaking's is static next to its kernel). */
#define AN_VJP_DECLS(T, TS)                                                   \
    int an_softmax_vjp_##TS(const T *, const T *, const T *, T *, an_int, an_rowctx *, double *); \
    int an_softmax_sink_vjp_##TS(const T *, const T *, const T *, T *, an_int, an_rowctx *, double *); \
    int an_ssmax_vjp_##TS(const T *, const T *, const T *, T *, an_int, an_rowctx *, double *); \
    int an_sigmoid_vjp_##TS(const T *, const T *, const T *, T *, an_int, an_rowctx *, double *); \
    int an_relu_vjp_##TS(const T *, const T *, const T *, T *, an_int, an_rowctx *, double *); \
    int an_polynomial_vjp_##TS(const T *, const T *, const T *, T *, an_int, an_rowctx *, double *); \
    int an_softpick_vjp_##TS(const T *, const T *, const T *, T *, an_int, an_rowctx *, double *); \
    int an_nap_vjp_##TS(const T *, const T *, const T *, T *, an_int, an_rowctx *, double *); \
    int an_affine_softmax_vjp_##TS(const T *, const T *, const T *, T *, an_int, an_rowctx *, double *); \
    int an_stochastic_softmax_vjp_##TS(const T *, const T *, const T *, T *, an_int, an_rowctx *, double *); \
    int an_sparsemax_vjp_##TS(const T *, const T *, const T *, T *, an_int, an_rowctx *, double *); \
    int an_entmax_vjp_##TS(const T *, const T *, const T *, T *, an_int, an_rowctx *, double *); \
    int an_sinkhorn_vjp_##TS(const an_normmat *M, an_vjpmat *V);
AN_VJP_DECLS(float, f)
AN_VJP_DECLS(double, d)
#undef AN_VJP_DECLS

#endif
