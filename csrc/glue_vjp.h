/* glue_vjp.h -- loop functions and table data of the normalizer VJP gufuncs
 * (defined in glue_vjp.c; listed in the table in module.c). */
#ifndef AN_GLUE_VJP_H
#define AN_GLUE_VJP_H
#include "glue.h"
#include "normalize.h"

typedef struct { const char *name; const an_normdesc *desc; } an_vjpdata;

void an_vjp_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void an_vjp_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);

#define AN_VJP_DECLARE(nm) extern const an_vjpdata an_vjp_data_##nm;
AN_ALL_NORMALIZERS(AN_VJP_DECLARE)

/* Operands (same for every normalizer; r, i, w may be 0):
 *   scores (n,m), weights (n,m), grad (n,m), mask (n,m) bool, causal, wleft,
 *   wright (int64 ()), reals (r) T, ints (i) int64, per-row reals (n,w) T,
 *   want_params (int64 (); 0: parameter gradients skipped, left 0)
 *   -> d scores (n,m), d reals (r) (this matrix), d per-row reals (n,w) */
#define AN_VJP_ENTRY(nm)                                                      \
    { "normalizer_vjp_" #nm,                                                  \
      "(n,m),(n,m),(n,m),(n,m),(),(),(),(r),(i),(n,w),()->(n,m),(r),(n,w)",   \
      "TTTbqqqTqTq-TTT",                                                      \
      "normalizer_vjp_" #nm "(scores, weights, grad, mask, causal, wleft, wright, reals, ints, rowparams," \
      " want_params)"                                                         \
      " -> d_scores, d_reals, d_rowparams",                                   \
      an_vjp_loop_f, an_vjp_loop_d, (void *)&an_vjp_data_##nm },

/* VJPs of the linear-time family (linear_vjp.c) */
void an_linear_vjp_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void an_linear_vjp_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void an_log_vjp_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void an_log_vjp_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void an_zeros_vjp_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void an_zeros_vjp_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void an_soft_vjp_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void an_soft_vjp_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
#define AN_LINEAR_VJP_ENTRIES                                                 \
    { "linear_attention_vjp", "(n,d),(m,d),(m,e),(n,e),(),(),(),()->(n,d),(m,d),(m,e),()", \
      "TTTTqqTq-TTTT",                                                        \
      "linear_attention_vjp(q, k, v, grad, feature_map, causal, eps, normalize) -> dq, dk, dv, deps", \
      an_linear_vjp_loop_f, an_linear_vjp_loop_d, NULL },                     \
    { "log_attention_vjp",                                                    \
      "(n,d),(m,d),(m,e),(n,e),(d,w),(d,w),(),(),()->(n,d),(m,d),(m,e),(d,w)", \
      "TTTTTTqqq-TTTT",                                                       \
      "log_attention_vjp(q, k, v, grad, state, grad_state, causal, has_state, has_grad_state)" \
      " -> dq, dk, dv, dstate",                                               \
      an_log_vjp_loop_f, an_log_vjp_loop_d, NULL },                           \
    { "zeros_attention_vjp",                                                  \
      "(n,d),(m,d),(m,e),(m),(),(),(),(n,e)->(n,d),(m,d),(m,e),(m),(),()",    \
      "TTTTTTqT-TTTTTT",                                                      \
      "zeros_attention_vjp(q, k, v, s, gate_linear, gate_softmax, causal, grad)" \
      " -> dq, dk, dv, ds, d_gate_linear, d_gate_softmax",                    \
      an_zeros_vjp_loop_f, an_zeros_vjp_loop_d, NULL },                       \
    { "soft_attention_vjp", "(n,d),(n,e),(l,d),(k),(),(n,e)->(n,d),(n,e),(l,d)", \
      "TTTTqT-TTT",                                                           \
      "soft_attention_vjp(q, v, landmarks, iterations, mean_landmarks, grad) -> dq, dv, dlandmarks", \
      an_soft_vjp_loop_f, an_soft_vjp_loop_d, NULL },

#endif
