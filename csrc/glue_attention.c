/* glue_attention.c -- gufunc loops of attention, attention_stats and
 * attention_weights (one set per normalizer).  Only unpacks arguments into
 * an_attnprob records and calls the kernels of attention.c. */
#include "glue_attention.h"   /* Python.h first */
#include <stdlib.h>
#include <string.h>
#include "attention.h"

#define AN_ATT_DEFINE(nm)                                                      \
    const an_attdata an_att_data_##nm = { "attention_" #nm, &an_norm_##nm, AN_ATT_MODE_OUT }; \
    const an_attdata an_att_stats_data_##nm = { "attention_stats_" #nm, &an_norm_##nm, AN_ATT_MODE_STATS }; \
    const an_attdata an_att_weights_data_##nm = { "attention_weights_" #nm, &an_norm_##nm, AN_ATT_MODE_WEIGHTS };
AN_ALL_NORMALIZERS(AN_ATT_DEFINE)

#define AN_ATT_GLUE_CHUNK 1024

#define AN_ATT_LOOP(T, TS)                                                    \
void an_att_loop_##TS(char **args, npy_intp const *dims,                       \
                      npy_intp const *steps, void *data)                      \
{                                                                             \
    const an_attdata *ad = (const an_attdata *)data;                          \
    const an_normdesc *d = ad->desc;                                          \
    const int wmode = ad->mode == AN_ATT_MODE_WEIGHTS;                        \
    const int smode = ad->mode == AN_ATT_MODE_STATS;                          \
    const int hasv = !wmode;                                                  \
    const int nin = hasv ? 12 : 11;                                           \
    const int nout = wmode ? 1 : (smode ? 1 + AN_NSTATS : 1);                 \
    const npy_intp N = dims[0], n = dims[1], dd = dims[2], m = dims[3];       \
    const npy_intp e = hasv ? dims[4] : 0;                                    \
    const npy_intp nr = dims[hasv ? 5 : 4], ni = dims[hasv ? 6 : 5];          \
    const npy_intp nw = dims[hasv ? 7 : 6];                                   \
    const npy_intp *cs = steps + nin + nout;   /* core strides */             \
    if (N <= 0) return;                                                       \
    if (nr != d->nreal || ni != d->nint || nw != d->nrowp || nr > AN_MAXPARAM \
        || ni > AN_MAXPARAM || nw > 2) {                                      \
        an_raise(AN_ERR_VALUE, ad->name, -1);                                 \
        return;                                                               \
    }                                                                         \
    /* problems are described and run in groups of at most AN_ATT_GLUE_CHUNK \
     * (bounded memory for many tiny problems; results do not depend on it) */ \
    const npy_intp chunk = N < AN_ATT_GLUE_CHUNK ? N : AN_ATT_GLUE_CHUNK;     \
    an_attnprob *P = (an_attnprob *)malloc((size_t)chunk * sizeof(an_attnprob)); \
    if (!P) { an_raise(AN_ERR_NOMEM, ad->name, 0); return; }                  \
    /* operand indices */                                                     \
    const int aq = 0, ak = 1, av = 2, amk = hasv ? 3 : 2, ac = amk + 1;       \
    const int ar = ac + 5, ai = ar + 1, arp = ai + 1, ao = nin;               \
    /* core-stride positions */                                               \
    const npy_intp *cq = cs, *ck = cs + 2, *cv = cs + 4;                      \
    const npy_intp *cmk = cs + (hasv ? 6 : 4);                                \
    const npy_intp *cr = cmk + 2, *ci = cr + 1, *crp = ci + 1, *co = crp + 2; \
    int rc = AN_OK;                                                           \
    an_int bad = -1;                                                          \
    for (npy_intp t0 = 0; t0 < N && rc == AN_OK; t0 += chunk) {               \
    const npy_intp tn = N - t0 < chunk ? N - t0 : chunk;                      \
    memset(P, 0, (size_t)tn * sizeof(an_attnprob));                           \
    for (npy_intp t = t0; t < t0 + tn; t++) {                                 \
        an_attnprob *A = &P[t - t0];                                          \
        an_normmat *M = &A->nm;                                               \
        A->n = n; A->m = m; A->d = dd; A->e = e;                              \
        A->q = args[aq] + t * steps[aq]; A->q_n = cq[0]; A->q_d = cq[1];      \
        A->k = args[ak] + t * steps[ak]; A->k_m = ck[0]; A->k_d = ck[1];      \
        if (hasv) { A->v = args[av] + t * steps[av]; A->v_m = cv[0]; A->v_e = cv[1]; } \
        M->n = n; M->m = m; M->index = t;                                     \
        M->mask = args[amk] + t * steps[amk]; M->mk_n = cmk[0]; M->mk_m = cmk[1]; \
        if (cmk[0] == 0 && cmk[1] == 0 && *(const npy_bool *)M->mask)         \
            M->mask = NULL;   /* a broadcast True: no mask */                 \
        M->causal = an_causal_code(*(const int64_t *)(args[ac] + t * steps[ac]));        \
        M->wleft = *(const int64_t *)(args[ac + 1] + t * steps[ac + 1]);      \
        M->wright = *(const int64_t *)(args[ac + 2] + t * steps[ac + 2]);     \
        M->empty = (int)*(const int64_t *)(args[ac + 3] + t * steps[ac + 3]); \
        A->scale = (double)*(const T *)(args[ac + 4] + t * steps[ac + 4]);    \
        for (npy_intp r = 0; r < nr; r++)                                     \
            M->p[r] = (double)*(const T *)(args[ar] + t * steps[ar] + r * cr[0]); \
        for (npy_intp r = 0; r < ni; r++)                                     \
            M->ip[r] = *(const int64_t *)(args[ai] + t * steps[ai] + r * ci[0]); \
        for (npy_intp r = 0; r < nw; r++) {                                   \
            M->rp[r] = args[arp] + t * steps[arp] + r * crp[1];               \
            M->rp_s[r] = crp[0];                                              \
        }                                                                     \
        if (wmode) {                                                          \
            A->w = args[ao] + t * steps[ao]; A->w_n = co[0]; A->w_m = co[1];  \
        } else {                                                              \
            A->o = args[ao] + t * steps[ao]; A->o_n = co[0]; A->o_e = co[1];  \
            if (smode)                                                        \
                for (int s = 0; s < AN_NSTATS; s++) {                         \
                    A->st[s] = args[ao + 1 + s] + t * steps[ao + 1 + s];      \
                    A->st_s[s] = co[2 + s];                                   \
                }                                                             \
        }                                                                     \
    }                                                                         \
    rc = an_attention_##TS(d, P, tn, &bad);                                   \
    }                                                                         \
    free(P);                                                                  \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, ad->name, bad);                                      \
}
AN_ATT_LOOP(float, f)
AN_ATT_LOOP(double, d)
