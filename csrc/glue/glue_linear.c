/*
 * glue_linear.c -- gufunc loops of the linear-time attention family
 * (glue_linear_impl.inc, per real type): they unpack pointers, sizes and
 * byte strides into an an_linprob (linear.h), call the kernel, and raise its
 * error.  No computation here.
 */
#include "glue_linear.h"
#include "linear.h"

/* Run kernel on the N matrices described by P and mats (freed here); raise
 * its error.  NumPy calls the loops without the GIL. */
static void run(an_linprob *P, an_linmat *mats, npy_intp N, const char *name,
                int (*kernel)(const an_linprob *))
{
    P->N = N;
    P->mats = mats;
    int rc = an_interrupt_begin();
    if (!rc) { rc = kernel(P); an_interrupt_end(); }
    free(mats);
    AN_CLEAR_FPE();
    if (rc) an_raise(rc, name, 0);
}

/* The per-matrix array (NULL after raising MemoryError). */
static an_linmat *alloc_mats(npy_intp N, const char *name)
{
    an_linmat *mats = (an_linmat *)calloc((size_t)N, sizeof(an_linmat));
    if (!mats) an_raise(AN_ERR_NOMEM, name, 0);
    return mats;
}

static int64_t i64(char **args, npy_intp const *steps, int op, npy_intp k)
{
    return *(const int64_t *)an_operand(args, steps, op, k);
}

/* Operand positions (and nargs) of each gufunc. */
/* linear_attention: q (n,d), k (m,d), v (m,e), feature_map, causal, eps -> out (n,e) */
enum { LA_Q, LA_K, LA_V, LA_FMAP, LA_CAUSAL, LA_EPS, LA_OUT, LA_NARGS };
/* cheap_linear_attention: h (m,k), q (n,k), causal -> r (n,k); r_i = sum_j h_j (h_j . q_i):
 * linear attention with identity features, keys = values = h, no denominator */
enum { CL_H, CL_Q, CL_CAUSAL, CL_OUT, CL_NARGS };
/* log_attention: q, k, v, state (d,w), causal, has_state -> out (n,e), state (d,w) */
enum { LG_Q, LG_K, LG_V, LG_STATE, LG_CAUSAL, LG_HAS_STATE, LG_OUT, LG_STATE_OUT, LG_NARGS };
/* zeros_attention: q, k, v, s (m), gate_linear, gate_softmax, causal -> out (n,e) */
enum { ZA_Q, ZA_K, ZA_V, ZA_S, ZA_GLIN, ZA_GSOFT, ZA_CAUSAL, ZA_OUT, ZA_NARGS };
/* zeros_weights: s (m), rows (n, a dummy giving n), gate_linear, gate_softmax, causal -> (n,m) */
enum { ZW_S, ZW_ROWS, ZW_GLIN, ZW_GSOFT, ZW_CAUSAL, ZW_OUT, ZW_NARGS };
/* soft_attention: q (n,d), v (n,e), landmarks (l,d), iterations (k, a dummy giving K),
 * mean_landmarks -> out (n,e), Newton residuals (k) */
enum { SA_Q, SA_V, SA_LM, SA_ITER, SA_MEAN, SA_OUT, SA_RES, SA_NARGS };
/* soft_kernel: q (n,d) -> S (n,n) */
enum { SK_Q, SK_OUT, SK_NARGS };

#define AN_TEMPLATE "glue_linear_impl.inc"
#include "an_template.h"
