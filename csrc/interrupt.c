/* interrupt.c -- Ctrl-C during long kernels (glue: the only kernel-side
 * entry into the interpreter besides an_raise).
 *
 * Kernels poll an_interrupt_check() between chunks of long loops whose
 * length a parameter sets (entmax bisection, Sinkhorn and Newton-Schulz
 * iterations).  Thread 0 of the calling team (the thread that called the
 * gufunc) runs the interpreter's signal handlers, at most every 20 ms; if
 * one raises (SIGINT: KeyboardInterrupt, left pending), a process-wide flag
 * makes every kernel loop that polls stop, its kernel returns
 * AN_ERR_INTERRUPTED, and an_raise clears the flag once the loop has
 * finished.  Signals are only handled in Python's main thread, so calls from
 * other threads are interrupted only through the flag. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>
#include "an_common.h"

#ifdef _MSC_VER
#define AN_THREAD_LOCAL __declspec(thread)
#else
#define AN_THREAD_LOCAL _Thread_local
#endif

static int an_interrupt_flag = 0;
static AN_THREAD_LOCAL double an_last_poll = -1.0;

int an_interrupted(void)
{
    return __atomic_load_n(&an_interrupt_flag, __ATOMIC_RELAXED);
}

void an_interrupt_clear(void)
{
    __atomic_store_n(&an_interrupt_flag, 0, __ATOMIC_RELAXED);
}

int an_interrupt_check(void)
{
    if (an_interrupted()) return 1;
    int tid = 0;
    AN_OMP_TID(tid);
    if (tid != 0) return 0;
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    const double now = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    if (an_last_poll >= 0 && now - an_last_poll < 0.02 && now >= an_last_poll) return 0;
    an_last_poll = now;
    PyGILState_STATE st = PyGILState_Ensure();
    const int raised = PyErr_CheckSignals() != 0;
    PyGILState_Release(st);
    if (raised) __atomic_store_n(&an_interrupt_flag, 1, __ATOMIC_RELAXED);
    return raised;
}
