/* glue_topk.h -- loop functions of the topk_scores gufunc (glue_topk.c;
 * listed in the table in module.c). */
#ifndef AN_GLUE_TOPK_H
#define AN_GLUE_TOPK_H
#include "glue.h"

void topk_scores_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void topk_scores_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);

#endif
