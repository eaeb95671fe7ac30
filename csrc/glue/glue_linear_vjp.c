/*
 * glue_linear_vjp.c -- gufunc loops of the linear-family VJPs
 * (glue_linear_vjp_impl.inc, per real type): they unpack pointers, sizes and
 * byte strides into an an_linvjp (linear_vjp.h), call the kernel, and raise
 * its error.  No computation here.
 */
#include "glue_linear.h"   /* Python.h first */
#include <stdlib.h>
#include <string.h>
#include "linear_vjp.h"

/* Operand positions (and nargs) of each gufunc (signatures in module.c). */
enum { LV_Q, LV_K, LV_V, LV_G, LV_FMAP, LV_CAUSAL, LV_EPS, LV_NORMALIZE, LV_DQ, LV_DK, LV_DV,
       LV_DEPS, LV_NARGS };
enum { GV_Q, GV_K, GV_V, GV_G, GV_STATE, GV_GSTATE, GV_CAUSAL, GV_HAS_STATE, GV_HAS_GSTATE,
       GV_DQ, GV_DK, GV_DV, GV_DSTATE, GV_NARGS };
enum { ZV_Q, ZV_K, ZV_V, ZV_S, ZV_GLIN, ZV_GSOFT, ZV_CAUSAL, ZV_G, ZV_DQ, ZV_DK, ZV_DV, ZV_DS,
       ZV_DGLIN, ZV_DGSOFT, ZV_NARGS };
enum { SV_Q, SV_V, SV_LM, SV_ITER, SV_MEAN, SV_G, SV_DQ, SV_DV, SV_DLM, SV_NARGS };

#define AN_TEMPLATE "glue_linear_vjp_impl.inc"
#include "an_template.h"
