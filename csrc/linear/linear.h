/*
 * linear.h -- kernels of the linear-time attention family ([Heinsen2024], [Lu2026], [Brebisson2016], [Lu2021]).
 *
 * No Python.h here: the glue (glue_linear.c) fills an an_linprob with the
 * pointers, sizes and byte strides of a gufunc call and calls one kernel.
 */
#ifndef AN_LINEAR_H
#define AN_LINEAR_H
#include "an_common.h"

/* last key (exclusive) that query i of n sees among m keys: the causal
 * alignment of the README's conventions (an_visible_range without a window; causal is an
 * AN_CAUSAL_* code) */
static inline an_int an_keys_seen(an_int i, an_int n, an_int m, int causal)
{
    an_int lo, hi;
    an_visible_range(i, n, m, causal, -1, -1, &lo, &hi);
    return hi;
}

/* feature maps of linear_attention (codes shared with attnnorm/_linear.py) */
enum { AN_FMAP_ELU1 = 0, AN_FMAP_RELU = 1, AN_FMAP_EXP = 2, AN_FMAP_IDENTITY = 3 };

/* One matrix of a gufunc call: its operands and its () parameters. */
typedef struct {
    const char *q, *k, *v, *s, *lm;   /* queries, keys, values, ZeroS logits, SOFT landmarks */
    char *out, *res;                  /* output (n, e); SOFT Newton residuals (K) */
    const char *st_in; char *st_out;  /* log_attention streaming state (d, 4e + 2) */
    int fmap, causal, normalize, mean_landmarks, has_state;
    double eps, g_lin, g_soft;        /* linear eps; ZeroS gates sigma_1, sigma_h */
} an_linmat;

/* A whole gufunc call: N matrices sharing sizes and core strides (bytes). */
typedef struct {
    an_int N, n, m, d, e, l, K;       /* l: SOFT landmarks, K: Newton iterations */
    ptrdiff_t q_n, q_d, k_m, k_d, v_m, v_e, s_m, lm_l, lm_d, o_n, o_e, r_k;
    ptrdiff_t si_d, si_w, so_d, so_w;  /* state in / out core strides */
    const an_linmat *mats;
} an_linprob;

/* Each returns AN_OK or an error code (AN_ERR_NOMEM). */
#define AN_LINEAR_DECLS(TS)                                                   \
    int an_linear_attention_##TS(const an_linprob *P);  /* also cheap_linear */ \
    int an_zeros_attention_##TS(const an_linprob *P);                         \
    int an_log_attention_##TS(const an_linprob *P);                           \
    int an_zeros_weights_##TS(const an_linprob *P);                           \
    int an_soft_attention_##TS(const an_linprob *P);                          \
    int an_soft_kernel_##TS(const an_linprob *P);
AN_LINEAR_DECLS(f)
AN_LINEAR_DECLS(d)
#undef AN_LINEAR_DECLS

#endif
