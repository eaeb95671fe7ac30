/* glue_vjp.c -- gufunc loops of the normalizer VJPs (one per normalizer).
 * Only unpacks arguments into an_normmat / an_vjpmat records and calls
 * an_normalize_vjp_* (vjp_driver.c). */
#include "glue_vjp.h"   /* Python.h first */
#include <stdlib.h>
#include <string.h>
#include "vjp.h"
#include "linear_vjp.h"

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
    const npy_intp *cs = steps + 14;   /* core strides */                     \
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
                A->drp[r] = args[13] + k * steps[13] + r * cDP[1]; A->drp_s[r] = cDP[0]; \
            }                                                                 \
            A->no_params = *(const int64_t *)(args[10] + k * steps[10]) == 0; \
            A->dx = args[11] + k * steps[11]; A->dx_n = cD[0]; A->dx_m = cD[1]; \
        }                                                                     \
        an_int bad = -1;                                                      \
        int rc = an_normalize_vjp_##TS(d, mats, V, kn, &bad);                 \
        if (rc) {                                                             \
            an_raise(rc, vd->name, bad >= 0 ? bad % (n > 0 ? n : 1) : bad);   \
            break;                                                            \
        }                                                                     \
        for (npy_intp k = k0; k < k0 + kn; k++)                               \
            for (npy_intp r = 0; r < nr; r++)                                 \
                *(T *)(args[12] + k * steps[12] + r * cDR[0]) = (T)V[k - k0].dp[r]; \
    }                                                                         \
    free(mats); free(V);                                                      \
    AN_CLEAR_FPE();                                                           \
}
AN_VJP_LOOP(float, f)
AN_VJP_LOOP(double, d)

/* ---- linear_attention_vjp: (n,d),(m,d),(m,e),(n,e),(),(),(),() ->
 *      (n,d),(m,d),(m,e),()
 *   q, k, v, grad, feature_map, causal, eps, normalize -> dq, dk, dv, deps */
#define AN_LINVJP_LOOP(T, TS)                                                 \
void an_linear_vjp_loop_##TS(char **args, npy_intp const *dims,               \
                             npy_intp const *steps, void *data)               \
{                                                                             \
    (void)data;                                                               \
    const npy_intp N = dims[0];                                               \
    if (N <= 0) return;                                                       \
    const npy_intp *cs = steps + 12;                                          \
    an_linvjp P;                                                              \
    memset(&P, 0, sizeof(P));                                                 \
    P.N = N; P.n = dims[1]; P.d = dims[2]; P.m = dims[3]; P.e = dims[4];      \
    P.q_n = cs[0]; P.q_d = cs[1]; P.k_m = cs[2]; P.k_d = cs[3];               \
    P.v_m = cs[4]; P.v_e = cs[5]; P.g_n = cs[6]; P.g_e = cs[7];               \
    P.dq_n = cs[8]; P.dq_d = cs[9]; P.dk_m = cs[10]; P.dk_d = cs[11];         \
    P.dv_m = cs[12]; P.dv_e = cs[13];                                         \
    an_linvjpmat *mats = (an_linvjpmat *)calloc((size_t)N, sizeof(an_linvjpmat)); \
    if (!mats) { an_raise(AN_ERR_NOMEM, "linear_attention_vjp", 0); return; } \
    for (npy_intp k = 0; k < N; k++) {                                        \
        an_linvjpmat *M = &mats[k];                                           \
        char *a[12];                                                          \
        for (int r = 0; r < 12; r++) a[r] = args[r] + k * steps[r];           \
        M->q = a[0]; M->k = a[1]; M->v = a[2]; M->g = a[3];                   \
        M->fmap = (int)*(const int64_t *)a[4];                                \
        M->causal = *(const int64_t *)a[5] != 0;                              \
        M->eps = (double)*(const T *)a[6];                                    \
        M->normalize = *(const int64_t *)a[7] != 0;                           \
        M->dq = a[8]; M->dk = a[9]; M->dv = a[10]; M->deps = a[11];           \
    }                                                                         \
    P.mats = mats;                                                            \
    int rc = an_linear_attention_vjp_##TS(&P);                                \
    free(mats);                                                               \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, "linear_attention_vjp", 0);                          \
}
AN_LINVJP_LOOP(float, f)
AN_LINVJP_LOOP(double, d)

/* ---- log_attention_vjp: (n,d),(m,d),(m,e),(n,e),(d,w),(d,w),(),(),() ->
 *      (n,d),(m,d),(m,e),(d,w)
 *   q, k, v, grad, state, grad_state, causal, has_state, has_grad_state
 *   -> dq, dk, dv, dstate   (w = 4 e + 2) */
#define AN_LOGVJP_LOOP(T, TS)                                                 \
void an_log_vjp_loop_##TS(char **args, npy_intp const *dims,                  \
                          npy_intp const *steps, void *data)                  \
{                                                                             \
    (void)data;                                                               \
    const npy_intp N = dims[0];                                               \
    if (N <= 0) return;                                                       \
    const npy_intp *cs = steps + 13;                                          \
    an_linvjp P;                                                              \
    memset(&P, 0, sizeof(P));                                                 \
    P.N = N; P.n = dims[1]; P.d = dims[2]; P.m = dims[3]; P.e = dims[4];      \
    if (dims[5] != 4 * dims[4] + 2) { an_raise(AN_ERR_VALUE, "log_attention_vjp", -1); return; } \
    P.q_n = cs[0]; P.q_d = cs[1]; P.k_m = cs[2]; P.k_d = cs[3];               \
    P.v_m = cs[4]; P.v_e = cs[5]; P.g_n = cs[6]; P.g_e = cs[7];               \
    P.st_d = cs[8]; P.st_w = cs[9]; P.gs_d = cs[10]; P.gs_w = cs[11];         \
    P.dq_n = cs[12]; P.dq_d = cs[13]; P.dk_m = cs[14]; P.dk_d = cs[15];       \
    P.dv_m = cs[16]; P.dv_e = cs[17]; P.dst_d = cs[18]; P.dst_w = cs[19];     \
    an_linvjpmat *mats = (an_linvjpmat *)calloc((size_t)N, sizeof(an_linvjpmat)); \
    if (!mats) { an_raise(AN_ERR_NOMEM, "log_attention_vjp", 0); return; }    \
    for (npy_intp k = 0; k < N; k++) {                                        \
        an_linvjpmat *M = &mats[k];                                           \
        char *a[13];                                                          \
        for (int r = 0; r < 13; r++) a[r] = args[r] + k * steps[r];           \
        M->q = a[0]; M->k = a[1]; M->v = a[2]; M->g = a[3];                   \
        M->st = a[4]; M->gst = a[5];                                          \
        M->causal = *(const int64_t *)a[6] != 0;                              \
        M->has_state = *(const int64_t *)a[7] != 0;                           \
        M->has_gstate = *(const int64_t *)a[8] != 0;                          \
        M->dq = a[9]; M->dk = a[10]; M->dv = a[11]; M->dst = a[12];           \
    }                                                                         \
    P.mats = mats;                                                            \
    int rc = an_log_attention_vjp_##TS(&P);                                   \
    free(mats);                                                               \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, "log_attention_vjp", 0);                             \
}
AN_LOGVJP_LOOP(float, f)
AN_LOGVJP_LOOP(double, d)

/* ---- zeros_attention_vjp: (n,d),(m,d),(m,e),(m),(),(),(),(n,e) ->
 *      (n,d),(m,d),(m,e),(m),(),()
 *   q, k, v, s, gate_linear, gate_softmax, causal, grad
 *   -> dq, dk, dv, ds, d gate_linear, d gate_softmax */
#define AN_ZEROSVJP_LOOP(T, TS)                                               \
void an_zeros_vjp_loop_##TS(char **args, npy_intp const *dims,                \
                            npy_intp const *steps, void *data)                \
{                                                                             \
    (void)data;                                                               \
    const npy_intp N = dims[0];                                               \
    if (N <= 0) return;                                                       \
    const npy_intp *cs = steps + 14;                                          \
    an_linvjp P;                                                              \
    memset(&P, 0, sizeof(P));                                                 \
    P.N = N; P.n = dims[1]; P.d = dims[2]; P.m = dims[3]; P.e = dims[4];      \
    P.q_n = cs[0]; P.q_d = cs[1]; P.k_m = cs[2]; P.k_d = cs[3];               \
    P.v_m = cs[4]; P.v_e = cs[5]; P.s_m = cs[6]; P.g_n = cs[7]; P.g_e = cs[8]; \
    P.dq_n = cs[9]; P.dq_d = cs[10]; P.dk_m = cs[11]; P.dk_d = cs[12];        \
    P.dv_m = cs[13]; P.dv_e = cs[14]; P.ds_m = cs[15];                        \
    an_linvjpmat *mats = (an_linvjpmat *)calloc((size_t)N, sizeof(an_linvjpmat)); \
    if (!mats) { an_raise(AN_ERR_NOMEM, "zeros_attention_vjp", 0); return; }  \
    for (npy_intp k = 0; k < N; k++) {                                        \
        an_linvjpmat *M = &mats[k];                                           \
        char *a[14];                                                          \
        for (int r = 0; r < 14; r++) a[r] = args[r] + k * steps[r];           \
        M->q = a[0]; M->k = a[1]; M->v = a[2]; M->s = a[3];                   \
        M->g_lin = (double)*(const T *)a[4]; M->g_soft = (double)*(const T *)a[5]; \
        M->causal = *(const int64_t *)a[6] != 0; M->g = a[7];                 \
        M->dq = a[8]; M->dk = a[9]; M->dv = a[10]; M->ds = a[11];             \
        M->dg1 = a[12]; M->dgh = a[13];                                       \
    }                                                                         \
    P.mats = mats;                                                            \
    int rc = an_zeros_attention_vjp_##TS(&P);                                 \
    free(mats);                                                               \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, "zeros_attention_vjp", 0);                           \
}
AN_ZEROSVJP_LOOP(float, f)
AN_ZEROSVJP_LOOP(double, d)

/* ---- soft_attention_vjp: (n,d),(n,e),(l,d),(k),(),(n,e) -> (n,d),(n,e),(l,d)
 *   q, v, landmarks, iterations (a dummy giving K), mean_landmarks, grad
 *   -> dq, dv, d landmarks (0 with mean landmarks: their gradient is in dq) */
#define AN_SOFTVJP_LOOP(T, TS)                                                \
void an_soft_vjp_loop_##TS(char **args, npy_intp const *dims,                 \
                           npy_intp const *steps, void *data)                 \
{                                                                             \
    (void)data;                                                               \
    const npy_intp N = dims[0];                                               \
    if (N <= 0) return;                                                       \
    const npy_intp *cs = steps + 9;                                           \
    an_linvjp P;                                                              \
    memset(&P, 0, sizeof(P));                                                 \
    P.N = N; P.n = dims[1]; P.d = dims[2]; P.e = dims[3]; P.l = dims[4]; P.K = dims[5]; \
    P.q_n = cs[0]; P.q_d = cs[1]; P.v_m = cs[2]; P.v_e = cs[3];               \
    P.lm_l = cs[4]; P.lm_d = cs[5]; P.g_n = cs[7]; P.g_e = cs[8];             \
    P.dq_n = cs[9]; P.dq_d = cs[10]; P.dv_m = cs[11]; P.dv_e = cs[12];        \
    P.dlm_l = cs[13]; P.dlm_d = cs[14];                                       \
    an_linvjpmat *mats = (an_linvjpmat *)calloc((size_t)N, sizeof(an_linvjpmat)); \
    if (!mats) { an_raise(AN_ERR_NOMEM, "soft_attention_vjp", 0); return; }   \
    for (npy_intp k = 0; k < N; k++) {                                        \
        an_linvjpmat *M = &mats[k];                                           \
        char *a[9];                                                           \
        for (int r = 0; r < 9; r++) a[r] = args[r] + k * steps[r];            \
        M->q = a[0]; M->v = a[1]; M->lm = a[2];                               \
        M->mean_landmarks = *(const int64_t *)a[4] != 0; M->g = a[5];         \
        M->dq = a[6]; M->dv = a[7]; M->dlm = a[8];                            \
        if (M->mean_landmarks)                                                \
            for (npy_intp r = 0; r < P.l; r++)                                \
                for (npy_intp c = 0; c < P.d; c++)                            \
                    AN_AT(T, M->dlm + r * P.dlm_l, P.dlm_d, c) = 0;           \
    }                                                                         \
    P.mats = mats;                                                            \
    int rc = an_soft_attention_vjp_##TS(&P);                                  \
    free(mats);                                                               \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, "soft_attention_vjp", 0);                            \
}
AN_SOFTVJP_LOOP(float, f)
AN_SOFTVJP_LOOP(double, d)
