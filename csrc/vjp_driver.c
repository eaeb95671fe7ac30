/* vjp_driver.c -- gather / row VJP / scatter over every row (vjp.h). */
#include <stdlib.h>
#include <string.h>
#include "vjp.h"

/* Per row r of the call (matrix r / n, query r % n):
 *   gather x, w, g on the visible keys, dx = row VJP, scatter dx (masked 0);
 *   the row's parameter gradients go to rowdp[r * np ..] (np = nreal + nrowp).
 * Afterwards, in row order: V[k].dp[q] = sum_i rowdp[(k n + i) np + q] for the
 * () reals, and the (n) reals' gradients are written per row. */
#define AN_VJP_DRIVER(T, TS)                                                  \
int an_normalize_vjp_##TS(const an_normdesc *d, const an_normmat *mats, an_vjpmat *V, \
                          an_int nmat, an_int *bad_row)                       \
{                                                                             \
    *bad_row = -1;                                                            \
    const an_vjpdesc *v = an_vjp_for(d);                                      \
    if (!v) return AN_ERR_VALUE;                                              \
    if (nmat <= 0) return AN_OK;                                              \
    if (v->mat_##TS) {                                                        \
        int mthr = an_num_threads();                                          \
        if (nmat < 2) mthr = 1;                                               \
        if (mthr > nmat) mthr = (int)nmat;                                    \
        int merr = AN_OK; an_int merr_k = -1;                                 \
        _Pragma("omp parallel for num_threads(mthr) schedule(dynamic)")       \
        for (an_int k = 0; k < nmat; k++) {                                   \
            int rc = v->mat_##TS(&mats[k], &V[k]);                            \
            if (rc) {                                                         \
                _Pragma("omp critical(an_vjp_err)")                           \
                { if (!merr || k < merr_k) { merr = rc; merr_k = k; } }       \
            }                                                                 \
        }                                                                     \
        return merr;                                                          \
    }                                                                         \
    const an_int n = mats[0].n, m = mats[0].m, nrows = nmat * n;              \
    const int np = d->nreal + d->nrowp;                                       \
    for (an_int k = 0; k < nmat; k++)                                         \
        for (int q = 0; q < AN_MAXPARAM; q++) V[k].dp[q] = 0;                 \
    if (nrows == 0) return AN_OK;                                             \
    double *rowdp = (double *)calloc((size_t)nrows * (size_t)(np > 0 ? np : 1), sizeof(double)); \
    if (!rowdp) return AN_ERR_NOMEM;                                          \
    int nthr = an_num_threads();                                              \
    if ((double)nrows * (double)(m + 1) < 16384.0) nthr = 1;                  \
    if (nthr > nrows) nthr = (int)nrows;                                      \
    /* per thread: workspace (ws_mult (m + 1) doubles), idx, then x w g dx */ \
    const size_t wsb = sizeof(double) * (size_t)(m + 1) * (size_t)v->ws_mult; \
    const size_t idxb = sizeof(an_int) * (size_t)(m + 1);                     \
    an_thread_blocks tb;                                                      \
    if (!an_thread_blocks_alloc(&tb, wsb + idxb + 4 * sizeof(T) * (size_t)(m + 1), nthr)) { \
        free(rowdp); return AN_ERR_NOMEM;                                     \
    }                                                                         \
    int err = AN_OK; an_int err_row = -1;                                     \
    _Pragma("omp parallel num_threads(nthr)")                                 \
    {                                                                         \
        char *mine = an_thread_block(&tb);                                    \
        double *ws = (double *)mine;                                          \
        an_int *idx = (an_int *)(mine + wsb);                                 \
        T *x = (T *)(mine + wsb + idxb);                                      \
        T *w = x + (m + 1), *g = w + (m + 1), *dx = g + (m + 1);              \
        _Pragma("omp for schedule(static)")                                   \
        for (an_int r = 0; r < nrows; r++) {                                  \
            const an_normmat *M = &mats[r / n];                               \
            const an_vjpmat *Vk = &V[r / n];                                  \
            const an_int i = r % n;                                           \
            an_int lo, hi;                                                    \
            an_visible_range(i, n, m, M->causal, M->wleft, M->wright, &lo, &hi); \
            /* dense rows with unit strides are used in place */              \
            const int direct = M->mask == NULL && M->s_m == (an_int)sizeof(T) \
                && Vk->w_m == (an_int)sizeof(T) && Vk->g_m == (an_int)sizeof(T) \
                && Vk->dx_m == (an_int)sizeof(T);                             \
            const an_int nv = M->mask == NULL ? hi - lo : an_row_visible(M, i, idx); \
            const char *srow = M->s + M->s_n * i;                             \
            const char *wrow = Vk->w + Vk->w_n * i;                           \
            const char *grow = Vk->g + Vk->g_n * i;                           \
            char *drow = Vk->dx + Vk->dx_n * i;                               \
            if (direct) {                                                     \
                for (an_int j = 0; j < lo; j++) ((T *)drow)[j] = 0;           \
                for (an_int j = hi; j < m; j++) ((T *)drow)[j] = 0;           \
            } else {                                                          \
                for (an_int j = 0; j < m; j++) AN_AT(T, drow, Vk->dx_m, j) = 0; \
                if (M->mask == NULL)                                          \
                    for (an_int k = 0; k < nv; k++) idx[k] = lo + k;          \
            }                                                                 \
            if (nv == 0) continue;                                            \
            const T *xr = direct ? (const T *)srow + lo : x;                  \
            const T *wr = direct ? (const T *)wrow + lo : w;                  \
            const T *gr = direct ? (const T *)grow + lo : g;                  \
            T *dr = direct ? (T *)drow + lo : dx;                             \
            if (!direct)                                                      \
                for (an_int k = 0; k < nv; k++) {                             \
                    x[k] = AN_AT(T, srow, M->s_m, idx[k]);                    \
                    w[k] = AN_AT(T, wrow, Vk->w_m, idx[k]);                   \
                    g[k] = AN_AT(T, grow, Vk->g_m, idx[k]);                   \
                }                                                             \
            an_rowctx c = { .row = i, .n = n, .m = m, .mat = M, .tau = NAN, .ws = ws }; \
            int rc = v->vjp_##TS(xr, wr, gr, dr, nv, &c,                      \
                                 Vk->no_params ? NULL : rowdp + (size_t)r * (size_t)np); \
            if (!direct)                                                      \
                for (an_int k = 0; k < nv; k++) AN_AT(T, drow, Vk->dx_m, idx[k]) = dx[k]; \
            if (rc) {                                                         \
                _Pragma("omp critical(an_vjp_err)")                           \
                { if (!err || r < err_row) { err = rc; err_row = r; } }       \
            }                                                                 \
        }                                                                     \
    }                                                                         \
    free(tb.mem);                                                             \
    for (an_int k = 0; k < nmat; k++) {                                       \
        const double *rd = rowdp + (size_t)(k * n) * (size_t)np;              \
        for (int q = 0; q < d->nreal; q++) {                                  \
            double s = 0;                                                     \
            for (an_int i = 0; i < n; i++) s += rd[(size_t)i * (size_t)np + q]; \
            V[k].dp[q] = s;                                                   \
        }                                                                     \
        for (int q = 0; q < d->nrowp; q++)                                    \
            if (V[k].drp[q])                                                  \
                for (an_int i = 0; i < n; i++)                                \
                    AN_AT(T, V[k].drp[q], V[k].drp_s[q], i) =                 \
                        (T)rd[(size_t)i * (size_t)np + d->nreal + q];         \
    }                                                                         \
    free(rowdp);                                                              \
    *bad_row = err_row;                                                       \
    return err;                                                               \
}

AN_VJP_DRIVER(float, f)
AN_VJP_DRIVER(double, d)
