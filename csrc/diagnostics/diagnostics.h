/*
 * diagnostics.h -- kernels of the diagnostics (README
 * "Diagnostics"), materialised (diagnostics.c) and streamed (diagnose.c).
 * No Python.h here: kernels see pointers, sizes and byte strides.
 */
#ifndef AN_DIAGNOSTICS_H
#define AN_DIAGNOSTICS_H
#include "an_common.h"
#include "normalize.h"

/* ---- vector helpers (simd/diag_simd.inc, one table per SIMD path chosen
 * by an_simd_init with the others) ---- */

/* One pass over a contiguous row x[0..n): the sums every row diagnostic needs.
 * xlogx = sum over x > 0 of x log x (only if want_log), neg = sum min(x, 0),
 * max = NaN if any x is NaN, pos = #{x > thr}, nonzero = #{x != 0}. */
typedef struct {
    double sum, sumsq, xlogx, neg, max;
    an_int pos, nonzero;
} an_rowstats;
void an_rowstats_f(const float *x, an_int n, int want_log, double thr, an_rowstats *r);
void an_rowstats_d(const double *x, an_int n, int want_log, double thr, an_rowstats *r);


/* sums of the secular equation (see an_downdate_max_eig), vectorised */
void an_secular_sums(const double *d, const double *w, an_int n, an_int i1, double d1,
                     double mu, double zs2, double *R, double *dR);

/* The table behind an_rowstats_*, an_margin_*, an_scale_acc_* and
 * an_secular_sums (declared below) for one SIMD path. */
typedef struct {
    void (*rowstats_f)(const float *x, an_int n, int want_log, double thr, an_rowstats *r);
    void (*rowstats_d)(const double *x, an_int n, int want_log, double thr, an_rowstats *r);
    double (*margin_f)(const float *x, an_int n, double *top1);
    double (*margin_d)(const double *x, an_int n, double *top1);
    an_int (*scale_acc_f)(const float *e, an_int n, float c, double *dst);
    an_int (*scale_acc_d)(const double *e, an_int n, double c, double *dst);
    void (*secular_sums)(const double *d, const double *w, an_int n, an_int i1, double d1,
                         double mu, double zs2, double *R, double *dR);
} an_diagops;
extern const an_diagops an_diagops__default;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
extern const an_diagops an_diagops__avx2;
#endif
extern const an_diagops *an_diag;

/* ---- shared row/column pieces ---- */

/* Separation margin of visible scores x[0..n): top-1 minus top-2 (#1's
 * score gap).  NaN if n < 2 or any score is NaN; a tie for the top gives 0;
 * +inf if only one score is finite and the rest are -inf; two +inf (or all
 * -inf) scores give inf - inf = NaN.  *top1 gets max x (NaN if any is NaN). */
double an_margin_f(const float *x, an_int n, double *top1);
double an_margin_d(const double *x, an_int n, double *top1);
/* dst[k] += e_k c (column sums); returns #{e_k c > 0} */
an_int an_scale_acc_f(const float *e, an_int n, float c, double *dst);
an_int an_scale_acc_d(const double *e, an_int n, double c, double *dst);

/* Visibility description of an (n, m) matrix: causal/window plus an optional
 * uint8 mask (NULL = none).  Rows use an_visible_range, then the mask. */
typedef struct {
    an_int n, m;
    int causal;
    an_int wleft, wright;
    const char *mask; an_int mk_n, mk_m;
} an_vis;

/* The visible keys of row i (an_keys, normalize.h). */
static inline an_int an_vis_keys(const an_vis *v, an_int i, an_int *idx, an_int *lo,
                                 const an_int **keys)
{
    return an_keys(i, v->n, v->m, v->causal, v->wleft, v->wright, v->mask, v->mk_n, v->mk_m,
                   idx, lo, keys);
}

/* Number of queries that see each key: cnt[0..m). */
void an_column_counts(const an_vis *v, an_int *cnt);

/* ---- materialised kernels (diagnostics.c) ---- */

/* Row diagnostic kinds (row_diag gufunc): one (n) output per matrix. */
enum {
    AN_RD_ENTROPY = 0,       /* -sum a log a (times p = 1/log base) */
    AN_RD_ENTROPY_NORM = 1,  /* entropy / log n_i */
    AN_RD_EFF_SUPPORT = 2,   /* exp(entropy) */
    AN_RD_PARTICIPATION = 3, /* 1 / sum a^2 */
    AN_RD_NEG_MASS = 4,      /* sum min(a, 0) */
    AN_RD_MARGIN = 5,        /* top-1 minus top-2 score */
    AN_RD_SUPPORT = 6        /* #{a > p} (int64 output) */
};
typedef struct {
    an_vis v;
    const char *a; an_int a_n, a_m;
    char *out; an_int o_n;
    int kind;
    double p;
} an_rowdiag;
int an_row_diag_f(const an_rowdiag *P, an_int nmat);
int an_row_diag_d(const an_rowdiag *P, an_int nmat);

/* Column mass of columns [j0, j1): out[j] = mean of a_ij over the queries i
 * that see key j (NaN if none). */
typedef struct {
    an_vis v;
    const char *a; an_int a_n, a_m;
    char *out; an_int o_m;
    an_int j0, j1;
} an_colmass;
int an_column_mass_f(const an_colmass *P, an_int nmat);
int an_column_mass_d(const an_colmass *P, an_int nmat);

/* Matrix diagnostic kinds (matrix_diag gufunc): one () output per matrix. */
enum {
    AN_MD_ROW_RESIDUAL = 0,  /* || a 1 - 1 ||_ord */
    AN_MD_COL_RESIDUAL = 1,  /* || a^T 1 - (n/m) 1 ||_ord */
    AN_MD_FROBENIUS = 2,     /* || a ||_F */
    AN_MD_RANK_COLLAPSE = 3  /* || x - 1 xbar^T ||_F / || x ||_F */
};
/* ord codes for the residuals */
enum { AN_ORD_1 = 1, AN_ORD_2 = 2, AN_ORD_INF = 3 };
typedef struct {
    an_int n, m;
    const char *a; an_int a_n, a_m;
    char *out;
    int kind, ord;
} an_matdiag;
int an_matrix_diag_f(const an_matdiag *P, an_int nmat);
int an_matrix_diag_d(const an_matdiag *P, an_int nmat);

/* Jacobian norms ([Mudarisov2025], [Saratchandran2024]) of the normalizer desc at each row,
 * from the weights a alone; the form of the Jacobian and its parameters come
 * from the descriptor (normalize.h: jac, jac_*) and nm's parameters. */
typedef struct {
    an_vis v;
    const char *a; an_int a_n, a_m;
    char *out; an_int o_n;
    int fro;
    const an_normdesc *desc;
    an_normmat nm;
} an_jacnorm;
int an_jacobian_norm_f(const an_jacnorm *P, an_int nmat);
int an_jacobian_norm_d(const an_jacnorm *P, an_int nmat);

/* Largest eigenvalue of diag(d) - z z^T (z_i = zs * w_i), exactly, from the
 * secular equation (see diagnostics.c). */
double an_downdate_max_eig(const double *d, const double *w, double zs2, an_int n);

/* ---- streamed diagnose (diagnose.c) ----
 * One (n, m) problem: scores scale * q k^T under the visibility v, weights
 * from the normalizer's row kernel; outputs per query: entropy, max weight,
 * sink weight (key 0), margin, support (int64); per key: column mass. */
typedef struct {
    an_vis v;
    an_int d;                               /* feature size */
    const char *q; an_int q_n, q_d;         /* queries (n, d), byte strides */
    const char *k; an_int k_m, k_d;         /* keys (m, d) */
    double scale;
    an_normmat nm;            /* parameters for the row kernel (p, ip, rp, index) */
    char *ent; an_int ent_s;  /* outputs (n) */
    char *mxw; an_int mxw_s;
    char *snk; an_int snk_s;
    char *mrg; an_int mrg_s;
    char *sup; an_int sup_s;  /* int64 */
    char *col; an_int col_s;  /* (m) */
} an_diagnose;
int an_diagnose_f(const an_normdesc *nd, const an_diagnose *P, an_int nmat, an_int *bad_row);
int an_diagnose_d(const an_normdesc *nd, const an_diagnose *P, an_int nmat, an_int *bad_row);

#endif
