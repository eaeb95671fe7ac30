/* scratch.c -- large scratch blocks kept from one call to the next
 * (an_common.h: an_scratch_alloc, an_scratch_free).
 *
 * A kernel's scratch of AN_SCRATCH_KEEP bytes or more (fused attention's
 * packs and Sinkhorn caches, the Sinkhorn normalizer's kernels) is 2 MiB
 * aligned, marked for transparent huge pages where the system has them, and
 * kept for the next call instead of returned to the system: one block per
 * process, handed over by atomic exchange, so concurrent calls never share
 * it.  Fresh memory costs a page fault per page on first touch, and C
 * libraries hand blocks of a few MiB back to the system when they are freed:
 * on the test machine that was 40-200 ms of system time per Sinkhorn
 * attention call at n = m = 8192, and three quarters of the Sinkhorn
 * normalizer's time on (8, 1024, 1024).  ATTNNORM_KEEP_SCRATCH=0 returns
 * every block at once.  A large block starts with a 64-byte header holding
 * its length. */
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
static char *an_scratch_kept;   /* the kept block (its header), or NULL */
#endif

void *an_scratch_alloc(size_t bytes)
{
#ifdef AN_SCRATCH_KEEPS
    const size_t huge = (size_t)2 << 20;
    if (bytes >= AN_SCRATCH_KEEP) {
        const size_t len = ((bytes + 64 + huge - 1) / huge) * huge;
        char *p = __atomic_exchange_n(&an_scratch_kept, NULL, __ATOMIC_ACQ_REL);
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

void an_scratch_free(void *buf, size_t bytes)
{
#ifdef AN_SCRATCH_KEEPS
    if (buf && bytes >= AN_SCRATCH_KEEP) {
        char *p = (char *)buf - 64;
        const char *keep = getenv("ATTNNORM_KEEP_SCRATCH");
        if (keep && keep[0] == '0') { free(p); return; }
        free(__atomic_exchange_n(&an_scratch_kept, p, __ATOMIC_ACQ_REL));
        return;
    }
#endif
    free(buf);
}
