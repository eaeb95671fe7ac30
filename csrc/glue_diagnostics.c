/* glue_diagnostics.c -- gufunc loops of the diagnostics: unpack operands into
 * the kernel structs of diagnostics.h and raise kernel errors. */
#include "glue_diagnostics.h"   /* Python.h first */
#include <stdlib.h>
#include <string.h>
#include "diagnostics.h"

#define AN_DIAGNOSE_DATA_DEF(nm) \
    const an_diagnose_data an_diagnose_data_##nm = { "diagnose_" #nm, &an_norm_##nm };
AN_ALL_NORMALIZERS(AN_DIAGNOSE_DATA_DEF)

/* Visibility operands at args[a0..a0+3] = mask, causal, wleft, wright of
 * matrix k; mask core strides mk_n, mk_m.  A broadcast True mask is no mask. */
static void vis_from_args(an_vis *v, npy_intp n, npy_intp m, char **args, npy_intp const *steps,
                          int a0, npy_intp k, npy_intp mk_n, npy_intp mk_m)
{
    v->n = n; v->m = m;
    v->mask = args[a0] + k * steps[a0]; v->mk_n = mk_n; v->mk_m = mk_m;
    if ((mk_n == 0 && mk_m == 0 && *(const npy_bool *)v->mask) || n == 0 || m == 0)
        v->mask = NULL;
    v->causal = an_causal_code(*(const int64_t *)(args[a0 + 1] + k * steps[a0 + 1]));
    v->wleft = *(const int64_t *)(args[a0 + 2] + k * steps[a0 + 2]);
    v->wright = *(const int64_t *)(args[a0 + 3] + k * steps[a0 + 3]);
}

#define AN_ALLOC_OR_RAISE(ptr, type, count, what)                             \
    type *ptr = (type *)calloc((size_t)((count) > 0 ? (count) : 1), sizeof(type)); \
    if (!ptr) { an_raise(AN_ERR_NOMEM, what, 0); return; }

/* row_diag: a (n,m), mask, causal, wleft, wright, kind (), p () -> (n) */
/* support: a (n,m), mask, causal, wleft, wright, threshold () -> (n) int64 */
#define AN_ROW_LOOPS(T, TS)                                                   \
void diag_row_loop_##TS(char **args, npy_intp const *dims, npy_intp const *steps, void *data) \
{                                                                             \
    const npy_intp N = dims[0], n = dims[1], m = dims[2];                     \
    const npy_intp *cs = steps + 8;                                           \
    if (N <= 0) return;                                                       \
    AN_ALLOC_OR_RAISE(P, an_rowdiag, N, "row diagnostic")                     \
    for (npy_intp k = 0; k < N; k++) {                                        \
        an_rowdiag *R = &P[k];                                                \
        vis_from_args(&R->v, n, m, args, steps, 1, k, cs[2], cs[3]);          \
        R->a = args[0] + k * steps[0]; R->a_n = cs[0]; R->a_m = cs[1];        \
        R->kind = (int)*(const int64_t *)(args[5] + k * steps[5]);            \
        R->p = (double)*(const T *)(args[6] + k * steps[6]);                  \
        R->out = args[7] + k * steps[7]; R->o_n = cs[4];                      \
    }                                                                         \
    int rc = an_row_diag_##TS(P, N);                                          \
    free(P);                                                                  \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, "row diagnostic", 0);                                \
}                                                                             \
void diag_support_loop_##TS(char **args, npy_intp const *dims, npy_intp const *steps, void *data) \
{                                                                             \
    const npy_intp N = dims[0], n = dims[1], m = dims[2];                     \
    const npy_intp *cs = steps + 7;                                           \
    if (N <= 0) return;                                                       \
    AN_ALLOC_OR_RAISE(P, an_rowdiag, N, "support_size")                       \
    for (npy_intp k = 0; k < N; k++) {                                        \
        an_rowdiag *R = &P[k];                                                \
        vis_from_args(&R->v, n, m, args, steps, 1, k, cs[2], cs[3]);          \
        R->a = args[0] + k * steps[0]; R->a_n = cs[0]; R->a_m = cs[1];        \
        R->kind = AN_RD_SUPPORT;                                              \
        R->p = (double)*(const T *)(args[5] + k * steps[5]);                  \
        R->out = args[6] + k * steps[6]; R->o_n = cs[4];                      \
    }                                                                         \
    int rc = an_row_diag_##TS(P, N);                                          \
    free(P);                                                                  \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, "support_size", 0);                                  \
}
AN_ROW_LOOPS(float, f)
AN_ROW_LOOPS(double, d)

/* column_mass: a (n,m), mask, causal, wleft, wright -> (m)
 * sink_mass:   a (n,m), mask, causal, wleft, wright, sink () -> () */
#define AN_COL_LOOPS(T, TS)                                                   \
void diag_colmass_loop_##TS(char **args, npy_intp const *dims, npy_intp const *steps, void *data) \
{                                                                             \
    const npy_intp N = dims[0], n = dims[1], m = dims[2];                     \
    const npy_intp *cs = steps + 6;                                           \
    if (N <= 0) return;                                                       \
    AN_ALLOC_OR_RAISE(P, an_colmass, N, "column_mass")                        \
    for (npy_intp k = 0; k < N; k++) {                                        \
        an_colmass *C = &P[k];                                                \
        vis_from_args(&C->v, n, m, args, steps, 1, k, cs[2], cs[3]);          \
        C->a = args[0] + k * steps[0]; C->a_n = cs[0]; C->a_m = cs[1];        \
        C->out = args[5] + k * steps[5]; C->o_m = cs[4];                      \
        C->j0 = 0; C->j1 = m;                                                 \
    }                                                                         \
    int rc = an_column_mass_##TS(P, N);                                       \
    free(P);                                                                  \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, "column_mass", 0);                                   \
}                                                                             \
void diag_sinkmass_loop_##TS(char **args, npy_intp const *dims, npy_intp const *steps, void *data) \
{                                                                             \
    const npy_intp N = dims[0], n = dims[1], m = dims[2];                     \
    const npy_intp *cs = steps + 7;                                           \
    if (N <= 0) return;                                                       \
    AN_ALLOC_OR_RAISE(P, an_colmass, N, "sink_mass")                          \
    for (npy_intp k = 0; k < N; k++) {                                        \
        an_colmass *C = &P[k];                                                \
        vis_from_args(&C->v, n, m, args, steps, 1, k, cs[2], cs[3]);          \
        C->a = args[0] + k * steps[0]; C->a_n = cs[0]; C->a_m = cs[1];        \
        C->out = args[6] + k * steps[6]; C->o_m = 0;                          \
        an_int j = *(const int64_t *)(args[5] + k * steps[5]);                \
        if (j < 0 || j >= m) { free(P); an_raise(AN_ERR_VALUE, "sink_mass: sink index", j); return; } \
        C->j0 = j; C->j1 = j + 1;                                             \
    }                                                                         \
    int rc = an_column_mass_##TS(P, N);                                       \
    free(P);                                                                  \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, "sink_mass", 0);                                     \
}
AN_COL_LOOPS(float, f)
AN_COL_LOOPS(double, d)

/* matrix_diag: a (n,m), kind (), ord () -> () */
#define AN_MAT_LOOP(T, TS)                                                    \
void diag_matrix_loop_##TS(char **args, npy_intp const *dims, npy_intp const *steps, void *data) \
{                                                                             \
    const npy_intp N = dims[0], n = dims[1], m = dims[2];                     \
    const npy_intp *cs = steps + 4;                                           \
    if (N <= 0) return;                                                       \
    AN_ALLOC_OR_RAISE(P, an_matdiag, N, "matrix diagnostic")                  \
    for (npy_intp k = 0; k < N; k++) {                                        \
        an_matdiag *D = &P[k];                                                \
        D->n = n; D->m = m;                                                   \
        D->a = args[0] + k * steps[0]; D->a_n = cs[0]; D->a_m = cs[1];        \
        D->kind = (int)*(const int64_t *)(args[1] + k * steps[1]);            \
        D->ord = (int)*(const int64_t *)(args[2] + k * steps[2]);             \
        D->out = args[3] + k * steps[3];                                      \
    }                                                                         \
    /* kinds differ per matrix only if the caller broadcast them; group runs */ \
    int rc = AN_OK;                                                           \
    for (npy_intp k0 = 0; k0 < N && !rc;) {                                   \
        npy_intp k1 = k0 + 1;                                                 \
        while (k1 < N && P[k1].kind == P[k0].kind) k1++;                      \
        rc = an_matrix_diag_##TS(P + k0, k1 - k0);                            \
        k0 = k1;                                                              \
    }                                                                         \
    free(P);                                                                  \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, "matrix diagnostic", 0);                             \
}
AN_MAT_LOOP(float, f)
AN_MAT_LOOP(double, d)

/* jacobian_norm: a (n,m), mask, causal, wleft, wright, normalizer (), fro (), p () -> (n) */
#define AN_JAC_LOOP(T, TS)                                                    \
void diag_jacobian_loop_##TS(char **args, npy_intp const *dims, npy_intp const *steps, void *data) \
{                                                                             \
    const npy_intp N = dims[0], n = dims[1], m = dims[2];                     \
    const npy_intp *cs = steps + 9;                                           \
    if (N <= 0) return;                                                       \
    AN_ALLOC_OR_RAISE(P, an_jacnorm, N, "jacobian_norm")                      \
    for (npy_intp k = 0; k < N; k++) {                                        \
        an_jacnorm *J = &P[k];                                                \
        vis_from_args(&J->v, n, m, args, steps, 1, k, cs[2], cs[3]);          \
        J->a = args[0] + k * steps[0]; J->a_n = cs[0]; J->a_m = cs[1];        \
        J->norm = (int)*(const int64_t *)(args[5] + k * steps[5]);            \
        J->fro = *(const int64_t *)(args[6] + k * steps[6]) != 0;             \
        J->p = (double)*(const T *)(args[7] + k * steps[7]);                  \
        J->out = args[8] + k * steps[8]; J->o_n = cs[4];                      \
    }                                                                         \
    int rc = an_jacobian_norm_##TS(P, N);                                     \
    free(P);                                                                  \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, "jacobian_norm", 0);                                 \
}
AN_JAC_LOOP(float, f)
AN_JAC_LOOP(double, d)

/* diagnose_<normalizer>: see AN_DIAGNOSE_ENTRY in glue_diagnostics.h.
 * dims: N, n, d, m, r, i.  17 operands. */
#define AN_DIAGNOSE_LOOP(T, TS)                                               \
void diagnose_loop_##TS(char **args, npy_intp const *dims, npy_intp const *steps, void *data) \
{                                                                             \
    const an_diagnose_data *dd = (const an_diagnose_data *)data;              \
    const npy_intp N = dims[0], n = dims[1], d = dims[2], m = dims[3];        \
    const npy_intp nr = dims[4], ni = dims[5];                                \
    const npy_intp *cs = steps + 17;                                          \
    if (N <= 0) return;                                                       \
    if (!dd->desc->row_##TS) {                                                \
        an_raise(AN_ERR_VALUE, dd->name, -1); return;                         \
    }                                                                         \
    AN_ALLOC_OR_RAISE(P, an_diagnose, N, dd->name)                            \
    for (npy_intp k = 0; k < N; k++) {                                        \
        an_diagnose *D = &P[k];                                               \
        vis_from_args(&D->v, n, m, args, steps, 2, k, cs[4], cs[5]);          \
        D->d = d;                                                             \
        D->q = args[0] + k * steps[0]; D->q_n = cs[0]; D->q_d = cs[1];        \
        D->k = args[1] + k * steps[1]; D->k_m = cs[2]; D->k_d = cs[3];        \
        D->scale = (double)*(const T *)(args[6] + k * steps[6]);              \
        an_normmat *M = &D->nm;                                               \
        M->n = n; M->m = m; M->index = k;                                     \
        M->causal = D->v.causal; M->wleft = D->v.wleft; M->wright = D->v.wright; \
        M->mask = D->v.mask; M->mk_n = D->v.mk_n; M->mk_m = D->v.mk_m;        \
        M->empty = AN_EMPTY_ZERO;                                             \
        for (npy_intp r = 0; r < nr && r < AN_MAXPARAM; r++)                  \
            M->p[r] = (double)AN_AT(T, args[7] + k * steps[7], cs[6], r);     \
        for (npy_intp r = 0; r < ni && r < AN_MAXPARAM; r++)                  \
            M->ip[r] = AN_AT(int64_t, args[8] + k * steps[8], cs[7], r);      \
        M->rp[0] = args[9] + k * steps[9]; M->rp_s[0] = cs[8];                \
        M->rp[1] = args[10] + k * steps[10]; M->rp_s[1] = cs[9];              \
        D->ent = args[11] + k * steps[11]; D->ent_s = cs[10];                 \
        D->mxw = args[12] + k * steps[12]; D->mxw_s = cs[11];                 \
        D->snk = args[13] + k * steps[13]; D->snk_s = cs[12];                 \
        D->mrg = args[14] + k * steps[14]; D->mrg_s = cs[13];                 \
        D->sup = args[15] + k * steps[15]; D->sup_s = cs[14];                 \
        D->col = args[16] + k * steps[16]; D->col_s = cs[15];                 \
    }                                                                         \
    an_int bad = -1;                                                          \
    int rc = an_diagnose_##TS(dd->desc, P, N, &bad);                          \
    free(P);                                                                  \
    AN_CLEAR_FPE();                                                           \
    if (rc) an_raise(rc, dd->name, bad);                                      \
}
AN_DIAGNOSE_LOOP(float, f)
AN_DIAGNOSE_LOOP(double, d)
