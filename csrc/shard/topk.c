/* topk.c -- per-row top-K scores (topk.h), per real type (topk_impl.inc). */
#include <string.h>
#include "topk.h"
#include "an_gemm.h"
#include "an_simd.h"

#define AN_ROUNDUP(x, b) ((((x) + (b) - 1) / (b)) * (b))
#define AN_TOPK_KB 512   /* keys per packed chunk */
#define AN_TOPK_RB 192   /* at most this many queries per block (a multiple of AN_ATT_RM) */
#define AN_TOPK_LBYTES (1u << 21)   /* their candidate lists: at most about this much */
#define AN_TOPK_STEP 64  /* keys per step of the scan (the bits of a word: an_simd.h's hits64) */

/* index of the lowest set bit of a nonzero word */
static inline int an_ctz64(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(x);
#else
    int t = 0;
    while (!(x & 1u)) { x >>= 1; t++; }
    return t;
#endif
}

#define AN_TEMPLATE "topk_impl.inc"
#include "an_template.h"
