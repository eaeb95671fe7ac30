/* glue_vjp.h -- loop functions and table data of the normalizer VJP gufuncs
 * (defined in glue_vjp.c; listed in the table in module.c). */
#ifndef AN_GLUE_VJP_H
#define AN_GLUE_VJP_H
#include "glue.h"
#include "normalize.h"

typedef struct { const char *name; const an_normdesc *desc; } an_vjpdata;

void an_vjp_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void an_vjp_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);

#define AN_VJP_DECLARE(nm) extern const an_vjpdata an_vjp_data_##nm;
AN_ALL_NORMALIZERS(AN_VJP_DECLARE)

/* Operands (same for every normalizer; r, i, w may be 0):
 *   scores (n,m), weights (n,m), grad (n,m), mask (n,m) bool, causal, wleft,
 *   wright (int64 ()), reals (r) T, ints (i) int64, per-row reals (n,w) T
 *   -> d scores (n,m), d reals (r) (this matrix), d per-row reals (n,w) */
#define AN_VJP_ENTRY(nm)                                                      \
    { "normalizer_vjp_" #nm,                                                  \
      "(n,m),(n,m),(n,m),(n,m),(),(),(),(r),(i),(n,w)->(n,m),(r),(n,w)",      \
      "TTTbqqqTqT-TTT",                                                       \
      "normalizer_vjp_" #nm "(scores, weights, grad, mask, causal, wleft, wright, reals, ints, rowparams)" \
      " -> d_scores, d_reals, d_rowparams",                                   \
      an_vjp_loop_f, an_vjp_loop_d, (void *)&an_vjp_data_##nm },

#endif
