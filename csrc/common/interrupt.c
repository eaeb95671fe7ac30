/* interrupt.c -- Ctrl-C during long kernels (glue: it installs a signal
 * handler and is called by the gufunc loops; kernels only read a flag).
 *
 * Kernels call an_interrupt_check() between chunks of long loops whose
 * length a parameter sets (entmax bisection, Sinkhorn and Newton-Schulz
 * iterations).  It never enters the interpreter: it reads a process-wide
 * flag that a SIGINT handler sets while a kernel runs.  That handler is
 * chained in front of the interpreter's own (which it then calls, so Python
 * still sees the signal); the check therefore costs one atomic load, can run
 * on any thread, inside or outside parallel regions, and never waits for the
 * GIL.  A kernel that sees the flag stops and returns AN_ERR_INTERRUPTED; the
 * glue then runs the interpreter's signal handlers on the calling thread
 * holding the GIL (KeyboardInterrupt for the default handler) in an_raise.
 *
 * The gufunc loops bracket their kernels with an_interrupt_begin() and
 * an_interrupt_end().  an_interrupt_begin runs on the calling thread outside
 * any parallel region: it first runs the interpreter's pending signal
 * handlers (so a Ctrl-C that came just before the call, while Python could
 * not yet act on it, stops the call before its kernel starts), then clears
 * the flag of signals the interpreter has thereby seen, unless another
 * kernel is running (a Ctrl-C stops every running kernel); the last kernel
 * to end clears it too.  If Python code replaced the SIGINT handler
 * (signal.signal), an_interrupt_begin chains in front of the new one; with
 * SIG_IGN or SIG_DFL nothing is installed and kernels run to completion. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "an_common.h"

#if !defined(_WIN32)
#include <signal.h>
#include <string.h>
#define AN_HAVE_SIGACTION 1
#endif

static int an_interrupt_flag = 0;      /* SIGINT not yet seen by a kernel */
static int an_kernels_running = 0;     /* kernels between begin and end */

int an_interrupted(void)
{
    return __atomic_load_n(&an_interrupt_flag, __ATOMIC_RELAXED);
}

int an_interrupt_check(void)
{
    return an_interrupted();
}

#ifdef AN_HAVE_SIGACTION
static struct sigaction an_prev_sigint;   /* the handler chained to */

static void an_sigint_handler(int sig, siginfo_t *info, void *ctx)
{
    __atomic_store_n(&an_interrupt_flag, 1, __ATOMIC_RELAXED);
    if (an_prev_sigint.sa_flags & SA_SIGINFO)
        an_prev_sigint.sa_sigaction(sig, info, ctx);
    else if (an_prev_sigint.sa_handler != SIG_DFL && an_prev_sigint.sa_handler != SIG_IGN)
        an_prev_sigint.sa_handler(sig);
}

/* Chain the handler in front of the current SIGINT handler unless it is
 * already there or the current one is SIG_DFL/SIG_IGN. */
static void an_sigint_install(void)
{
    struct sigaction cur;
    if (sigaction(SIGINT, NULL, &cur) != 0) return;
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == an_sigint_handler) return;
    if (!(cur.sa_flags & SA_SIGINFO) && (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN))
        return;
    an_prev_sigint = cur;
    struct sigaction mine = cur;
    mine.sa_flags |= SA_SIGINFO;
    mine.sa_sigaction = an_sigint_handler;
    sigaction(SIGINT, &mine, NULL);
}
#endif

int an_interrupt_begin(void)
{
#ifdef AN_HAVE_SIGACTION
    an_sigint_install();
#endif
    PyGILState_STATE st = PyGILState_Ensure();
    const int raised = PyErr_CheckSignals() != 0;
    PyGILState_Release(st);
    if (__atomic_add_fetch(&an_kernels_running, 1, __ATOMIC_RELAXED) == 1)
        __atomic_store_n(&an_interrupt_flag, 0, __ATOMIC_RELAXED);
    if (raised) {   /* the exception is set: the kernel does not start */
        an_interrupt_end();
        return AN_ERR_INTERRUPTED;
    }
    return AN_OK;
}

void an_interrupt_end(void)
{
    if (__atomic_sub_fetch(&an_kernels_running, 1, __ATOMIC_RELAXED) == 0)
        __atomic_store_n(&an_interrupt_flag, 0, __ATOMIC_RELAXED);
}
