/* linear_vjp.h -- VJP kernels of the linear-time attention family
 * (linear_vjp.c).  No Python.h: pointers, sizes and byte strides. */
#ifndef AN_LINEAR_VJP_H
#define AN_LINEAR_VJP_H
#include "an_common.h"

/* One matrix: operands, outputs and parameters. */
typedef struct {
    const char *q, *k, *v, *g;       /* queries, keys, values, upstream gradient (n, e) */
    char *dq, *dk, *dv, *deps;       /* outputs: gradients of q, k, v, eps (T ()) */
    const char *st, *gst;            /* log_attention: state in (d, 4e + 2), gradient of state out */
    char *dst;                       /* out: gradient of state in */
    const char *s; char *ds;         /* ZeroS logits (m) and their gradient */
    char *dg1, *dgh;                 /* out: ZeroS gate gradients (T ()) */
    double g_lin, g_soft;            /* ZeroS gates */
    const char *lm; char *dlm;       /* SOFT landmarks (L, d) and their gradient */
    int mean_landmarks;
    int fmap, causal, normalize, has_state, has_gstate;
    double eps;
} an_linvjpmat;

/* N matrices sharing sizes and core strides (bytes). */
typedef struct {
    an_int N, n, m, d, e, l, K;      /* l: SOFT landmarks, K: Newton iterations */
    ptrdiff_t q_n, q_d, k_m, k_d, v_m, v_e, g_n, g_e;
    ptrdiff_t dq_n, dq_d, dk_m, dk_d, dv_m, dv_e;
    ptrdiff_t st_d, st_w, gs_d, gs_w, dst_d, dst_w;   /* state strides */
    ptrdiff_t s_m, ds_m;                               /* ZeroS logits */
    ptrdiff_t lm_l, lm_d, dlm_l, dlm_d;                /* SOFT landmarks */
    const an_linvjpmat *mats;
} an_linvjp;

/* kernel-form linear attention (elu1, relu, identity; normalize 0 or 1) */
int an_linear_attention_vjp_f(const an_linvjp *P);
int an_linear_attention_vjp_d(const an_linvjp *P);

/* exp-kernel / log-space attention with its carried state */
int an_log_attention_vjp_f(const an_linvjp *P);
int an_log_attention_vjp_d(const an_linvjp *P);
/* ZeroS zero-sum linear attention */
int an_zeros_attention_vjp_f(const an_linvjp *P);
int an_zeros_attention_vjp_d(const an_linvjp *P);
/* SOFT (Nystrom form with Newton-Schulz) */
int an_soft_attention_vjp_f(const an_linvjp *P);
int an_soft_attention_vjp_d(const an_linvjp *P);

#endif
