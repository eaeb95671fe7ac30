/*
 * attention_vjp.h -- fused backward pass of softmax-family attention.
 *
 * One (n, m) problem: queries q (n, d), keys k (m, d), values v (m, e), the
 * output gradient dO (n, e), the product PV (n, e) of the softmax weights
 * with v and the log-normaliser L (n) saved by the forward pass, the
 * normalizer's matrix record (mask, causal, window, parameters); outputs
 * dq, dk, dv and the gradients of the real parameters.  No n x m array is
 * held: score tiles are recomputed (attention_vjp_impl.inc).
 */
#ifndef AN_ATTENTION_VJP_H
#define AN_ATTENTION_VJP_H
#include "normalize.h"
#include "vjp.h"
#include "an_gemm.h"

/* The softmax-family forms (attention_vjp_impl.inc gives the formulas), and
 * the generic path: any row normalizer through its row kernel and row VJP,
 * and Sinkhorn through its iterations. */
enum { AN_AVJP_SOFTMAX = 0, AN_AVJP_SINK, AN_AVJP_SSMAX, AN_AVJP_AFFINE, AN_AVJP_STRAIGHT,
       AN_AVJP_GENERIC, AN_AVJP_SINKHORN };

typedef struct {
    an_int n, m, d, e;
    const char *q;  an_int q_n, q_d;
    const char *k;  an_int k_m, k_d;
    const char *v;  an_int v_m, v_e;
    const char *go; an_int go_n, go_e;   /* dL/d out */
    const char *pv; an_int pv_n, pv_e;   /* P V of the softmax part */
    const char *L;  an_int L_s;          /* log normaliser (n) */
    char *dq; an_int dq_n, dq_d;
    char *dk; an_int dk_m, dk_d;
    char *dv; an_int dv_m, dv_e;
    char *dp; an_int dp_s;               /* () parameter gradients (nreal) */
    char *drp; an_int drp_n, drp_w;      /* per-row parameter gradients (n, nrowp) */
    double scale;
    int want_params;   /* 0: the generic path may skip the parameter gradients (left 0) */
    an_normmat nm;     /* mask, causal, window, parameters */
} an_attnvjp;

/* Backward of np problems (same n, m, d, e); d is the normalizer (used by
 * the generic path; pv and L are then unused).  Returns AN_OK or an error
 * code; *bad_row gets the query row that failed (-1 if none). */
int an_attention_vjp_f(int kind, const an_normdesc *d, const an_attnvjp *P, an_int np,
                       an_int *bad_row);
int an_attention_vjp_d(int kind, const an_normdesc *d, const an_attnvjp *P, an_int np,
                       an_int *bad_row);

#endif
