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

#define AN_TEMPLATE "glue_linear_vjp_impl.inc"
#include "an_template.h"
