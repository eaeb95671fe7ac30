/* glue_linear.h -- loop functions and table data of the linear gufuncs
 * (defined in glue_linear.c; listed in the table in module.c). */
#ifndef AN_GLUE_LINEAR_H
#define AN_GLUE_LINEAR_H
#include "glue.h"

#endif
