/* glue_attention_vjp.h -- gufunc loops and table entries of the fused
 * attention backward (attention_vjp_<nm>) and of the forward pass that also
 * returns the log normaliser (attention_lse_<nm>), for the softmax family
 * (defined in glue_attention_vjp.c; listed in the table in module.c). */
#ifndef AN_GLUE_ATTENTION_VJP_H
#define AN_GLUE_ATTENTION_VJP_H
#include "glue_attention.h"

typedef struct {
    const char *name;
    const an_normdesc *desc;
    int kind;          /* AN_AVJP_* (attention_vjp.h) */
} an_attvjpdata;

void an_attvjp_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void an_attvjp_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);

/* The normalizers with an attention backward in C: X(name) (the softmax
 * family's fused form, the others' generic row-VJP path, Sinkhorn's own) */
#define AN_ATTVJP_NORMALIZERS(X) X(softmax) X(softmax_sink) X(ssmax) X(affine_softmax) \
    X(stochastic_softmax) X(sigmoid) X(relu) X(polynomial) X(softpick) X(nap)     \
    X(sparsemax) X(entmax) X(sinkhorn)
/* ... whose forward pass also returns the log normaliser (attention_lse_<nm>;
 * affine_softmax and stochastic_softmax: that of the softmax of the scores) */
#define AN_LSE_NORMALIZERS(X) X(softmax) X(softmax_sink) X(ssmax) X(affine_softmax) \
    X(stochastic_softmax)

#define AN_ATTVJP_DECLARE(nm) extern const an_attvjpdata an_attvjp_data_##nm;
AN_ATTVJP_NORMALIZERS(AN_ATTVJP_DECLARE)
#define AN_LSE_DECLARE(nm) extern const an_attdata an_att_lse_data_##nm;
AN_LSE_NORMALIZERS(AN_LSE_DECLARE)

/* Operands: q (n,d), k (m,d), v (m,e), grad_out (n,e), pv (n,e) = P v of
 * the softmax part and lognorm (n) (softmax family; unused otherwise), mask
 * (n,m), causal, wleft, wright (int64), scale (T), param_grads (int64: 0
 * lets the generic path skip the parameter gradients), reals (r), ints (i),
 * per-row reals (n,w)
 *   -> dq (n,d), dk (m,d), dv (m,e), dreals (r), drowparams (n,w) */
#define AN_ATTVJP_ENTRY(nm)                                                    \
    { "attention_vjp_" #nm,                                                    \
      "(n,d),(m,d),(m,e),(n,e),(n,e),(n),(n,m),(),(),(),(),(),(r),(i),(n,w)"   \
      "->(n,d),(m,d),(m,e),(r),(n,w)", "TTTTTTbqqqTqTqT-TTTTT",                \
      "attention_vjp_" #nm "(q, k, v, grad_out, pv, lognorm, mask, causal, wleft, wright, scale, param_grads, reals, ints, rowparams)" \
      " -> dq, dk, dv, dreals, drowparams",                                    \
      an_attvjp_loop_f, an_attvjp_loop_d, (void *)&an_attvjp_data_##nm },
#define AN_LSE_ENTRY(nm)                                                       \
    { "attention_lse_" #nm, AN_ATT_IN "->(n,e),(n)", "TTTbqqqqTTqT-TT",       \
      "attention_lse_" #nm "(q, k, v, mask, causal, wleft, wright, empty, scale, reals, ints, rowparams) -> out, lognorm", \
      an_att_loop_f, an_att_loop_d, (void *)&an_att_lse_data_##nm },

#endif
