/*
 * diagnose.c -- streamed diagnostics from q and k (README "Attention":
 * per-query statistics without the n x m matrix).
 *
 * For each block of BQ query rows the visible score rows s_ij = scale q_i.k_j
 * are computed tile by tile (the GEMM micro-kernel shared with attention,
 * an_gemm.h, on packed key panels) into a BQ x width
 * scratch, each row is gathered exactly as normalize_driver.c does (causal /
 * window range, then the mask), the normalizer's row kernel turns it into
 * weights, and the row's statistics are taken:
 *   entropy  -sum a log a (NaN if the row is empty or has no mass),
 *   max weight, sink weight a_i0, margin top-1 minus top-2 visible score,
 *   support #{a > 0},
 * while the weights are added to per-key column sums.  Memory: O(BQ m) per
 * thread + 16 m doubles, never n x m.
 *
 * Softmax rows without a mask take a fused path on the scores in place: one
 * pass for the top-2 scores (margin and the shift M), one for e = exp(s - M)
 * with Z = sum e and sum e (s - M) (exp_shift_sum_dot, the SIMD table's exp)
 * and one that scales by 1/Z while adding to the column sums; entropy =
 * log Z - (1/T) sum a (s - M) needs no per-weight log.  Special rows (NaN,
 * +-inf maximum) use the generic path.  Query blocks are padded to a multiple
 * of the micro-kernel's AN_ATT_RM rows (zero queries, scores unused).
 *
 * Determinism: the n rows are cut into AN_NCHUNK = 16 fixed chunks (not one
 * per thread); each chunk is processed by one thread in row order and adds
 * into its own m-length partial; the partials are summed in chunk order.  So
 * every output is bit-identical for any thread count.
 */
#include <stdlib.h>
#include <string.h>
#include <float.h>
#include "diagnostics.h"
#include "an_simd.h"
#include "an_gemm.h"

#define AN_NCHUNK 16
#define AN_BK 256
#define AN_SCRATCH_BYTES (8u << 20)   /* score scratch per thread */
#define AN_PREPACK_BYTES (16u << 20)  /* keys packed once per matrix up to this size */

/* Pack keys j0 .. j0+nb-1 of D into panels of W keys (W = the shared GEMM's
 * column block nr, an_gemm.h), zero padded to a multiple of W: panel p is
 * the d x W row-major matrix dst[p*d*W + k*W + w] = K[j0 + p*W + w][k], the
 * B operand (ldb = W) of one GEMM call. */

#define AN_TEMPLATE "diagnose_impl.inc"
#include "an_template.h"
