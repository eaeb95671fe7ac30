/*
 * sinkhorn.c -- log-domain Sinkhorn normalisation of a whole (n, m) score
 * matrix (papers.md A5, Sinkformers #8).
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
#include "an_simd.h"

enum { ROW_OK = 0, ROW_EMPTY = 1, ROW_NAN = 2 };

/* LSE over x[0..len) + y[0..len) using the scratch row t; -inf if all -inf. */
#define AN_SK_LSE(T, TS, VOPS)                                                \
static double sk_lse_##TS(const T *x, const T *y, an_int len, T *t)           \
{                                                                             \
    memcpy(t, x, (size_t)len * sizeof(T));                                    \
    VOPS->axpy(t, y, len, (T)1);                                              \
    T mx = VOPS->max(t, len);                                                 \
    if (mx == -INFINITY) return -INFINITY;                                    \
    double s = VOPS->exp_shift_sum(t, len, mx, (T)1);                         \
    return (double)mx + log(s);                                               \
}

#define AN_SINKHORN(T, TS, VOPS)                                              \
AN_SK_LSE(T, TS, VOPS)                                                        \
static int sinkhorn_mat_##TS(const an_normmat *M)                             \
{                                                                             \
    const an_int n = M->n, m = M->m;                                          \
    const double eps = M->p[0];                                               \
    const int64_t n_iter = M->ip[0];                                          \
    if (n > 0 && m <= 0 && M->empty == AN_EMPTY_RAISE)                        \
        return AN_ERR_EMPTY_ROW;   /* every row sees no key */                \
    if (n <= 0 || m <= 0) return AN_OK;                                       \
    if (!(eps > 0) || eps == INFINITY || n_iter < 1) return AN_ERR_VALUE;                        \
    if ((double)n * (double)m > (double)(SIZE_MAX / (4 * sizeof(T))))         \
        return AN_ERR_NOMEM;                                                  \
    int nthr = an_num_threads();                                              \
    if ((double)n * (double)m < 32768.0) nthr = 1;                            \
    const an_int len = (n > m ? n : m) + 1;                                   \
    T *K = (T *)malloc((size_t)n * (size_t)m * sizeof(T));                    \
    T *KT = n_iter > 1 ? (T *)malloc((size_t)n * (size_t)m * sizeof(T)) : NULL; \
    T *f = (T *)malloc((size_t)n * sizeof(T));                                \
    T *g = (T *)malloc((size_t)m * sizeof(T));                                \
    unsigned char *state = (unsigned char *)malloc((size_t)n);                \
    unsigned char *colok = (unsigned char *)malloc((size_t)m);                \
    T *tb = (T *)malloc((size_t)len * sizeof(T) * (size_t)nthr);              \
    int rc = AN_OK;                                                           \
    if (!K || (!KT && n_iter > 1) || !f || !g || !state || !colok || !tb) { rc = AN_ERR_NOMEM; goto done; } \
    for (an_int j = 0; j < m; j++) g[j] = 0;                                  \
    an_int n_r = 0, m_c = 0;                                                  \
    int stop = 0;                     /* Ctrl-C, decided by thread 0 */       \
    _Pragma("omp parallel num_threads(nthr)")                                 \
    {                                                                         \
        int tid = 0;                                                          \
        AN_OMP_TID(tid);                                                      \
        T *t = tb + (size_t)len * (size_t)tid;                                \
        /* 1. K = (s - max s) / eps on visible entries, -inf elsewhere;      \
         *    row states.  (The row shift is absorbed by f, exactly; it keeps \
         *    the potentials O(log m) for huge scores and tiny eps.) */       \
        _Pragma("omp for schedule(static)")                                   \
        for (an_int i = 0; i < n; i++) {                                      \
            an_int lo, hi;                                                    \
            an_visible_range(i, n, m, M->causal, M->wleft, M->wright, &lo, &hi); \
            const char *srow = M->s + M->s_n * i;                             \
            const char *mrow = M->mask ? M->mask + M->mk_n * i : NULL;        \
            T *Ki = K + (size_t)i * (size_t)m;                                \
            for (an_int j = 0; j < lo; j++) Ki[j] = (T)-INFINITY;             \
            for (an_int j = hi; j < m; j++) Ki[j] = (T)-INFINITY;             \
            for (an_int j = lo; j < hi; j++)                                  \
                Ki[j] = (!mrow || AN_AT(uint8_t, mrow, M->mk_m, j))           \
                        ? AN_AT(T, srow, M->s_m, j) : (T)-INFINITY;           \
            T mx = VOPS->max(Ki, m);                                          \
            if (mx != mx) state[i] = ROW_NAN;                                 \
            else if (mx == -INFINITY) state[i] = ROW_EMPTY;                   \
            else state[i] = ROW_OK;                                           \
            if (state[i] != ROW_OK)                                           \
                for (an_int j = 0; j < m; j++) Ki[j] = (T)-INFINITY;          \
            else if (mx == INFINITY)  /* +inf entries share: equal scores */  \
                for (an_int j = 0; j < m; j++) Ki[j] = Ki[j] == INFINITY ? (T)0 : (T)-INFINITY; \
            else                                                              \
                for (an_int j = 0; j < m; j++)                                \
                    Ki[j] = (T)(((double)Ki[j] - (double)mx) / eps);          \
            f[i] = 0;                                                         \
        }                                                                     \
        /* 2. KT = K^T in 32 x 32 tiles; non-empty columns (only if there  \
         *    is a column step) */                                            \
        _Pragma("omp for schedule(static)")                                   \
        for (an_int jb = 0; jb < (n_iter > 1 ? m : 0); jb += 32) {            \
            an_int je = jb + 32 < m ? jb + 32 : m;                            \
            for (an_int ib = 0; ib < n; ib += 32) {                           \
                an_int ie = ib + 32 < n ? ib + 32 : n;                        \
                for (an_int j = jb; j < je; j++)                              \
                    for (an_int i = ib; i < ie; i++)                          \
                        KT[(size_t)j * (size_t)n + i] = K[(size_t)i * (size_t)m + j]; \
            }                                                                 \
            for (an_int j = jb; j < je; j++) {                                \
                colok[j] = VOPS->max(KT + (size_t)j * (size_t)n, n) > -INFINITY; \
                g[j] = 0;                                                     \
            }                                                                 \
        }                                                                     \
        _Pragma("omp single")                                                 \
        {                                                                     \
            for (an_int i = 0; i < n; i++) n_r += state[i] == ROW_OK;         \
            for (an_int j = 0; j < m; j++) m_c += colok[j];                   \
        }                                                                     \
        const double log_col = m_c > 0 ? log((double)n_r / (double)m_c) : 0.0; \
        /* 3. alternate row step (first) and column step; the last step's  \
         *    weights are written in step 4 */                                \
        const int64_t last = n_r > 0 ? n_iter - 1 : 0;                        \
        for (int64_t it = 0; it < last; it++) {                               \
            /* Ctrl-C: thread 0 polls, the barrier makes every thread see  \
             * the same decision (the loop holds worksharing constructs) */ \
            _Pragma("omp master")                                             \
            { if (an_interrupt_check()) stop = 1; }                           \
            _Pragma("omp barrier")                                            \
            if (stop) break;                                                  \
            if (it % 2 == 0) {                                                \
                _Pragma("omp for schedule(static)")                           \
                for (an_int i = 0; i < n; i++)                                \
                    if (state[i] == ROW_OK)                                   \
                        f[i] = (T)(-sk_lse_##TS(K + (size_t)i * (size_t)m, g, m, t)); \
            } else {                                                          \
                _Pragma("omp for schedule(static)")                           \
                for (an_int j = 0; j < m; j++)                                \
                    if (colok[j])                                             \
                        g[j] = (T)(log_col - sk_lse_##TS(KT + (size_t)j * (size_t)n, f, n, t)); \
            }                                                                 \
        }                                                                     \
        const int last_is_row = last % 2 == 0;                               \
        if (!last_is_row) {                                                   \
            _Pragma("omp for schedule(static)")                               \
            for (an_int j = 0; j < m; j++)                                    \
                if (colok[j])                                                 \
                    g[j] = (T)(log_col - sk_lse_##TS(KT + (size_t)j * (size_t)n, f, n, t)); \
        }                                                                     \
        /* 4. A = exp(K + f + g), written with the output strides.  After a  \
         *    final row step this is the row softmax of K + g (computed as    \
         *    softmax is, so n_iter = 1 gives softmax(s / eps) exactly). */   \
        _Pragma("omp for schedule(static)")                                   \
        for (an_int i = 0; i < n; i++) {                                      \
            char *orow = M->out + M->o_n * i;                                 \
            if (state[i] == ROW_OK) {                                         \
                memcpy(t, K + (size_t)i * (size_t)m, (size_t)m * sizeof(T));  \
                VOPS->axpy(t, g, m, (T)1);                                    \
                if (last_is_row) {                                            \
                    T mx = VOPS->max(t, m);                                   \
                    double sum = VOPS->exp_shift_sum(t, m, mx, (T)1);         \
                    VOPS->scale(t, m, (T)(1.0 / sum));                        \
                } else {                                                      \
                    VOPS->exp_shift_sum(t, m, -f[i], (T)1);                   \
                }                                                             \
                for (an_int j = 0; j < m; j++) AN_AT(T, orow, M->o_m, j) = t[j]; \
            } else {                                                          \
                /* as the row driver: a NaN row is NaN on its visible keys;  \
                 * an empty row gets the fill on its visible (-inf) keys, or \
                 * on every key when none is visible; masked keys stay 0 */  \
                const T on = state[i] == ROW_NAN ? (T)NAN                     \
                           : M->empty == AN_EMPTY_NAN ? (T)NAN : (T)0;        \
                an_int lo, hi, nvis = 0;                                      \
                an_visible_range(i, n, m, M->causal, M->wleft, M->wright, &lo, &hi); \
                const char *mrow = M->mask ? M->mask + M->mk_n * i : NULL;    \
                for (an_int j = 0; j < m; j++) {                              \
                    int vis = j >= lo && j < hi && (!mrow || AN_AT(uint8_t, mrow, M->mk_m, j)); \
                    AN_AT(T, orow, M->o_m, j) = vis ? on : (T)0;              \
                    nvis += vis;                                              \
                }                                                             \
                if (nvis == 0)                                                \
                    for (an_int j = 0; j < m; j++) AN_AT(T, orow, M->o_m, j) = on; \
            }                                                                 \
        }                                                                     \
    }                                                                         \
    if (M->empty == AN_EMPTY_RAISE)                                           \
        for (an_int i = 0; i < n; i++)                                        \
            if (state[i] == ROW_EMPTY) { rc = AN_ERR_EMPTY_ROW; break; }      \
    if (stop) rc = AN_ERR_INTERRUPTED;                                        \
done:                                                                         \
    free(K); free(KT); free(f); free(g); free(state); free(colok); free(tb);  \
    return rc;                                                                \
}

AN_SINKHORN(float, f, an_vf)
AN_SINKHORN(double, d, an_vd)

const an_normdesc an_norm_sinkhorn = {
    .mat_f = sinkhorn_mat_f, .mat_d = sinkhorn_mat_d, .nreal = 1, .nint = 1 };
