/* glue_vjp.c -- gufunc loops of the normalizer VJPs (one per normalizer).
 * Only unpacks arguments into an_normmat / an_vjpmat records and calls
 * an_normalize_vjp_* (vjp_driver.c). */
#include "glue_vjp.h"   /* Python.h first */
#include <stdlib.h>
#include <string.h>
#include "vjp.h"

#define AN_VJP_DEFINE(nm) \
    const an_vjpdata an_vjp_data_##nm = { "normalizer_vjp_" #nm, &an_norm_##nm };
AN_ALL_NORMALIZERS(AN_VJP_DEFINE)

#define AN_VJP_LOOP(T, TS)                                                    \
void an_vjp_loop_##TS(char **args, npy_intp const *dims,                       \
                      npy_intp const *steps, void *data)                      \
{                                                                             \
    const an_vjpdata *vd = (const an_vjpdata *)data;                          \
    const an_normdesc *d = vd->desc;                                          \
    const npy_intp N = dims[0], n = dims[1], m = dims[2];                     \
    const npy_intp nr = dims[3], ni = dims[4], nw = dims[5];                  \
    const npy_intp *cs = steps + 13;   /* core strides */                     \
    if (N <= 0) return;                                                       \
    if (nr != d->nreal || ni != d->nint || nw != d->nrowp || nr > AN_MAXPARAM \
        || ni > AN_MAXPARAM || nw > 2) {                                      \
        an_raise(AN_ERR_VALUE, vd->name, -1);                                 \
        return;                                                               \
    }                                                                         \
    /* core strides: s, w, g, mask (2 each), reals, ints (1), rowp (2),     \
     * dx (2), dreals (1), drowp (2) */                                       \
    const npy_intp *cS = cs, *cW = cs + 2, *cG = cs + 4, *cM = cs + 6;       \
    const npy_intp *cR = cs + 8, *cI = cs + 9, *cP = cs + 10;                \
    const npy_intp *cD = cs + 12, *cDR = cs + 14, *cDP = cs + 15;            \
    const npy_intp chunk = N < 1024 ? N : 1024;                               \
    an_normmat *mats = (an_normmat *)malloc(sizeof(an_normmat) * (size_t)chunk); \
    an_vjpmat *V = (an_vjpmat *)malloc(sizeof(an_vjpmat) * (size_t)chunk);   \
    if (!mats || !V) { free(mats); free(V); an_raise(AN_ERR_NOMEM, vd->name, 0); return; } \
    for (npy_intp k0 = 0; k0 < N; k0 += chunk) {                              \
        const npy_intp kn = N - k0 < chunk ? N - k0 : chunk;                  \
        for (npy_intp k = k0; k < k0 + kn; k++) {                             \
            an_normmat *M = &mats[k - k0];                                    \
            an_vjpmat *A = &V[k - k0];                                        \
            memset(M, 0, sizeof(*M)); memset(A, 0, sizeof(*A));               \
            M->n = n; M->m = m; M->index = k;                                 \
            M->s = args[0] + k * steps[0]; M->s_n = cS[0]; M->s_m = cS[1];    \
            A->w = args[1] + k * steps[1]; A->w_n = cW[0]; A->w_m = cW[1];    \
            A->g = args[2] + k * steps[2]; A->g_n = cG[0]; A->g_m = cG[1];    \
            M->mask = args[3] + k * steps[3]; M->mk_n = cM[0]; M->mk_m = cM[1]; \
            if (cM[0] == 0 && cM[1] == 0 && *(const npy_bool *)M->mask)       \
                M->mask = NULL;   /* a broadcast True: no mask */             \
            M->causal = *(const int64_t *)(args[4] + k * steps[4]) != 0;      \
            M->wleft = *(const int64_t *)(args[5] + k * steps[5]);            \
            M->wright = *(const int64_t *)(args[6] + k * steps[6]);           \
            for (npy_intp r = 0; r < nr; r++)                                 \
                M->p[r] = (double)*(const T *)(args[7] + k * steps[7] + r * cR[0]); \
            for (npy_intp r = 0; r < ni; r++)                                 \
                M->ip[r] = *(const int64_t *)(args[8] + k * steps[8] + r * cI[0]); \
            for (npy_intp r = 0; r < nw; r++) {                               \
                M->rp[r] = args[9] + k * steps[9] + r * cP[1]; M->rp_s[r] = cP[0]; \
                A->drp[r] = args[12] + k * steps[12] + r * cDP[1]; A->drp_s[r] = cDP[0]; \
            }                                                                 \
            A->dx = args[10] + k * steps[10]; A->dx_n = cD[0]; A->dx_m = cD[1]; \
        }                                                                     \
        an_int bad = -1;                                                      \
        int rc = an_normalize_vjp_##TS(d, mats, V, kn, &bad);                 \
        if (rc) {                                                             \
            an_raise(rc, vd->name, bad >= 0 ? bad % (n > 0 ? n : 1) : bad);   \
            break;                                                            \
        }                                                                     \
        for (npy_intp k = k0; k < k0 + kn; k++)                               \
            for (npy_intp r = 0; r < nr; r++)                                 \
                *(T *)(args[11] + k * steps[11] + r * cDR[0]) = (T)V[k - k0].dp[r]; \
    }                                                                         \
    free(mats); free(V);                                                      \
    AN_CLEAR_FPE();                                                           \
}
AN_VJP_LOOP(float, f)
AN_VJP_LOOP(double, d)
