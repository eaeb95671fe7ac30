/* glue_diagnostics.h -- loop functions and table data of the diagnostics gufuncs
 * (defined in glue_diagnostics.c; listed in the table in module.c). */
#ifndef AN_GLUE_DIAGNOSTICS_H
#define AN_GLUE_DIAGNOSTICS_H
#include "glue.h"

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

#endif
