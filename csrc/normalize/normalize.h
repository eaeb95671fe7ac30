/*
 * normalize.h -- the score -> weight normalizers (DESIGN "Normalizers").
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

#define AN_MAXPARAM 6

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
    an_int support;          /* out: support size; if left < 0 the driver counts nonzeros */
    void *ws;                /* workspace: ws_mult * (m + 1) doubles, per thread */
    const an_int *nz;        /* out, optional: the positions k of x with x[k] != 0, */
    an_int nnz;              /*   each once, nnz of them (NULL: not reported) */
} an_rowctx;

/* Row kernels: x[0..nv) visible scores in, weights out (nv >= 1).
 * Return AN_OK, an error code, or AN_ROW_EMPTY when the row carries no mass
 * at all (every visible score is -inf): the driver then applies the empty-row
 * policy exactly as for a fully masked row. */
#define AN_ROW_EMPTY (-1)
typedef int (*an_rowfn_f)(float *x, an_int nv, an_rowctx *c);
typedef int (*an_rowfn_d)(double *x, an_int nv, an_rowctx *c);
/* Matrix kernels: whole problem (Sinkhorn). */
typedef int (*an_matfn_f)(const an_normmat *M);
typedef int (*an_matfn_d)(const an_normmat *M);

typedef struct {
    an_rowfn_f row_f;  an_rowfn_d row_d;    /* row kernel, or NULL */
    an_matfn_f mat_f;  an_matfn_d mat_d;    /* matrix kernel, or NULL */
    int ws_mult;                            /* workspace doubles per key */
    int nreal, nint;                        /* number of () parameters */
    int nrowp;                              /* number of (n) per-row real parameters (<= 2) */
    int has_extra;                          /* outputs tau and support */
} an_normdesc;

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

/* Visible key indices of row i: fills idx[0..nv) and returns nv. */
an_int an_row_visible(const an_normmat *M, an_int i, an_int *idx);

/* X-macro lists of the implemented normalizers, so other areas (attention,
 * diagnose) can generate one entry per normalizer: X(name).  Each helper
 * appends to its own list. */
#define AN_NORMALIZERS_BASE(X) X(softmax)
#define AN_NORMALIZERS_H1(X) X(softmax_sink) X(ssmax) X(sigmoid) X(relu) X(polynomial) \
    X(softpick) X(nap) X(affine_softmax)
#define AN_NORMALIZERS_H2(X) X(sparsemax) X(entmax) X(stochastic_softmax) X(sinkhorn)
#define AN_ALL_NORMALIZERS(X) AN_NORMALIZERS_BASE(X) AN_NORMALIZERS_H1(X) AN_NORMALIZERS_H2(X)

/* The normalizers (defined in normalizers.c, sparse.c, sinkhorn.c, ...). */
extern const an_normdesc an_norm_softmax, an_norm_softmax_sink, an_norm_ssmax,
    an_norm_sigmoid, an_norm_relu, an_norm_polynomial, an_norm_sparsemax,
    an_norm_entmax, an_norm_softpick, an_norm_nap, an_norm_affine_softmax,
    an_norm_stochastic_softmax, an_norm_sinkhorn;

#endif
