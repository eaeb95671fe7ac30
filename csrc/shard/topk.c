/* topk.c -- per-row top-K scores (topk.h), per real type (topk_impl.inc). */
#include <string.h>
#include "topk.h"
#include "an_gemm.h"

#define AN_ROUNDUP(x, b) ((((x) + (b) - 1) / (b)) * (b))
#define AN_TOPK_KB 512   /* keys per packed chunk */
#define AN_TOPK_RB 96    /* at most this many queries per block (a multiple of AN_ATT_RM) */
#define AN_TOPK_SBYTES (1u << 22)   /* their scores over all keys: about this much */
#define AN_TOPK_GROUPS 4   /* groups of keys per candidate for the bound */
#define AN_TOPK_VW 16    /* scores tested together against a row's bound */

#define AN_TEMPLATE "topk_impl.inc"
#include "an_template.h"
