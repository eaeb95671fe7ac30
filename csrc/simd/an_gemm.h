/*
 * an_gemm.h -- the project's score-tile GEMM micro-kernel (an_gemm.c /
 * an_gemm.inc, written for attention by H3), shared by fused attention
 * (q k^T scores and weights x values, attention_impl.inc) and the streamed
 * diagnostics (q k^T scores on packed key panels, diagnose.c).  The names
 * keep their attention prefix.
 *
 * C[M x N] (+)= A[M x K] . B[K x N], row-major with leading dimensions;
 * M a multiple of AN_ATT_RM, N a multiple of the table's nr.  Each C element
 * is a sum over k in increasing order (FMA where the target has it), so the
 * result depends neither on the blocking nor on the threads.
 */
#ifndef AN_GEMM_H
#define AN_GEMM_H
#include "an_common.h"

#define AN_ATT_RM 6
typedef struct {
    void (*gemm_f)(an_int M, an_int N, an_int K, const float *A, an_int lda,
                   const float *B, an_int ldb, float *C, an_int ldc, int accumulate);
    void (*gemm_d)(an_int M, an_int N, an_int K, const double *A, an_int lda,
                   const double *B, an_int ldb, double *C, an_int ldc, int accumulate);
    int nr_f, nr_d;       /* column block (elements) of the micro-kernel */
    const char *name;
} an_attn_gemm;

/* The table matching the SIMD path chosen at import (an_vf->name). */
const an_attn_gemm *an_attn_gemm_table(void);

#endif
