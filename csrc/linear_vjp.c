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
#include "an_simd.h"

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
    double *Qf = (double *)malloc(sizeof(double) * (size_t)(n * d + n * e + n + 2 * d + 2 * e + 1)); \
    if (!S || !Qf) { free(S); free(Qf); return AN_ERR_NOMEM; }                \
    double *z = S + d * e;                                                    \
    double *dnum = Qf + n * d, *dden = dnum + n * e, *kf = dden + n;          \
    double *dph = kf + d, *vj = dph + d, *acc = vj + e;                       \
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
                _Pragma("omp simd")                                           \
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
        for (an_int x = 0; x < e; x++) acc[x] = 0;                            \
        for (an_int c = 0; c < d; c++) {                                      \
            qf[c] = lv_phi((double)AN_AT(T, qr, P->q_d, c), fm, dph + c);     \
            den += qf[c] * z[c];                                              \
            const double *Sc = S + c * e, qc = qf[c];                         \
            _Pragma("omp simd")                                               \
            for (an_int x = 0; x < e; x++) acc[x] += qc * Sc[x];   /* num */  \
        }                                                                     \
        if (!norm) den = 1.0;                                                 \
        for (an_int x = 0; x < e; x++) {                                      \
            const double g = (double)AN_AT(T, gr, P->g_e, x);                 \
            dn[x] = g / den;                                                  \
            go += g * (acc[x] / den);                                         \
        }                                                                     \
        dden[i] = norm ? -go / den : 0.0;                                     \
        deps += dden[i];                                                      \
        for (an_int c = 0; c < d; c++) {                                      \
            const double *Sc = S + c * e;                                     \
            double s = 0;                                                     \
            _Pragma("omp simd reduction(+:s)")                                \
            for (an_int x = 0; x < e; x++) s += Sc[x] * dn[x];                \
            AN_AT(T, dqr, P->dq_d, c) = (T)(dph[c] * (s + z[c] * dden[i]));   \
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
                const double qc = qf[c];                                      \
                _Pragma("omp simd")                                           \
                for (an_int x = 0; x < e; x++) Sc[x] += qc * dn[x];           \
                z[c] += dden[i] * qc;                                         \
            }                                                                 \
        }                                                                     \
        const char *kr = M->k + jj * P->k_m, *vr = M->v + jj * P->v_m;        \
        char *dkr = M->dk + jj * P->dk_m, *dvr = M->dv + jj * P->dv_m;        \
        for (an_int x = 0; x < e; x++) { vj[x] = (double)AN_AT(T, vr, P->v_e, x); acc[x] = 0; } \
        for (an_int c = 0; c < d; c++) {                                      \
            double dp;                                                        \
            const double kc = lv_phi((double)AN_AT(T, kr, P->k_d, c), fm, &dp); \
            const double *Sc = S + c * e;                                     \
            double s = 0;                                                     \
            _Pragma("omp simd reduction(+:s)")                                \
            for (an_int x = 0; x < e; x++) s += Sc[x] * vj[x];                \
            AN_AT(T, dkr, P->dk_d, c) = (T)(dp * (s + z[c]));                 \
            _Pragma("omp simd")                                               \
            for (an_int x = 0; x < e; x++) acc[x] += kc * Sc[x];   /* dv */   \
        }                                                                     \
        for (an_int x = 0; x < e; x++) AN_AT(T, dvr, P->dv_e, x) = (T)acc[x]; \
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

/*
 * VJP of the exp-kernel / log-space attention (log_attention, and
 * linear_attention with the "exp" map), with the carried state:
 *   Z_ic = Z0_c + sum_{j < t_i} e^{k_jc},  S_ice = S0_ce + sum_{j < t_i} e^{k_jc} v_je,
 *   o_i = sum_c e^{q_ic} S_ic / den_i,  den_i = sum_c e^{q_ic} Z_ic.
 * Every log-space number is a pair (M, s) meaning e^M s (M the running
 * maximum, s >= 1 once anything was added), values split by sign (S = S+ - S-).
 * Pass 1 (keys forwards), per query:
 *   pi_ic = e^{q_ic} Z_ic / den_i,  o_ice = S_ice / Z_ic,
 *   dq_ic = pi_ic (sum_e o_ice G_ie - <G_i, o_i>),  log rho_ic = q_ic - log den_i
 * and the prior state's log-gradients lambda = X dL/dX:
 *   lambda(Z0_c) = -sum_i Z0_c rho_ic <G_i, o_i>,  lambda(S0+-_ce) = +-sum_i S0+-_ce rho_ic G_ie.
 * Pass 2 (keys backwards) with the suffix sums over the queries that see
 * key j, kept as pairs per sign:
 *   A_ce(j) = sum_i rho_ic G_ie,  B_c(j) = sum_i rho_ic <G_i, o_i>
 *   dk_jc = e^{k_jc} (sum_e v_je A_ce(j) - B_c(j)),  dv_je = sum_c e^{k_jc} A_ce(j)
 * (each e^{k_jc} rho_ic <= 1: no overflow), plus, given the log-gradients
 * lambda_f of the state after all keys (grad_state), the terms through
 * dL/dX_f = lambda_f / X_f.  The state's gradient is written as pairs:
 * dL/dM = lambda, dL/ds = lambda / s.
 */
static inline void lp_add(double *M, double *s, double x)
{
    if (x == -INFINITY || x != x) { if (x != x) { *M = x; *s = x; } return; }
    if (x > *M) { *s = *s * exp(*M - x) + 1.0; *M = x; }
    else *s += exp(x - *M);
}
static inline double lp_log(double M, double s) { return s > 0 ? M + log(s) : -INFINITY; }
/* e^{x} X for X = e^M s (0 when X = 0) */
static inline double lp_scale(double x, double M, double s) { return s > 0 ? exp(x + M) * s : 0.0; }

#define AN_EXP_VJP(T, TS)                                                     \
static int exp_vjp_one_##TS(const an_linvjp *P, const an_linvjpmat *M)        \
{                                                                             \
    const an_int n = P->n, m = P->m, d = P->d, e = P->e, de = d * e;          \
    const an_int ew = e;                                                      \
    /* pairs: Z (d), P+ (d e), P- (d e); the same for A+-, B+-; lambda0 */    \
    const size_t nb = (size_t)(2 * d + 4 * de)   /* Z, S+- pairs */          \
                    + (size_t)(4 * de + 4 * d)   /* A+-, B+- pairs */        \
                    + (size_t)(d + 2 * de)       /* lambda0 */               \
                    + (size_t)(d + 2 * de)       /* log prior */             \
                    + (size_t)(n * d + 2 * n)    /* log rho, <G, o>, seen */ \
                    + (size_t)(3 * e + 2 * d);                                \
    double *buf = (double *)malloc(sizeof(double) * nb);                      \
    if (!buf) return AN_ERR_NOMEM;                                            \
    double *ZM = buf, *Zs = ZM + d, *PM = Zs + d, *Ps = PM + de, *NM = Ps + de, *Ns = NM + de; \
    double *AM = Ns + de, *As = AM + de, *CM = As + de, *Cs = CM + de;        \
    double *BM = Cs + de, *Bs = BM + d, *DM = Bs + d, *Ds = DM + d;           \
    double *lamZ = Ds + d, *lamP = lamZ + d, *lamN = lamP + de;               \
    double *lZ0 = lamN + de, *lP0 = lZ0 + d, *lN0 = lP0 + de;                 \
    double *lrho = lN0 + de, *Go = lrho + n * d, *seen = Go + n;              \
    double *g = seen + n, *lv = g + e, *vv = lv + e, *oc = vv + e, *pc = oc + d; \
    const int prior = M->has_state;                                           \
    for (an_int c = 0; c < d; c++) {                                          \
        if (prior) {                                                          \
            const char *sr = M->st + c * P->st_d;                             \
            ZM[c] = (double)AN_AT(T, sr, P->st_w, 0); Zs[c] = (double)AN_AT(T, sr, P->st_w, 1); \
            for (an_int x = 0; x < e; x++) {                                  \
                PM[c * e + x] = (double)AN_AT(T, sr, P->st_w, 2 + x);         \
                Ps[c * e + x] = (double)AN_AT(T, sr, P->st_w, 2 + ew + x);    \
                NM[c * e + x] = (double)AN_AT(T, sr, P->st_w, 2 + 2 * ew + x); \
                Ns[c * e + x] = (double)AN_AT(T, sr, P->st_w, 2 + 3 * ew + x); \
            }                                                                 \
        } else {                                                              \
            ZM[c] = -INFINITY; Zs[c] = 0;                                     \
            for (an_int x = 0; x < e; x++) {                                  \
                PM[c * e + x] = NM[c * e + x] = -INFINITY; Ps[c * e + x] = Ns[c * e + x] = 0; \
            }                                                                 \
        }                                                                     \
        lZ0[c] = lp_log(ZM[c], Zs[c]);                                        \
        for (an_int x = 0; x < e; x++) {                                      \
            lP0[c * e + x] = lp_log(PM[c * e + x], Ps[c * e + x]);            \
            lN0[c * e + x] = lp_log(NM[c * e + x], Ns[c * e + x]);            \
        }                                                                     \
        lamZ[c] = 0;                                                          \
    }                                                                         \
    for (an_int x = 0; x < de; x++) lamP[x] = lamN[x] = 0;                    \
    int any_prior = 0;                                                        \
    for (an_int c = 0; c < d; c++) any_prior |= Zs[c] > 0;                    \
    /* pass 1 */                                                              \
    an_int j = 0;                                                             \
    for (an_int i = 0; i < n; i++) {                                          \
        const an_int t = lv_seen(i, n, m, M->causal);                         \
        for (; j < t; j++) {                                                  \
            const char *kr = M->k + j * P->k_m, *vr = M->v + j * P->v_m;      \
            for (an_int x = 0; x < e; x++) {                                  \
                vv[x] = (double)AN_AT(T, vr, P->v_e, x);                      \
                lv[x] = log(fabs(vv[x]));                                     \
            }                                                                 \
            for (an_int c = 0; c < d; c++) {                                  \
                const double kc = (double)AN_AT(T, kr, P->k_d, c);            \
                lp_add(ZM + c, Zs + c, kc);                                   \
                for (an_int x = 0; x < e; x++) {                              \
                    if (vv[x] > 0) lp_add(PM + c * e + x, Ps + c * e + x, kc + lv[x]); \
                    else if (vv[x] < 0) lp_add(NM + c * e + x, Ns + c * e + x, kc + lv[x]); \
                }                                                             \
            }                                                                 \
        }                                                                     \
        const char *qr = M->q + i * P->q_n, *gr = M->g + i * P->g_n;          \
        char *dqr = M->dq + i * P->dq_n;                                      \
        double *lr = lrho + i * d;                                            \
        seen[i] = t > 0 || any_prior;                                         \
        if (!seen[i]) {                                                       \
            for (an_int c = 0; c < d; c++) { AN_AT(T, dqr, P->dq_d, c) = 0; lr[c] = -INFINITY; } \
            Go[i] = 0;                                                        \
            continue;                                                         \
        }                                                                     \
        for (an_int x = 0; x < e; x++) g[x] = (double)AN_AT(T, gr, P->g_e, x); \
        double amax = -INFINITY;                                              \
        for (an_int c = 0; c < d; c++) {                                      \
            const double a = (double)AN_AT(T, qr, P->q_d, c) + lp_log(ZM[c], Zs[c]); \
            amax = a > amax ? a : amax;                                       \
        }                                                                     \
        double sum = 0;                                                       \
        for (an_int c = 0; c < d; c++)                                        \
            sum += lp_scale((double)AN_AT(T, qr, P->q_d, c) - amax, ZM[c], Zs[c]); \
        const double lden = amax + log(sum);                                  \
        /* o_i = sum_c pi_c o_c, <G, o> and, per feature, <G, o_c> (in oc) */ \
        double go = 0;                                                        \
        for (an_int x = 0; x < e; x++) vv[x] = 0;                             \
        for (an_int c = 0; c < d; c++) {                                      \
            const double qc = (double)AN_AT(T, qr, P->q_d, c);                \
            lr[c] = qc - lden;                                                \
            pc[c] = oc[c] = 0;                                                \
            if (!(Zs[c] > 0)) continue;                                       \
            const double pic = lp_scale(lr[c], ZM[c], Zs[c]);                 \
            double sg = 0;                                                    \
            for (an_int x = 0; x < e; x++) {                                  \
                const double o = lp_scale(-ZM[c], PM[c * e + x], Ps[c * e + x]) / Zs[c] \
                               - lp_scale(-ZM[c], NM[c * e + x], Ns[c * e + x]) / Zs[c]; \
                vv[x] += pic * o;                                             \
                sg += g[x] * o;                                               \
            }                                                                 \
            pc[c] = pic; oc[c] = sg;                                          \
        }                                                                     \
        for (an_int x = 0; x < e; x++) go += g[x] * vv[x];                    \
        Go[i] = go;                                                           \
        for (an_int c = 0; c < d; c++) {                                      \
            if (!(Zs[c] > 0)) { AN_AT(T, dqr, P->dq_d, c) = 0; continue; }     \
            AN_AT(T, dqr, P->dq_d, c) = (T)(pc[c] * (oc[c] - go));            \
            if (prior) {                                                      \
                lamZ[c] -= exp(lZ0[c] + lr[c]) * go;                          \
                for (an_int x = 0; x < e; x++) {                              \
                    lamP[c * e + x] += exp(lP0[c * e + x] + lr[c]) * g[x];    \
                    lamN[c * e + x] -= exp(lN0[c * e + x] + lr[c]) * g[x];    \
                }                                                             \
            }                                                                 \
        }                                                                     \
    }                                                                         \
    for (; j < m; j++) {   /* the final state covers all m keys */            \
        const char *kr = M->k + j * P->k_m, *vr = M->v + j * P->v_m;          \
        for (an_int x = 0; x < e; x++) {                                      \
            vv[x] = (double)AN_AT(T, vr, P->v_e, x); lv[x] = log(fabs(vv[x])); \
        }                                                                     \
        for (an_int c = 0; c < d; c++) {                                      \
            const double kc = (double)AN_AT(T, kr, P->k_d, c);                \
            lp_add(ZM + c, Zs + c, kc);                                       \
            for (an_int x = 0; x < e; x++) {                                  \
                if (vv[x] > 0) lp_add(PM + c * e + x, Ps + c * e + x, kc + lv[x]); \
                else if (vv[x] < 0) lp_add(NM + c * e + x, Ns + c * e + x, kc + lv[x]); \
            }                                                                 \
        }                                                                     \
    }                                                                         \
    /* final state as log-values (in ZM.., overwritten by nothing below) */   \
    for (an_int c = 0; c < d; c++) {                                          \
        ZM[c] = lp_log(ZM[c], Zs[c]);                                         \
        for (an_int x = 0; x < e; x++) {                                      \
            PM[c * e + x] = lp_log(PM[c * e + x], Ps[c * e + x]);             \
            NM[c * e + x] = lp_log(NM[c * e + x], Ns[c * e + x]);             \
        }                                                                     \
    }                                                                         \
    const double *lZf = ZM, *lPf = PM, *lNf = NM;                             \
    /* state log-gradients after all keys (read from the M entries) */       \
    const int gst = M->has_gstate;                                            \
    /* pass 2 */                                                              \
    for (an_int x = 0; x < de; x++) { AM[x] = CM[x] = -INFINITY; As[x] = Cs[x] = 0; } \
    for (an_int c = 0; c < d; c++) { BM[c] = DM[c] = -INFINITY; Bs[c] = Ds[c] = 0; } \
    an_int i = n - 1;                                                         \
    for (an_int jj = m - 1; jj >= 0; jj--) {                                  \
        for (; i >= 0 && lv_seen(i, n, m, M->causal) > jj; i--) {            \
            if (!seen[i]) continue;                                           \
            const char *gr = M->g + i * P->g_n;                               \
            const double *lr = lrho + i * d;                                  \
            const double lgo = log(fabs(Go[i]));                              \
            for (an_int x = 0; x < e; x++) {                                  \
                g[x] = (double)AN_AT(T, gr, P->g_e, x); lv[x] = log(fabs(g[x])); \
            }                                                                 \
            for (an_int c = 0; c < d; c++) {                                  \
                for (an_int x = 0; x < e; x++) {                              \
                    if (g[x] > 0) lp_add(AM + c * e + x, As + c * e + x, lr[c] + lv[x]); \
                    else if (g[x] < 0) lp_add(CM + c * e + x, Cs + c * e + x, lr[c] + lv[x]); \
                }                                                             \
                if (Go[i] > 0) lp_add(BM + c, Bs + c, lr[c] + lgo);           \
                else if (Go[i] < 0) lp_add(DM + c, Ds + c, lr[c] + lgo);      \
            }                                                                 \
        }                                                                     \
        const char *kr = M->k + jj * P->k_m, *vr = M->v + jj * P->v_m;        \
        char *dkr = M->dk + jj * P->dk_m, *dvr = M->dv + jj * P->dv_m;        \
        for (an_int x = 0; x < e; x++) {                                      \
            vv[x] = (double)AN_AT(T, vr, P->v_e, x); lv[x] = log(fabs(vv[x])); g[x] = 0; \
        }                                                                     \
        for (an_int c = 0; c < d; c++) {                                      \
            const double kc = (double)AN_AT(T, kr, P->k_d, c);                \
            double dk = lp_scale(kc, DM[c], Ds[c]) - lp_scale(kc, BM[c], Bs[c]); \
            for (an_int x = 0; x < e; x++) {                                  \
                const an_int ce = c * e + x;                                  \
                const double ea = lp_scale(kc, AM[ce], As[ce]) - lp_scale(kc, CM[ce], Cs[ce]); \
                dk += vv[x] * ea;                                             \
                g[x] += ea;                                                   \
            }                                                                 \
            if (gst) {                                                        \
                const char *gs = M->gst + c * P->gs_d;                        \
                if (lZf[c] > -INFINITY) dk += exp(kc - lZf[c]) * (double)AN_AT(T, gs, P->gs_w, 0); \
                for (an_int x = 0; x < e; x++) {                              \
                    const an_int ce = c * e + x;                              \
                    const double gp = (double)AN_AT(T, gs, P->gs_w, 2 + x);   \
                    const double gn = (double)AN_AT(T, gs, P->gs_w, 2 + 2 * ew + x); \
                    const double wp = lPf[ce] > -INFINITY ? gp * exp(kc - lPf[ce]) : 0.0; \
                    const double wn = lNf[ce] > -INFINITY ? gn * exp(kc - lNf[ce]) : 0.0; \
                    if (vv[x] > 0) dk += wp * vv[x];                          \
                    else if (vv[x] < 0) dk -= wn * vv[x];                     \
                    g[x] += (vv[x] > 0 || (vv[x] == 0 && lPf[ce] > -INFINITY)) ? wp : -wn; \
                }                                                             \
            }                                                                 \
            AN_AT(T, dkr, P->dk_d, c) = (T)dk;                                \
        }                                                                     \
        for (an_int x = 0; x < e; x++) AN_AT(T, dvr, P->dv_e, x) = (T)g[x];   \
    }                                                                         \
    if (prior) {                                                              \
        for (an_int c = 0; c < d; c++) {                                      \
            const char *sr = M->st + c * P->st_d;                             \
            char *dr = M->dst + c * P->dst_d;                                 \
            const char *gs = gst ? M->gst + c * P->gs_d : NULL;               \
            for (an_int x = -1; x < 2 * e; x++) {                             \
                /* x = -1: Z; x in [0, e): S+; [e, 2e): S- */                 \
                const int zz = x < 0, pos = x >= 0 && x < e;                  \
                const an_int ce = c * e + (pos ? x : x - e);                  \
                const an_int om = zz ? 0 : (pos ? 2 + x : 2 + 2 * ew + (x - e)); \
                const an_int os = zz ? 1 : om + ew;                           \
                double lam = zz ? lamZ[c] : (pos ? lamP[ce] : lamN[ce]);      \
                const double l0 = zz ? lZ0[c] : (pos ? lP0[ce] : lN0[ce]);    \
                const double lf = zz ? lZf[c] : (pos ? lPf[ce] : lNf[ce]);    \
                if (gs && lf > -INFINITY && l0 > -INFINITY)                   \
                    lam += (double)AN_AT(T, gs, P->gs_w, om) * exp(l0 - lf);  \
                const double s0 = (double)AN_AT(T, sr, P->st_w, os);          \
                AN_AT(T, dr, P->dst_w, om) = (T)lam;                          \
                AN_AT(T, dr, P->dst_w, os) = (T)(s0 != 0 ? lam / s0 : 0.0);   \
            }                                                                 \
        }                                                                     \
    } else {                                                                  \
        for (an_int c = 0; c < d; c++)                                        \
            for (an_int x = 0; x < 4 * e + 2; x++)                            \
                AN_AT(T, M->dst + c * P->dst_d, P->dst_w, x) = 0;             \
    }                                                                         \
    free(buf);                                                                \
    return AN_OK;                                                             \
}                                                                             \
int an_log_attention_vjp_##TS(const an_linvjp *P)                            \
{                                                                             \
    int err = AN_OK; an_int first = P->N;                                     \
    const int nt = an_num_threads();                                          \
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(nt) if (P->N > 1)") \
    for (an_int k = 0; k < P->N; k++) {                                       \
        int rc = exp_vjp_one_##TS(P, &P->mats[k]);                            \
        if (rc) {                                                             \
            _Pragma("omp critical(an_linvjp_err)")                            \
            if (k < first) { first = k; err = rc; }                           \
        }                                                                     \
    }                                                                         \
    return err;                                                               \
}
AN_EXP_VJP(float, f)
AN_EXP_VJP(double, d)

/*
 * VJP of ZeroS (zeros_attention).  With T_t the keys query t sees, the
 * weights are r_{t,i} = alpha_t + beta_t s_i + gamma_t e^{s_i}:
 *   beta_t = (s1 - sh) / T_t,  alpha_t = -(s1 - sh) sbar_t / T_t - sh / T_t,
 *   gamma_t = sh / Z_t,  Z_t = sum_{i seen} e^{s_i},
 * so o_t = U_t^T q_t, U_t = alpha_t F_t + beta_t G_t + gamma_t H_t with the
 * prefix sums F = sum k v^T, G = sum s k v^T, H = sum e^s k v^T.
 * Pass 1 (keys forwards; H and Z kept relative to the running maximum R of s):
 *   dq_t = U_t Omega_t,  u_X = q_t^T X_t Omega_t  (X = F, G, H),
 *   dalpha_t = u_F, dbeta_t = u_G, dgamma_t = u_H (true H)
 *   d s1 += -dalpha sbar / T + dbeta / T,
 *   d sh += dalpha (sbar - 1) / T - dbeta / T + dgamma_t / Z_t
 * Pass 2 (keys backwards), over the queries t that see key i, with
 * W_t = q_t Omega_t^T:
 *   D_i = sum_t (alpha_t + beta_t s_i + gamma_t e^{s_i}) W_t
 *   dk_i = D_i v_i,  dv_i = D_i^T k_i,
 *   ds_i = k_i^T (sum_t (beta_t + gamma_t e^{s_i}) W_t) v_i
 *        - sum_t dalpha_t (s1 - sh) / T_t^2        (through sbar_t)
 *        - e^{s_i} sum_t sh dgamma_t / Z_t^2        (through Z_t)
 * The e^{s_i} / Z_t sums are kept relative to the smallest Z_t added, so
 * e^{s_i} / Z_ref <= 1: no overflow whatever the range of s.
 */
#define AN_ZEROS_VJP(T, TS)                                                   \
static int zeros_vjp_one_##TS(const an_linvjp *P, const an_linvjpmat *M)      \
{                                                                             \
    const an_int n = P->n, m = P->m, d = P->d, e = P->e, de = d * e;          \
    const double g1 = M->g_lin, gh = M->g_soft;                               \
    double *buf = (double *)malloc(sizeof(double) * (size_t)(3 * de + 5 * n + d + 2 * e)); \
    if (!buf) return AN_ERR_NOMEM;                                            \
    double *F = buf, *Gm = F + de, *Hm = Gm + de;                             \
    double *al = Hm + de, *be = al + n, *lZ = be + n, *cz = lZ + n, *as = cz + n; \
    double *qv = as + n, *vv = qv + d, *om = vv + e;                          \
    for (an_int x = 0; x < 3 * de; x++) buf[x] = 0;                           \
    double cnt = 0, ssum = 0, R = -INFINITY, Zs = 0, dg1 = 0, dgh = 0;        \
    an_int j = 0;                                                             \
    for (an_int t = 0; t < n; t++) {                                          \
        const an_int tt = lv_seen(t, n, m, M->causal);                        \
        for (; j < tt; j++) {                                                 \
            const char *kr = M->k + j * P->k_m, *vr = M->v + j * P->v_m;      \
            const double sj = (double)AN_AT(T, M->s, P->s_m, j);              \
            if (sj > R) {                                                     \
                const double sc = R == -INFINITY ? 0.0 : exp(R - sj);         \
                for (an_int x = 0; x < de; x++) Hm[x] *= sc;                  \
                Zs *= sc; R = sj;                                             \
            }                                                                 \
            const double ej = exp(sj - R);                                    \
            cnt += 1; ssum += sj; Zs += ej;                                   \
            for (an_int x = 0; x < e; x++) vv[x] = (double)AN_AT(T, vr, P->v_e, x); \
            for (an_int c = 0; c < d; c++) {                                  \
                const double kc = (double)AN_AT(T, kr, P->k_d, c);            \
                for (an_int x = 0; x < e; x++) {                              \
                    const double kv = kc * vv[x];                             \
                    F[c * e + x] += kv; Gm[c * e + x] += sj * kv; Hm[c * e + x] += ej * kv; \
                }                                                             \
            }                                                                 \
        }                                                                     \
        char *dqr = M->dq + t * P->dq_n;                                      \
        if (tt == 0) {                                                        \
            for (an_int c = 0; c < d; c++) AN_AT(T, dqr, P->dq_d, c) = 0;      \
            al[t] = be[t] = cz[t] = as[t] = 0; lZ[t] = INFINITY;              \
            continue;                                                         \
        }                                                                     \
        const char *qr = M->q + t * P->q_n, *gr = M->g + t * P->g_n;          \
        for (an_int c = 0; c < d; c++) qv[c] = (double)AN_AT(T, qr, P->q_d, c); \
        for (an_int x = 0; x < e; x++) om[x] = (double)AN_AT(T, gr, P->g_e, x); \
        const double sbar = ssum / cnt, gam = gh / Zs;   /* gamma_t e^R */    \
        al[t] = -(g1 - gh) * sbar / cnt - gh / cnt;                           \
        be[t] = (g1 - gh) / cnt;                                              \
        lZ[t] = R + log(Zs);                                                  \
        double uF = 0, uG = 0, uH = 0;                                        \
        for (an_int c = 0; c < d; c++) {                                      \
            double fo = 0, go = 0, ho = 0;                                    \
            for (an_int x = 0; x < e; x++) {                                  \
                fo += F[c * e + x] * om[x]; go += Gm[c * e + x] * om[x]; ho += Hm[c * e + x] * om[x]; \
            }                                                                 \
            AN_AT(T, dqr, P->dq_d, c) = (T)(al[t] * fo + be[t] * go + gam * ho); \
            uF += qv[c] * fo; uG += qv[c] * go; uH += qv[c] * ho;             \
        }                                                                     \
        /* uH = q^T H Omega e^{-R}: dgamma_t / Z_t = uH / Zs */               \
        dg1 += uF * (-sbar / cnt) + uG / cnt;                                 \
        dgh += uF * (sbar - 1.0) / cnt - uG / cnt + uH / Zs;                  \
        cz[t] = -gh * uH / Zs;            /* e^{s_i} dZ_t = cz e^{s_i} / Z_t */ \
        as[t] = -uF * (g1 - gh) / (cnt * cnt);                                \
    }                                                                         \
    *(T *)M->dg1 = (T)dg1; *(T *)M->dgh = (T)dgh;                             \
    /* pass 2: Da, Db in F, Gm; the gamma sum relative to Z_ref in Hm */      \
    for (an_int x = 0; x < 3 * de; x++) buf[x] = 0;                           \
    double Lref = INFINITY, scz = 0, sas = 0;                                 \
    an_int t = n - 1;                                                         \
    for (an_int i = m - 1; i >= 0; i--) {                                     \
        for (; t >= 0 && lv_seen(t, n, m, M->causal) > i; t--) {             \
            const char *qr = M->q + t * P->q_n, *gr = M->g + t * P->g_n;      \
            if (lZ[t] < Lref) {                                               \
                const double sc = Lref == INFINITY ? 0.0 : exp(lZ[t] - Lref); \
                for (an_int x = 0; x < de; x++) Hm[x] *= sc;                  \
                scz *= sc; Lref = lZ[t];                                      \
            }                                                                 \
            const double wg = gh * exp(Lref - lZ[t]);                         \
            for (an_int x = 0; x < e; x++) om[x] = (double)AN_AT(T, gr, P->g_e, x); \
            for (an_int c = 0; c < d; c++) {                                  \
                const double qc = (double)AN_AT(T, qr, P->q_d, c);            \
                for (an_int x = 0; x < e; x++) {                              \
                    const double w = qc * om[x];                              \
                    F[c * e + x] += al[t] * w; Gm[c * e + x] += be[t] * w; Hm[c * e + x] += wg * w; \
                }                                                             \
            }                                                                 \
            scz += cz[t] * exp(Lref - lZ[t]);                                 \
            sas += as[t];                                                     \
        }                                                                     \
        const char *kr = M->k + i * P->k_m, *vr = M->v + i * P->v_m;          \
        char *dkr = M->dk + i * P->dk_m, *dvr = M->dv + i * P->dv_m;          \
        const double si = (double)AN_AT(T, M->s, P->s_m, i);                  \
        const double fi = Lref == INFINITY ? 0.0 : exp(si - Lref);            \
        for (an_int x = 0; x < e; x++) vv[x] = (double)AN_AT(T, vr, P->v_e, x); \
        for (an_int c = 0; c < d; c++) qv[c] = (double)AN_AT(T, kr, P->k_d, c); \
        double ds = fi * scz + sas;                                           \
        for (an_int c = 0; c < d; c++) {                                      \
            double dk = 0;                                                    \
            for (an_int x = 0; x < e; x++) {                                  \
                const an_int ce = c * e + x;                                  \
                const double sd = Gm[ce] + fi * Hm[ce];                       \
                dk += (F[ce] + si * Gm[ce] + fi * Hm[ce]) * vv[x];            \
                ds += qv[c] * sd * vv[x];                                     \
            }                                                                 \
            AN_AT(T, dkr, P->dk_d, c) = (T)dk;                                \
        }                                                                     \
        for (an_int x = 0; x < e; x++) {                                      \
            double dv = 0;                                                    \
            for (an_int c = 0; c < d; c++) {                                  \
                const an_int ce = c * e + x;                                  \
                dv += (F[ce] + si * Gm[ce] + fi * Hm[ce]) * qv[c];            \
            }                                                                 \
            AN_AT(T, dvr, P->dv_e, x) = (T)dv;                                \
        }                                                                     \
        AN_AT(T, M->ds, P->ds_m, i) = (T)ds;                                  \
    }                                                                         \
    free(buf);                                                                \
    return AN_OK;                                                             \
}                                                                             \
int an_zeros_attention_vjp_##TS(const an_linvjp *P)                          \
{                                                                             \
    int err = AN_OK; an_int first = P->N;                                     \
    const int nt = an_num_threads();                                          \
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(nt) if (P->N > 1)") \
    for (an_int k = 0; k < P->N; k++) {                                       \
        int rc = zeros_vjp_one_##TS(P, &P->mats[k]);                          \
        if (rc) {                                                             \
            _Pragma("omp critical(an_linvjp_err)")                            \
            if (k < first) { first = k; err = rc; }                           \
        }                                                                     \
    }                                                                         \
    return err;                                                               \
}
AN_ZEROS_VJP(float, f)
AN_ZEROS_VJP(double, d)

/*
 * VJP of SOFT (soft_attention):  X = A V_K (A^T V),
 *   A_ia = exp(-g |q_i - l_a|^2), B_ab = exp(-g |l_a - l_b|^2), g = 1 / (2 sqrt d),
 *   V_0 = c B, c = 2 / N^2, N = max_b sum_a B_ab (column b*),
 *   V_{k+1} = 2 V_k - V_k B V_k.
 * Backward (Y = A^T V, W = V_K Y):
 *   dA = G W^T + V dY^T,  dW = A^T G,  dV_K = dW Y^T,  dY = V_K^T dW,  dV = A dY
 *   for k = K-1 .. 0:  dB -= V_k^T dV_{k+1} V_k^T,
 *                      dV_k = 2 dV_{k+1} - dV_{k+1} (B V_k)^T - (V_k B)^T dV_{k+1}
 *   dB += c dV_0;  dB_{:, b*} -= 4 <dV_0, B> / N^3
 *   dq_i = -2 g sum_a dA_ia A_ia (q_i - l_a),
 *   dl_a = 2 g sum_i dA_ia A_ia (q_i - l_a) - 2 g sum_b (dB_ab + dB_ba) B_ab (l_a - l_b)
 * and mean landmarks pass dl_a / |segment a| to the queries of segment a.
 * Everything in double, the products on the gemm_acc primitive (fixed order).
 */
/* C (M x N) = A (M x K) B (K x N), row-major, contiguous */
static void lv_mm(double *C, const double *A, const double *B, an_int M, an_int N, an_int K)
{
    for (an_int x = 0; x < M * N; x++) C[x] = 0;
    an_vd->gemm_acc(C, N, A, K, B, N, M, N, K);
}
static void lv_tr(double *D, const double *S, an_int R, an_int C)
{
    for (an_int r = 0; r < R; r++)
        for (an_int c = 0; c < C; c++) D[c * R + r] = S[r * C + c];
}

#define AN_SOFT_VJP(T, TS)                                                    \
static int soft_vjp_one_##TS(const an_linvjp *P, const an_linvjpmat *M)       \
{                                                                             \
    const an_int n = P->n, d = P->d, e = P->e, L = P->l, K = P->K, LL = L * L; \
    const double g = d > 0 ? 0.5 / sqrt((double)d) : 0.0;                     \
    const an_int big = n > e ? n : e;                                         \
    size_t need = (size_t)(2 * L * d + n * d + 3 * n * e + 3 * n * L + (K + 1) * LL \
                           + 8 * LL + 6 * L * e + L * big + L);               \
    double *buf = (double *)malloc(sizeof(double) * need);                   \
    if (!buf) return AN_ERR_NOMEM;                                            \
    double *lm = buf, *dl = lm + L * d, *Q = dl + L * d, *Vd = Q + n * d;     \
    double *Gd = Vd + n * e, *dv = Gd + n * e, *A = dv + n * e, *dA = A + n * L; \
    double *AT = dA + n * L, *Vs = AT + n * L, *B = Vs + (K + 1) * LL;        \
    double *dB = B + LL, *dV = dB + LL, *t1 = dV + LL, *t2 = t1 + LL, *t3 = t2 + LL; \
    double *t4 = t3 + LL, *t5 = t4 + LL, *Y = t5 + LL, *W = Y + L * e;        \
    double *dW = W + L * e, *dY = dW + L * e, *YT = dY + L * e, *WT = YT + L * e; \
    double *tb = WT + L * e, *rs = tb + L * big;                              \
    for (an_int i = 0; i < n; i++) {                                          \
        for (an_int c = 0; c < d; c++) Q[i * d + c] = (double)AN_AT(T, M->q + i * P->q_n, P->q_d, c); \
        for (an_int x = 0; x < e; x++) {                                      \
            Vd[i * e + x] = (double)AN_AT(T, M->v + i * P->v_m, P->v_e, x);   \
            Gd[i * e + x] = (double)AN_AT(T, M->g + i * P->g_n, P->g_e, x);   \
        }                                                                     \
    }                                                                         \
    const an_int qs = L > 0 ? n / L : 0, rem = L > 0 ? n % L : 0;             \
    for (an_int a = 0; a < L; a++) {                                          \
        if (M->mean_landmarks) {                                              \
            const an_int st = a * qs + (a < rem ? a : rem), len = qs + (a < rem); \
            for (an_int c = 0; c < d; c++) {                                  \
                double s = 0;                                                 \
                for (an_int i = st; i < st + len; i++) s += Q[i * d + c];     \
                lm[a * d + c] = s / (double)len;                              \
            }                                                                 \
        } else {                                                              \
            for (an_int c = 0; c < d; c++)                                    \
                lm[a * d + c] = (double)AN_AT(T, M->lm + a * P->lm_l, P->lm_d, c); \
        }                                                                     \
    }                                                                         \
    for (an_int i = 0; i < n; i++)                                            \
        for (an_int a = 0; a < L; a++) {                                      \
            double s2 = 0;                                                    \
            for (an_int c = 0; c < d; c++) { double df = Q[i * d + c] - lm[a * d + c]; s2 += df * df; } \
            A[i * L + a] = exp(-g * s2);                                      \
        }                                                                     \
    for (an_int a = 0; a < L; a++)                                            \
        for (an_int b = 0; b < L; b++) {                                      \
            double s2 = 0;                                                    \
            for (an_int c = 0; c < d; c++) { double df = lm[a * d + c] - lm[b * d + c]; s2 += df * df; } \
            B[a * L + b] = exp(-g * s2);                                      \
        }                                                                     \
    double N1 = 0; an_int bs = 0;                                             \
    for (an_int b = 0; b < L; b++) {                                          \
        double cs = 0;                                                        \
        for (an_int a = 0; a < L; a++) cs += fabs(B[a * L + b]);              \
        if (cs > N1) { N1 = cs; bs = b; }                                     \
    }                                                                         \
    const double cc = 2.0 / (N1 * N1);                                        \
    for (an_int x = 0; x < LL; x++) Vs[x] = cc * B[x];                        \
    for (an_int k = 0; k < K; k++) {                                          \
        const double *Vk = Vs + k * LL;                                       \
        double *Vn = Vs + (k + 1) * LL;                                       \
        lv_mm(t1, B, Vk, L, L, L);                                            \
        lv_mm(t2, Vk, t1, L, L, L);                                           \
        for (an_int x = 0; x < LL; x++) Vn[x] = 2.0 * Vk[x] - t2[x];          \
    }                                                                         \
    const double *VK = Vs + K * LL;                                           \
    lv_tr(AT, A, n, L);                                                       \
    lv_mm(Y, AT, Vd, L, e, n);                                                \
    lv_mm(W, VK, Y, L, e, L);                                                 \
    lv_tr(WT, W, L, e);                                                       \
    lv_mm(dA, Gd, WT, n, L, e);                                               \
    lv_mm(dW, AT, Gd, L, e, n);                                               \
    lv_tr(YT, Y, L, e);                                                       \
    lv_mm(dV, dW, YT, L, L, e);                                               \
    lv_tr(t1, VK, L, L);                                                      \
    lv_mm(dY, t1, dW, L, e, L);                                               \
    lv_tr(tb, dY, L, e);                                                      \
    an_vd->gemm_acc(dA, L, Vd, e, tb, L, n, L, e);        /* dA += V dY^T */  \
    lv_mm(dv, A, dY, n, e, L);                                                \
    for (an_int x = 0; x < LL; x++) dB[x] = 0;                                \
    for (an_int k = K - 1; k >= 0; k--) {                                     \
        const double *Vk = Vs + k * LL;                                       \
        lv_tr(t3, Vk, L, L);                                                  \
        lv_mm(t1, t3, dV, L, L, L);                                           \
        lv_mm(t2, t1, t3, L, L, L);                                           \
        for (an_int x = 0; x < LL; x++) dB[x] -= t2[x];                       \
        lv_mm(t1, B, Vk, L, L, L);           /* B V_k */                      \
        lv_tr(t4, t1, L, L);                                                  \
        lv_mm(t2, dV, t4, L, L, L);          /* dV (B V_k)^T */               \
        lv_mm(t1, Vk, B, L, L, L);           /* V_k B */                      \
        lv_tr(t4, t1, L, L);                                                  \
        lv_mm(t5, t4, dV, L, L, L);          /* (V_k B)^T dV */               \
        for (an_int x = 0; x < LL; x++) dV[x] = 2.0 * dV[x] - t2[x] - t5[x];  \
    }                                                                         \
    double dc = 0;                                                            \
    for (an_int x = 0; x < LL; x++) { dB[x] += cc * dV[x]; dc += dV[x] * B[x]; } \
    for (an_int a = 0; a < L; a++) dB[a * L + bs] += dc * (-4.0 / (N1 * N1 * N1)); \
    /* kernels: wA = dA * A, wB = (dB + dB^T) * B */                        \
    for (an_int x = 0; x < L * d; x++) dl[x] = 0;                             \
    for (an_int x = 0; x < n * L; x++) dA[x] *= A[x];                         \
    for (an_int a = 0; a < L; a++) rs[a] = 0;                                 \
    for (an_int i = 0; i < n; i++)                                            \
        for (an_int a = 0; a < L; a++) rs[a] += dA[i * L + a];                \
    for (an_int a = 0; a < L; a++)                                            \
        for (an_int c = 0; c < d; c++) {                                      \
            double s = -rs[a] * lm[a * d + c];                                \
            for (an_int i = 0; i < n; i++) s += dA[i * L + a] * Q[i * d + c]; \
            dl[a * d + c] = 2.0 * g * s;                                      \
        }                                                                     \
    for (an_int a = 0; a < L; a++) {                                          \
        double sw = 0;                                                        \
        for (an_int b = 0; b < L; b++) sw += (dB[a * L + b] + dB[b * L + a]) * B[a * L + b]; \
        for (an_int c = 0; c < d; c++) {                                      \
            double s = sw * lm[a * d + c];                                    \
            for (an_int b = 0; b < L; b++)                                    \
                s -= (dB[a * L + b] + dB[b * L + a]) * B[a * L + b] * lm[b * d + c]; \
            dl[a * d + c] -= 2.0 * g * s;                                     \
        }                                                                     \
    }                                                                         \
    for (an_int i = 0; i < n; i++) {                                          \
        double sw = 0;                                                        \
        for (an_int a = 0; a < L; a++) sw += dA[i * L + a];                   \
        const an_int a_i = M->mean_landmarks ?                                \
            (i < rem * (qs + 1) ? i / (qs + 1) : rem + (i - rem * (qs + 1)) / (qs > 0 ? qs : 1)) : 0; \
        const double inv = M->mean_landmarks ? 1.0 / (double)(qs + (a_i < rem)) : 0.0; \
        for (an_int c = 0; c < d; c++) {                                      \
            double s = sw * Q[i * d + c];                                     \
            for (an_int a = 0; a < L; a++) s -= dA[i * L + a] * lm[a * d + c]; \
            double dqc = -2.0 * g * s;                                        \
            if (M->mean_landmarks) dqc += dl[a_i * d + c] * inv;              \
            AN_AT(T, M->dq + i * P->dq_n, P->dq_d, c) = (T)dqc;               \
        }                                                                     \
        for (an_int x = 0; x < e; x++)                                        \
            AN_AT(T, M->dv + i * P->dv_m, P->dv_e, x) = (T)dv[i * e + x];     \
    }                                                                         \
    if (!M->mean_landmarks)                                                   \
        for (an_int a = 0; a < L; a++)                                        \
            for (an_int c = 0; c < d; c++)                                    \
                AN_AT(T, M->dlm + a * P->dlm_l, P->dlm_d, c) = (T)dl[a * d + c]; \
    free(buf);                                                                \
    return AN_OK;                                                             \
}                                                                             \
int an_soft_attention_vjp_##TS(const an_linvjp *P)                           \
{                                                                             \
    int err = AN_OK; an_int first = P->N;                                     \
    const int nt = an_num_threads();                                          \
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(nt) if (P->N > 1)") \
    for (an_int k = 0; k < P->N; k++) {                                       \
        int rc = soft_vjp_one_##TS(P, &P->mats[k]);                           \
        if (rc) {                                                             \
            _Pragma("omp critical(an_linvjp_err)")                            \
            if (k < first) { first = k; err = rc; }                           \
        }                                                                     \
    }                                                                         \
    return err;                                                               \
}
AN_SOFT_VJP(float, f)
AN_SOFT_VJP(double, d)
