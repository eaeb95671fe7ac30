/*
 * linear_vjp.c -- VJP of kernel-form linear attention (linear.h) for the
 * feature maps elu1, relu and identity, with or without the denominator
 * (without it, and k = v = h, it is cheap linear attention's VJP).
 *
 *   o_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps),
 *   S_i = sum_{j < t_i} phi(k_j) v_j^T,  z_i = sum_{j < t_i} phi(k_j)
 * (t_i the keys query i sees).  With G the upstream gradient:
 *   dnum_i = G_i / den_i,  dden_i = -<G_i, o_i> / den_i   (dnum = G, dden = 0
 *                                                          without denominator)
 *   dq_i  = phi'(q_i) * (S_i dnum_i + z_i dden_i)
 *   dS_j  = sum_{i: t_i > j} phi(q_i) dnum_i^T,  dz_j = sum_{i: t_i > j} dden_i phi(q_i)
 *   dk_j  = phi'(k_j) * (dS_j v_j + dz_j),  dv_j = dS_j^T phi(k_j),  deps = sum_i dden_i
 * Pass 1 scans the keys forwards and emits dq (S, z: O(d e)); pass 2 scans
 * them backwards with dS, dz (O(d e)), adding each query once the keys it sees
 * are behind.  Accumulation in double; one matrix per thread, in a fixed
 * order, so the result is the same for every thread count.
 */
#include <stdlib.h>
#include <string.h>
#include "linear.h"
#include "linear_vjp.h"

/* phi(x) and phi'(x) */
static inline double lv_phi(double x, int fmap, double *dphi)
{
    switch (fmap) {
    case AN_FMAP_ELU1: if (x > 0) { *dphi = 1.0; return x + 1.0; }
                       else { double e = exp(x); *dphi = e; return e; }
    case AN_FMAP_RELU: *dphi = x > 0 ? 1.0 : 0.0; return x > 0 ? x : (x != x ? x : 0.0);
    default: *dphi = 1.0; return x;
    }
}

static inline an_int lv_seen(an_int i, an_int n, an_int m, int causal)
{
    an_int lo, hi;
    an_visible_range(i, n, m, causal, -1, -1, &lo, &hi);
    return hi;
}

#define AN_LINEAR_VJP(T, TS)                                                  \
static int linear_vjp_one_##TS(const an_linvjp *P, const an_linvjpmat *M)     \
{                                                                             \
    const an_int n = P->n, m = P->m, d = P->d, e = P->e;                      \
    const int fm = M->fmap, norm = M->normalize;                              \
    double *S = (double *)calloc((size_t)(d * e + d), sizeof(double));        \
    double *Qf = (double *)malloc(sizeof(double) * (size_t)(n * d + n * e + n + d + e + 1)); \
    if (!S || !Qf) { free(S); free(Qf); return AN_ERR_NOMEM; }                \
    double *z = S + d * e;                                                    \
    double *dnum = Qf + n * d, *dden = dnum + n * e, *kf = dden + n;          \
    double *vj = kf + d;                                                      \
    double deps = 0;                                                          \
    /* pass 1: keys forwards, dq */                                           \
    an_int j = 0;                                                             \
    for (an_int i = 0; i < n; i++) {                                          \
        const an_int t = lv_seen(i, n, m, M->causal);                         \
        for (; j < t; j++) {                                                  \
            const char *kr = M->k + j * P->k_m, *vr = M->v + j * P->v_m;      \
            for (an_int x = 0; x < e; x++) vj[x] = (double)AN_AT(T, vr, P->v_e, x); \
            for (an_int c = 0; c < d; c++) {                                  \
                double dp, f = lv_phi((double)AN_AT(T, kr, P->k_d, c), fm, &dp); \
                double *Sc = S + c * e;                                       \
                for (an_int x = 0; x < e; x++) Sc[x] += f * vj[x];            \
                z[c] += f;                                                    \
            }                                                                 \
        }                                                                     \
        const char *qr = M->q + i * P->q_n, *gr = M->g + i * P->g_n;          \
        char *dqr = M->dq + i * P->dq_n;                                      \
        double *qf = Qf + i * d, *dn = dnum + i * e;                          \
        if (t == 0) {                                                         \
            for (an_int c = 0; c < d; c++) { qf[c] = 0; AN_AT(T, dqr, P->dq_d, c) = 0; } \
            for (an_int x = 0; x < e; x++) dn[x] = 0;                         \
            dden[i] = 0;                                                      \
            continue;                                                         \
        }                                                                     \
        double den = M->eps, go = 0;                                          \
        for (an_int c = 0; c < d; c++) {                                      \
            double dp;                                                        \
            qf[c] = lv_phi((double)AN_AT(T, qr, P->q_d, c), fm, &dp);         \
            den += qf[c] * z[c];                                              \
        }                                                                     \
        if (!norm) den = 1.0;                                                 \
        for (an_int x = 0; x < e; x++) {                                      \
            double num = 0;                                                   \
            for (an_int c = 0; c < d; c++) num += qf[c] * S[c * e + x];       \
            const double g = (double)AN_AT(T, gr, P->g_e, x);                 \
            dn[x] = g / den;                                                  \
            go += g * (num / den);                                            \
        }                                                                     \
        dden[i] = norm ? -go / den : 0.0;                                     \
        deps += dden[i];                                                      \
        for (an_int c = 0; c < d; c++) {                                      \
            double dp, s = z[c] * dden[i];                                    \
            lv_phi((double)AN_AT(T, qr, P->q_d, c), fm, &dp);                 \
            const double *Sc = S + c * e;                                     \
            for (an_int x = 0; x < e; x++) s += Sc[x] * dn[x];                \
            AN_AT(T, dqr, P->dq_d, c) = (T)(dp * s);                          \
        }                                                                     \
    }                                                                         \
    /* pass 2: keys backwards with dS (in S), dz (in z) */                    \
    memset(S, 0, sizeof(double) * (size_t)(d * e + d));                       \
    an_int i = n - 1;                                                         \
    for (an_int jj = m - 1; jj >= 0; jj--) {                                  \
        for (; i >= 0 && lv_seen(i, n, m, M->causal) > jj; i--) {            \
            const double *qf = Qf + i * d, *dn = dnum + i * e;                \
            for (an_int c = 0; c < d; c++) {                                  \
                double *Sc = S + c * e;                                       \
                for (an_int x = 0; x < e; x++) Sc[x] += qf[c] * dn[x];        \
                z[c] += dden[i] * qf[c];                                      \
            }                                                                 \
        }                                                                     \
        const char *kr = M->k + jj * P->k_m, *vr = M->v + jj * P->v_m;        \
        char *dkr = M->dk + jj * P->dk_m, *dvr = M->dv + jj * P->dv_m;        \
        for (an_int x = 0; x < e; x++) vj[x] = (double)AN_AT(T, vr, P->v_e, x); \
        for (an_int c = 0; c < d; c++) {                                      \
            double dp;                                                        \
            kf[c] = lv_phi((double)AN_AT(T, kr, P->k_d, c), fm, &dp);         \
            const double *Sc = S + c * e;                                     \
            double s = z[c];                                                  \
            for (an_int x = 0; x < e; x++) s += Sc[x] * vj[x];                \
            AN_AT(T, dkr, P->dk_d, c) = (T)(dp * s);                          \
        }                                                                     \
        for (an_int x = 0; x < e; x++) {                                      \
            double s = 0;                                                     \
            for (an_int c = 0; c < d; c++) s += S[c * e + x] * kf[c];         \
            AN_AT(T, dvr, P->dv_e, x) = (T)s;                                 \
        }                                                                     \
    }                                                                         \
    *(T *)M->deps = (T)deps;                                                  \
    free(S); free(Qf);                                                        \
    return AN_OK;                                                             \
}                                                                             \
int an_linear_attention_vjp_##TS(const an_linvjp *P)                         \
{                                                                             \
    int err = AN_OK; an_int first = P->N;                                     \
    const int nt = an_num_threads();                                          \
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(nt) if (P->N > 1)") \
    for (an_int k = 0; k < P->N; k++) {                                       \
        int rc = linear_vjp_one_##TS(P, &P->mats[k]);                         \
        if (rc) {                                                             \
            _Pragma("omp critical(an_linvjp_err)")                            \
            if (k < first) { first = k; err = rc; }                           \
        }                                                                     \
    }                                                                         \
    return err;                                                               \
}
AN_LINEAR_VJP(float, f)
AN_LINEAR_VJP(double, d)
