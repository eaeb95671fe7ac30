/*
 * glue_linear.c -- gufunc loops of the linear-time attention family: they
 * unpack pointers, sizes and byte strides into an an_linprob (linear.h),
 * call the kernel, and raise its error.  No computation here.
 */
#include "glue_linear.h"
#include "linear.h"

/* Allocate the per-matrix array, run `fill` for each matrix k (with the
 * macros ARG(a) = operand a of matrix k, I64(a) / REAL(a) = its () value),
 * call the kernel, raise on error. */
#define ARG(a) (args[a] + k * steps[a])
#define I64(a) (*(const int64_t *)ARG(a))
#define REAL(a) ((double)*(const real_t *)ARG(a))

#define AN_LIN_LOOP(name, TS, T, kernel, setup, fill)                         \
void name##_loop_##TS(char **args, npy_intp const *dims,                      \
                      npy_intp const *steps, void *data)                      \
{                                                                             \
    typedef T real_t; (void)sizeof(real_t);                                   \
    (void)data;                                                               \
    const npy_intp N = dims[0];                                               \
    if (N <= 0) return;                                                       \
    an_linprob P;                                                             \
    memset(&P, 0, sizeof(P));                                                 \
    P.N = N;                                                                  \
    setup                                                                     \
    an_linmat *mats = (an_linmat *)calloc((size_t)N, sizeof(an_linmat));      \
    if (!mats) { an_raise(AN_ERR_NOMEM, #name, 0); return; }                  \
    for (npy_intp k = 0; k < N; k++) {                                        \
        an_linmat *M = &mats[k];                                              \
        fill                                                                  \
    }                                                                         \
    P.mats = mats;                                                            \
    int rc = kernel##_##TS(&P);   /* NumPy calls loops without the GIL */  \
    free(mats);                                                               \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, #name, 0);                                           \
}

/* linear_attention: (n,d),(m,d),(m,e),(),(),() -> (n,e)
 *   q, k, v, feature_map, causal, eps -> out */
#define LINEAR_ATTENTION_LOOP(TS, T)                                          \
AN_LIN_LOOP(linear_attention, TS, T, an_linear_attention,                     \
    const npy_intp *cs = steps + 7;                                           \
    P.n = dims[1]; P.d = dims[2]; P.m = dims[3]; P.e = dims[4];               \
    P.q_n = cs[0]; P.q_d = cs[1]; P.k_m = cs[2]; P.k_d = cs[3];               \
    P.v_m = cs[4]; P.v_e = cs[5]; P.o_n = cs[6]; P.o_e = cs[7];,              \
    M->q = ARG(0); M->k = ARG(1); M->v = ARG(2);                              \
    M->fmap = (int)I64(3); M->causal = an_causal_code(I64(4)); M->eps = REAL(5);         \
    M->normalize = 1; M->out = ARG(6);)
LINEAR_ATTENTION_LOOP(f, float)
LINEAR_ATTENTION_LOOP(d, double)

/* cheap_linear_attention: (m,k),(n,k),() -> (n,k)   h, q, causal -> r.
 * r_i = sum_j h_j (h_j . q_i): linear attention with identity features,
 * keys = values = h, no denominator. */
#define CHEAP_LINEAR_LOOP(TS, T)                                              \
AN_LIN_LOOP(cheap_linear, TS, T, an_linear_attention,                         \
    const npy_intp *cs = steps + 4;                                           \
    P.m = dims[1]; P.d = P.e = dims[2]; P.n = dims[3];                        \
    P.k_m = P.v_m = cs[0]; P.k_d = P.v_e = cs[1];                             \
    P.q_n = cs[2]; P.q_d = cs[3]; P.o_n = cs[4]; P.o_e = cs[5];,              \
    M->k = M->v = ARG(0); M->q = ARG(1); M->causal = an_causal_code(I64(2));             \
    M->fmap = AN_FMAP_IDENTITY; M->normalize = 0; M->out = ARG(3);)
CHEAP_LINEAR_LOOP(f, float)
CHEAP_LINEAR_LOOP(d, double)

/* log_attention: (n,d),(m,d),(m,e),(d,w),(),() -> (n,e),(d,w)
 *   q, k, v, state, causal, has_state -> out, new state   (w = 4e + 2) */
#define LOG_ATTENTION_LOOP(TS, T)                                             \
AN_LIN_LOOP(log_attention, TS, T, an_log_attention,                           \
    const npy_intp *cs = steps + 8;                                           \
    P.n = dims[1]; P.d = dims[2]; P.m = dims[3]; P.e = dims[4];               \
    P.q_n = cs[0]; P.q_d = cs[1]; P.k_m = cs[2]; P.k_d = cs[3];               \
    P.v_m = cs[4]; P.v_e = cs[5]; P.si_d = cs[6]; P.si_w = cs[7];             \
    P.o_n = cs[8]; P.o_e = cs[9]; P.so_d = cs[10]; P.so_w = cs[11];,          \
    M->q = ARG(0); M->k = ARG(1); M->v = ARG(2); M->st_in = ARG(3);           \
    M->causal = an_causal_code(I64(4)); M->has_state = I64(5) != 0;                     \
    M->out = ARG(6); M->st_out = ARG(7);)
LOG_ATTENTION_LOOP(f, float)
LOG_ATTENTION_LOOP(d, double)

/* zeros_attention: (n,d),(m,d),(m,e),(m),(),(),() -> (n,e)
 *   q, k, v, s, gate_linear, gate_softmax, causal -> out */
#define ZEROS_ATTENTION_LOOP(TS, T)                                           \
AN_LIN_LOOP(zeros_attention, TS, T, an_zeros_attention,                       \
    const npy_intp *cs = steps + 8;                                           \
    P.n = dims[1]; P.d = dims[2]; P.m = dims[3]; P.e = dims[4];               \
    P.q_n = cs[0]; P.q_d = cs[1]; P.k_m = cs[2]; P.k_d = cs[3];               \
    P.v_m = cs[4]; P.v_e = cs[5]; P.s_m = cs[6]; P.o_n = cs[7]; P.o_e = cs[8];, \
    M->q = ARG(0); M->k = ARG(1); M->v = ARG(2); M->s = ARG(3);               \
    M->g_lin = REAL(4); M->g_soft = REAL(5); M->causal = an_causal_code(I64(6));         \
    M->out = ARG(7);)
ZEROS_ATTENTION_LOOP(f, float)
ZEROS_ATTENTION_LOOP(d, double)

/* zeros_weights: (m),(n),(),(),() -> (n,m)
 *   s, rows (a dummy giving n), gate_linear, gate_softmax, causal -> r */
#define ZEROS_WEIGHTS_LOOP(TS, T)                                             \
AN_LIN_LOOP(zeros_weights, TS, T, an_zeros_weights,                           \
    const npy_intp *cs = steps + 6;                                           \
    P.m = dims[1]; P.n = dims[2];                                             \
    P.s_m = cs[0]; P.o_n = cs[2]; P.o_e = cs[3];,                             \
    M->s = ARG(0); M->g_lin = REAL(2); M->g_soft = REAL(3);                   \
    M->causal = an_causal_code(I64(4)); M->out = ARG(5);)
ZEROS_WEIGHTS_LOOP(f, float)
ZEROS_WEIGHTS_LOOP(d, double)

/* soft_attention: (n,d),(n,e),(l,d),(k),() -> (n,e),(k)
 *   q, v, landmarks, iterations (a dummy giving K), mean_landmarks
 *   -> out, Newton residuals */
#define SOFT_ATTENTION_LOOP(TS, T)                                            \
AN_LIN_LOOP(soft_attention, TS, T, an_soft_attention,                         \
    const npy_intp *cs = steps + 7;                                           \
    P.n = dims[1]; P.d = dims[2]; P.e = dims[3]; P.l = dims[4]; P.K = dims[5]; \
    P.q_n = cs[0]; P.q_d = cs[1]; P.v_m = cs[2]; P.v_e = cs[3];               \
    P.lm_l = cs[4]; P.lm_d = cs[5]; P.o_n = cs[7]; P.o_e = cs[8];             \
    P.r_k = cs[9];,                                                           \
    M->q = ARG(0); M->v = ARG(1); M->lm = ARG(2);                             \
    M->mean_landmarks = I64(4) != 0; M->out = ARG(5); M->res = ARG(6);)
SOFT_ATTENTION_LOOP(f, float)
SOFT_ATTENTION_LOOP(d, double)

/* soft_kernel: (n,d) -> (n,n)   q -> S */
#define SOFT_KERNEL_LOOP(TS, T)                                               \
AN_LIN_LOOP(soft_kernel, TS, T, an_soft_kernel,                               \
    const npy_intp *cs = steps + 2;                                           \
    P.n = dims[1]; P.d = dims[2];                                             \
    P.q_n = cs[0]; P.q_d = cs[1]; P.o_n = cs[2]; P.o_e = cs[3];,              \
    M->q = ARG(0); M->out = ARG(1);)
SOFT_KERNEL_LOOP(f, float)
SOFT_KERNEL_LOOP(d, double)
