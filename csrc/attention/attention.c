/*
 * attention.c -- fused attention kernels (README "Attention"); the driver is
 * attention_impl.inc, compiled here for float and double.  The matrix
 * products go through the run-time dispatched micro-kernel table of
 * an_gemm.c (shared with diagnose.c); the row normalizers are the ones of normalize.h, so a
 * new normalizer works in attention as soon as it has a row kernel.
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "attention.h"
#include "an_simd.h"

#define AN_ATT_QB 96     /* query rows per block, at most (a multiple of AN_ATT_RM): */
#define AN_ATT_QB_SMALL 48 /*   96 on the online path when a call has many blocks, else 48 */
#define AN_ATT_KB 512    /* keys per packed chunk (a multiple of every nr) */
#define AN_ATT_PACK_BYTES ((size_t)32 << 20)   /* packed K/V of a group of problems */
#define AN_SK_CACHE_BYTES ((size_t)32 << 20)   /* Sinkhorn's cached n x m log kernel */
#define AN_SK_SOLO_BYTES ((size_t)128 << 20)   /* ... all threads' caches, one problem each */
#define AN_ATT_LAZY 8.0   /* online softmax: a stale maximum serves up to e^8 per term */
#define AN_SK_SLABS 32   /* Sinkhorn's column sums: at most this many partial sums */
#define AN_ROUNDUP(x, b) ((((x) + (b) - 1) / (b)) * (b))
#define AN_ALIGN64(x) ((((x) + 63) / 64) * 64)

/* The log-normaliser statistic where the normalizer defines one
 * (d->lognorm, normalize.h):
 *   lognorm_i = log( [exp(extra)] + sum_{j visible} exp(mul * s_ij) )
 * Returns 0 (statistic NaN) for the others. */
static int an_att_lognorm_form(const an_normdesc *d, const an_normmat *M,
                               an_int nv, double *mul, int *has_extra, double *extra)
{
    *has_extra = 0; *extra = 0.0; *mul = 1.0;
    switch (d->lognorm) {
    case AN_LOGNORM_INV_P0: *mul = 1.0 / M->p[0]; return 1;
    case AN_LOGNORM_SINK_P0: *has_extra = 1; *extra = M->p[0]; return 1;
    case AN_LOGNORM_P0_LOGN: *mul = M->p[0] * log((double)nv); return 1;
    case AN_LOGNORM_UNIT: return 1;
    default: return 0;
    }
}

/* The online fast path of the normalizer: its softmax form, or its map
 * for the elementwise ones (ATTNNORM_ATTENTION_GENERIC set: none, so the
 * tests can compare both paths). */
static int an_att_online_kind(const an_normdesc *d)
{
    if (getenv("ATTNNORM_ATTENTION_GENERIC")) return AN_ONLINE_NONE;
    return d->online ? d->online : d->map_f ? AN_ONLINE_MAP : AN_ONLINE_NONE;
}

/* Sinkhorn row states (attention_impl.inc) */
enum { AN_SK_OK = 0, AN_SK_EMPTY = 1, AN_SK_NAN = 2 };

#define AN_TEMPLATE "attention_impl.inc"
#include "an_template.h"
