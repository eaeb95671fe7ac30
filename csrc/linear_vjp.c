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
 * Pass 1 runs over the queries forwards and emits dq (S, z: O(d e)); pass 2
 * runs backwards with dS, dz (O(d e)), each key getting the sums of the
 * queries that see it; both by chunks of queries (small GEMMs, see below).
 * Accumulation in double; one matrix per thread, in a fixed order, so the
 * result is the same for every thread count.  The exp-kernel / log-space,
 * ZeroS and SOFT VJPs follow in this file.
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

/* Chunked form: queries in chunks of AN_LVJ_CHUNK rows; chunk c's keys
 * X_c = [t_{first query of c}, t_{first query of c + 1}) (at most a chunk
 * of them) are the ones its queries see only in part; keys before the first
 * query's t form X_{-1}.  Every product is a small GEMM (gemm_acc), in a
 * fixed order:
 *   pass 1, chunk by chunk: num = Qf S + mask(Qf Kf_X^T) V_X, den likewise,
 *     dQf = dnum S^T + dden z^T + mask(dnum V_X^T + dden) Kf_X, then
 *     S += Kf_X^T V_X, z += Kf_X^T 1;
 *   pass 2, chunks in reverse with the suffix dS, dz of the later chunks:
 *     dKf_X = V_X dS^T + dz + mask(dnum V_X^T + dden)^T Qf,
 *     dv_X = Kf_X dS + mask(Qf Kf_X^T)^T dnum, then dS += Qf^T dnum,
 *     dz += Qf^T dden; finally X_{-1} with the totals. */
#define AN_LVJ_CHUNK 64

/* dst (C x R) = src (R x C)^T */
static void lvj_tr(double *dst, const double *src, an_int R, an_int C)
{
    for (an_int r = 0; r < R; r++)
        for (an_int c = 0; c < C; c++) dst[c * R + r] = src[r * C + c];
}

#define AN_LINEAR_VJP(T, TS)                                                  \
static int linear_vjp_one_##TS(const an_linvjp *P, const an_linvjpmat *M)     \
{                                                                             \
    const an_int n = P->n, m = P->m, d = P->d, e = P->e, CH = AN_LVJ_CHUNK;   \
    const int fm = M->fmap, norm = M->normalize;                              \
    const an_int big = (d > e ? d : e) > CH ? (d > e ? d : e) : CH;           \
    const size_t need = (size_t)(2 * n * d + 2 * m * d + m * e + 2 * n * e + n \
                                 + 2 * d * e + 2 * d + 6 * CH * big + CH);    \
    double *buf = (double *)malloc(sizeof(double) * need);                    \
    an_int *tq = (an_int *)malloc(sizeof(an_int) * (size_t)(n + 1));          \
    if (!buf || !tq) { free(buf); free(tq); return AN_ERR_NOMEM; }            \
    double *Qf = buf, *dphq = Qf + n * d, *Kf = dphq + n * d, *dphk = Kf + m * d; \
    double *Vd = dphk + m * d, *dnum = Vd + m * e, *Gd = dnum + n * e;        \
    double *dden = Gd + n * e, *S = dden + n, *S2 = S + d * e, *z = S2 + d * e; \
    double *z2 = z + d, *w1 = z2 + d, *w2 = w1 + CH * big, *w3 = w2 + CH * big; \
    double *w4 = w3 + CH * big, *w5 = w4 + CH * big, *w6 = w5 + CH * big, *rs = w6 + CH * big; \
    for (an_int i = 0; i < n; i++) {                                          \
        const char *qr = M->q + i * P->q_n, *gr = M->g + i * P->g_n;          \
        for (an_int c = 0; c < d; c++)                                        \
            Qf[i * d + c] = lv_phi((double)AN_AT(T, qr, P->q_d, c), fm, dphq + i * d + c); \
        for (an_int x = 0; x < e; x++) Gd[i * e + x] = (double)AN_AT(T, gr, P->g_e, x); \
        tq[i] = lv_seen(i, n, m, M->causal);                                  \
    }                                                                         \
    tq[n] = m;                                                                \
    for (an_int j = 0; j < m; j++) {                                          \
        const char *kr = M->k + j * P->k_m, *vr = M->v + j * P->v_m;          \
        for (an_int c = 0; c < d; c++)                                        \
            Kf[j * d + c] = lv_phi((double)AN_AT(T, kr, P->k_d, c), fm, dphk + j * d + c); \
        for (an_int x = 0; x < e; x++) Vd[j * e + x] = (double)AN_AT(T, vr, P->v_e, x); \
    }                                                                         \
    if (fm == AN_FMAP_EXP) {                                                  \
        /* phi = exp with the shifts b_c = max_j k_jc and a_i = max_c (q_ic +  \
         * b_c), which cancel in o (held constant: o does not depend on      \
         * them); phi' = phi.  The caller checks that no term underflows. */ \
        double *bc = z2;                                                      \
        for (an_int c = 0; c < d; c++) bc[c] = m > 0 ? -INFINITY : 0.0;       \
        for (an_int j = 0; j < m; j++)                                        \
            for (an_int c = 0; c < d; c++) bc[c] = Kf[j * d + c] > bc[c] ? Kf[j * d + c] : bc[c]; \
        for (an_int j = 0; j < m; j++)                                        \
            for (an_int c = 0; c < d; c++) dphk[j * d + c] = Kf[j * d + c] = exp(Kf[j * d + c] - bc[c]); \
        for (an_int i = 0; i < n; i++) {                                      \
            double a = -INFINITY;                                             \
            for (an_int c = 0; c < d; c++) a = Qf[i * d + c] + bc[c] > a ? Qf[i * d + c] + bc[c] : a; \
            for (an_int c = 0; c < d; c++)                                    \
                dphq[i * d + c] = Qf[i * d + c] = exp(Qf[i * d + c] + bc[c] - a); \
        }                                                                     \
    }                                                                         \
    const an_int nch = (n + CH - 1) / CH;                                     \
    /* S, z over X_{-1} = [0, t_0) */                                         \
    const an_int x_first = n > 0 ? tq[0] : m;                                 \
    for (an_int x = 0; x < d * e + d; x++) S[x] = 0;   /* S and S2 */         \
    for (an_int x = 0; x < 2 * d; x++) z[x] = 0;                              \
    if (x_first > 0) {                                                        \
        for (an_int j0 = 0; j0 < x_first; j0 += CH) {                         \
            const an_int w = x_first - j0 < CH ? x_first - j0 : CH;           \
            lvj_tr(w1, Kf + j0 * d, w, d);                                    \
            an_vd->gemm_acc(S, e, w1, w, Vd + j0 * e, e, d, e, w);            \
            for (an_int j = j0; j < j0 + w; j++)                              \
                for (an_int c = 0; c < d; c++) z[c] += Kf[j * d + c];         \
        }                                                                     \
    }                                                                         \
    double deps = 0;                                                          \
    /* pass 1 */                                                              \
    for (an_int ch = 0; ch < nch; ch++) {                                     \
        const an_int i0 = ch * CH, R = n - i0 < CH ? n - i0 : CH;             \
        const an_int x0 = tq[i0], x1 = tq[i0 + R], w = x1 - x0;               \
        const double *Qc = Qf + i0 * d;                                       \
        double *num = w2, *Pm = w3, *dP = w4, *dQ = w5;                       \
        for (an_int x = 0; x < R * e; x++) num[x] = 0;                        \
        an_vd->gemm_acc(num, e, Qc, d, S, e, R, e, d);                        \
        for (an_int r = 0; r < R; r++) {                                      \
            double dz = 0;                                                    \
            for (an_int c = 0; c < d; c++) dz += Qc[r * d + c] * z[c];        \
            rs[r] = dz;                                                       \
        }                                                                     \
        if (w > 0) {                                                          \
            lvj_tr(w1, Kf + x0 * d, w, d);                 /* Kf_X^T */       \
            for (an_int x = 0; x < R * w; x++) Pm[x] = 0;                     \
            an_vd->gemm_acc(Pm, w, Qc, d, w1, w, R, w, d);                    \
            for (an_int r = 0; r < R; r++)                                    \
                for (an_int j = 0; j < w; j++)                                \
                    if (x0 + j >= tq[i0 + r]) Pm[r * w + j] = 0;              \
            an_vd->gemm_acc(num, e, Pm, w, Vd + x0 * e, e, R, e, w);          \
            for (an_int r = 0; r < R; r++)                                    \
                for (an_int j = 0; j < w; j++) rs[r] += Pm[r * w + j];        \
        }                                                                     \
        for (an_int r = 0; r < R; r++) {                                      \
            const an_int i = i0 + r;                                          \
            double *dn = dnum + i * e;                                        \
            const double *gi = Gd + i * e;                                    \
            if (tq[i] == 0) {                                                 \
                for (an_int x = 0; x < e; x++) dn[x] = 0;                     \
                dden[i] = 0; continue;                                        \
            }                                                                 \
            const double den = norm ? rs[r] + M->eps : 1.0;                   \
            double go = 0;                                                    \
            for (an_int x = 0; x < e; x++) { dn[x] = gi[x] / den; go += gi[x] * (num[r * e + x] / den); } \
            dden[i] = norm ? -go / den : 0.0;                                 \
            deps += dden[i];                                                  \
        }                                                                     \
        /* dQf = dnum S^T + dden z^T + mask(dnum V_X^T + dden) Kf_X */        \
        lvj_tr(S2, S, d, e);                              /* S^T (e x d) */   \
        for (an_int x = 0; x < R * d; x++) dQ[x] = 0;                         \
        an_vd->gemm_acc(dQ, d, dnum + i0 * e, e, S2, d, R, d, e);             \
        for (an_int r = 0; r < R; r++)                                        \
            for (an_int c = 0; c < d; c++) dQ[r * d + c] += dden[i0 + r] * z[c]; \
        if (w > 0) {                                                          \
            lvj_tr(w6, Vd + x0 * e, w, e);                /* V_X^T */         \
            for (an_int x = 0; x < R * w; x++) dP[x] = 0;                     \
            an_vd->gemm_acc(dP, w, dnum + i0 * e, e, w6, w, R, w, e);         \
            for (an_int r = 0; r < R; r++)                                    \
                for (an_int j = 0; j < w; j++)                                \
                    dP[r * w + j] = x0 + j < tq[i0 + r] ? dP[r * w + j] + dden[i0 + r] : 0.0; \
            an_vd->gemm_acc(dQ, d, dP, w, Kf + x0 * d, d, R, d, w);           \
            /* S += Kf_X^T V_X, z += Kf_X^T 1 */                              \
            an_vd->gemm_acc(S, e, w1, w, Vd + x0 * e, e, d, e, w);            \
            for (an_int j = x0; j < x1; j++)                                  \
                for (an_int c = 0; c < d; c++) z[c] += Kf[j * d + c];         \
        }                                                                     \
        for (an_int r = 0; r < R; r++) {                                      \
            char *dqr = M->dq + (i0 + r) * P->dq_n;                           \
            for (an_int c = 0; c < d; c++)                                    \
                AN_AT(T, dqr, P->dq_d, c) = (T)(dQ[r * d + c] * dphq[(i0 + r) * d + c]); \
        }                                                                     \
    }                                                                         \
    /* pass 2: dS in S, dz in z (suffix over the later chunks) */             \
    for (an_int x = 0; x < d * e; x++) S[x] = 0;                              \
    for (an_int x = 0; x < d; x++) z[x] = 0;                                  \
    for (an_int ch = nch - 1; ch >= -1; ch--) {                               \
        const an_int i0 = ch >= 0 ? ch * CH : 0;                              \
        const an_int R = ch >= 0 ? (n - i0 < CH ? n - i0 : CH) : 0;           \
        const an_int x0 = ch >= 0 ? tq[i0] : 0, x1 = ch >= 0 ? tq[i0 + R] : x_first; \
        const double *Qc = Qf + i0 * d, *dnc = dnum + i0 * e;                 \
        lvj_tr(S2, S, d, e);                              /* dS^T */          \
        for (an_int j0 = x0; j0 < x1; j0 += CH) {                             \
            const an_int w = x1 - j0 < CH ? x1 - j0 : CH;                     \
            double *dK = w2, *dV = w3, *Pm = w4, *dP = w5;                    \
            for (an_int x = 0; x < w * d; x++) dK[x] = 0;                     \
            for (an_int x = 0; x < w * e; x++) dV[x] = 0;                     \
            an_vd->gemm_acc(dK, d, Vd + j0 * e, e, S2, d, w, d, e);           \
            an_vd->gemm_acc(dV, e, Kf + j0 * d, d, S, e, w, e, d);            \
            for (an_int j = 0; j < w; j++)                                    \
                for (an_int c = 0; c < d; c++) dK[j * d + c] += z[c];         \
            if (R > 0) {                                                      \
                /* mask(Qf Kf_X^T) (R x w) and mask(dnum V_X^T + dden) */     \
                lvj_tr(w1, Kf + j0 * d, w, d);                                \
                for (an_int x = 0; x < R * w; x++) Pm[x] = dP[x] = 0;         \
                an_vd->gemm_acc(Pm, w, Qc, d, w1, w, R, w, d);                \
                lvj_tr(w6, Vd + j0 * e, w, e);                                \
                an_vd->gemm_acc(dP, w, dnc, e, w6, w, R, w, e);               \
                for (an_int r = 0; r < R; r++)                                \
                    for (an_int j = 0; j < w; j++) {                          \
                        const int seen = j0 + j < tq[i0 + r];                 \
                        Pm[r * w + j] = seen ? Pm[r * w + j] : 0.0;           \
                        dP[r * w + j] = seen ? dP[r * w + j] + dden[i0 + r] : 0.0; \
                    }                                                         \
                lvj_tr(w1, dP, R, w);                     /* (w x R) */       \
                an_vd->gemm_acc(dK, d, w1, R, Qc, d, w, d, R);                \
                lvj_tr(w1, Pm, R, w);                                         \
                an_vd->gemm_acc(dV, e, w1, R, dnc, e, w, e, R);               \
            }                                                                 \
            for (an_int j = 0; j < w; j++) {                                  \
                char *dkr = M->dk + (j0 + j) * P->dk_m, *dvr = M->dv + (j0 + j) * P->dv_m; \
                for (an_int c = 0; c < d; c++)                                \
                    AN_AT(T, dkr, P->dk_d, c) = (T)(dK[j * d + c] * dphk[(j0 + j) * d + c]); \
                for (an_int x = 0; x < e; x++) AN_AT(T, dvr, P->dv_e, x) = (T)dV[j * e + x]; \
            }                                                                 \
        }                                                                     \
        if (R > 0) {                                      /* dS += Qf^T dnum */ \
            lvj_tr(w1, Qc, R, d);                                             \
            an_vd->gemm_acc(S, e, w1, R, dnc, e, d, e, R);                    \
            for (an_int r = 0; r < R; r++)                                    \
                for (an_int c = 0; c < d; c++) z[c] += dden[i0 + r] * Qc[r * d + c]; \
        }                                                                     \
    }                                                                         \
    if (M->deps) *(T *)M->deps = (T)deps;                                     \
    free(buf); free(tq);                                                      \
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

/* The shifted exp map of linear_vjp_one is exact when every score is finite
 * and, per feature, the keys lie within 600 of their maximum: each query's
 * largest term over the keys it sees is then >= e^-600 (no underflow, and
 * the denominator, a sum of positive terms, keeps full relative precision). */
#define AN_EXP_SAFE(T, TS)                                                    \
static int exp_shift_safe_##TS(const an_linvjp *P, const an_linvjpmat *M)     \
{                                                                             \
    const an_int n = P->n, m = P->m, d = P->d;                                \
    if (d == 0) return 0;                         /* no features: 0 / 0 */    \
    for (an_int c = 0; c < d; c++) {                                          \
        double lo = INFINITY, hi = -INFINITY;                                 \
        for (an_int j = 0; j < m; j++) {                                      \
            const double x = (double)AN_AT(T, M->k + j * P->k_m, P->k_d, c);  \
            if (!(x - x == 0)) return 0;                                      \
            lo = x < lo ? x : lo; hi = x > hi ? x : hi;                       \
        }                                                                     \
        if (m > 0 && hi - lo > 600.0) return 0;                               \
        for (an_int i = 0; i < n; i++) {                                      \
            const double x = (double)AN_AT(T, M->q + i * P->q_n, P->q_d, c);  \
            if (!(x - x == 0)) return 0;                                      \
        }                                                                     \
    }                                                                         \
    return 1;                                                                 \
}
AN_EXP_SAFE(float, f)
AN_EXP_SAFE(double, d)

#define AN_EXP_VJP(T, TS)                                                     \
static int exp_vjp_one_##TS(const an_linvjp *P, const an_linvjpmat *M)        \
{                                                                             \
    const an_int n = P->n, m = P->m, d = P->d, e = P->e, de = d * e;          \
    const an_int ew = e;                                                      \
    if (!M->has_state && !M->has_gstate && exp_shift_safe_##TS(P, M)) {      \
        /* no state: the chunked linear form with the shifted exp map */     \
        an_linvjpmat L = *M;                                                  \
        L.fmap = AN_FMAP_EXP; L.normalize = 1; L.eps = 0; L.deps = NULL;      \
        for (an_int c = 0; c < d; c++)                                        \
            for (an_int x = 0; x < 4 * e + 2; x++)                            \
                AN_AT(T, M->dst + c * P->dst_d, P->dst_w, x) = 0;             \
        return linear_vjp_one_##TS(P, &L);                                    \
    }                                                                         \
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
/* Chunked as linear_attention_vjp: prefix sums F, G, H (H relative to the
 * maximum Rc of the logits before the chunk) over the keys every query of a
 * chunk sees, the chunk's own keys X through masked small GEMMs with the
 * explicit weights r_{t,i} = alpha_t + beta_t s_i + sh e^{s_i - log Z_t}. */
/* out[r] = <row r of A, row r of B> (R x C each) */
static void zvj_rowdot(const double *A, const double *B, an_int R, an_int C, double *out)
{
    for (an_int r = 0; r < R; r++) {
        double s = 0;
        for (an_int c = 0; c < C; c++) s += A[r * C + c] * B[r * C + c];
        out[r] = s;
    }
}

#define AN_ZEROS_VJP(T, TS)                                                   \
static int zeros_vjp_one_##TS(const an_linvjp *P, const an_linvjpmat *M)      \
{                                                                             \
    const an_int n = P->n, m = P->m, d = P->d, e = P->e, de = d * e, CH = AN_LVJ_CHUNK; \
    const double g1 = M->g_lin, gh = M->g_soft;                               \
    const an_int big = (d > e ? d : e) > CH ? (d > e ? d : e) : CH;           \
    const size_t need = (size_t)(n * d + m * d + m * e + n * e + m + 2 * (m + 1) \
                                 + 8 * n + 6 * de + 12 * CH * big + 7 * CH);  \
    double *buf = (double *)malloc(sizeof(double) * need);                    \
    an_int *tq = (an_int *)malloc(sizeof(an_int) * (size_t)(n + 1));          \
    if (!buf || !tq) { free(buf); free(tq); return AN_ERR_NOMEM; }            \
    double *Qd = buf, *Kd = Qd + n * d, *Vd = Kd + m * d, *Od = Vd + m * e, *Sd = Od + n * e; \
    double *cs = Sd + m, *cz = cs + (m + 1);          /* prefix sum of s, log-sum-exp */ \
    double *al = cz + (m + 1), *be = al + n, *lZ = be + n, *sb = lZ + n;      \
    double *dal = sb + n, *dbe = dal + n, *hz = dbe + n, *as = hz + n;        \
    double *F = as + n, *Gm = F + de, *Hm = Gm + de, *T1 = Hm + de, *T2 = T1 + de, *T3 = T2 + de; \
    double *w1 = T3 + de, *w2 = w1 + CH * big, *w3 = w2 + CH * big, *w4 = w3 + CH * big; \
    double *w5 = w4 + CH * big, *w6 = w5 + CH * big, *w7 = w6 + CH * big, *w8 = w7 + CH * big; \
    double *w9 = w8 + CH * big, *w10 = w9 + CH * big, *w11 = w10 + CH * big, *w12 = w11 + CH * big; \
    double *v1 = w12 + CH * big, *v2 = v1 + CH, *v3 = v2 + CH, *v4 = v3 + CH; \
    double *v5 = v4 + CH, *v6 = v5 + CH, *v7 = v6 + CH;                       \
    for (an_int i = 0; i < n; i++) {                                          \
        const char *qr = M->q + i * P->q_n, *gr = M->g + i * P->g_n;          \
        for (an_int c = 0; c < d; c++) Qd[i * d + c] = (double)AN_AT(T, qr, P->q_d, c); \
        for (an_int x = 0; x < e; x++) Od[i * e + x] = (double)AN_AT(T, gr, P->g_e, x); \
        tq[i] = lv_seen(i, n, m, M->causal);                                  \
    }                                                                         \
    tq[n] = m;                                                                \
    cs[0] = 0; cz[0] = -INFINITY;                                             \
    for (an_int j = 0; j < m; j++) {                                          \
        const char *kr = M->k + j * P->k_m, *vr = M->v + j * P->v_m;          \
        for (an_int c = 0; c < d; c++) Kd[j * d + c] = (double)AN_AT(T, kr, P->k_d, c); \
        for (an_int x = 0; x < e; x++) Vd[j * e + x] = (double)AN_AT(T, vr, P->v_e, x); \
        Sd[j] = (double)AN_AT(T, M->s, P->s_m, j);                            \
        cs[j + 1] = cs[j] + Sd[j];                                            \
        const double a = cz[j], b = Sd[j], mx = a > b ? a : b;                \
        cz[j + 1] = mx + log(exp(a - mx) + exp(b - mx));                      \
    }                                                                         \
    for (an_int t = 0; t < n; t++) {                                          \
        const double cnt = (double)tq[t];                                     \
        if (tq[t] == 0) { al[t] = be[t] = sb[t] = 0; lZ[t] = INFINITY; continue; } \
        sb[t] = cs[tq[t]] / cnt;                                              \
        lZ[t] = cz[tq[t]];                                                    \
        al[t] = -(g1 - gh) * sb[t] / cnt - gh / cnt;                          \
        be[t] = (g1 - gh) / cnt;                                              \
    }                                                                         \
    const an_int nch = (n + CH - 1) / CH, x_first = n > 0 ? tq[0] : m;        \
    /* prefix F, G, H over keys [0, x_first), H relative to Rc */             \
    for (an_int x = 0; x < 3 * de; x++) F[x] = 0;                             \
    double Rc = -INFINITY;                                                    \
    double dg1 = 0, dgh = 0;                                                  \
    for (an_int ch = -1; ch < nch; ch++) {                                    \
        const an_int i0 = ch >= 0 ? ch * CH : 0;                              \
        const an_int R = ch >= 0 ? (n - i0 < CH ? n - i0 : CH) : 0;           \
        const an_int x0 = ch >= 0 ? tq[i0] : 0, x1 = ch >= 0 ? tq[i0 + R] : x_first; \
        const an_int w = x1 - x0;                                             \
        const double *Qc = Qd + i0 * d, *Oc = Od + i0 * e;                    \
        if (R > 0) {                                                          \
            /* prefix part: OF = Omega F^T, OG, OH (R x d) */                 \
            lvj_tr(T1, F, d, e); lvj_tr(T2, Gm, d, e); lvj_tr(T3, Hm, d, e);  \
            double *OF = w1, *OG = w2, *OH = w3, *dQ = w4;                    \
            for (an_int x = 0; x < R * d; x++) OF[x] = OG[x] = OH[x] = 0;     \
            an_vd->gemm_acc(OF, d, Oc, e, T1, d, R, d, e);                    \
            an_vd->gemm_acc(OG, d, Oc, e, T2, d, R, d, e);                    \
            an_vd->gemm_acc(OH, d, Oc, e, T3, d, R, d, e);                    \
            zvj_rowdot(Qc, OF, R, d, v1); zvj_rowdot(Qc, OG, R, d, v2); zvj_rowdot(Qc, OH, R, d, v3); \
            for (an_int r = 0; r < R; r++) {                                  \
                const an_int t = i0 + r;                                      \
                const double gt = tq[t] > 0 && Rc > -INFINITY ? gh * exp(Rc - lZ[t]) : 0.0; \
                for (an_int c = 0; c < d; c++)                                \
                    dQ[r * d + c] = tq[t] > 0 ? al[t] * OF[r * d + c] + be[t] * OG[r * d + c] + gt * OH[r * d + c] : 0.0; \
                dal[t] = tq[t] > 0 ? v1[r] : 0.0;                             \
                dbe[t] = tq[t] > 0 ? v2[r] : 0.0;                             \
                hz[t] = tq[t] > 0 && Rc > -INFINITY ? v3[r] * exp(Rc - lZ[t]) : 0.0; \
            }                                                                 \
            if (w > 0) {                                                      \
                /* intra: QK = Q K_X^T, OV = Omega V_X^T (R x w), masked */   \
                double *QK = w5, *OV = w6, *Rw = w7;                          \
                lvj_tr(w8, Kd + x0 * d, w, d); lvj_tr(w9, Vd + x0 * e, w, e); \
                for (an_int x = 0; x < R * w; x++) QK[x] = OV[x] = 0;         \
                an_vd->gemm_acc(QK, w, Qc, d, w8, w, R, w, d);                \
                an_vd->gemm_acc(OV, w, Oc, e, w9, w, R, w, e);                \
                for (an_int r = 0; r < R; r++) {                              \
                    const an_int t = i0 + r;                                  \
                    for (an_int j = 0; j < w; j++) {                          \
                        const an_int jj = x0 + j;                             \
                        const int seen = jj < tq[t];                          \
                        const double ez = seen ? exp(Sd[jj] - lZ[t]) : 0.0;   \
                        const double p = seen ? QK[r * w + j] * OV[r * w + j] : 0.0; \
                        Rw[r * w + j] = seen ? (al[t] + be[t] * Sd[jj] + gh * ez) * OV[r * w + j] : 0.0; \
                        dal[t] += p; dbe[t] += Sd[jj] * p; hz[t] += ez * p;   \
                    }                                                         \
                }                                                             \
                an_vd->gemm_acc(dQ, d, Rw, w, Kd + x0 * d, d, R, d, w);       \
            }                                                                 \
            for (an_int r = 0; r < R; r++) {                                  \
                const an_int t = i0 + r;                                      \
                char *dqr = M->dq + t * P->dq_n;                              \
                for (an_int c = 0; c < d; c++) AN_AT(T, dqr, P->dq_d, c) = (T)dQ[r * d + c]; \
                if (tq[t] == 0) { as[t] = 0; hz[t] = 0; continue; }           \
                const double cnt = (double)tq[t];                             \
                dg1 += dal[t] * (-sb[t] / cnt) + dbe[t] / cnt;                \
                dgh += dal[t] * (sb[t] - 1.0) / cnt - dbe[t] / cnt + hz[t];   \
                as[t] = -dal[t] * (g1 - gh) / (cnt * cnt);                    \
                hz[t] = -gh * hz[t];          /* czt: e^{s_i} dZ_t = czt e^{s_i} / Z_t */ \
            }                                                                 \
        }                                                                     \
        /* add keys X to F, G, H */                                           \
        for (an_int j0 = x0; j0 < x1; j0 += CH) {                             \
            const an_int ww = x1 - j0 < CH ? x1 - j0 : CH;                    \
            double mx = Rc;                                                   \
            for (an_int j = j0; j < j0 + ww; j++) mx = Sd[j] > mx ? Sd[j] : mx; \
            if (mx > Rc) {                                                    \
                const double sc = Rc == -INFINITY ? 0.0 : exp(Rc - mx);       \
                for (an_int x = 0; x < de; x++) Hm[x] *= sc;                  \
                Rc = mx;                                                      \
            }                                                                 \
            double *KT = w1, *KS = w2, *KE = w3;                              \
            lvj_tr(KT, Kd + j0 * d, ww, d);                                   \
            for (an_int c = 0; c < d; c++)                                    \
                for (an_int j = 0; j < ww; j++) {                             \
                    KS[c * ww + j] = KT[c * ww + j] * Sd[j0 + j];             \
                    KE[c * ww + j] = KT[c * ww + j] * exp(Sd[j0 + j] - Rc);   \
                }                                                             \
            an_vd->gemm_acc(F, e, KT, ww, Vd + j0 * e, e, d, e, ww);          \
            an_vd->gemm_acc(Gm, e, KS, ww, Vd + j0 * e, e, d, e, ww);         \
            an_vd->gemm_acc(Hm, e, KE, ww, Vd + j0 * e, e, d, e, ww);         \
        }                                                                     \
    }                                                                         \
    *(T *)M->dg1 = (T)dg1; *(T *)M->dgh = (T)dgh;                             \
    /* pass 2: suffix Da, Db (F, Gm), Dg relative to Lref (Hm); scalars */    \
    for (an_int x = 0; x < 3 * de; x++) F[x] = 0;                             \
    double Lref = INFINITY, scz = 0, sas = 0;                                 \
    for (an_int ch = nch - 1; ch >= -1; ch--) {                               \
        const an_int i0 = ch >= 0 ? ch * CH : 0;                              \
        const an_int R = ch >= 0 ? (n - i0 < CH ? n - i0 : CH) : 0;           \
        const an_int x0 = ch >= 0 ? tq[i0] : 0, x1 = ch >= 0 ? tq[i0 + R] : x_first; \
        const double *Qc = Qd + i0 * d, *Oc = Od + i0 * e;                    \
        lvj_tr(T1, F, d, e); lvj_tr(T2, Gm, d, e); lvj_tr(T3, Hm, d, e);      \
        for (an_int j0 = x0; j0 < x1; j0 += CH) {                             \
            const an_int w = x1 - j0 < CH ? x1 - j0 : CH;                     \
            const double *Kx = Kd + j0 * d, *Vx = Vd + j0 * e, *sx = Sd + j0; \
            double *A1 = w1, *A2 = w2, *A3 = w3, *B1 = w4, *B2 = w5, *B3 = w6; \
            for (an_int x = 0; x < w * d; x++) A1[x] = A2[x] = A3[x] = 0;     \
            for (an_int x = 0; x < w * e; x++) B1[x] = B2[x] = B3[x] = 0;     \
            an_vd->gemm_acc(A1, d, Vx, e, T1, d, w, d, e);      /* V Da^T */  \
            an_vd->gemm_acc(A2, d, Vx, e, T2, d, w, d, e);                    \
            an_vd->gemm_acc(A3, d, Vx, e, T3, d, w, d, e);                    \
            an_vd->gemm_acc(B1, e, Kx, d, F, e, w, e, d);       /* K Da */    \
            an_vd->gemm_acc(B2, e, Kx, d, Gm, e, w, e, d);                    \
            an_vd->gemm_acc(B3, e, Kx, d, Hm, e, w, e, d);                    \
            zvj_rowdot(B2, Vx, w, e, v4); zvj_rowdot(B3, Vx, w, e, v5);       \
            double *dK = w7, *dV = w8;                                        \
            for (an_int j = 0; j < w; j++) {                                  \
                const double fj = Lref == INFINITY ? 0.0 : exp(sx[j] - Lref); \
                for (an_int c = 0; c < d; c++)                                \
                    dK[j * d + c] = A1[j * d + c] + sx[j] * A2[j * d + c] + fj * A3[j * d + c]; \
                for (an_int x = 0; x < e; x++)                                \
                    dV[j * e + x] = B1[j * e + x] + sx[j] * B2[j * e + x] + fj * B3[j * e + x]; \
                v6[j] = v4[j] + fj * v5[j] + fj * scz + sas;       /* ds */   \
            }                                                                 \
            if (R > 0) {                                                      \
                double *QK = w9, *OV = w10, *RO = w11, *RQ = w12;             \
                lvj_tr(w1, Kx, w, d); lvj_tr(w2, Vx, w, e);                   \
                for (an_int x = 0; x < R * w; x++) QK[x] = OV[x] = 0;         \
                an_vd->gemm_acc(QK, w, Qc, d, w1, w, R, w, d);                \
                an_vd->gemm_acc(OV, w, Oc, e, w2, w, R, w, e);                \
                /* RO (w x R) = (r * OV)^T, RQ = (r * QK)^T, masked; ds terms */ \
                for (an_int j = 0; j < w; j++) v7[j] = 0;                     \
                for (an_int r = 0; r < R; r++) {                              \
                    const an_int t = i0 + r;                                  \
                    for (an_int j = 0; j < w; j++) {                          \
                        const int seen = j0 + j < tq[t];                      \
                        const double ez = seen ? exp(sx[j] - lZ[t]) : 0.0;    \
                        const double rr = seen ? al[t] + be[t] * sx[j] + gh * ez : 0.0; \
                        RO[j * R + r] = rr * OV[r * w + j];                   \
                        RQ[j * R + r] = rr * QK[r * w + j];                   \
                        if (seen)                                             \
                            v7[j] += (be[t] + gh * ez) * QK[r * w + j] * OV[r * w + j] \
                                   + hz[t] * ez + as[t];                      \
                    }                                                         \
                }                                                             \
                an_vd->gemm_acc(dK, d, RO, R, Qc, d, w, d, R);                \
                an_vd->gemm_acc(dV, e, RQ, R, Oc, e, w, e, R);                \
                for (an_int j = 0; j < w; j++) v6[j] += v7[j];                \
            }                                                                 \
            for (an_int j = 0; j < w; j++) {                                  \
                char *dkr = M->dk + (j0 + j) * P->dk_m, *dvr = M->dv + (j0 + j) * P->dv_m; \
                for (an_int c = 0; c < d; c++) AN_AT(T, dkr, P->dk_d, c) = (T)dK[j * d + c]; \
                for (an_int x = 0; x < e; x++) AN_AT(T, dvr, P->dv_e, x) = (T)dV[j * e + x]; \
                AN_AT(T, M->ds, P->ds_m, j0 + j) = (T)v6[j];                  \
            }                                                                 \
        }                                                                     \
        /* add the chunk's queries to the suffix sums */                      \
        if (R > 0) {                                                          \
            double lmin = Lref;                                               \
            for (an_int r = 0; r < R; r++) lmin = lZ[i0 + r] < lmin ? lZ[i0 + r] : lmin; \
            if (lmin < Lref) {                                                \
                const double sc = Lref == INFINITY ? 0.0 : exp(lmin - Lref);  \
                for (an_int x = 0; x < de; x++) Hm[x] *= sc;                  \
                scz *= sc; Lref = lmin;                                       \
            }                                                                 \
            double *QT = w1, *OA = w2, *OB = w3, *OC = w4;                    \
            lvj_tr(QT, Qc, R, d);                                             \
            for (an_int r = 0; r < R; r++) {                                  \
                const an_int t = i0 + r;                                      \
                const double wg = tq[t] > 0 ? gh * exp(Lref - lZ[t]) : 0.0;   \
                for (an_int x = 0; x < e; x++) {                              \
                    OA[r * e + x] = al[t] * Oc[r * e + x];                    \
                    OB[r * e + x] = be[t] * Oc[r * e + x];                    \
                    OC[r * e + x] = wg * Oc[r * e + x];                       \
                }                                                             \
                if (tq[t] > 0) { scz += hz[t] * exp(Lref - lZ[t]); sas += as[t]; } \
            }                                                                 \
            an_vd->gemm_acc(F, e, QT, R, OA, e, d, e, R);                     \
            an_vd->gemm_acc(Gm, e, QT, R, OB, e, d, e, R);                    \
            an_vd->gemm_acc(Hm, e, QT, R, OC, e, d, e, R);                    \
        }                                                                     \
    }                                                                         \
    free(buf); free(tq);                                                      \
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
