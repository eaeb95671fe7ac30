/* glue_diagnostics.h -- loop functions and table data of the diagnostics gufuncs
 * (defined in glue_diagnostics.c; listed in the table in module.c). */
#ifndef AN_GLUE_DIAGNOSTICS_H
#define AN_GLUE_DIAGNOSTICS_H
#include "glue.h"

#endif
