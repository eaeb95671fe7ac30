/* scratch.c -- large scratch blocks kept from one call to the next
 * (an_common.h: an_scratch_alloc, an_scratch_free).
 *
 * A kernel's scratch of AN_SCRATCH_KEEP bytes or more (fused attention's
 * packs and Sinkhorn caches, the Sinkhorn normalizer's kernels) is 2 MiB
 * aligned, marked for transparent huge pages where the system has them, and
 * kept for the next calls instead of returned to the system: up to
 * AN_SCRATCH_SLOTS blocks per process, each handed over by atomic exchange,
 * so concurrent calls never share one.  Fresh memory costs a page fault per
 * page on first touch, and C libraries hand blocks of a few MiB back to the
 * system when they are freed: on the test machine that was 40-200 ms of
 * system time per Sinkhorn attention call at n = m = 8192, and three
 * quarters of the Sinkhorn normalizer's time on (8, 1024, 1024).  With one
 * slot, calls of two sizes in turn (Sinkhorn and softmax attention at
 * (1, 8, 2048, 64), causal) replaced the block at every call: 32-34 ms and
 * 20 ms instead of 17 and 11.  A block is taken when it holds the request
 * and is at most twice its size.  ATTNNORM_KEEP_SCRATCH=0 returns every
 * block at once.  A large block starts with a 64-byte header holding its
 * length. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE   /* madvise */
#endif
#include <stdlib.h>
#include "an_common.h"
#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__linux__) && defined(MADV_HUGEPAGE) && (defined(__GNUC__) || defined(__clang__))
#define AN_SCRATCH_KEEPS 1
#define AN_SCRATCH_SLOTS 2
static char *an_scratch_kept[AN_SCRATCH_SLOTS];   /* kept blocks (their headers), or NULL */
#endif

void *an_scratch_alloc(size_t bytes)
{
#ifdef AN_SCRATCH_KEEPS
    const size_t huge = (size_t)2 << 20;
    if (bytes >= AN_SCRATCH_KEEP) {
        const size_t len = ((bytes + 64 + huge - 1) / huge) * huge;
        for (int k = 0; k < AN_SCRATCH_SLOTS; k++) {
            char *p = __atomic_exchange_n(&an_scratch_kept[k], NULL, __ATOMIC_ACQ_REL);
            if (!p) continue;
            if (*(size_t *)p >= len && *(size_t *)p <= 2 * len) return p + 64;
            /* not this one: back to its slot, or freed if the slot took another */
            char *none = NULL;
            if (!__atomic_compare_exchange_n(&an_scratch_kept[k], &none, p, 0,
                                             __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                free(p);
        }
        char *p = (char *)aligned_alloc(huge, len);
        if (!p) return NULL;
        (void)madvise(p, len, MADV_HUGEPAGE);   /* a hint: failure is harmless */
        *(size_t *)p = len;
        return p + 64;
    }
#endif
    return malloc(bytes);
}

void an_scratch_free(void *buf, size_t bytes)
{
#ifdef AN_SCRATCH_KEEPS
    if (buf && bytes >= AN_SCRATCH_KEEP) {
        char *p = (char *)buf - 64;
        const char *keep = getenv("ATTNNORM_KEEP_SCRATCH");
        if (keep && keep[0] == '0') { free(p); return; }
        /* an empty slot, else the last slot's block makes way */
        for (int k = 0; k < AN_SCRATCH_SLOTS - 1; k++) {
            char *none = NULL;
            if (__atomic_compare_exchange_n(&an_scratch_kept[k], &none, p, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                return;
        }
        free(__atomic_exchange_n(&an_scratch_kept[AN_SCRATCH_SLOTS - 1], p, __ATOMIC_ACQ_REL));
        return;
    }
#endif
    free(buf);
}
