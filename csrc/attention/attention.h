/*
 * attention.h -- fused attention for every normalizer (README "Attention").
 *
 * One (n, m) problem = one element of the gufunc's leading axes: queries q
 * (n, d), keys k (m, d), values v (m, e), the normalizer's matrix record
 * (mask, causal, window, empty policy, parameters) and the outputs.  The
 * kernels never hold the n x m weights: per thread they keep one query block
 * of scores (at most AN_ATT_QB x m) plus packed key/value panels (see
 * attention_impl.inc); only Sinkhorn keeps an n x m log kernel, and only when
 * it fits AN_SK_CACHE_BYTES.
 */
#ifndef AN_ATTENTION_H
#define AN_ATTENTION_H
#include "normalize.h"
#include "an_gemm.h"

/* Per-query statistics (return_stats=True), in output order. */
enum {
    AN_ST_LOGNORM = 0,  /* log normaliser (softmax family), else NaN   (T)     */
    AN_ST_ENTROPY,      /* -sum a log a over a != 0                    (T)     */
    AN_ST_MAXW,         /* max weight over visible keys                (T)     */
    AN_ST_ARGMAX,       /* its key index (first), -1 if none           (int64) */
    AN_ST_W0,           /* weight on key 0                             (T)     */
    AN_ST_MARGIN,       /* top-1 minus top-2 visible score             (T)     */
    AN_ST_SUPPORT,      /* count of a > 0                              (int64) */
    AN_ST_WSUM,         /* sum of the weights                          (T)     */
    AN_NSTATS
};

typedef struct {
    an_int n, m, d, e;
    const char *q; an_int q_n, q_d;
    const char *k; an_int k_m, k_d;
    const char *v; an_int v_m, v_e;     /* unused when o == NULL */
    char *o; an_int o_n, o_e;           /* output (n, e), or NULL */
    char *w; an_int w_n, w_m;           /* weights (n, m), or NULL */
    char *st[AN_NSTATS]; an_int st_s[AN_NSTATS];   /* stats (n) or all NULL */
    char *lse; an_int lse_s;            /* log normaliser alone (n), or NULL */
    double scale;
    an_normmat nm;   /* mask, causal, window, empty, parameters, index */
} an_attnprob;

/* Run attention over np problems (same n, m, d, e).  Returns AN_OK or an
 * error code; *bad_row gets the query row that failed (-1 if none). */
int an_attention_f(const an_normdesc *d, const an_attnprob *P, an_int np, an_int *bad_row);
int an_attention_d(const an_normdesc *d, const an_attnprob *P, an_int np, an_int *bad_row);

/* The register-blocked matrix product (scores, weights x values) is shared
 * with diagnose.c: an_gemm.h. */

#endif
