/*
 * normalize.h -- the score -> weight normalizers (README "Normalizers").
 *
 * Most normalizers act on one query row at a time.  The driver
 * (normalize_driver.c) gathers the visible scores of a row (after causal,
 * window and boolean mask) into a contiguous buffer x[0..nv), calls the row
 * kernel, which overwrites x with the weights, and scatters them back; masked
 * keys get weight 0 and nv is the row's visible length n_i.  Sinkhorn needs
 * the whole matrix and has a matrix kernel instead.
 */
#ifndef AN_NORMALIZE_H
#define AN_NORMALIZE_H
#include "an_common.h"

#define AN_MAXPARAM 6   /* per kind: () reals, ints; at most 2 per-row reals */

/* Per-row parameter r of row i, as double (row kernels call this). */
#define AN_ROWPARAM(T, M, r, i) ((double)AN_AT(T, (M)->rp[r], (M)->rp_s[r], (i)))

/* One (n, m) problem: a matrix of scores and everything that goes with it. */
typedef struct {
    an_int n, m;
    const char *s;    an_int s_n, s_m;      /* scores, byte strides */
    const char *mask; an_int mk_n, mk_m;    /* uint8 mask, or NULL = all visible */
    char *out;        an_int o_n, o_m;      /* weights */
    char *tau;        an_int tau_s;         /* optional per-row threshold (T), or NULL */
    char *sup;        an_int sup_s;         /* optional per-row support size (int64), or NULL */
    int causal, empty;
    an_int wleft, wright;                   /* < 0: unbounded */
    double p[AN_MAXPARAM];                  /* real parameters, this matrix */
    const char *rp[2]; an_int rp_s[2];      /* per-row real parameters (T), core (n) */
    int64_t ip[AN_MAXPARAM];                /* integer parameters, this matrix */
    an_int index;                           /* position of this matrix in the call */
} an_normmat;

/* What a row kernel gets besides its scores. */
typedef struct {
    an_int row, n, m;        /* query index i of n, number of keys m */
    const an_normmat *mat;   /* the matrix (parameters, seed) */
    double tau;              /* out: threshold (sparse normalizers) */
    double carry;            /* in/out: what the kernel left here for the previous row */
                             /*   of the same caller (NaN: none), out for the next; */
                             /*   only a kernel's speed may depend on it */
    an_int support;          /* out: support size; if left < 0 the driver counts nonzeros */
    void *ws;                /* workspace: ws_mult * (m + 1) doubles, per thread */
    const an_int *nz;        /* out, optional: the positions k of x with x[k] != 0, */
    an_int nnz;              /*   each once, nnz of them (NULL: not reported) */
    an_int key0;             /* key index of x[k]: keys[k], or key0 + k when keys */
    const an_int *keys;      /*   is NULL (rows without a boolean mask) */
    const void *src;         /* the row's scores (T) when not in x, else NULL: AN_ROWSRC */
    const void *next;        /* in, under the trait prefetches_next: nv values (T) of */
                             /*   the next row's scores to prefetch along the first */
                             /*   pass over src (NULL: none) */
    double wscale;           /* in 1: the caller writes the weights out as wscale * x, */
                             /*   so a kernel may leave its last scaling to it and set */
                             /*   the factor here; in NaN: x must be the weights */
    int listed_only;         /* in: when the kernel lists its nonzeros (nz), the caller */
                             /*   reads x only there: the rest of x may be left as is */
    const void *nzw;         /* out, optional under listed_only: the listed weights in */
                             /*   list order (T); the caller then reads them, not x */
} an_rowctx;

/* The visible scores a row kernel reads: c->src, or x itself.  The driver
 * passes a contiguous score row as src, so a kernel reads it in its first
 * pass and writes the weights to x (which then starts undefined) instead of
 * a copy of the row being made first; every kernel writes all of x[0..nv)
 * or returns AN_ROW_EMPTY. */
#define AN_ROWSRC(T, x, c) ((c)->src ? (const T *)(c)->src : (const T *)(x))

/* Row kernels: visible scores AN_ROWSRC(T, x, c)[0..nv) in, weights
 * x[0..nv) out (nv >= 1).
 * Return AN_OK, an error code, or AN_ROW_EMPTY when the row carries no mass
 * at all (every visible score is -inf): the driver then applies the empty-row
 * policy exactly as for a fully masked row. */
#define AN_ROW_EMPTY (-1)
typedef int (*an_rowfn_f)(float *x, an_int nv, an_rowctx *c);
typedef int (*an_rowfn_d)(double *x, an_int nv, an_rowctx *c);
/* Elementwise maps (a_j depends on s_j and n_i only): the weights of a part
 * s[0..nx) of a row of len visible keys (n_i) into x (s may be x); fused
 * attention maps its score tiles with them, chunk by chunk. */
typedef void (*an_mapfn_f)(const float *s, float *x, an_int nx, an_int len,
                           const an_normmat *M);
typedef void (*an_mapfn_d)(const double *s, double *x, an_int nx, an_int len,
                           const an_normmat *M);
/* Matrix kernels: whole problem (Sinkhorn). */
typedef int (*an_matfn_f)(const an_normmat *M);
typedef int (*an_matfn_d)(const an_normmat *M);

/* Row VJPs: x[0..nv) the row's visible scores as the row kernel saw them,
 * w[0..nv) its weights, g[0..nv) the upstream gradient dL/dw; write
 * dx[0..nv) = J^T g and ADD to dparam[r] the gradient of real parameter r
 * (the caller zeroes it), in the order of the real parameters: the per-matrix
 * reals, then the per-row reals, each in descriptor order; dparam = NULL
 * skips the parameter gradients (and their cost).  c as for the row kernel
 * (c->ws holds vjp_ws_mult (m + 1) doubles).  dx may not alias x, w or g.
 * Returns AN_OK or an error code.  vjp.h describes the conventions (masked
 * and empty rows, +inf scores, length-aware defaults). */
typedef int (*an_vjpfn_f)(const float *x, const float *w, const float *g, float *dx,
                          an_int nv, an_rowctx *c, double *dparam);
typedef int (*an_vjpfn_d)(const double *x, const double *w, const double *g, double *dx,
                          an_int nv, an_rowctx *c, double *dparam);

/* Operands of a matrix VJP besides the an_normmat (whose out is unused). */
typedef struct an_vjpmat {
    const char *w;  an_int w_n, w_m;     /* weights, or NULL (recomputed) */
    const char *g;  an_int g_n, g_m;     /* upstream gradient */
    char *dx;       an_int dx_n, dx_m;   /* out: d scores (masked entries 0) */
    double dp[AN_MAXPARAM];              /* out: gradient of each per-matrix real */
    char *drp[2];   an_int drp_s[2];     /* out: gradient of each per-row real (T), or NULL */
    int no_params;                       /* skip the parameter gradients (left 0) */
} an_vjpmat;

/* Matrix VJPs (Sinkhorn): read M (scores, masks, parameters) and V's g (the
 * weights are recomputed), write V->dx and V->dp (no_params may be
 * ignored).  They parallelise over fixed row blocks themselves, with the
 * same result for every thread count. */
typedef int (*an_matvjp_f)(const an_normmat *M, an_vjpmat *V);
typedef int (*an_matvjp_d)(const an_normmat *M, an_vjpmat *V);

/* ---- the descriptor: everything the rest of the code asks about a
 * normalizer.  One per normalizer, next to its kernel; the list of them is
 * an_normalizers[] (registry.c).  The gufuncs (normalizer, attention_*,
 * diagnose_*, jacobian_norm_*) and the Python wrappers are generated from it. */

/* A parameter.  Real parameters reach the kernels as M->p[] (one per matrix)
 * or M->rp[] (one per query row), integer ones as M->ip[], each in the order
 * they are listed among parameters of their kind. */
enum { AN_PARAM_REAL = 0, AN_PARAM_INT = 1 };
enum {
    AN_PF_ROW = 1,       /* one value per query row, operand (..., n) */
    AN_PF_FINITE = 2,    /* +-inf rejected (NaN always is) */
    AN_PF_INTEGER = 4,   /* a real parameter that must be a whole number */
    AN_PF_NONE = 8,      /* default None: the kernel's length-aware value; NaN in the operand */
    AN_PF_STREAM = 16,   /* not a keyword: the matrix's position in the batch */
    AN_PF_BOOL = 32      /* an integer parameter that is a flag (True / False) */
};
/* Valid values: lo < v (lo_open) or lo <= v, and v <= hi; text (if not
 * NULL) says it in words for the error message. */
typedef struct { double lo, hi; int lo_open; const char *text; } an_domain;
#define AN_DOM_ANY { -INFINITY, INFINITY, 0, NULL }
#define AN_DOM_POS { 0.0, INFINITY, 1, NULL }      /* > 0 */
#define AN_DOM_NONNEG { 0.0, INFINITY, 0, NULL }   /* >= 0 */
#define AN_DOM_SAME { 0.0, 0.0, 0, NULL }          /* jac_dom: as dom */
typedef struct {
    const char *name;
    int kind;             /* AN_PARAM_REAL / AN_PARAM_INT */
    unsigned flags;       /* AN_PF_* */
    double def;           /* default (ignored with AN_PF_NONE and AN_PF_STREAM) */
    an_domain dom;
    an_domain jac_dom;    /* stricter domain in jacobian_norm (text NULL: dom) */
} an_param;

/* Online (flash-attention style) rescaling in fused attention. */
enum { AN_ONLINE_NONE = 0, AN_ONLINE_SOFTMAX, AN_ONLINE_SINK, AN_ONLINE_SSMAX,
       AN_ONLINE_AFFINE, AN_ONLINE_SOFTPICK, AN_ONLINE_MAP };
/* Log-normaliser statistic log([e^extra] + sum_j exp(mul s_j)) of attention's
 * return_stats: mul = 1/p[0] (INV_P0), mul = 1 and extra = p[0] (SINK_P0),
 * mul = p[0] log n_i (P0_LOGN), mul = 1 (UNIT); NONE: NaN. */
enum { AN_LOGNORM_NONE = 0, AN_LOGNORM_INV_P0, AN_LOGNORM_SINK_P0, AN_LOGNORM_P0_LOGN,
       AN_LOGNORM_UNIT };
/* Form of the row Jacobian d a / d s, as jacobian_norm computes it from the
 * weights a of the visible keys (diagnostics/diagnostics.c):
 *   DIAG        diag(g(a_k)), g = jac_diag
 *   DOWNDATE    (diag(t) - t t^T / S) / T with t_k = a_k^e (a_k > 0, else 0),
 *               S = 1 or sum t (jac_sum), e and T from jac_downdate
 *   PROJECTION  diag(t) - t t^T / |S|, t = 1[a > 0]
 *   DENSE       the nv x nv matrix from jac_dense
 *   SCORES      needs the scores (computed in Python)
 *   NONE        not available */
enum { AN_JAC_NONE = 0, AN_JAC_DIAG, AN_JAC_DOWNDATE, AN_JAC_PROJECTION, AN_JAC_DENSE,
       AN_JAC_SCORES };

#define AN_MAXPARAMS 8
typedef struct an_normdesc {
    const char *name;
    an_param params[AN_MAXPARAMS];
    int nparams;
    /* kernels: a row kernel, or a matrix kernel (the whole problem) */
    an_rowfn_f row_f;  an_rowfn_d row_d;
    an_mapfn_f map_f;  an_mapfn_d map_d;    /* the normalizer is an elementwise map (else NULL) */
    an_matfn_f mat_f;  an_matfn_d mat_d;
    int ws_mult;                            /* workspace doubles per key */
    /* VJP (reverse-mode derivative): a row VJP for a row kernel, a matrix
     * VJP for a matrix kernel; NULL: none (no normalizer_vjp_<name>). */
    an_vjpfn_f vjp_f;  an_vjpfn_d vjp_d;
    an_matvjp_f mat_vjp_f;  an_matvjp_d mat_vjp_d;
    int vjp_ws_mult;                        /* row VJP workspace doubles per key */
    int vjp_weights;                        /* the VJP reads the forward weights (else
                                             * it recomputes what it needs: pass the
                                             * scores as weights) */
    /* traits */
    int tau_support;     /* the kernel reports a threshold and support size (outputs tau, support) */
    int lists_support;   /* the kernel lists its nonzero weights (c->nz) */
    int uses_length;     /* the weights depend on n_i beyond the scores */
    int prefetches_next; /* the row kernel prefetches c->next (an_rowctx) along its first */
                         /* pass; the driver streaming rows from memory then leaves */
                         /* the next row to it instead of fetching it all at once first */
    int online;          /* AN_ONLINE_* */
    int lognorm;         /* AN_LOGNORM_* */
    int jac;             /* AN_JAC_* */
    int jac_sum;         /* DOWNDATE: S = sum t (else 1) */
    double (*jac_diag)(double a, an_int nv, const an_normmat *M);
    void (*jac_downdate)(const an_normmat *M, an_int nv, double *e, double *T);
    /* DENSE: J[j * nv + l] = d a_j / d s_l from the weights a[0..nv) */
    void (*jac_dense)(const double *a, an_int nv, const an_normmat *M, double *J);
} an_normdesc;

/* Whether d has a VJP. */
static inline int an_has_vjp(const an_normdesc *d) { return d->vjp_f != NULL || d->mat_vjp_f != NULL; }

/* Number of parameters of a kind: per matrix reals (an_nreal), per-row
 * reals (an_nrowp), integers including a stream (an_nint). */
static inline int an_count_params(const an_normdesc *d, int kind, int row)
{
    int c = 0;
    for (int k = 0; k < d->nparams; k++)
        c += d->params[k].kind == kind && ((d->params[k].flags & AN_PF_ROW) != 0) == row;
    return c;
}
#define an_nreal(d) an_count_params((d), AN_PARAM_REAL, 0)
#define an_nrowp(d) an_count_params((d), AN_PARAM_REAL, 1)
#define an_nint(d) an_count_params((d), AN_PARAM_INT, 0)

/* The normalizers, NULL-terminated (registry.c). */
extern const an_normdesc *const an_normalizers[];

/* Run a normalizer over nmat problems (parallel over all rows).
 * Returns AN_OK or an error code; *bad_row gets the row that failed. */
int an_normalize_f(const an_normdesc *d, const an_normmat *mats, an_int nmat, an_int *bad_row);
int an_normalize_d(const an_normdesc *d, const an_normmat *mats, an_int nmat, an_int *bad_row);

/* The scratch a caller of row kernels keeps per thread: the kernel's
 * workspace (ws_mult (m + 1) doubles, first, so it is as aligned as the
 * block) and the visible key indices idx (m + 1).  an_row_scratch carves it
 * from `mine` and returns the first byte after it. */
static inline size_t an_row_scratch_bytes(const an_normdesc *d, an_int m)
{
    return (size_t)(m + 1) * (sizeof(double) * (size_t)d->ws_mult + sizeof(an_int));
}
static inline char *an_row_scratch(const an_normdesc *d, an_int m, char *mine,
                                   double **ws, an_int **idx)
{
    *ws = (double *)mine;
    *idx = (an_int *)(mine + sizeof(double) * (size_t)(m + 1) * (size_t)d->ws_mult);
    return (char *)(*idx + m + 1);
}

/* ---- one row: visible keys -> gather -> row kernel (with the empty-row
 * policy) -> scatter.  The normalizer driver, fused attention's generic path
 * and diagnose all go through these (rows.c, rows_impl.inc). ---- */

/* The visible keys of query row i of an (n, m) problem: the causal/window
 * range [*lo, hi) (an_visible_range), then the uint8 mask (NULL: none).
 * Returns nv; *keys = NULL when the keys are *lo .. *lo + nv - 1, else idx,
 * filled with them (increasing). */
an_int an_keys(an_int i, an_int n, an_int m, int causal, an_int wleft, an_int wright,
               const char *mask, an_int mk_n, an_int mk_m, an_int *idx, an_int *lo,
               const an_int **keys);
static inline an_int an_row_keys(const an_normmat *M, an_int i, an_int *idx, an_int *lo,
                                 const an_int **keys)
{
    return an_keys(i, M->n, M->m, M->causal, M->wleft, M->wright, M->mask, M->mk_n, M->mk_m,
                   idx, lo, keys);
}

/* x[k] = the score of the k-th visible key (key0 + k, or keys[k]) of a row
 * whose key j is at src + j * s_m (bytes). */
void an_row_gather_f(const char *src, an_int s_m, an_int key0, const an_int *keys, an_int nv,
                     float *x);
void an_row_gather_d(const char *src, an_int s_m, an_int key0, const an_int *keys, an_int nv,
                     double *x);
/* The empty-row policy on x[0..nv): the policy value (0 or NaN) everywhere,
 * tau NaN, support 0; returns AN_ERR_EMPTY_ROW under empty="raise". */
int an_row_empty_f(const an_normmat *M, float *x, an_int nv, an_rowctx *c);
int an_row_empty_d(const an_normmat *M, double *x, an_int nv, an_rowctx *c);
enum { AN_ROW_DEFER_SCALE = 1, AN_ROW_LISTED_ONLY = 2 };
/* The row kernel of d on the visible scores of row i, src[0..nv) (NULL: x,
 * in place), weights into x[0..nv), c set up for it; a row with no key, or
 * whose kernel finds no mass, is *empty and gets the empty-row policy.
 * flags: AN_ROW_DEFER_SCALE, the caller writes the weights as c->wscale * x;
 * AN_ROW_LISTED_ONLY, it reads only the listed weights (an_rowctx).  carry:
 * c->carry in (NaN: none; the previous row's c->carry out in fused attention).
 * next: c->next (NULL: none).  Returns AN_OK or an error code. */
int an_row_normalize_f(const an_normdesc *d, const an_normmat *M, an_int i, const float *src,
                       const float *next, float *x, an_int nv, an_int key0,
                       const an_int *keys, void *ws, unsigned flags, double carry,
                       an_rowctx *c, int *empty);
int an_row_normalize_d(const an_normdesc *d, const an_normmat *M, an_int i, const double *src,
                       const double *next, double *x, an_int nv, an_int key0,
                       const an_int *keys, void *ws, unsigned flags, double carry,
                       an_rowctx *c, int *empty);
/* Bring the scores into x for a kernel that works in place (copy c->src,
 * which becomes NULL: x holds them now). */
void an_row_load_f(float *x, an_int nv, an_rowctx *c);
void an_row_load_d(double *x, an_int nv, an_rowctx *c);
/* Write the weights x[0..nv) of the visible keys into a row whose key j is
 * at dst + j * d_m, and 0 into the other keys of [j0, j1); inplace: x is
 * already there (keys key0 .. key0 + nv - 1). */
void an_row_scatter_f(const float *x, an_int nv, an_int key0, const an_int *keys, char *dst,
                      an_int d_m, an_int j0, an_int j1, int inplace);
void an_row_scatter_d(const double *x, an_int nv, an_int key0, const an_int *keys, char *dst,
                      an_int d_m, an_int j0, an_int j1, int inplace);

#endif
