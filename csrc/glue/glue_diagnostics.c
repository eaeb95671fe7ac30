/* glue_diagnostics.c -- gufunc loops of the diagnostics: unpack operands into
 * the kernel structs of diagnostics.h and raise kernel errors. */
#include "glue_diagnostics.h"   /* Python.h first */
#include <stdlib.h>
#include <string.h>
#include "diagnostics.h"

/* Operand positions.  The gufuncs that take the visibility start with
 *   a (n,m), mask (n,m) bool, causal, wleft, wright
 * and their core strides (after the nargs outer ones) are those of a, of
 * the mask, then of the output. */
enum { OP_A = 0, OP_MASK, OP_CAUSAL, OP_WLEFT, OP_WRIGHT, OP_VIS_END };
enum { CS_A = 0, CS_MASK = 2, CS_OUT = 4 };
/* diag_row: ..., kind (), p () -> (n) */
enum { RD_KIND = OP_VIS_END, RD_P, RD_OUT, RD_NARGS };
/* diag_support: ..., threshold () -> (n) int64 */
enum { SU_THR = OP_VIS_END, SU_OUT, SU_NARGS };
/* diag_column_mass: ... -> (m) */
enum { CM_OUT = OP_VIS_END, CM_NARGS };
/* diag_sink_mass: ..., sink () -> () */
enum { SM_SINK = OP_VIS_END, SM_OUT, SM_NARGS };
/* diag_matrix: a (n,m), kind (), ord () -> () */
enum { MD_A = 0, MD_KIND, MD_ORD, MD_OUT, MD_NARGS };

/* The visibility operands of matrix k (cs: its core strides).  A broadcast
 * True mask is no mask. */
static void vis_from_args(an_vis *v, npy_intp n, npy_intp m, char **args,
                          npy_intp const *steps, npy_intp const *cs, npy_intp k)
{
    v->n = n; v->m = m;
    v->mask = an_operand(args, steps, OP_MASK, k);
    v->mk_n = cs[CS_MASK]; v->mk_m = cs[CS_MASK + 1];
    if ((v->mk_n == 0 && v->mk_m == 0 && *(const npy_bool *)v->mask) || n == 0 || m == 0)
        v->mask = NULL;
    v->causal = an_causal_operand(args, steps, OP_CAUSAL, k);
    v->wleft = *(const int64_t *)an_operand(args, steps, OP_WLEFT, k);
    v->wright = *(const int64_t *)an_operand(args, steps, OP_WRIGHT, k);
}

#define AN_TEMPLATE "glue_diagnostics_impl.inc"
#include "an_template.h"
