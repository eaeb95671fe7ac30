/*
 * vjp.c -- row VJPs of the row normalizers (see vjp.h for the convention).
 *
 * Notation: x the visible scores of a row, a = w its weights, g the upstream
 * gradient, <u, v> = sum_j u_j v_j.  Every kernel computes in double and
 * rounds dx once; each kernel's comment gives its formulas.  The kernels
 * (vjp_impl.inc, once per real type) are the descriptors' vjp_f / vjp_d
 * (normalizers.c, sparse.c, stochastic.c).
 */
#include <float.h>
#include <string.h>
#include "vjp.h"
#include "an_simd.h"

#define AN_TEMPLATE "vjp_impl.inc"
#include "an_template.h"
