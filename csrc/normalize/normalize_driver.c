/* normalize_driver.c -- gather / row kernel / scatter over every row. */
#include <stdlib.h>
#include <string.h>
#include "normalize.h"

an_int an_row_visible(const an_normmat *M, an_int i, an_int *idx)
{
    an_int lo, hi, nv = 0;
    an_visible_range(i, M->n, M->m, M->causal, M->wleft, M->wright, &lo, &hi);
    if (M->mask) {
        const char *mk = M->mask + M->mk_n * i;
        for (an_int j = lo; j < hi; j++)
            if (AN_AT(uint8_t, mk, M->mk_m, j)) idx[nv++] = j;
    } else {
        for (an_int j = lo; j < hi; j++) idx[nv++] = j;
    }
    return nv;
}

#define AN_DRIVER(T, TS)                                                      \
int an_normalize_##TS(const an_normdesc *d, const an_normmat *mats,           \
                      an_int nmat, an_int *bad_row)                           \
{                                                                             \
    if (nmat <= 0) return AN_OK;                                              \
    if (d->mat_##TS) {                                                        \
        /* small matrices: one per thread (the kernel's own parallel region  \
         * then runs on one thread); large ones parallelise inside */         \
        int mthr = an_num_threads();                                          \
        if (nmat < 2 || (double)mats[0].n * (double)mats[0].m >= 32768.0)     \
            mthr = 1;                                                         \
        if (mthr > nmat) mthr = (int)nmat;                                    \
        int merr = AN_OK; an_int merr_k = -1;                                 \
        _Pragma("omp parallel for num_threads(mthr) schedule(dynamic)")       \
        for (an_int k = 0; k < nmat; k++) {                                   \
            int rc = d->mat_##TS(&mats[k]);                                   \
            if (rc) {                                                         \
                _Pragma("omp critical(an_norm_err)")                          \
                { if (!merr || k < merr_k) { merr = rc; merr_k = k; } }       \
            }                                                                 \
        }                                                                     \
        *bad_row = -1;                                                        \
        return merr;                                                          \
    }                                                                         \
    const an_int n = mats[0].n, m = mats[0].m;                                \
    const an_int nrows = nmat * n;                                            \
    if (nrows == 0) return AN_OK;                                             \
    int nthr = an_num_threads();                                              \
    if ((double)nrows * (double)(m + 1) < 32768.0) nthr = 1;                  \
    if (nthr > nrows) nthr = (int)nrows;                                      \
    /* per thread: the row scratch (workspace, idx), then x (m of T) */       \
    an_thread_blocks tb;                                                      \
    if (!an_thread_blocks_alloc(&tb, an_row_scratch_bytes(d, m)               \
                                + sizeof(T) * (size_t)(m + 1), nthr))         \
        return AN_ERR_NOMEM;                                                  \
    int err = AN_OK; an_int err_row = -1;                                     \
    _Pragma("omp parallel num_threads(nthr)")                                 \
    {                                                                         \
        double *ws;                                                           \
        an_int *idx;                                                          \
        T *x = (T *)an_row_scratch(d, m, an_thread_block(&tb), &ws, &idx);    \
        _Pragma("omp for schedule(static)")                                   \
        for (an_int r = 0; r < nrows; r++) {                                  \
            const an_normmat *M = &mats[r / n];                               \
            an_int i = r % n;                                                 \
            an_int lo, hi, nv;                                                \
            an_visible_range(i, n, m, M->causal, M->wleft, M->wright, &lo, &hi); \
            const int dense = M->mask == NULL;  /* visible keys = [lo, hi) */ \
            nv = dense ? hi - lo : an_row_visible(M, i, idx);                 \
            const char *srow = M->s + M->s_n * i;                             \
            char *orow = M->out + M->o_n * i;                                 \
            an_rowctx c = { .row = i, .n = n, .m = m, .mat = M, .tau = NAN, .ws = ws, \
                            .key0 = lo, .keys = dense ? NULL : idx };   \
            int rc = AN_OK;                                                   \
            if (nv == 0) {                                                    \
                T fill = M->empty == AN_EMPTY_NAN ? (T)NAN : (T)0;            \
                for (an_int j = 0; j < m; j++) AN_AT(T, orow, M->o_m, j) = fill; \
                if (M->empty == AN_EMPTY_RAISE) rc = AN_ERR_EMPTY_ROW;        \
            } else {                                                          \
                /* dense rows with a contiguous output row work in place there */ \
                const int inplace = dense && M->o_m == (an_int)sizeof(T);     \
                T *xr = inplace ? (T *)(orow + lo * (an_int)sizeof(T)) : x;   \
                if (dense && M->s_m == (an_int)sizeof(T))                     \
                    memmove(xr, srow + lo * (an_int)sizeof(T), (size_t)nv * sizeof(T)); \
                else if (dense)                                               \
                    for (an_int k = 0; k < nv; k++) xr[k] = AN_AT(T, srow, M->s_m, lo + k); \
                else                                                          \
                    for (an_int k = 0; k < nv; k++) xr[k] = AN_AT(T, srow, M->s_m, idx[k]); \
                c.support = -1;                                               \
                rc = d->row_##TS(xr, nv, &c);                                 \
                if (rc == AN_ROW_EMPTY) {                                     \
                    T fill = M->empty == AN_EMPTY_NAN ? (T)NAN : (T)0;        \
                    for (an_int k = 0; k < nv; k++) xr[k] = fill;             \
                    c.tau = NAN; c.support = 0;                               \
                    rc = M->empty == AN_EMPTY_RAISE ? AN_ERR_EMPTY_ROW : AN_OK; \
                }                                                             \
                if (dense) {                                                  \
                    for (an_int j = 0; j < lo; j++) AN_AT(T, orow, M->o_m, j) = 0; \
                    if (!inplace)                                             \
                        for (an_int k = 0; k < nv; k++) AN_AT(T, orow, M->o_m, lo + k) = xr[k]; \
                    for (an_int j = hi; j < m; j++) AN_AT(T, orow, M->o_m, j) = 0; \
                } else {                                                      \
                    for (an_int j = 0; j < m; j++) AN_AT(T, orow, M->o_m, j) = 0; \
                    for (an_int k = 0; k < nv; k++)                           \
                        AN_AT(T, orow, M->o_m, idx[k]) = xr[k];               \
                }                                                             \
                if (c.support < 0 && M->sup) {                                \
                    an_int cnt = 0;                                           \
                    for (an_int k = 0; k < nv; k++) cnt += (xr[k] != 0);      \
                    c.support = cnt;                                          \
                }                                                             \
            }                                                                 \
            if (M->tau) AN_AT(T, M->tau, M->tau_s, i) = (T)c.tau;             \
            if (M->sup) AN_AT(int64_t, M->sup, M->sup_s, i) = c.support;      \
            if (rc) {                                                         \
                _Pragma("omp critical(an_norm_err)")                          \
                { if (!err || r < err_row) { err = rc; err_row = r; } }       \
            }                                                                 \
        }                                                                     \
    }                                                                         \
    free(tb.mem);                                                             \
    *bad_row = err_row;                                                       \
    return err;                                                               \
}

AN_DRIVER(float, f)
AN_DRIVER(double, d)
