/* glue_diagnostics.c -- gufunc loops of the diagnostics: unpack operands into
 * the kernel structs of diagnostics.h and raise kernel errors. */
#include "glue_diagnostics.h"   /* Python.h first */
#include <stdlib.h>
#include <string.h>
#include "diagnostics.h"

/* Visibility operands at args[a0..a0+3] = mask, causal, wleft, wright of
 * matrix k; mask core strides mk_n, mk_m.  A broadcast True mask is no mask. */
static void vis_from_args(an_vis *v, npy_intp n, npy_intp m, char **args, npy_intp const *steps,
                          int a0, npy_intp k, npy_intp mk_n, npy_intp mk_m)
{
    v->n = n; v->m = m;
    v->mask = args[a0] + k * steps[a0]; v->mk_n = mk_n; v->mk_m = mk_m;
    if ((mk_n == 0 && mk_m == 0 && *(const npy_bool *)v->mask) || n == 0 || m == 0)
        v->mask = NULL;
    v->causal = *(const int64_t *)(args[a0 + 1] + k * steps[a0 + 1]) != 0;
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
