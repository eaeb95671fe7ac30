/* glue_diagnostics.h -- loop functions and table data of the diagnostics gufuncs
 * (defined in glue_diagnostics.c; listed in the table in module.c). */
#ifndef AN_GLUE_DIAGNOSTICS_H
#define AN_GLUE_DIAGNOSTICS_H
#include "glue.h"
#include "normalize.h"

void diag_row_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diag_row_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diag_support_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diag_support_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diag_colmass_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diag_colmass_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diag_sinkmass_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diag_sinkmass_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diag_matrix_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diag_matrix_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diag_jacobian_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diag_jacobian_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diagnose_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void diagnose_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);

/* data of a diagnose_<normalizer> gufunc: its name and row kernel */
typedef struct { const char *name; const an_normdesc *desc; } an_diagnose_data;
#define AN_DIAGNOSE_DATA_DECL(nm) extern const an_diagnose_data an_diagnose_data_##nm;
AN_ALL_NORMALIZERS(AN_DIAGNOSE_DATA_DECL)

/* diagnose: q, k, mask, causal, wleft, wright, scale, reals (r), ints (i),
 * per-row params (n), (n) -> entropy, max weight, sink weight, margin,
 * support (int64), column mass (m) */
#define AN_DIAGNOSE_ENTRY(nm)                                                 \
    { "diagnose_" #nm,                                                        \
      "(n,d),(m,d),(n,m),(),(),(),(),(r),(i),(n),(n)->(n),(n),(n),(n),(n),(m)", \
      "TTbqqqTTqTT-TTTTqT",                                                   \
      "diagnose_" #nm "(q, k, mask, causal, wleft, wright, scale, reals, ints, rowp0, rowp1)" \
      " -> (entropy, max_weight, sink_weight, margin, support, column_mass)", \
      diagnose_loop_f, diagnose_loop_d, (void *)&an_diagnose_data_##nm },

#endif
