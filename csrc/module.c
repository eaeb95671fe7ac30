/*
 * module.c -- attnnorm._core: the one table of gufuncs and their registration.
 *
 * Every kernel is registered here as a NumPy gufunc with a float32 and a
 * float64 loop.  Loop functions only unpack arguments (pointers, sizes, byte
 * strides) and call kernels; kernels live in the other .c files.
 */
#include "glue.h"
#include "an_simd.h"
#include "normalize.h"
#include "glue_attention.h"
#include "glue_linear.h"
#include "glue_diagnostics.h"

void an_raise(int code, const char *what, an_int detail)
{
    PyGILState_STATE st = PyGILState_Ensure();
    an_interrupt_clear();   /* the kernel has stopped: a Ctrl-C flag is spent */
    if (!PyErr_Occurred()) {
        switch (code) {
        case AN_ERR_INTERRUPTED:
            PyErr_SetNone(PyExc_KeyboardInterrupt);
            break;
        case AN_ERR_NOMEM:
            PyErr_Format(PyExc_MemoryError, "%s: could not allocate its workspace", what);
            break;
        case AN_ERR_EMPTY_ROW:
            PyErr_Format(PyExc_ValueError,
                         "%s: empty='raise' and query row %lld sees no key "
                         "(fully masked or all scores -inf)", what, (long long)detail);
            break;
        default:
            PyErr_Format(PyExc_ValueError, "%s: invalid input (code %d, at %lld)",
                         what, code, (long long)detail);
        }
    }
    PyGILState_Release(st);
}

/* ------------------------------------------------------------------------ */
/* Normalizers: operands                                                     */
/*   scores (n,m), mask (n,m) bool, causal (), wleft (), wright (), empty (), */
/*   <nreal real ()>, <nint int64 ()>, <nrowp real (n)>                       */
/*   ->  weights (n,m) [, tau (n), support (n)]                               */
/* ------------------------------------------------------------------------ */
typedef struct { const char *name; const an_normdesc *desc; } an_normdata;

#define AN_NORM_LOOP(T, TS)                                                   \
static void norm_loop_##TS(char **args, npy_intp const *dims,                 \
                           npy_intp const *steps, void *data)                 \
{                                                                             \
    const an_normdata *nd = (const an_normdata *)data;                        \
    const an_normdesc *d = nd->desc;                                          \
    const npy_intp N = dims[0], n = dims[1], m = dims[2];                     \
    const int nin = 6 + d->nreal + d->nint + d->nrowp;                        \
    const int nargs = nin + 1 + (d->has_extra ? 2 : 0);                       \
    const npy_intp *cs = steps + nargs;   /* core strides */                  \
    if (N <= 0) return;                                                       \
    /* matrices are described in chunks so the description stays small */    \
    const npy_intp chunk = N < 1024 ? N : 1024;                               \
    an_normmat *mats = (an_normmat *)malloc(sizeof(an_normmat) * (size_t)chunk); \
    if (!mats) { an_raise(AN_ERR_NOMEM, nd->name, 0); return; }               \
    for (npy_intp k0 = 0; k0 < N; k0 += chunk) {                              \
    const npy_intp kn = N - k0 < chunk ? N - k0 : chunk;                      \
    for (npy_intp k = k0; k < k0 + kn; k++) {                                 \
        an_normmat *M = &mats[k - k0];                                        \
        memset(M, 0, sizeof(*M));                                             \
        M->n = n; M->m = m; M->index = k;                                     \
        M->s = args[0] + k * steps[0]; M->s_n = cs[0]; M->s_m = cs[1];        \
        M->mask = args[1] + k * steps[1]; M->mk_n = cs[2]; M->mk_m = cs[3];   \
        if (cs[2] == 0 && cs[3] == 0 && *(const npy_bool *)M->mask)           \
            M->mask = NULL;   /* a broadcast True: no mask */                 \
        M->causal = an_causal_code(*(const int64_t *)(args[2] + k * steps[2]));          \
        M->wleft = *(const int64_t *)(args[3] + k * steps[3]);                \
        M->wright = *(const int64_t *)(args[4] + k * steps[4]);               \
        M->empty = (int)*(const int64_t *)(args[5] + k * steps[5]);           \
        for (int r = 0; r < d->nreal; r++)                                    \
            M->p[r] = (double)*(const T *)(args[6 + r] + k * steps[6 + r]);   \
        for (int r = 0; r < d->nint; r++) {                                   \
            int a = 6 + d->nreal + r;                                         \
            M->ip[r] = *(const int64_t *)(args[a] + k * steps[a]);            \
        }                                                                     \
        for (int r = 0; r < d->nrowp; r++) {                                  \
            int a = 6 + d->nreal + d->nint + r;                               \
            M->rp[r] = args[a] + k * steps[a]; M->rp_s[r] = cs[4 + r];        \
        }                                                                     \
        const npy_intp *co = cs + 4 + d->nrowp;  /* output core strides */    \
        M->out = args[nin] + k * steps[nin]; M->o_n = co[0]; M->o_m = co[1]; \
        if (d->has_extra) {                                                   \
            M->tau = args[nin + 1] + k * steps[nin + 1]; M->tau_s = co[2];    \
            M->sup = args[nin + 2] + k * steps[nin + 2]; M->sup_s = co[3];    \
        }                                                                     \
    }                                                                         \
    an_int bad = -1;                                                          \
    int rc = an_normalize_##TS(d, mats, kn, &bad);                            \
    if (rc) {                                                                 \
        an_raise(rc, nd->name, bad >= 0 ? bad % (n > 0 ? n : 1) : bad);       \
        break;                                                                \
    }                                                                         \
    }                                                                         \
    free(mats);                                                               \
    AN_CLEAR_FPE();                                                           \
}
AN_NORM_LOOP(float, f)
AN_NORM_LOOP(double, d)

#define NORM_SIG(params, extra) "(n,m),(n,m),(),(),(),()" params "->(n,m)" extra
#define NORM_TYPES(params, extra) "Tbqqqq" params "-T" extra
#define NORM_ENTRY(nm, params, ptypes, extra, etypes, doc)                    \
    { #nm, NORM_SIG(params, extra), NORM_TYPES(ptypes, etypes), doc,          \
      norm_loop_f, norm_loop_d, (void *)&norm_data_##nm }
#define NORM_DATA(nm) static const an_normdata norm_data_##nm = { #nm, &an_norm_##nm };

NORM_DATA(softmax)
/* ---- NORM_DATA: softmax family and elementwise maps (H1) ---- */
NORM_DATA(softmax_sink)
NORM_DATA(ssmax)
NORM_DATA(sigmoid)
NORM_DATA(relu)
NORM_DATA(polynomial)
NORM_DATA(softpick)
NORM_DATA(nap)
NORM_DATA(affine_softmax)
/* ---- end NORM_DATA H1 ---- */

/* ---- NORM_DATA: sparse, stochastic, Sinkhorn (H2) ---- */
NORM_DATA(sparsemax)
NORM_DATA(entmax)
NORM_DATA(stochastic_softmax)
NORM_DATA(sinkhorn)
/* ---- end NORM_DATA H2 ---- */

/* ------------------------------------------------------------------------ */
/* THE TABLE: every gufunc of attnnorm._core                                 */
/* ------------------------------------------------------------------------ */
static const an_gufunc_entry an_gufuncs[] = {
    /* ---- normalizers (DESIGN "Normalizers") ---- */
    NORM_ENTRY(softmax, ",()", "T", "", "",
        "softmax(scores, mask, causal, wleft, wright, empty, temperature) -> weights"),
    /* ---- table: softmax family and elementwise maps (H1) ----
     * softmax_sink: reals [sink]; ssmax: reals [c]; sigmoid: reals [bias], ints [use_length_bias];
     * relu: reals [power]; polynomial: reals [power]; softpick: reals [eps];
     * nap: reals [gain, bias, eps];
     * affine_softmax: no () params, per-row (n) params [a, b] (nrowp = 2):
     *   sig "(n,m),(n,m),(),(),(),(),(n),(n)->(n,m)", types "TbqqqqTT-T" */
    NORM_ENTRY(softmax_sink, ",()", "T", "", "",
        "softmax_sink(scores, mask, causal, wleft, wright, empty, sink) -> weights"),
    NORM_ENTRY(ssmax, ",()", "T", "", "",
        "ssmax(scores, mask, causal, wleft, wright, empty, c) -> weights"),
    NORM_ENTRY(sigmoid, ",(),()", "Tq", "", "",
        "sigmoid(scores, mask, causal, wleft, wright, empty, bias, use_length_bias) -> weights"),
    NORM_ENTRY(relu, ",()", "T", "", "",
        "relu(scores, mask, causal, wleft, wright, empty, power) -> weights"),
    NORM_ENTRY(polynomial, ",()", "T", "", "",
        "polynomial(scores, mask, causal, wleft, wright, empty, power) -> weights"),
    NORM_ENTRY(softpick, ",()", "T", "", "",
        "softpick(scores, mask, causal, wleft, wright, empty, eps) -> weights"),
    NORM_ENTRY(nap, ",(),(),()", "TTT", "", "",
        "nap(scores, mask, causal, wleft, wright, empty, gain, bias, eps) -> weights"),
    NORM_ENTRY(affine_softmax, ",(n),(n)", "TT", "", "",
        "affine_softmax(scores, mask, causal, wleft, wright, empty, a, b) -> weights"),
    /* ---- end table H1 ---- */

    /* ---- table: sparse, stochastic, Sinkhorn (H2) ----
     * sparsemax: no params, extra outputs tau (n) T and support (n) int64;
     * entmax: reals [alpha], ints [n_iter], extra outputs;
     * stochastic_softmax: ints [trials, seed, stream] (stream: per-matrix index from the wrapper);
     * sinkhorn: reals [eps], ints [n_iter] */
    NORM_ENTRY(sparsemax, "", "", ",(n),(n)", "Tq",
        "sparsemax(scores, mask, causal, wleft, wright, empty) -> weights, tau, support"),
    NORM_ENTRY(entmax, ",(),()", "Tq", ",(n),(n)", "Tq",
        "entmax(scores, mask, causal, wleft, wright, empty, alpha, n_iter) -> weights, tau, support"),
    NORM_ENTRY(stochastic_softmax, ",(),(),()", "qqq", "", "",
        "stochastic_softmax(scores, mask, causal, wleft, wright, empty, trials, seed, stream) -> weights"),
    NORM_ENTRY(sinkhorn, ",(),()", "Tq", "", "",
        "sinkhorn(scores, mask, causal, wleft, wright, empty, eps, n_iter) -> weights"),
    /* ---- end table H2 ---- */
    /* ---- end normalizers ---- */

    /* ---- attention (DESIGN "Attention") ---- */
    /* attention_<nm>, attention_stats_<nm>, attention_weights_<nm> for every
     * normalizer (glue_attention.h) */
    AN_ALL_NORMALIZERS(AN_ATT_ENTRIES)
    /* ---- end attention ---- */

    /* ---- linear-time attention ---- */
    { "linear_attention", "(n,d),(m,d),(m,e),(),(),()->(n,e)", "TTTqqT-T",
      "linear_attention(q, k, v, feature_map, causal, eps) -> out",
      linear_attention_loop_f, linear_attention_loop_d, NULL },
    { "cheap_linear_attention", "(m,k),(n,k),()->(n,k)", "TTq-T",
      "cheap_linear_attention(h, q, causal) -> r = H^T H q",
      cheap_linear_loop_f, cheap_linear_loop_d, NULL },
    { "log_attention", "(n,d),(m,d),(m,e),(d,w),(),()->(n,e),(d,w)", "TTTTqq-TT",
      "log_attention(q, k, v, state, causal, has_state) -> out, state",
      log_attention_loop_f, log_attention_loop_d, NULL },
    { "zeros_attention", "(n,d),(m,d),(m,e),(m),(),(),()->(n,e)", "TTTTTTq-T",
      "zeros_attention(q, k, v, s, gate_linear, gate_softmax, causal) -> out",
      zeros_attention_loop_f, zeros_attention_loop_d, NULL },
    { "zeros_weights", "(m),(n),(),(),()->(n,m)", "TTTTq-T",
      "zeros_weights(s, rows, gate_linear, gate_softmax, causal) -> r",
      zeros_weights_loop_f, zeros_weights_loop_d, NULL },
    { "soft_attention", "(n,d),(n,e),(l,d),(k),()->(n,e),(k)", "TTTTq-TT",
      "soft_attention(q, v, landmarks, iterations, mean_landmarks) -> out, residuals",
      soft_attention_loop_f, soft_attention_loop_d, NULL },
    { "soft_kernel", "(n,d)->(n,n)", "T-T", "soft_kernel(q) -> S",
      soft_kernel_loop_f, soft_kernel_loop_d, NULL },
    /* ---- end linear-time attention ---- */

    /* ---- diagnostics (DESIGN "Diagnostics") ---- */
    { "diag_row", "(n,m),(n,m),(),(),(),(),()->(n)", "TbqqqqT-T",
      "diag_row(a, mask, causal, wleft, wright, kind, p) -> per-row diagnostic",
      diag_row_loop_f, diag_row_loop_d, NULL },
    { "diag_support", "(n,m),(n,m),(),(),(),()->(n)", "TbqqqT-q",
      "diag_support(a, mask, causal, wleft, wright, threshold) -> #{a > threshold} per row",
      diag_support_loop_f, diag_support_loop_d, NULL },
    { "diag_column_mass", "(n,m),(n,m),(),(),()->(m)", "Tbqqq-T",
      "diag_column_mass(a, mask, causal, wleft, wright) -> mean weight per key over the queries that see it",
      diag_colmass_loop_f, diag_colmass_loop_d, NULL },
    { "diag_sink_mass", "(n,m),(n,m),(),(),(),()->()", "Tbqqqq-T",
      "diag_sink_mass(a, mask, causal, wleft, wright, sink) -> column mass of key sink",
      diag_sinkmass_loop_f, diag_sinkmass_loop_d, NULL },
    { "diag_matrix", "(n,m),(),()->()", "Tqq-T",
      "diag_matrix(a, kind, ord) -> residual / Frobenius norm / rank collapse",
      diag_matrix_loop_f, diag_matrix_loop_d, NULL },
    { "diag_jacobian_norm", "(n,m),(n,m),(),(),(),(),(),()->(n)", "TbqqqqqT-T",
      "diag_jacobian_norm(a, mask, causal, wleft, wright, normalizer, fro, p) -> per-row Jacobian norm",
      diag_jacobian_loop_f, diag_jacobian_loop_d, NULL },
    AN_ALL_NORMALIZERS(AN_DIAGNOSE_ENTRY)
    /* ---- end diagnostics ---- */
};

/* ------------------------------------------------------------------------ */

static int type_code(char c, int real)
{
    switch (c) {
    case 'T': return real;
    case 'b': return NPY_BOOL;
    case 'q': return NPY_INT64;
    case 'Q': return NPY_UINT64;
    default: return -1;
    }
}

static int add_gufunc(PyObject *module, const an_gufunc_entry *e)
{
    int nin = 0, nout = 0, out = 0;
    for (const char *c = e->types; *c; c++) {
        if (*c == '-') { out = 1; continue; }
        if (*c == ' ') continue;
        if (out) nout++; else nin++;
    }
    int nargs = nin + nout;
    /* storage that lives as long as the ufunc: types (2 loops), funcs, data */
    char *types = (char *)PyMem_Malloc((size_t)(2 * nargs));
    PyUFuncGenericFunction *funcs = (PyUFuncGenericFunction *)PyMem_Malloc(2 * sizeof(*funcs));
    void **data = (void **)PyMem_Malloc(2 * sizeof(void *));
    if (!types || !funcs || !data) { PyErr_NoMemory(); return -1; }
    for (int loop = 0; loop < 2; loop++) {
        int real = loop == 0 ? NPY_FLOAT : NPY_DOUBLE, k = 0;
        for (const char *c = e->types; *c; c++) {
            if (*c == '-' || *c == ' ') continue;
            int tc = type_code(*c, real);
            if (tc < 0) {
                PyErr_Format(PyExc_RuntimeError, "bad type code '%c' for %s", *c, e->name);
                return -1;
            }
            types[loop * nargs + k++] = (char)tc;
        }
    }
    funcs[0] = e->loop_f; funcs[1] = e->loop_d;
    data[0] = e->data; data[1] = e->data;
    PyObject *uf = PyUFunc_FromFuncAndDataAndSignature(
        funcs, data, types, 2, nin, nout, PyUFunc_None, e->name, e->doc, 0, e->signature);
    if (!uf) return -1;
    if (PyModule_AddObject(module, e->name, uf) < 0) { Py_DECREF(uf); return -1; }
    return 0;
}

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg)
{
    /* 1 <= n <= 1024 (larger requests crash inside libgomp) */
    const long cap = 1024;
    int overflow = 0;
    long n = PyLong_AsLongAndOverflow(arg, &overflow);
    if (n == -1 && PyErr_Occurred()) return NULL;   /* not an integer: TypeError */
    if (overflow || n < 1 || n > cap) {
        PyErr_Format(PyExc_ValueError,
                     "set_num_threads: n must be an integer in [1, %ld]; got %R", cap, arg);
        return NULL;
    }
    an_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *noargs)
{
    return PyLong_FromLong(an_num_threads());
}

static PyObject *py_simd_path(PyObject *self, PyObject *noargs)
{
    return PyUnicode_FromString(an_vf->name);
}

static PyObject *py_simd_best(PyObject *self, PyObject *noargs)
{
    return PyUnicode_FromString(an_simd_best());
}

static PyObject *py_has_openmp(PyObject *self, PyObject *noargs)
{
#ifdef _OPENMP
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef an_methods[] = {
    {"set_num_threads", py_set_num_threads, METH_O, "set_num_threads(n): cap the OpenMP threads used by attnnorm's kernels."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "get_num_threads() -> threads the next kernel call will use."},
    {"simd_path", py_simd_path, METH_NOARGS, "simd_path() -> the SIMD path in use ('avx512', 'avx2' or 'default')."},
    {"simd_best", py_simd_best, METH_NOARGS, "simd_best() -> the best SIMD path this CPU supports."},
    {"has_openmp", py_has_openmp, METH_NOARGS, "has_openmp() -> whether the extension was built with OpenMP."},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef an_module = {
    PyModuleDef_HEAD_INIT, "_core",
    "attnnorm._core: C gufuncs for attention normalisation (see attnnorm).",
    -1, an_methods
};

PyMODINIT_FUNC PyInit__core(void)
{
    import_array();
    import_umath();
    an_simd_init();
    PyObject *m = PyModule_Create(&an_module);
    if (!m) return NULL;
    for (size_t i = 0; i < sizeof(an_gufuncs) / sizeof(an_gufuncs[0]); i++) {
        if (add_gufunc(m, &an_gufuncs[i]) < 0) { Py_DECREF(m); return NULL; }
    }
    return m;
}
