/*
 * attention.c -- fused attention kernels (README "Attention"); the driver is
 * attention_impl.inc, compiled here for float and double.  The matrix
 * products go through the run-time dispatched micro-kernel table of
 * an_gemm.c (shared with diagnose.c); the row normalizers are the ones of normalize.h, so a
 * new normalizer works in attention as soon as it has a row kernel.
 */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE   /* madvise */
#endif
#include <stdlib.h>
#include <string.h>
#include <math.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include "attention.h"
#include "an_simd.h"

#define AN_ATT_QB 48     /* query rows per block (a multiple of AN_ATT_RM) */
#define AN_ATT_KB 256    /* keys per packed chunk (a multiple of every nr) */
#define AN_ATT_PACK_BYTES ((size_t)32 << 20)   /* packed K/V of a group of problems */
#define AN_SK_CACHE_BYTES ((size_t)32 << 20)   /* Sinkhorn's cached n x m log kernel */
#define AN_SK_SOLO_BYTES ((size_t)128 << 20)   /* ... all threads' caches, one problem each */
#define AN_ATT_LAZY 8.0   /* online softmax: a stale maximum serves up to e^8 per term */
#define AN_ATT_NACC 4    /* accumulators of the listed (sparse) weights' W . V */
#define AN_ATT_PREFETCH 6   /* ... and how far ahead their value rows are fetched */
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

/* The online fast path of the normalizer (ATTNNORM_ATTENTION_GENERIC set:
 * none, so the tests can compare both paths). */
static int an_att_online_kind(const an_normdesc *d)
{
    if (getenv("ATTNNORM_ATTENTION_GENERIC")) return AN_ONLINE_NONE;
    return d->online;
}

/* Scratch of one call (packed keys/values, Sinkhorn's state and caches).
 * From 32 MiB on (Sinkhorn's caches, very long problems): 2 MiB aligned and
 * marked for transparent huge pages where the system has them, and kept for
 * the next call instead of returned to the system (one block per process,
 * handed over by atomic exchange, so concurrent calls never share it): fresh
 * memory costs a page fault per 2 MiB, and with huge pages the kernel may
 * also compact memory to find them, which took 40-200 ms of system time per
 * Sinkhorn call at n = m = 8192.  ATTNNORM_KEEP_SCRATCH=0 returns every
 * block at once.  A large block starts with a 64-byte header holding its
 * length; an_att_free releases what an_att_alloc gave. */
#define AN_ATT_BIG ((size_t)32 << 20)
static char *an_att_kept;   /* the kept block (its header), or NULL */

static void *an_att_alloc(size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const size_t huge = (size_t)2 << 20;
    if (bytes >= AN_ATT_BIG) {
        const size_t len = AN_ROUNDUP(bytes + 64, huge);
        char *p = __atomic_exchange_n(&an_att_kept, NULL, __ATOMIC_ACQ_REL);
        if (p && *(size_t *)p >= len && *(size_t *)p <= 2 * len) return p + 64;
        free(p);   /* too small, or much larger than needed */
        p = (char *)aligned_alloc(huge, len);
        if (!p) return NULL;
        (void)madvise(p, len, MADV_HUGEPAGE);   /* a hint: failure is harmless */
        *(size_t *)p = len;
        return p + 64;
    }
#endif
    return malloc(bytes);
}

static void an_att_free(void *buf, size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (buf && bytes >= AN_ATT_BIG) {
        char *p = (char *)buf - 64;
        const char *keep = getenv("ATTNNORM_KEEP_SCRATCH");
        if (keep && keep[0] == '0') { free(p); return; }
        free(__atomic_exchange_n(&an_att_kept, p, __ATOMIC_ACQ_REL));
        return;
    }
#endif
    free(buf);
}

/* Sinkhorn row states (attention_impl.inc) */
enum { AN_SK_OK = 0, AN_SK_EMPTY = 1, AN_SK_NAN = 2 };

#define AN_TEMPLATE "attention_impl.inc"
#include "an_template.h"
