/*
 * glue_norm_loops.c -- the loops of the gufuncs generated from the
 * normalizer descriptors (glue_norm.h).  They unpack operands into the
 * kernels' structs (one routine for the shared visibility and parameter
 * operands) and raise the kernels' errors; glue_norm_loops_impl.inc holds
 * them once for both real types.
 */
#include "glue_norm.h"
#include <stdlib.h>
#include <string.h>
#include "attention.h"
#include "diagnostics.h"
#include "vjp.h"
#include "attention_vjp.h"

/* The parameter operands hold exactly the descriptor's counts: per-matrix
 * reals (r), integers (i), per-row reals (w).  Raises and returns 0 if not. */
static int param_counts_ok(const an_loopdata *L, npy_intp const *dims)
{
    const an_normdesc *d = L->desc;
    const npy_intp r = dims[L->dim_r], i = dims[L->dim_i], w = dims[L->dim_w];
    if (r == an_nreal(d) && i == an_nint(d) && w == an_nrowp(d)) return 1;
    PyGILState_STATE st = PyGILState_Ensure();
    PyErr_Format(PyExc_ValueError,
                 "%s: expected %d per-matrix real, %d integer and %d per-row real "
                 "parameters; got %lld, %lld and %lld", L->name, an_nreal(d), an_nint(d),
                 an_nrowp(d), (long long)r, (long long)i, (long long)w);
    PyGILState_Release(st);
    return 0;
}

/* Visibility operands (mask, causal, wleft, wright) and, where the family
 * has one, the empty-row policy of matrix k.  A broadcast True mask is no
 * mask. */
static void unpack_vis(an_normmat *M, const an_loopdata *L, char **args,
                       npy_intp const *steps, npy_intp k, npy_intp n, npy_intp m)
{
    npy_intp const *cm = an_core(steps, L, AN_OP_MASK);
    M->n = n; M->m = m; M->index = k;
    M->mask = an_arg(args, steps, L, AN_OP_MASK, k);
    M->mk_n = cm[0]; M->mk_m = cm[1];
    if (n == 0 || m == 0 || (cm[0] == 0 && cm[1] == 0 && *(const npy_bool *)M->mask))
        M->mask = NULL;
    M->causal = an_causal_code(an_arg_i64(args, steps, L, AN_OP_CAUSAL, k));
    M->wleft = an_arg_i64(args, steps, L, AN_OP_WLEFT, k);
    M->wright = an_arg_i64(args, steps, L, AN_OP_WRIGHT, k);
    M->empty = L->arg[AN_OP_EMPTY] >= 0 ? (int)an_arg_i64(args, steps, L, AN_OP_EMPTY, k)
                                        : AN_EMPTY_ZERO;
}

/* The visibility of M as the diagnostics kernels take it. */
static void vis_of(an_vis *v, const an_normmat *M)
{
    v->n = M->n; v->m = M->m;
    v->causal = M->causal; v->wleft = M->wleft; v->wright = M->wright;
    v->mask = M->mask; v->mk_n = M->mk_n; v->mk_m = M->mk_m;
}

/* attention_*: problems per kernel call (bounds the descriptor memory) */
#define AN_ATT_GLUE_GROUP 1024

#define AN_TEMPLATE "glue_norm_loops_impl.inc"
#include "an_template.h"
