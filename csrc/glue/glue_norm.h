/*
 * glue_norm.h -- the gufuncs generated from the normalizer descriptors
 * (normalize.h): for every normalizer <nm>, one gufunc per family
 *
 *   <nm>                   scores -> weights [, tau, support]
 *   attention_<nm>         q, k, v -> out
 *   attention_stats_<nm>   q, k, v -> out and the per-query statistics
 *   attention_weights_<nm> q, k -> weights
 *   diagnose_<nm>          q, k -> streamed diagnostics   (row kernels only)
 *   jacobian_norm_<nm>     weights -> per-row Jacobian norm (jac form DIAG,
 *                          DOWNDATE, PROJECTION or DENSE)
 *   normalizer_vjp_<nm>    scores, weights, grad -> d scores, d parameters
 *                          (normalizers with a VJP)
 *
 * Every family passes the parameters the same way, as three operands after
 * the shared ones: reals (r) [T], ints (i) [int64], rowparams (n, w) [T],
 * the descriptor's per-matrix real, integer and per-row real parameters in
 * their order.  an_unpack_params_* (one routine) checks the three counts
 * against the descriptor and fills the kernels' an_normmat.
 *
 * Operands are addressed by role (AN_OP_*), never by position: the loop data
 * of each gufunc records where each role's operand and core strides are.
 */
#ifndef AN_GLUE_NORM_H
#define AN_GLUE_NORM_H
#include "glue.h"
#include "normalize.h"

/* Operand roles. */
enum {
    AN_OP_SCORES, AN_OP_Q, AN_OP_K, AN_OP_V,
    AN_OP_MASK, AN_OP_CAUSAL, AN_OP_WLEFT, AN_OP_WRIGHT, AN_OP_EMPTY, AN_OP_SCALE,
    AN_OP_FRO, AN_OP_REALS, AN_OP_INTS, AN_OP_ROWP, AN_OP_GRAD, AN_OP_WANT,
    /* outputs */
    AN_OP_WEIGHTS, AN_OP_TAU, AN_OP_SUPPORT, AN_OP_OUT,
    AN_OP_ST_LOGNORM, AN_OP_ST_ENTROPY, AN_OP_ST_MAXW, AN_OP_ST_ARGMAX, AN_OP_ST_W0,
    AN_OP_ST_MARGIN, AN_OP_ST_SUPPORT, AN_OP_ST_WSUM,
    AN_OP_D_ENTROPY, AN_OP_D_MAXW, AN_OP_D_SINKW, AN_OP_D_MARGIN, AN_OP_D_SUPPORT,
    AN_OP_D_COLMASS, AN_OP_JNORM, AN_OP_DSCORES, AN_OP_DREALS, AN_OP_DROWP,
    AN_NROLES
};

/* Families of generated gufuncs. */
enum { AN_FAM_NORMALIZE, AN_FAM_ATTENTION, AN_FAM_ATTENTION_STATS, AN_FAM_ATTENTION_WEIGHTS,
       AN_FAM_DIAGNOSE, AN_FAM_JACOBIAN, AN_FAM_VJP, AN_NFAM };

/* What a generated loop needs: its normalizer, family and name, and for
 * each role the operand index (arg, -1 if absent) and the index in steps[]
 * of its first core stride (core); the dims[] index of the core sizes
 * n, m, d, e and of the parameter counts r, i, w. */
typedef struct {
    const an_normdesc *desc;
    int family;
    char name[64];
    int arg[AN_NROLES], core[AN_NROLES];
    int dim_n, dim_m, dim_d, dim_e, dim_r, dim_i, dim_w;
} an_loopdata;

/* Operand `role` of matrix k, and its core strides. */
static inline char *an_arg(char **args, npy_intp const *steps, const an_loopdata *L,
                           int role, npy_intp k)
{
    return args[L->arg[role]] + k * steps[L->arg[role]];
}
static inline npy_intp const *an_core(npy_intp const *steps, const an_loopdata *L, int role)
{
    return steps + L->core[role];
}
static inline int64_t an_arg_i64(char **args, npy_intp const *steps, const an_loopdata *L,
                                 int role, npy_intp k)
{
    return *(const int64_t *)an_arg(args, steps, L, role, k);
}

/* Describe every generated gufunc as a table row and hand it to add(ctx,
 * row) (module.c registers it); 0, or -1 with an exception set. */
int an_normalizer_gufuncs(int (*add)(void *ctx, const an_gufunc_entry *e), void *ctx);
/* attnnorm._core.normalizer_info(): the descriptors as Python dicts. */
PyObject *an_normalizer_info(PyObject *self, PyObject *noargs);

/* The loops (glue_norm_loops.c), one per family and real type. */
#define AN_NORM_LOOP_DECLS(TS)                                                \
    void an_normalize_loop_##TS(char **, npy_intp const *, npy_intp const *, void *); \
    void an_attention_loop_##TS(char **, npy_intp const *, npy_intp const *, void *); \
    void an_diagnose_loop_##TS(char **, npy_intp const *, npy_intp const *, void *);  \
    void an_jacobian_loop_##TS(char **, npy_intp const *, npy_intp const *, void *);  \
    void an_vjp_loop_##TS(char **, npy_intp const *, npy_intp const *, void *);
AN_NORM_LOOP_DECLS(f)
AN_NORM_LOOP_DECLS(d)
#undef AN_NORM_LOOP_DECLS

#endif
