/* normalize_driver.c -- a normalizer over every row of a batch of problems
 * (normalize_driver_impl.inc), one row at a time through rows.c. */
#include <stdlib.h>
#include <string.h>
#include "normalize.h"
#include "an_simd.h"

/* Outputs of at least this many bytes are streamed to memory (the driver) */
#ifndef AN_STREAM_BYTES
#define AN_STREAM_BYTES (16.0 * 1048576.0)
#endif

#define AN_TEMPLATE "normalize_driver_impl.inc"
#include "an_template.h"
