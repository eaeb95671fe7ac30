/*
 * diagnose.c -- streamed diagnostics from q and k (DESIGN "Attention":
 * per-query statistics without the n x m matrix; issue 5 item 5).
 *
 * For each block of BQ query rows the visible score rows s_ij = scale q_i.k_j
 * are computed tile by tile (the GEMM micro-kernel shared with attention,
 * an_gemm.h, on packed key panels) into a BQ x width
 * scratch, each row is gathered exactly as normalize_driver.c does (causal /
 * window range, then the mask), the normalizer's row kernel turns it into
 * weights, and the row's statistics are taken:
 *   entropy  -sum a log a (NaN if the row is empty or has no mass),
 *   max weight, sink weight a_i0, margin top-1 minus top-2 visible score,
 *   support #{a > 0},
 * while the weights are added to per-key column sums.  Memory: O(BQ m) per
 * thread + 16 m doubles, never n x m.
 *
 * Softmax rows without a mask take a fused path on the scores in place: one
 * pass for the top-2 scores (margin and the shift M), one for e = exp(s - M)
 * with Z = sum e and sum e (s - M) (exp_shift_sum_dot, the SIMD table's exp)
 * and one that scales by 1/Z while adding to the column sums; entropy =
 * log Z - (1/T) sum a (s - M) needs no per-weight log.  Special rows (NaN,
 * +-inf maximum) use the generic path.  Query blocks are padded to a multiple
 * of the micro-kernel's AN_ATT_RM rows (zero queries, scores unused).
 *
 * Determinism: the n rows are cut into AN_NCHUNK = 16 fixed chunks (not one
 * per thread); each chunk is processed by one thread in row order and adds
 * into its own m-length partial; the partials are summed in chunk order.  So
 * every output is bit-identical for any thread count.
 */
#include <stdlib.h>
#include <string.h>
#include <float.h>
#include "diagnostics.h"
#include "an_simd.h"
#include "an_gemm.h"

#define AN_NCHUNK 16
#define AN_BK 256
#define AN_SCRATCH_BYTES (8u << 20)   /* score scratch per thread */
#define AN_PREPACK_BYTES (16u << 20)  /* keys packed once per matrix up to this size */

/* Pack keys j0 .. j0+nb-1 of D into panels of W keys (W = the shared GEMM's
 * column block nr, an_gemm.h), zero padded to a multiple of W: panel p is
 * the d x W row-major matrix dst[p*d*W + k*W + w] = K[j0 + p*W + w][k], the
 * B operand (ldb = W) of one GEMM call. */
#define AN_PACK(T, TS)                                                        \
static void pack_keys_##TS(const an_diagnose *D, an_int j0, an_int nb, an_int d, \
                           an_int W, T *dst)                                  \
{                                                                             \
    for (an_int j = 0; j < nb; j++) {                                         \
        const char *kr = D->k + D->k_m * (j0 + j);                            \
        T *pan = dst + (j / W) * d * W + (j % W);                             \
        for (an_int k = 0; k < d; k++) pan[k * W] = AN_AT(T, kr, D->k_d, k);  \
    }                                                                         \
    for (an_int j = nb; j % W; j++) {                                         \
        T *pan = dst + (j / W) * d * W + (j % W);                             \
        for (an_int k = 0; k < d; k++) pan[k * W] = 0;                        \
    }                                                                         \
}
AN_PACK(float, f)
AN_PACK(double, d)

#define AN_DIAGNOSE(T, TS, VOPS, TMAX)                                                    \
int an_diagnose_##TS(const an_normdesc *nd, const an_diagnose *P, an_int nmat, \
                     an_int *bad_row)                                         \
{                                                                             \
    *bad_row = -1;                                                            \
    if (nmat <= 0) return AN_OK;                                              \
    if (!nd->row_##TS) return AN_ERR_VALUE;                                   \
    const an_int n = P[0].v.n, m = P[0].v.m, d = P[0].d;                      \
    const an_attn_gemm *G = an_attn_gemm_table();   /* shared with attention */ \
    const an_int W = G->nr_##TS, npan = (m + W - 1) / W, mw = m + W;          \
    an_int bq_max = (an_int)(AN_SCRATCH_BYTES / ((size_t)mw * sizeof(T)));    \
    bq_max = bq_max / AN_ATT_RM * AN_ATT_RM;                                  \
    if (bq_max < AN_ATT_RM) bq_max = AN_ATT_RM;                               \
    if (bq_max > 48) bq_max = 48;   /* query block: its packed rows stay in L1 */ \
    /* keys packed once per matrix (shared), or per block of queries */       \
    /* softmax has a fused row path (same formula, no per-weight log) */      \
    const int fused = nd == &an_norm_softmax;                                 \
    const int prepack = (size_t)npan * (size_t)W * (size_t)d * sizeof(T) <= AN_PREPACK_BYTES; \
    int nthr = an_num_threads();                                              \
    if ((double)n * (double)(m + 1) * (double)(d + 8) < 200000.0) nthr = 1;   \
    if (nthr > AN_NCHUNK) nthr = AN_NCHUNK;                                   \
    /* per thread: row scratch, S, qp, kt, x */                              \
    an_thread_blocks tb;                                                      \
    an_thread_blocks_alloc(&tb, sizeof(T) * ((size_t)bq_max * (size_t)mw      \
                                             + (size_t)bq_max * (size_t)(d + 1) \
                                             + (size_t)(d + 1) * (size_t)(AN_BK + W) \
                                             + (size_t)(m + 1))               \
                                + an_row_scratch_bytes(nd, m) + 256, nthr);   \
    double *part = (double *)malloc(sizeof(double) * (size_t)(m + 1) * AN_NCHUNK); \
    an_int *cnt = (an_int *)malloc(sizeof(an_int) * (size_t)(m + 2));         \
    T *kpk = prepack ? (T *)malloc(sizeof(T) * (size_t)(npan + 1) * (size_t)W * (size_t)(d + 1)) : NULL; \
    if (!tb.mem || !part || !cnt || (prepack && !kpk)) {                      \
        free(tb.mem); free(part); free(cnt); free(kpk); return AN_ERR_NOMEM;  \
    }                                                                         \
    int err = AN_OK; an_int err_row = -1;                                     \
    _Pragma("omp parallel num_threads(nthr)")                                 \
    {                                                                         \
        double *ws;                                                           \
        an_int *idx;                                                          \
        T *S = (T *)an_row_scratch(nd, m, an_thread_block(&tb), &ws, &idx);   \
        T *qp = S + (size_t)bq_max * (size_t)mw;                              \
        T *kt = qp + (size_t)bq_max * (size_t)(d + 1);                        \
        T *x = kt + (size_t)(d + 1) * (size_t)(AN_BK + W);                    \
        for (an_int t = 0; t < nmat; t++) {                                   \
            const an_diagnose *D = &P[t];                                     \
            const T sc = (T)D->scale;                                         \
            _Pragma("omp for schedule(static)")                               \
            for (an_int c = 0; c < AN_NCHUNK; c++)                            \
                memset(part + (size_t)(m + 1) * c, 0, sizeof(double) * (size_t)(m + 1)); \
            if (prepack) {                                                    \
                _Pragma("omp for schedule(static)")                           \
                for (an_int p = 0; p < npan; p++)                             \
                    pack_keys_##TS(D, p * W, m - p * W < W ? m - p * W : W, d, W, kpk + p * d * W); \
            }                                                                 \
            _Pragma("omp for schedule(dynamic, 1)")                           \
            for (an_int c = 0; c < AN_NCHUNK; c++) {                          \
                double *pc = part + (size_t)(m + 1) * c;                      \
                const an_int r0 = c * n / AN_NCHUNK, r1 = (c + 1) * n / AN_NCHUNK; \
                for (an_int ib = r0; ib < r1; ib += bq_max) {                 \
                    const an_int bq = r1 - ib < bq_max ? r1 - ib : bq_max;    \
                    an_int cmin = m, cmax = 0;                                \
                    for (an_int r = 0; r < bq; r++) {                         \
                        an_int lo, hi;                                        \
                        an_visible_range(ib + r, n, m, D->v.causal, D->v.wleft, D->v.wright, &lo, &hi); \
                        if (hi > lo) {                                        \
                            if (lo < cmin) cmin = lo;                         \
                            if (hi > cmax) cmax = hi;                         \
                        }                                                     \
                    }                                                         \
                    if (prepack && cmax > cmin) {   /* align to the panels */ \
                        cmin = cmin / W * W;                                  \
                        cmax = (cmax + W - 1) / W * W;                        \
                    }                                                         \
                    const an_int width = cmax > cmin ? cmax - cmin : 0;       \
                    /* row stride of S: whole panels (the GEMM writes W columns) */ \
                    const an_int lds = (width + W - 1) / W * W;               \
                    for (an_int r = 0; r < bq; r++)                           \
                        for (an_int k = 0; k < d; k++)                        \
                            qp[r * d + k] = sc * AN_AT(T, D->q + D->q_n * (ib + r), D->q_d, k); \
                    /* zero rows up to a multiple of the micro-kernel's rows \
                     * (bq_max is one): their scores are computed, never read */ \
                    const an_int bqr = (bq + AN_ATT_RM - 1) / AN_ATT_RM * AN_ATT_RM; \
                    memset(qp + bq * d, 0, sizeof(T) * (size_t)((bqr - bq) * d)); \
                    for (an_int jb = cmin; jb < cmax; jb += AN_BK) {          \
                        const an_int nb = cmax - jb < AN_BK ? cmax - jb : AN_BK; \
                        const T *kp = kt;                                     \
                        if (prepack) kp = kpk + (jb / W) * d * W;             \
                        else pack_keys_##TS(D, jb, nb, d, W, kt);             \
                        /* S[:, jb - cmin + p W ...] = qp . panel p (B = d x W) */ \
                        for (an_int p = 0; p * W < nb; p++)                   \
                            G->gemm_##TS(bqr, W, d, qp, d, kp + p * d * W, W, \
                                         S + (jb - cmin) + p * W, lds, 0);    \
                    }                                                         \
                    for (an_int r = 0; r < bq; r++) {                         \
                        const an_int i = ib + r;                              \
                        const T *srow = S + r * lds;                          \
                        an_int lo, hi, nv;                                    \
                        const int dense = D->v.mask == NULL;                  \
                        const T *sv = x;   /* the nv visible scores */   \
                        if (dense) {   /* visible keys = [lo, hi), read in place */ \
                            an_visible_range(i, n, m, D->v.causal, D->v.wleft, D->v.wright, &lo, &hi); \
                            nv = hi - lo;                                     \
                            sv = srow + (lo - cmin);                          \
                        } else {                                              \
                            const char *rowp = (const char *)srow - cmin * (an_int)sizeof(T); \
                            nv = an_gather_##TS(&D->v, i, rowp, (an_int)sizeof(T), x, idx); \
                            lo = nv ? idx[0] : 0;                             \
                        }                                                     \
                        double top1;                                          \
                        double margin = an_margin_##TS(sv, nv, &top1), ent = NAN, mxw = 0, snk = 0; \
                        an_int sup = 0;                                       \
                        int rc;                                               \
                        if (fused && dense && nv > 0 && isfinite(top1)) {     \
                            /* softmax, fused: e = exp(mul (s - M)), Z = sum e, \
                             * a = e / Z, H = log Z - mul sum a (s - M),     \
                             * max a = 1 / Z (e = 1 at the maximum); e, Z and \
                             * sum e (s - M) in one pass */                  \
                            const double mul_d = 1.0 / D->nm.p[0];            \
                            const T mul = mul_d > (double)TMAX ? TMAX : (T)mul_d; \
                            double se;                                        \
                            const double Z = VOPS->exp_shift_sum_dot(sv, x, nv, (T)top1, mul, &se); \
                            if (se != se) {   /* e (s - M) = 0 * -inf at -inf scores: \
                                               * those terms are 0 (NaN scores stay NaN) */ \
                                se = 0;                                       \
                                for (an_int k = 0; k < nv; k++)               \
                                    if (sv[k] != (T)-INFINITY)                \
                                        se += (double)(x[k] * (sv[k] - (T)top1)); \
                            }                                                 \
                            const T invZ = (T)(1.0 / Z);                      \
                            ent = log(Z) - (double)mul * se / Z;              \
                            mxw = (double)invZ;                               \
                            snk = lo == 0 ? (double)(x[0] * invZ) : 0.0;      \
                            sup = an_scale_acc_##TS(x, nv, invZ, pc + lo);    \
                            rc = AN_OK;                                       \
                        } else {                                              \
                        if (sv != x) memcpy(x, sv, sizeof(T) * (size_t)nv);   \
                        an_rowctx cx = { i, n, m, &D->nm, NAN, -1, ws };      \
                        rc = nv ? nd->row_##TS(x, nv, &cx) : AN_ROW_EMPTY;    \
                        if (rc == AN_OK) {                                    \
                            an_rowstats st;                                   \
                            an_rowstats_##TS(x, nv, 1, 0.0, &st);             \
                            ent = (st.nonzero == 0 || st.sum != st.sum) ? NAN : -st.xlogx; \
                            mxw = st.max; sup = st.pos;                       \
                            snk = lo == 0 ? (double)x[0] : 0.0;               \
                            if (dense) {                                      \
                                double *pl = pc + lo;                         \
                                _Pragma("omp simd")                           \
                                for (an_int k = 0; k < nv; k++) pl[k] += (double)x[k]; \
                            } else {                                          \
                                for (an_int k = 0; k < nv; k++) pc[idx[k]] += (double)x[k]; \
                            }                                                 \
                        }                                                     \
                        }                                                     \
                        if (rc != AN_OK && rc != AN_ROW_EMPTY) {              \
                            ent = mxw = snk = NAN;                            \
                            _Pragma("omp critical(an_diagnose_err)")          \
                            { if (!err || i < err_row) { err = rc; err_row = i; } } \
                        }                                                     \
                        AN_AT(T, D->ent, D->ent_s, i) = (T)ent;               \
                        AN_AT(T, D->mxw, D->mxw_s, i) = (T)mxw;               \
                        AN_AT(T, D->snk, D->snk_s, i) = (T)snk;               \
                        AN_AT(T, D->mrg, D->mrg_s, i) = (T)margin;            \
                        AN_AT(int64_t, D->sup, D->sup_s, i) = sup;            \
                    }                                                         \
                }                                                             \
            }                                                                 \
            _Pragma("omp single")                                             \
            an_column_counts(&D->v, cnt);                                     \
            _Pragma("omp for schedule(static)")                               \
            for (an_int j = 0; j < m; j++) {                                  \
                double s = 0;                                                 \
                for (an_int c = 0; c < AN_NCHUNK; c++) s += part[(size_t)(m + 1) * c + j]; \
                AN_AT(T, D->col, D->col_s, j) = cnt[j] ? (T)(s / (double)cnt[j]) : (T)NAN; \
            }                                                                 \
        }                                                                     \
    }                                                                         \
    free(tb.mem); free(part); free(cnt); free(kpk);                           \
    *bad_row = err_row;                                                       \
    return err;                                                               \
}
AN_DIAGNOSE(float, f, an_vf, FLT_MAX)
AN_DIAGNOSE(double, d, an_vd, DBL_MAX)
