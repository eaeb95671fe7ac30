/*
 * normalizers.c -- the softmax family and the elementwise maps: their
 * descriptors here, their row kernels (each under a comment with its
 * formula) in normalizers_impl.inc, written once over the real type T.
 */
#include <float.h>
#include "normalize.h"
#include "vjp.h"
#include "an_simd.h"
#include "normalizers_shared.h"

/* softmax rows (an_softmax_exp_): the shift is the maximum of the first
 * AN_SOFTMAX_LAZY_LEAD scores while no score exceeds it by more than
 * AN_SOFTMAX_LAZY / mul (terms up to e^60: float sums of 10^12 of them
 * stay finite) */
#define AN_SOFTMAX_LAZY 60.0
#define AN_SOFTMAX_LAZY_LEAD 16

#define AN_TEMPLATE "normalizers_impl.inc"
#include "an_template.h"

/* Jacobian (diag(a) - a a^T) / T */
static void softmax_jac(const an_normmat *M, an_int nv, double *e, double *T)
{ (void)nv; *e = 1.0; *T = M->p[0]; }
const an_normdesc an_norm_softmax = {
    .name = "softmax",
    .params = { { "temperature", AN_PARAM_REAL, 0, 1.0, AN_DOM_POS, AN_DOM_SAME } },
    .nparams = 1,
    .row_f = softmax_row_f, .row_d = softmax_row_d, .prefetches_next = 1,
    .online = AN_ONLINE_SOFTMAX, .lognorm = AN_LOGNORM_INV_P0,
    .jac = AN_JAC_DOWNDATE, .jac_downdate = softmax_jac,
    .vjp_f = an_softmax_vjp_f, .vjp_d = an_softmax_vjp_d,
    .vjp_weights = 1 };


/* Jacobian diag(a) - a a^T (sum a < 1: the sink keeps the rest) */
static void softmax_sink_jac(const an_normmat *M, an_int nv, double *e, double *T)
{ (void)M; (void)nv; *e = 1.0; *T = 1.0; }
const an_normdesc an_norm_softmax_sink = {
    .name = "softmax_sink",
    .params = { { "sink", AN_PARAM_REAL, 0, 0.0, AN_DOM_ANY, AN_DOM_SAME } },
    .nparams = 1,
    .row_f = softmax_sink_row_f, .row_d = softmax_sink_row_d,
    .online = AN_ONLINE_SINK, .lognorm = AN_LOGNORM_SINK_P0,
    .jac = AN_JAC_DOWNDATE, .jac_downdate = softmax_sink_jac,
    .vjp_f = an_softmax_sink_vjp_f, .vjp_d = an_softmax_sink_vjp_d,
    .vjp_weights = 1 };

/* Jacobian: softmax's at T = 1 / (c log n_i) */
static void ssmax_jac(const an_normmat *M, an_int nv, double *e, double *T)
{ *e = 1.0; *T = 1.0 / (M->p[0] * log((double)nv)); }
const an_normdesc an_norm_ssmax = {
    .name = "ssmax",
    .params = { { "c", AN_PARAM_REAL, AN_PF_FINITE, 0.43, AN_DOM_NONNEG, AN_DOM_SAME } },
    .nparams = 1,
    .row_f = ssmax_row_f, .row_d = ssmax_row_d, .uses_length = 1, .prefetches_next = 1,
    .online = AN_ONLINE_SSMAX, .lognorm = AN_LOGNORM_P0_LOGN,
    .jac = AN_JAC_DOWNDATE, .jac_downdate = ssmax_jac,
    .vjp_f = an_ssmax_vjp_f, .vjp_d = an_ssmax_vjp_d,
    .vjp_weights = 1 };

/* Jacobian diag(a (1 - a)) */
static double sigmoid_jac(double a, an_int nv, const an_normmat *M)
{ (void)nv; (void)M; return a * (1.0 - a); }
const an_normdesc an_norm_sigmoid = {
    .name = "sigmoid",
    .params = { { "bias", AN_PARAM_REAL, AN_PF_FINITE | AN_PF_NONE, NAN, AN_DOM_ANY,
                  AN_DOM_SAME } },
    .nparams = 1,
    .row_f = sigmoid_row_f, .row_d = sigmoid_row_d, .map_f = sigmoid_map_f, .map_d = sigmoid_map_d,
    .uses_length = 1,
    .jac = AN_JAC_DIAG, .jac_diag = sigmoid_jac,
    .vjp_f = an_sigmoid_vjp_f, .vjp_d = an_sigmoid_vjp_d, .vjp_ws_mult = 1 };

/* Jacobian diag(p relu(s)^(p-1) / n_i), relu(s) = (n_i a)^(1/p) */
static double relu_jac(double a, an_int nv, const an_normmat *M)
{
    const double p = M->p[0], ni = (double)nv;
    return a > 0 ? p * pow(ni * a, (p - 1.0) / p) / ni : 0.0;
}
const an_normdesc an_norm_relu = {
    .name = "relu",
    .params = { { "power", AN_PARAM_REAL, AN_PF_FINITE, 1.0, AN_DOM_POS, AN_DOM_SAME } },
    .nparams = 1,
    .row_f = relu_row_f, .row_d = relu_row_d, .prefetches_next = 1, .map_f = relu_map_f, .map_d = relu_map_d,
    .uses_length = 1,
    .jac = AN_JAC_DIAG, .jac_diag = relu_jac,
    .vjp_f = an_relu_vjp_f, .vjp_d = an_relu_vjp_d };

/* Jacobian diag(p |s|^(p-1) / sqrt(n_i)), |s| = (sqrt(n_i) |a|)^(1/p) */
static double polynomial_jac(double a, an_int nv, const an_normmat *M)
{
    const double p = M->p[0], ni = (double)nv;
    return p * pow(sqrt(ni) * fabs(a), (p - 1.0) / p) / sqrt(ni);
}
const an_normdesc an_norm_polynomial = {
    .name = "polynomial",
    .params = { { "power", AN_PARAM_REAL, AN_PF_FINITE | AN_PF_INTEGER, 3.0,
                  { 0.0, 16777216.0, 1,
                    "a positive integer (s^p is then defined for negative scores)" },
                  AN_DOM_SAME } },
    .nparams = 1,
    .row_f = polynomial_row_f, .row_d = polynomial_row_d, .prefetches_next = 1, .map_f = polynomial_map_f,
    .map_d = polynomial_map_d, .uses_length = 1, .jac = AN_JAC_DIAG, .jac_diag = polynomial_jac,
    .vjp_f = an_polynomial_vjp_f, .vjp_d = an_polynomial_vjp_d };

const an_normdesc an_norm_softpick = {
    .name = "softpick",
    .params = { { "eps", AN_PARAM_REAL, AN_PF_FINITE, 1e-8, AN_DOM_POS, AN_DOM_SAME } },
    .nparams = 1,
    .row_f = softpick_row_f, .row_d = softpick_row_d,
    .online = AN_ONLINE_SOFTPICK, .jac = AN_JAC_SCORES,
    .vjp_f = an_softpick_vjp_f, .vjp_d = an_softpick_vjp_d, .vjp_ws_mult = 1 };

const an_normdesc an_norm_nap = {
    .name = "nap",
    .params = { { "gain", AN_PARAM_REAL, AN_PF_FINITE, 1.0, AN_DOM_ANY, AN_DOM_SAME },
                { "bias", AN_PARAM_REAL, AN_PF_FINITE, 0.0, AN_DOM_ANY, AN_DOM_SAME },
                { "eps", AN_PARAM_REAL, AN_PF_FINITE, 1e-3, AN_DOM_POS, AN_DOM_SAME } },
    .nparams = 3,
    .row_f = nap_row_f, .row_d = nap_row_d,
    .vjp_f = an_nap_vjp_f, .vjp_d = an_nap_vjp_d };

const an_normdesc an_norm_affine_softmax = {
    .name = "affine_softmax",
    .params = { { "a", AN_PARAM_REAL, AN_PF_ROW | AN_PF_FINITE, 1.0, AN_DOM_ANY, AN_DOM_SAME },
                { "b", AN_PARAM_REAL, AN_PF_ROW | AN_PF_FINITE, 0.0, AN_DOM_ANY, AN_DOM_SAME } },
    .nparams = 2,
    .row_f = affine_softmax_row_f, .row_d = affine_softmax_row_d,
    .online = AN_ONLINE_AFFINE, .lognorm = AN_LOGNORM_UNIT,
    .vjp_f = an_affine_softmax_vjp_f, .vjp_d = an_affine_softmax_vjp_d, .vjp_ws_mult = 1 };
