/*
 * an_gemm.h -- the one GEMM micro-kernel (an_gemm.inc, compiled per target by
 * an_gemm.c), used by fused attention (q k^T scores and weights x values),
 * the streamed diagnostics (q k^T on packed key panels) and the linear
 * family (gemm_acc, any shape).
 *
 * gemm:     C[M x N] (+)= A[M x K] . B[K x N], M a multiple of AN_ATT_RM,
 *           N a multiple of the table's nr (the register block);
 * gemm_acc: C += A . B for any M, N (the micro-kernel on the full blocks, the
 *           same per-element order on the edges);
 * gemm_tn:  as gemm with A given transposed (A^T stored K x M).
 * Row-major with leading dimensions.  Each C element is c = c + a_ik b_kj
 * for k = 0..K-1 in order (fused multiply-add on FMA targets), so results
 * depend neither on the blocking nor on the threads.
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
    void (*gemm_acc_f)(float *C, an_int ldc, const float *A, an_int lda,
                       const float *B, an_int ldb, an_int M, an_int N, an_int K);
    void (*gemm_acc_d)(double *C, an_int ldc, const double *A, an_int lda,
                       const double *B, an_int ldb, an_int M, an_int N, an_int K);
    int nr_f, nr_d;       /* column block (elements) of the micro-kernel */
    const char *name;
    /* gemm with A stored transposed (K x M, leading dimension lda), the same
     * micro-kernel and order: C (+)= A^T B */
    void (*gemm_tn_f)(an_int M, an_int N, an_int K, const float *A, an_int lda,
                      const float *B, an_int ldb, float *C, an_int ldc, int accumulate);
    void (*gemm_tn_d)(an_int M, an_int N, an_int K, const double *A, an_int lda,
                      const double *B, an_int ldb, double *C, an_int ldc, int accumulate);
} an_gemm_ops;

/* A leading dimension for rows of ld elements of elem bytes that a gemm
 * writes or reads: one column block (nr) more when the rows would lie a
 * multiple of 4 KiB apart, where they share their L1 cache sets and alias in
 * the store-to-load checks (fused attention's and diagnose's blocks of
 * scores at m = 1024, 2048, ... float32: up to 22% of the time) */
static inline an_int an_ld_off_4k(an_int ld, an_int nr, size_t elem)
{
    return (ld * (an_int)elem) % 4096 == 0 ? ld + nr : ld;
}

/* The per-target tables (an_gemm.c); an_simd_init picks one (an_gemm). */
extern const an_gemm_ops an_gemm_ops__default;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
extern const an_gemm_ops an_gemm_ops__avx2, an_gemm_ops__avx512;
#endif
extern const an_gemm_ops *an_gemm;

#endif
