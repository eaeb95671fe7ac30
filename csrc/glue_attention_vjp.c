/* glue_attention_vjp.c -- gufunc loops of the fused attention backward.
 * Only unpacks arguments into an_attnvjp records and calls attention_vjp.c. */
#include "glue_attention_vjp.h"   /* Python.h first */
#include <stdlib.h>
#include "attention_vjp.h"

const an_attvjpdata an_attvjp_data_softmax = { "attention_vjp_softmax", &an_norm_softmax, AN_AVJP_SOFTMAX };
const an_attvjpdata an_attvjp_data_softmax_sink = { "attention_vjp_softmax_sink", &an_norm_softmax_sink, AN_AVJP_SINK };
const an_attvjpdata an_attvjp_data_ssmax = { "attention_vjp_ssmax", &an_norm_ssmax, AN_AVJP_SSMAX };
const an_attvjpdata an_attvjp_data_affine_softmax = { "attention_vjp_affine_softmax", &an_norm_affine_softmax, AN_AVJP_AFFINE };
const an_attvjpdata an_attvjp_data_stochastic_softmax = { "attention_vjp_stochastic_softmax", &an_norm_stochastic_softmax, AN_AVJP_STRAIGHT };
#define AN_AVJP_GENERIC_DATA(nm) \
    const an_attvjpdata an_attvjp_data_##nm = { "attention_vjp_" #nm, &an_norm_##nm, AN_AVJP_GENERIC };
AN_AVJP_GENERIC_DATA(sigmoid)
AN_AVJP_GENERIC_DATA(relu)
AN_AVJP_GENERIC_DATA(polynomial)
AN_AVJP_GENERIC_DATA(softpick)
AN_AVJP_GENERIC_DATA(nap)
AN_AVJP_GENERIC_DATA(sparsemax)
AN_AVJP_GENERIC_DATA(entmax)
const an_attvjpdata an_attvjp_data_sinkhorn = { "attention_vjp_sinkhorn", &an_norm_sinkhorn, AN_AVJP_SINKHORN };

#define AN_LSE_DEFINE(nm) \
    const an_attdata an_att_lse_data_##nm = { "attention_lse_" #nm, &an_norm_##nm, AN_ATT_MODE_LSE };
AN_LSE_NORMALIZERS(AN_LSE_DEFINE)

#define AN_AVJP_LOOP(T, TS)                                                    \
void an_attvjp_loop_##TS(char **args, npy_intp const *dims,                   \
                         npy_intp const *steps, void *data)                  \
{                                                                             \
    const an_attvjpdata *vd = (const an_attvjpdata *)data;                   \
    const an_normdesc *d = vd->desc;                                          \
    const npy_intp N = dims[0], n = dims[1], dd = dims[2], m = dims[3];       \
    const npy_intp e = dims[4], nr = dims[5], ni = dims[6], nw = dims[7];     \
    enum { NIN = 15, NOUT = 5 };                                              \
    const npy_intp *cs = steps + NIN + NOUT;   /* core strides */             \
    if (N <= 0) return;                                                       \
    const npy_intp want_r = vd->kind == AN_AVJP_STRAIGHT ? 0 : d->nreal;       \
    const npy_intp want_i = vd->kind >= AN_AVJP_GENERIC ? d->nint : ni;       \
    if (nr != want_r || ni != want_i || nw != d->nrowp || nr > AN_MAXPARAM    \
        || ni > AN_MAXPARAM || nw > 2) {                                      \
        an_raise(AN_ERR_VALUE, vd->name, -1);                                 \
        return;                                                               \
    }                                                                         \
    an_attnvjp *P = (an_attnvjp *)calloc((size_t)N, sizeof(an_attnvjp));     \
    if (!P) { an_raise(AN_ERR_NOMEM, vd->name, 0); return; }                  \
    /* core strides: q k v go pv (2 each), L (1), mask (2), reals (1),        \
     * ints (1), rowparams (2); outputs dq dk dv (2 each), dreals (1),        \
     * drow (2) */                                                            \
    const npy_intp *cq = cs, *ck = cs + 2, *cv = cs + 4, *cg = cs + 6;        \
    const npy_intp *cp = cs + 8, *cL = cs + 10, *cmk = cs + 11, *cr = cs + 13; \
    const npy_intp *ci = cs + 14, *crp = cs + 15, *cdq = cs + 17;             \
    const npy_intp *cdk = cs + 19, *cdv = cs + 21, *cdr = cs + 23, *cdrp = cs + 24; \
    for (npy_intp t = 0; t < N; t++) {                                        \
        an_attnvjp *A = &P[t];                                                \
        an_normmat *M = &A->nm;                                               \
        char *a[NIN + NOUT];                                                  \
        for (int o = 0; o < NIN + NOUT; o++) a[o] = args[o] + t * steps[o];   \
        A->n = n; A->m = m; A->d = dd; A->e = e;                              \
        A->q = a[0]; A->q_n = cq[0]; A->q_d = cq[1];                          \
        A->k = a[1]; A->k_m = ck[0]; A->k_d = ck[1];                          \
        A->v = a[2]; A->v_m = cv[0]; A->v_e = cv[1];                          \
        A->go = a[3]; A->go_n = cg[0]; A->go_e = cg[1];                       \
        A->pv = a[4]; A->pv_n = cp[0]; A->pv_e = cp[1];                       \
        A->L = a[5]; A->L_s = cL[0];                                          \
        M->n = n; M->m = m; M->index = t;                                     \
        M->mask = a[6]; M->mk_n = cmk[0]; M->mk_m = cmk[1];                   \
        if (cmk[0] == 0 && cmk[1] == 0 && *(const npy_bool *)M->mask)         \
            M->mask = NULL;   /* a broadcast True: no mask */                 \
        M->causal = *(const int64_t *)a[7] != 0;                              \
        M->wleft = *(const int64_t *)a[8];                                    \
        M->wright = *(const int64_t *)a[9];                                   \
        A->scale = (double)*(const T *)a[10];                                 \
        A->want_params = *(const int64_t *)a[11] != 0;                        \
        for (npy_intp r = 0; r < nr; r++)                                     \
            M->p[r] = (double)*(const T *)(a[12] + r * cr[0]);                \
        for (npy_intp r = 0; r < ni; r++)                                     \
            M->ip[r] = *(const int64_t *)(a[13] + r * ci[0]);                 \
        for (npy_intp r = 0; r < nw; r++) {                                   \
            M->rp[r] = a[14] + r * crp[1]; M->rp_s[r] = crp[0];               \
        }                                                                     \
        A->dq = a[15]; A->dq_n = cdq[0]; A->dq_d = cdq[1];                    \
        A->dk = a[16]; A->dk_m = cdk[0]; A->dk_d = cdk[1];                    \
        A->dv = a[17]; A->dv_m = cdv[0]; A->dv_e = cdv[1];                    \
        A->dp = a[18]; A->dp_s = cdr[0];                                      \
        A->drp = a[19]; A->drp_n = cdrp[0]; A->drp_w = cdrp[1];               \
    }                                                                         \
    an_int bad = -1;                                                          \
    int rc = an_attention_vjp_##TS(vd->kind, d, P, N, &bad);                  \
    free(P);                                                                  \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, vd->name, bad);                                      \
}
AN_AVJP_LOOP(float, f)
AN_AVJP_LOOP(double, d)
