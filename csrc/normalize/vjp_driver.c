/* vjp_driver.c -- gather / row VJP / scatter over every row (vjp.h). */
#include <stdlib.h>
#include <string.h>
#include "vjp.h"

#define AN_TEMPLATE "vjp_driver_impl.inc"
#include "an_template.h"
