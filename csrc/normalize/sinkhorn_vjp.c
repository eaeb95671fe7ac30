/*
 * sinkhorn_vjp.c -- the VJP of Sinkhorn normalisation (sinkhorn.c),
 * differentiated through its n_iter log-domain iterations.
 *
 * Forward (in double, as sinkhorn.c): K_ij = (s_ij - max_j s_ij) / eps on the
 * visible entries (-inf elsewhere), f = g = 0, steps t = 0 .. n_iter - 1,
 *   t even (row)     f_i = -LSE_j (K_ij + g_j)
 *   t odd  (column)  g_j = lc - LSE_i (K_ij + f_i),   lc = log(n_r / m_c)
 * and A = exp(K + f + g).  Every f and g is kept (n_iter (n + m) / 2 values).
 * Reverse, with adjoints Kb, fb, gb:
 *   output:  Kb = G * A,  fb_i = sum_j Kb_ij,  gb_j = sum_i Kb_ij
 *   row step t (P_ij = exp(K_ij + g_j + f_i), g and f its input and output):
 *     Kb_ij -= fb_i P_ij,  gb_j -= sum_i fb_i P_ij,  then fb = 0
 *   column step t (Q_ij = exp(K_ij + f_i + g_j - lc)):
 *     Kb_ij -= gb_j Q_ij,  fb_i -= sum_j gb_j Q_ij,  then gb = 0
 *   ds_ij = Kb_ij / eps,   deps = -sum_ij Kb_ij K_ij / eps.
 * The row shift max_j s_ij is a constant: A is invariant to per-row shifts
 * of K, so sum_j Kb_ij = 0 and the shift adds nothing to deps.
 *
 * Rows that are empty, NaN (NaN gradient on their visible entries) or hold
 * +inf scores (the limit keeps only those entries; constant in s) get ds = 0
 * apart from the NaN rows; masked entries get 0.
 *
 * Every pass runs along rows (contiguous, exponentials by the vectorised
 * exp-and-sum): row results are computed by one thread each; column sums
 * are accumulated per fixed block of AN_SKV_BLOCK rows and the blocks added
 * in order, so the result is the same for every thread count.  Column LSEs
 * take the column maximum first (exact in any order), then the block sums.
 */
#include <stdlib.h>
#include <string.h>
#include "vjp.h"
#include "an_simd.h"

enum { SK_OK = 0, SK_EMPTY = 1, SK_NAN = 2, SK_INF = 3 };
#define AN_SKV_BLOCK 32

/* Column sums of the per-block partials part[nb][m] into out[m] (in block order). */
static void skv_blocks_sum(const double *part, an_int nb, an_int m, double *out)
{
    for (an_int j = 0; j < m; j++) out[j] = 0;
    for (an_int b = 0; b < nb; b++) {
        const double *p = part + (size_t)b * (size_t)m;
        for (an_int j = 0; j < m; j++) out[j] += p[j];
    }
}

/* Work shared by the passes of one matrix. */
typedef struct {
    an_int n, m, nb;
    double *K, *Kb, *part, *tb;   /* tb: one scratch row per thread */
    const unsigned char *st;
    int nthr;
} skv_work;

/* f_i = -LSE_j (K_ij + g_j) for the rows that take part */
static void skv_row_step(const skv_work *W, const double *g, double *f)
{
    const an_int n = W->n, m = W->m;
    #pragma omp parallel for schedule(static) num_threads(W->nthr)
    for (an_int i = 0; i < n; i++) {
        if (W->st[i] != SK_OK && W->st[i] != SK_INF) continue;
        int tid = 0;
        AN_OMP_TID(tid);
        double *t = W->tb + (size_t)tid * (size_t)m;
        const double *Ki = W->K + (size_t)i * (size_t)m;
        for (an_int j = 0; j < m; j++) t[j] = Ki[j] + g[j];
        const double mx = an_vd->max(t, m);
        f[i] = mx == -INFINITY ? 0.0 : -(mx + log(an_vd->exp_shift_to(t, t, m, mx, 1.0)));
    }
}

/* g_j = lc - LSE_i (K_ij + f_i) for the columns with an entry */
static void skv_col_step(const skv_work *W, const double *f, const unsigned char *colok,
                         double lc, double *g, double *cmax)
{
    const an_int n = W->n, m = W->m, nb = W->nb;
    /* column maxima: per block, then the maximum of the blocks (exact) */
    #pragma omp parallel for schedule(static) num_threads(W->nthr)
    for (an_int b = 0; b < nb; b++) {
        double *p = W->part + (size_t)b * (size_t)m;
        for (an_int j = 0; j < m; j++) p[j] = -INFINITY;
        const an_int i1 = (b + 1) * AN_SKV_BLOCK < n ? (b + 1) * AN_SKV_BLOCK : n;
        for (an_int i = b * AN_SKV_BLOCK; i < i1; i++) {
            const double *Ki = W->K + (size_t)i * (size_t)m;
            for (an_int j = 0; j < m; j++) {
                const double v = Ki[j] + f[i];
                p[j] = v > p[j] ? v : p[j];
            }
        }
    }
    for (an_int j = 0; j < m; j++) cmax[j] = -INFINITY;
    for (an_int b = 0; b < nb; b++)
        for (an_int j = 0; j < m; j++) {
            const double v = W->part[(size_t)b * (size_t)m + j];
            cmax[j] = v > cmax[j] ? v : cmax[j];
        }
    for (an_int j = 0; j < m; j++) if (cmax[j] == -INFINITY) cmax[j] = 0;
    /* sums of exp(K_ij + f_i - cmax_j) per block, in row order */
    #pragma omp parallel for schedule(static) num_threads(W->nthr)
    for (an_int b = 0; b < nb; b++) {
        int tid = 0;
        AN_OMP_TID(tid);
        double *t = W->tb + (size_t)tid * (size_t)m;
        double *p = W->part + (size_t)b * (size_t)m;
        for (an_int j = 0; j < m; j++) p[j] = 0;
        const an_int i1 = (b + 1) * AN_SKV_BLOCK < n ? (b + 1) * AN_SKV_BLOCK : n;
        for (an_int i = b * AN_SKV_BLOCK; i < i1; i++) {
            const double *Ki = W->K + (size_t)i * (size_t)m;
            for (an_int j = 0; j < m; j++) t[j] = Ki[j] + f[i] - cmax[j];
            an_vd->exp_shift_to(t, t, m, 0.0, 1.0);
            for (an_int j = 0; j < m; j++) p[j] += t[j];
        }
    }
    skv_blocks_sum(W->part, nb, m, g);   /* g holds the sums for now */
    for (an_int j = 0; j < m; j++)
        g[j] = colok[j] ? lc - (cmax[j] + log(g[j])) : 0.0;
}

/* One reverse (or output) pass: for every row i,
 *   u_ij = coef_i(j) exp(K_ij + a_j + shift_i),  Kb_ij = Kb_ij * keep + sgn u_ij,
 * with coef_i(j) = rowc[i] (row step) or colc[j] (column step) or G_ij
 * (output, through Gm); rowsum[i] = sum_j u_ij, colsum[j] = sum_i u_ij. */
typedef struct {
    const double *a;        /* added to K along the row (m) */
    const double *shift;    /* per row (n) */
    const double *rowc;     /* per-row coefficient, or NULL */
    const double *colc;     /* per-column coefficient, or NULL */
    const char *G; an_int g_n, g_m; int real_f;   /* output pass: the gradient */
    double sgn;             /* +1 (output: Kb = u) or -1 (Kb -= u) */
} skv_pass;

#define AN_TEMPLATE "sinkhorn_vjp_impl.inc"
#include "an_template.h"
