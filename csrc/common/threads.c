/* threads.c -- the number of OpenMP threads attnnorm's kernels use.
 *
 * an_num_threads() = omp_get_max_threads() of the calling thread (which
 * OMP_NUM_THREADS and threadpoolctl set), capped by attnnorm.set_num_threads
 * when that was called.  Without OpenMP everything runs serially. */
#include "an_common.h"

static int an_thread_cap = 0;   /* 0: no cap set by set_num_threads */

int an_num_threads(void)
{
#ifdef _OPENMP
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
    omp_set_num_threads(n);
#endif
}
