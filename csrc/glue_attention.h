/* glue_attention.h -- loop functions and table data of the attention gufuncs
 * (defined in glue_attention.c; listed in the table in module.c). */
#ifndef AN_GLUE_ATTENTION_H
#define AN_GLUE_ATTENTION_H
#include "glue.h"

#endif
