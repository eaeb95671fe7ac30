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
        f[i] = mx == -INFINITY ? 0.0 : -(mx + log(an_vd->exp_shift_sum(t, m, mx, 1.0)));
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
            an_vd->exp_shift_sum(t, m, 0.0, 1.0);
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

#define AN_SKV_PASS(T, TS)                                                    \
static void skv_pass_##TS(const skv_work *W, const skv_pass *S, double *rowsum, double *colsum) \
{                                                                             \
    const an_int n = W->n, m = W->m, nb = W->nb;                              \
    _Pragma("omp parallel for schedule(static) num_threads(W->nthr)")         \
    for (an_int b = 0; b < nb; b++) {                                         \
        int tid = 0;                                                          \
        AN_OMP_TID(tid);                                                      \
        double *t = W->tb + (size_t)tid * (size_t)m;                          \
        double *p = W->part + (size_t)b * (size_t)m;                          \
        for (an_int j = 0; j < m; j++) p[j] = 0;                              \
        const an_int i1 = (b + 1) * AN_SKV_BLOCK < n ? (b + 1) * AN_SKV_BLOCK : n; \
        for (an_int i = b * AN_SKV_BLOCK; i < i1; i++) {                      \
            double rs = 0;                                                    \
            if (W->st[i] == SK_OK || W->st[i] == SK_INF) {                    \
                const double *Ki = W->K + (size_t)i * (size_t)m;              \
                double *Kbi = W->Kb + (size_t)i * (size_t)m;                  \
                for (an_int j = 0; j < m; j++) t[j] = Ki[j] + S->a[j];        \
                an_vd->exp_shift_sum(t, m, -S->shift[i], 1.0);                \
                if (S->G) {                                                   \
                    const char *gr = S->G + S->g_n * i;                       \
                    for (an_int j = 0; j < m; j++)                            \
                        t[j] = t[j] != 0 ? t[j] * (double)AN_AT(T, gr, S->g_m, j) : 0.0; \
                } else if (S->rowc) {                                         \
                    const double c = S->rowc[i];                              \
                    for (an_int j = 0; j < m; j++) t[j] *= c;                 \
                } else {                                                      \
                    for (an_int j = 0; j < m; j++) t[j] *= S->colc[j];        \
                }                                                             \
                if (S->sgn > 0) for (an_int j = 0; j < m; j++) Kbi[j] = t[j]; \
                else for (an_int j = 0; j < m; j++) Kbi[j] -= t[j];           \
                for (an_int j = 0; j < m; j++) { rs += t[j]; p[j] += t[j]; }  \
            }                                                                 \
            if (rowsum) rowsum[i] = rs;                                       \
        }                                                                     \
    }                                                                         \
    if (colsum) skv_blocks_sum(W->part, nb, m, colsum);                       \
}
AN_SKV_PASS(float, f)
AN_SKV_PASS(double, d)

#define AN_SINKHORN_VJP(T, TS)                                                \
static int sinkhorn_vjp_##TS(const an_normmat *M, an_vjpmat *V)               \
{                                                                             \
    const an_int n = M->n, m = M->m;                                          \
    const double eps = M->p[0];                                               \
    const int64_t n_iter = M->ip[0];                                          \
    V->dp[0] = 0;                                                             \
    if (n <= 0 || m <= 0) return AN_OK;                                       \
    if (!(eps > 0) || eps == INFINITY || n_iter < 1) return AN_ERR_VALUE;     \
    int nthr = an_num_threads();                                              \
    if ((double)n * (double)m * (double)n_iter < 65536.0) nthr = 1;           \
    const int64_t R = (n_iter + 1) / 2, C = n_iter / 2;                       \
    const size_t nm = (size_t)n * (size_t)m;                                  \
    const an_int nb = (n + AN_SKV_BLOCK - 1) / AN_SKV_BLOCK;                  \
    double *K = (double *)malloc(nm * sizeof(double));                        \
    double *Kb = (double *)malloc(nm * sizeof(double));                       \
    double *F = (double *)calloc((size_t)R * (size_t)n, sizeof(double));      \
    double *Gs = (double *)calloc((size_t)(C + 1) * (size_t)m, sizeof(double)); \
    double *vec = (double *)malloc(sizeof(double) * (size_t)(3 * n + 3 * m)); \
    double *part = (double *)malloc(sizeof(double) * (size_t)nb * (size_t)m); \
    double *tb = (double *)malloc(sizeof(double) * (size_t)m * (size_t)nthr); \
    unsigned char *st = (unsigned char *)malloc((size_t)n);                   \
    unsigned char *colok = (unsigned char *)calloc((size_t)m, 1);             \
    int rc = AN_OK;                                                           \
    if (!K || !Kb || !F || !Gs || !vec || !part || !tb || !st || !colok) { rc = AN_ERR_NOMEM; goto done; } \
    double *fb = vec, *tmpn = fb + n, *sh = tmpn + n, *gb = sh + n, *tmpm = gb + m, *cmax = tmpm + m; \
    skv_work W = { n, m, nb, K, Kb, part, tb, st, nthr };                     \
    /* 1. K and the row states */                                             \
    _Pragma("omp parallel for schedule(static) num_threads(nthr)")            \
    for (an_int i = 0; i < n; i++) {                                          \
        an_int lo, hi;                                                        \
        an_visible_range(i, n, m, M->causal, M->wleft, M->wright, &lo, &hi);  \
        const char *srow = M->s + M->s_n * i;                                 \
        const char *mrow = M->mask ? M->mask + M->mk_n * i : NULL;            \
        double *Ki = K + (size_t)i * (size_t)m, mx = -INFINITY;               \
        int nan = 0;                                                          \
        for (an_int j = 0; j < m; j++) {                                      \
            const int vis = j >= lo && j < hi && (!mrow || AN_AT(uint8_t, mrow, M->mk_m, j)); \
            Ki[j] = vis ? (double)AN_AT(T, srow, M->s_m, j) : -INFINITY;      \
            nan |= Ki[j] != Ki[j];                                            \
            mx = Ki[j] > mx ? Ki[j] : mx;                                     \
        }                                                                     \
        st[i] = nan ? SK_NAN : mx == -INFINITY ? SK_EMPTY : mx == INFINITY ? SK_INF : SK_OK; \
        for (an_int j = 0; j < m; j++)                                        \
            Ki[j] = st[i] == SK_OK ? (Ki[j] - mx) / eps                       \
                  : st[i] == SK_INF ? (Ki[j] == INFINITY ? 0.0 : -INFINITY) : -INFINITY; \
    }                                                                         \
    an_int n_r = 0, m_c = 0;                                                  \
    for (an_int i = 0; i < n; i++) {                                          \
        n_r += st[i] == SK_OK || st[i] == SK_INF;                             \
        const double *Ki = K + (size_t)i * (size_t)m;                         \
        for (an_int j = 0; j < m; j++) colok[j] |= Ki[j] > -INFINITY;         \
    }                                                                         \
    for (an_int j = 0; j < m; j++) m_c += colok[j];                           \
    const double lc = m_c > 0 ? log((double)n_r / (double)m_c) : 0.0;         \
    /* 2. forward: row step r uses Gs[r] (Gs[0] = 0) and writes F[r];        \
     *    column step r uses F[r] and writes Gs[r + 1] */                     \
    if (n_r > 0)                                                              \
        for (int64_t t = 0; t < n_iter; t++) {                                \
            const int64_t r = t / 2;                                          \
            if (t % 2 == 0) skv_row_step(&W, Gs + (size_t)r * (size_t)m, F + (size_t)r * (size_t)n); \
            else skv_col_step(&W, F + (size_t)r * (size_t)n, colok, lc,       \
                              Gs + (size_t)(r + 1) * (size_t)m, cmax);        \
        }                                                                     \
    /* 3. output adjoint: Kb = G * exp(K + f + g), fb, gb its row and column sums */ \
    {                                                                         \
        skv_pass S = { Gs + (size_t)C * (size_t)m, F + (size_t)(R - 1) * (size_t)n, \
                       NULL, NULL, V->g, V->g_n, V->g_m, 0, 1.0 };            \
        for (an_int i = 0; i < n; i++)                                        \
            if (st[i] != SK_OK && st[i] != SK_INF)                            \
                for (an_int j = 0; j < m; j++) Kb[(size_t)i * (size_t)m + j] = 0; \
        skv_pass_##TS(&W, &S, fb, gb);                                        \
    }                                                                         \
    /* 4. reverse through the steps */                                        \
    if (n_r > 0)                                                              \
        for (int64_t t = n_iter - 1; t >= 0; t--) {                           \
            const int64_t r = t / 2;                                          \
            const double *ff = F + (size_t)r * (size_t)n;                     \
            if (t % 2 == 0) {                                                 \
                skv_pass S = { Gs + (size_t)r * (size_t)m, ff, fb, NULL, NULL, 0, 0, 0, -1.0 }; \
                skv_pass_##TS(&W, &S, NULL, tmpm);                            \
                for (an_int j = 0; j < m; j++) gb[j] -= tmpm[j];              \
                for (an_int i = 0; i < n; i++) fb[i] = 0;                     \
                /* g = 0 before the first row step: its adjoint is dropped */ \
            } else {                                                          \
                for (an_int i = 0; i < n; i++) sh[i] = ff[i] - lc;            \
                skv_pass S = { Gs + (size_t)(r + 1) * (size_t)m, sh, NULL, gb, NULL, 0, 0, 0, -1.0 }; \
                skv_pass_##TS(&W, &S, tmpn, NULL);                            \
                for (an_int i = 0; i < n; i++) fb[i] -= tmpn[i];              \
                for (an_int j = 0; j < m; j++) gb[j] = 0;                     \
            }                                                                 \
        }                                                                     \
    /* 5. ds and deps (per-row sums, added in row order) */                   \
    _Pragma("omp parallel for schedule(static) num_threads(nthr)")            \
    for (an_int i = 0; i < n; i++) {                                          \
        char *drow = V->dx + V->dx_n * i;                                     \
        const double *Ki = K + (size_t)i * (size_t)m, *Kbi = Kb + (size_t)i * (size_t)m; \
        double de = 0;                                                        \
        if (st[i] == SK_NAN) {                                                \
            an_int lo, hi;                                                    \
            an_visible_range(i, n, m, M->causal, M->wleft, M->wright, &lo, &hi); \
            const char *mrow = M->mask ? M->mask + M->mk_n * i : NULL;        \
            for (an_int j = 0; j < m; j++) {                                  \
                const int vis = j >= lo && j < hi && (!mrow || AN_AT(uint8_t, mrow, M->mk_m, j)); \
                AN_AT(T, drow, V->dx_m, j) = vis ? (T)NAN : (T)0;             \
            }                                                                 \
            de = NAN;                                                         \
        } else {                                                              \
            const int ok = st[i] == SK_OK;                                    \
            for (an_int j = 0; j < m; j++) {                                  \
                const int fin = ok && Ki[j] > -INFINITY;                      \
                AN_AT(T, drow, V->dx_m, j) = fin ? (T)(Kbi[j] / eps) : (T)0;  \
                de += fin ? Kbi[j] * Ki[j] : 0.0;                             \
            }                                                                 \
        }                                                                     \
        tmpn[i] = de;                                                         \
    }                                                                         \
    double de = 0;                                                            \
    for (an_int i = 0; i < n; i++) de += tmpn[i];                             \
    V->dp[0] = -de / eps;                                                     \
done:                                                                         \
    free(K); free(Kb); free(F); free(Gs); free(vec); free(part); free(tb);     \
    free(st); free(colok);                                                    \
    return rc;                                                                \
}
AN_SINKHORN_VJP(float, f)
AN_SINKHORN_VJP(double, d)

const an_vjpdesc an_vjp_sinkhorn = { .mat_f = sinkhorn_vjp_f, .mat_d = sinkhorn_vjp_d };
