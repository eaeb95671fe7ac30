/* normalize_driver.c -- a normalizer over every row of a batch of problems
 * (normalize_driver_impl.inc), one row at a time through rows.c. */
#include <stdlib.h>
#include <string.h>
#include "normalize.h"

#define AN_TCAT2(a, b) a##b
#define AN_TCAT(a, b) AN_TCAT2(a, b)
#define AT(name) AN_TCAT(name, TS)
#define T float
#define TS f
#include "normalize_driver_impl.inc"
#undef T
#undef TS
#define T double
#define TS d
#include "normalize_driver_impl.inc"
#undef T
#undef TS
#undef AT
#undef AN_TCAT
#undef AN_TCAT2
