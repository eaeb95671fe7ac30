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
#define AN_VROUNDUP(x, b) ((((x) + (b) - 1) / (b)) * (b))
#define AN_VALIGN64(x) ((((x) + 63) / 64) * 64)

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
