/*
 * linear.c -- the linear-time attention family ([Heinsen2024], [Lu2026],
 * [Brebisson2016], [Lu2021]; README "Linear-time attention family").  Kernels only: pointers, sizes, strides.
 *
 * linear_impl.inc holds the kernels and is compiled twice (float, double).
 * This file holds the one task driver they share: the work of a gufunc call
 * is N matrices x column blocks of the output; a block is computed by one
 * thread in a fixed order, so the result does not depend on the thread
 * count (the blocks only appear when there are fewer matrices than threads).
 */
#include <stdlib.h>
#include <string.h>
#include "linear.h"
#include "an_simd.h"
#include "an_gemm.h"

/* One unit of work: matrix `mat`, output columns [c0, c1). */
typedef int (*an_coltask)(const an_linprob *P, an_int mat, an_int c0, an_int c1);

/* Run fn over every matrix of P, splitting the ncols output columns into
 * blocks when there are fewer matrices than threads.  Returns the first
 * error code met (in task order). */
static int an_run_column_tasks(const an_linprob *P, an_int ncols, an_coltask fn)
{
    const int nt = an_num_threads();
    an_int nblk = 1;
    if (P->N < nt && ncols > 1) {
        nblk = (nt + P->N - 1) / P->N;
        if (nblk > ncols) nblk = ncols;
    }
    const an_int width = nblk > 1 ? (ncols + nblk - 1) / nblk : ncols;
    const an_int ntask = P->N * nblk;
    an_int first_bad = ntask;
    int err = AN_OK;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (ntask > 1)
    for (an_int t = 0; t < ntask; t++) {
        an_int mat = t / nblk, blk = t % nblk;
        an_int c0 = blk * width, c1 = c0 + width < ncols ? c0 + width : ncols;
        if (c0 > c1) c0 = c1;
        int rc = fn(P, mat, c0, c1);
        if (rc) {
            #pragma omp critical(an_linear_err)
            if (t < first_bad) { first_bad = t; err = rc; }
        }
    }
    return err;
}

/* Threads for a call of about `work` multiply-adds: 1 below AN_LIN_PAR_WORK
 * (~5 ms of serial work), where a parallel region costs more than it saves
 * (much more when the machine is oversubscribed).  The results do not depend
 * on the thread count, so this only changes the speed. */
#define AN_LIN_PAR_WORK 134217728.0   /* 2^27 */
static int an_lin_threads(double work)
{
    return work < AN_LIN_PAR_WORK ? 1 : an_num_threads();
}

static inline an_int an_pad8(an_int x) { return (x + 7) & ~(an_int)7; }

#define AN_TEMPLATE "linear_impl.inc"
#include "an_template.h"
