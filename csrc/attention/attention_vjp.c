/*
 * attention_vjp.c -- fused backward pass of softmax-family attention
 * (attention_vjp.h); the driver is attention_vjp_impl.inc, compiled here for
 * float and double.  Matrix products go through the dispatched micro-kernel
 * of an_gemm.c, exponentials through the SIMD table of an_simd.h.
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "attention_vjp.h"
#include "an_simd.h"

#define AN_AVJP_QB 48     /* query rows per block (a multiple of AN_ATT_RM) */
#define AN_AVJP_KB 256    /* keys per chunk (a multiple of every nr) */
#define AN_AVJP_PAD 16    /* extra elements per tile row (row strides off powers of 2) */
#define AN_VROUNDUP(x, b) ((((x) + (b) - 1) / (b)) * (b))
#define AN_VALIGN64(x) ((((x) + 63) / 64) * 64)

/* The visible keys of row i in idx[0..nv) (increasing); returns nv. */
static an_int an_avjp_visible(const an_normmat *M, an_int i, an_int *idx)
{
    an_int lo;
    const an_int *keys;
    const an_int nv = an_row_keys(M, i, idx, &lo, &keys);
    if (!keys)
        for (an_int k = 0; k < nv; k++) idx[k] = lo + k;
    return nv;
}

/* Sinkhorn row states (attention_vjp_impl.inc) */
enum { AN_AVSK_OK = 0, AN_AVSK_EMPTY = 1, AN_AVSK_NAN = 2 };

#define T float
#define TS f
#define AN_VOPS an_vf
#include "attention_vjp_impl.inc"
#undef T
#undef TS
#undef AN_VOPS

#define T double
#define TS d
#define AN_VOPS an_vd
#include "attention_vjp_impl.inc"
#undef T
#undef TS
#undef AN_VOPS
