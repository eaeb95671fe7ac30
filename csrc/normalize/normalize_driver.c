/* normalize_driver.c -- a normalizer over every row of a batch of problems
 * (normalize_driver_impl.inc), one row at a time through rows.c. */
#include <stdlib.h>
#include <string.h>
#include "normalize.h"

#define AN_TEMPLATE "normalize_driver_impl.inc"
#include "an_template.h"
