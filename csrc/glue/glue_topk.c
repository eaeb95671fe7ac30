/* glue_topk.c -- gufunc loop of topk_scores (topk.h): unpack each matrix's
 * operands into an an_topkprob, call the kernel, raise its error. */
#include "glue_topk.h"   /* Python.h first */
#include "topk.h"

/* topk_scores: q (n,d), k (m,d), mask (n,m) bool, scale (), slots (K) -> scores (n,K), keys (n,K) */
enum { TK_Q, TK_K, TK_MASK, TK_SCALE, TK_SLOTS, TK_SC, TK_IX, TK_NARGS };

#define AN_TEMPLATE "glue_topk_impl.inc"
#include "an_template.h"
