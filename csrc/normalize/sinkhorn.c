/*
 * sinkhorn.c -- log-domain Sinkhorn normalisation of a whole (n, m) score
 * matrix ([Sander2021], Sinkformers).
 *
 *   K = s / eps (log kernel),  pi = exp(K + f 1^T + 1 g^T),  A = n_r pi
 *
 * starting from f = g = 0 and alternating, n_iter steps in all, the row step
 * (first) and the column step
 *   row    f_i = log mu_i - LSE_j (K_ij + g_j)      mu_i = 1 / n_r
 *   column g_j = log nu_j - LSE_i (K_ij + f_i)      nu_j = 1 / m_c
 * so n_iter = 1 is exactly softmax(s / eps) row by row, and more steps make
 * A closer to doubly stochastic (rows sum to 1, columns to n_r / m_c).
 * Internally f absorbs log n_r, so A = exp(K + f + g) directly.
 *
 * Masks (causal / window / boolean) exclude entries exactly (K = -inf,
 * A = 0).  Marginals are uniform over the rows and columns that have at
 * least one visible entry: n_r non-empty rows, m_c non-empty columns.  A row
 * with no visible key (or only -inf scores) is empty: it takes no part in the
 * iterations and gets the empty-row policy (0 / NaN / error).  A row with NaN
 * among its visible scores becomes NaN on its visible entries and is left out
 * of the column step and of n_r, like an empty row.  A row containing +inf
 * keeps only its +inf entries, with equal scores (the limit of the row step,
 * as softmax).  With a causal mask the plan exists (the iterations are well
 * defined) but may converge slowly; nothing special is done for it.
 *
 * Each row of K is shifted by its maximum first, K_ij = (s_ij - max_j s_ij) / eps
 * (exact: the row step absorbs any per-row shift), so the potentials stay
 * small for huge scores and tiny eps.
 *
 * Work: one contiguous copy K (n x m) and its transpose (m x n) so both steps
 * read rows; the row step is parallel over rows, the column step over columns,
 * and every row/column LSE is computed by one thread in a fixed order, so the
 * result is identical for any thread count.
 */
#include <stdlib.h>
#include <string.h>
#include "normalize.h"
#include "vjp.h"
#include "an_simd.h"

enum { ROW_OK = 0, ROW_EMPTY = 1, ROW_NAN = 2 };


#define AN_TEMPLATE "sinkhorn_impl.inc"
#include "an_template.h"

const an_normdesc an_norm_sinkhorn = {
    .name = "sinkhorn",
    .params = { { "n_iter", AN_PARAM_INT, 0, 5, { 1.0, INFINITY, 0, NULL }, AN_DOM_SAME },
                { "eps", AN_PARAM_REAL, AN_PF_FINITE, 1.0, AN_DOM_POS, AN_DOM_SAME } },
    .nparams = 2,
    .mat_f = sinkhorn_mat_f, .mat_d = sinkhorn_mat_d,
    .mat_vjp_f = an_sinkhorn_vjp_f, .mat_vjp_d = an_sinkhorn_vjp_d };
