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
 * apart from the NaN rows; masked entries get 0.  One matrix runs on one
 * thread (the driver spreads matrices over threads), in a fixed order.
 */
#include <stdlib.h>
#include <string.h>
#include "vjp.h"

enum { SK_OK = 0, SK_EMPTY = 1, SK_NAN = 2, SK_INF = 3 };

static double lse_row(const double *a, const double *b, an_int len, an_int stride_a)
{
    double mx = -INFINITY;
    for (an_int j = 0; j < len; j++) {
        const double v = a[j * stride_a] + b[j];
        mx = v > mx ? v : mx;
    }
    if (mx == -INFINITY) return -INFINITY;
    double s = 0;
    for (an_int j = 0; j < len; j++) s += exp(a[j * stride_a] + b[j] - mx);
    return mx + log(s);
}

#define AN_SINKHORN_VJP(T, TS)                                                \
static int sinkhorn_vjp_##TS(const an_normmat *M, an_vjpmat *V)               \
{                                                                             \
    const an_int n = M->n, m = M->m;                                          \
    const double eps = M->p[0];                                               \
    const int64_t n_iter = M->ip[0];                                          \
    V->dp[0] = 0;                                                             \
    if (n <= 0 || m <= 0) return AN_OK;                                       \
    if (!(eps > 0) || eps == INFINITY || n_iter < 1) return AN_ERR_VALUE;     \
    const int64_t R = (n_iter + 1) / 2, C = n_iter / 2;                       \
    const size_t nm = (size_t)n * (size_t)m;                                  \
    double *K = (double *)malloc(nm * sizeof(double));                        \
    double *Kb = (double *)malloc(nm * sizeof(double));                       \
    double *F = (double *)calloc((size_t)R * (size_t)n, sizeof(double));      \
    double *Gs = (double *)calloc((size_t)(C + 1) * (size_t)m, sizeof(double)); \
    double *fb = (double *)malloc((size_t)n * sizeof(double));                \
    double *gb = (double *)malloc((size_t)m * sizeof(double));                \
    unsigned char *st = (unsigned char *)malloc((size_t)n);                   \
    unsigned char *colok = (unsigned char *)calloc((size_t)m, 1);             \
    int rc = AN_OK;                                                           \
    if (!K || !Kb || !F || !Gs || !fb || !gb || !st || !colok) { rc = AN_ERR_NOMEM; goto done; } \
    /* 1. K and the row states */                                             \
    an_int n_r = 0, m_c = 0;                                                  \
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
        n_r += st[i] == SK_OK || st[i] == SK_INF;                             \
    }                                                                         \
    for (an_int i = 0; i < n; i++)                                            \
        for (an_int j = 0; j < m; j++)                                        \
            colok[j] |= K[(size_t)i * (size_t)m + j] > -INFINITY;             \
    for (an_int j = 0; j < m; j++) m_c += colok[j];                           \
    const double lc = m_c > 0 ? log((double)n_r / (double)m_c) : 0.0;         \
    /* 2. forward: row step r uses Gs[r] (Gs[0] = 0) and writes F[r];        \
     *    column step r uses F[r] and writes Gs[r + 1] */                     \
    if (n_r > 0) {                                                            \
        for (int64_t t = 0; t < n_iter; t++) {                                \
            const int64_t r = t / 2;                                          \
            if (t % 2 == 0) {                                                 \
                const double *g = Gs + (size_t)r * (size_t)m;                 \
                for (an_int i = 0; i < n; i++)                                \
                    if (st[i] == SK_OK || st[i] == SK_INF)                    \
                        F[(size_t)r * (size_t)n + i] = -lse_row(K + (size_t)i * (size_t)m, g, m, 1); \
            } else {                                                          \
                const double *f = F + (size_t)r * (size_t)n;                  \
                double *g = Gs + (size_t)(r + 1) * (size_t)m;                 \
                for (an_int j = 0; j < m; j++)                                \
                    if (colok[j]) g[j] = lc - lse_row(K + j, f, n, m);        \
            }                                                                 \
        }                                                                     \
    }                                                                         \
    /* 3. output adjoint */                                                   \
    const double *f = F + (size_t)(R - 1) * (size_t)n;                        \
    const double *g = Gs + (size_t)C * (size_t)m;                             \
    for (an_int j = 0; j < m; j++) gb[j] = 0;                                 \
    for (an_int i = 0; i < n; i++) {                                          \
        const char *grow = V->g + V->g_n * i;                                 \
        double *Ki = K + (size_t)i * (size_t)m, *Kbi = Kb + (size_t)i * (size_t)m; \
        double s = 0;                                                         \
        for (an_int j = 0; j < m; j++) {                                      \
            const double a = Ki[j] > -INFINITY ? exp(Ki[j] + f[i] + g[j]) : 0.0; \
            Kbi[j] = a != 0 ? (double)AN_AT(T, grow, V->g_m, j) * a : 0.0;    \
            s += Kbi[j]; gb[j] += Kbi[j];                                     \
        }                                                                     \
        fb[i] = s;                                                            \
    }                                                                         \
    /* 4. reverse through the steps */                                        \
    if (n_r > 0) {                                                            \
        for (int64_t t = n_iter - 1; t >= 0; t--) {                           \
            const int64_t r = t / 2;                                          \
            const double *ff = F + (size_t)r * (size_t)n;                     \
            if (t % 2 == 0) {                                                 \
                const double *gg = Gs + (size_t)r * (size_t)m;                \
                for (an_int i = 0; i < n; i++) {                              \
                    const double *Ki = K + (size_t)i * (size_t)m;             \
                    double *Kbi = Kb + (size_t)i * (size_t)m;                 \
                    const double fbi = fb[i];                                 \
                    if (fbi == 0) continue;                                   \
                    for (an_int j = 0; j < m; j++) {                          \
                        if (Ki[j] == -INFINITY) continue;                     \
                        const double u = fbi * exp(Ki[j] + gg[j] + ff[i]);    \
                        Kbi[j] -= u; gb[j] -= u;                              \
                    }                                                         \
                    fb[i] = 0;                                                \
                }                                                             \
                /* g = 0 before the first row step: its adjoint is dropped */ \
            } else {                                                          \
                const double *gg = Gs + (size_t)(r + 1) * (size_t)m;          \
                for (an_int i = 0; i < n; i++) {                              \
                    const double *Ki = K + (size_t)i * (size_t)m;             \
                    double *Kbi = Kb + (size_t)i * (size_t)m;                 \
                    double s = 0;                                             \
                    for (an_int j = 0; j < m; j++) {                          \
                        if (Ki[j] == -INFINITY || gb[j] == 0) continue;       \
                        const double u = gb[j] * exp(Ki[j] + ff[i] + gg[j] - lc); \
                        Kbi[j] -= u; s += u;                                  \
                    }                                                         \
                    fb[i] -= s;                                               \
                }                                                             \
                for (an_int j = 0; j < m; j++) gb[j] = 0;                     \
            }                                                                 \
        }                                                                     \
    }                                                                         \
    /* 5. ds and deps */                                                      \
    double de = 0;                                                            \
    for (an_int i = 0; i < n; i++) {                                          \
        char *drow = V->dx + V->dx_n * i;                                     \
        const double *Ki = K + (size_t)i * (size_t)m, *Kbi = Kb + (size_t)i * (size_t)m; \
        if (st[i] == SK_NAN) {                                                \
            an_int lo, hi;                                                    \
            an_visible_range(i, n, m, M->causal, M->wleft, M->wright, &lo, &hi); \
            const char *mrow = M->mask ? M->mask + M->mk_n * i : NULL;        \
            for (an_int j = 0; j < m; j++) {                                  \
                const int vis = j >= lo && j < hi && (!mrow || AN_AT(uint8_t, mrow, M->mk_m, j)); \
                AN_AT(T, drow, V->dx_m, j) = vis ? (T)NAN : (T)0;             \
            }                                                                 \
            de = NAN;                                                         \
            continue;                                                         \
        }                                                                     \
        const int ok = st[i] == SK_OK;                                        \
        for (an_int j = 0; j < m; j++) {                                      \
            const int fin = ok && Ki[j] > -INFINITY;                          \
            AN_AT(T, drow, V->dx_m, j) = fin ? (T)(Kbi[j] / eps) : (T)0;      \
            de += fin ? Kbi[j] * Ki[j] : 0.0;                                 \
        }                                                                     \
    }                                                                         \
    V->dp[0] = -de / eps;                                                     \
done:                                                                         \
    free(K); free(Kb); free(F); free(Gs); free(fb); free(gb); free(st); free(colok); \
    return rc;                                                                \
}
AN_SINKHORN_VJP(float, f)
AN_SINKHORN_VJP(double, d)

const an_vjpdesc an_vjp_sinkhorn = { .mat_f = sinkhorn_vjp_f, .mat_d = sinkhorn_vjp_d };
