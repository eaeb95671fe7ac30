/*
 * stickbreaking.c -- stick-breaking attention [Tan2025]: each query breaks
 * a unit stick over the keys it sees, nearest first (kernel and its VJP:
 * stickbreaking_impl.inc).  Not normalised: 1 - sum_j a_ij is left unused.
 */
#include "normalize.h"
#include <string.h>
#include "an_simd.h"

/* The stick-breaking walk stops once the stick left is below AN_SB_TINY_f /
 * AN_SB_TINY_d, and every farther weight, below it too, is 0: in float
 * anything below 2^-150 rounds to 0; in double the weights below 2^-1022
 * (subnormal) are taken as 0. */
#define AN_SB_TINY_f 0x1p-150
#define AN_SB_TINY_d 0x1p-1022

/* Position in x[0..nv) of the key at the query's aligned position
 * row + (m - n), or -1 if it is not visible. */
static an_int current_position(const an_rowctx *c, an_int nv)
{
    const an_int diag = c->row + (c->m - c->n);
    if (!c->keys) return diag >= c->key0 && diag - c->key0 < nv ? diag - c->key0 : -1;
    for (an_int k = 0; k < nv; k++)
        if (c->keys[k] == diag) return k;
    return -1;
}

#define AN_TEMPLATE "stickbreaking_impl.inc"
#include "an_template.h"

/* Jacobian from the weights, nearest key first: with R_j = 1 - sum_{l > j} a_l
 * the stick left for key j and beta_j = a_j / R_j (0 where R_j = 0),
 *   d a_j / d z_j = a_j (1 - beta_j),   d a_j / d z_l = -a_j beta_l (l > j),
 * 0 for l < j (an excluded current key has a = 0: its row and column are 0). */
static void stickbreaking_jac(const double *a, an_int nv, const an_normmat *M, double *J)
{
    (void)M;
    double *beta = J + (nv - 1) * nv;   /* last row, filled last */
    double R = 1.0;
    for (an_int j = nv - 1; j >= 0; j--) {
        beta[j] = R > 0 ? a[j] / R : 0.0;
        R -= a[j];
    }
    for (an_int j = 0; j < nv; j++) {
        double *row = J + j * nv;
        const double aj = a[j], bj = beta[j];
        for (an_int l = 0; l < j; l++) row[l] = 0.0;
        for (an_int l = nv - 1; l > j; l--) row[l] = -aj * beta[l];
        row[j] = aj * (1.0 - bj);
    }
}

const an_normdesc an_norm_stickbreaking = {
    .name = "stickbreaking",
    .params = { { "include_current", AN_PARAM_INT, AN_PF_BOOL, 1, { 0.0, 1.0, 0, NULL },
                  AN_DOM_SAME } },
    .nparams = 1,
    .row_f = stickbreaking_row_f, .row_d = stickbreaking_row_d, .ws_mult = 1,
    .vjp_f = stickbreaking_vjp_f, .vjp_d = stickbreaking_vjp_d, .vjp_ws_mult = 4,
    .jac = AN_JAC_DENSE, .jac_dense = stickbreaking_jac };
