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
 * ZeroS and SOFT VJPs are described below; the kernels are in
 * linear_vjp_impl.inc.
 */
#include <stdlib.h>
#include <string.h>
#include "linear.h"
#include "linear_vjp.h"
#include "an_simd.h"
#include "an_gemm.h"

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
    an_gemm->gemm_acc_d(C, N, A, K, B, N, M, N, K);
}
static void lv_tr(double *D, const double *S, an_int R, an_int C)
{
    for (an_int r = 0; r < R; r++)
        for (an_int c = 0; c < C; c++) D[c * R + r] = S[r * C + c];
}

/* Run one(P, matrix) on every matrix of P, one matrix per thread; the error
 * of the first failing matrix. */
static int lvj_each(const an_linvjp *P, int (*one)(const an_linvjp *, const an_linvjpmat *))
{
    int err = AN_OK;
    an_int first = P->N;
    const int nt = an_num_threads();
    (void)nt;   /* unused without OpenMP */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (P->N > 1)
    for (an_int k = 0; k < P->N; k++) {
        int rc = one(P, &P->mats[k]);
        if (rc) {
#pragma omp critical(an_linvjp_err)
            if (k < first) { first = k; err = rc; }
        }
    }
    return err;
}

#define AN_TEMPLATE "linear_vjp_impl.inc"
#include "an_template.h"
