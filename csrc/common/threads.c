/* threads.c -- the number of OpenMP threads attnnorm's kernels use.
 *
 * an_num_threads() = omp_get_max_threads() of the calling thread (which
 * OMP_NUM_THREADS and threadpoolctl set), capped by attnnorm.set_num_threads
 * when that was called.  Without OpenMP everything runs serially.
 *
 * Fork safety: GNU OpenMP's thread pool does not survive fork(), and a child
 * forked after the parent ran a parallel region would hang in its first one.
 * An at-fork handler marks the child, which then runs every kernel on one
 * thread (a region of one thread does not touch the pool), so
 * multiprocessing's fork start method works. */
#include "an_common.h"

#if defined(_OPENMP) && !defined(_WIN32)
#include <pthread.h>
#define AN_HAVE_ATFORK 1
#endif

static int an_thread_cap = 0;   /* 0: no cap set by set_num_threads */
static volatile int an_forked_child = 0;   /* set in a child after fork() */

#ifdef AN_HAVE_ATFORK
static void an_atfork_child(void) { an_forked_child = 1; }

__attribute__((constructor)) static void an_register_atfork(void)
{
    pthread_atfork(NULL, NULL, an_atfork_child);
}
#endif

int an_num_threads(void)
{
#ifdef _OPENMP
    if (an_forked_child) return 1;
    int t = omp_get_max_threads();
    if (an_thread_cap > 0 && an_thread_cap < t) t = an_thread_cap;
    return t < 1 ? 1 : t;
#else
    return 1;
#endif
}

void an_set_num_threads(int n)
{
    an_thread_cap = n;
#ifdef _OPENMP
    if (!an_forked_child) omp_set_num_threads(n);
#endif
}
