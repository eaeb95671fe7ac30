/*
 * module.c -- attnnorm._core: the module, its functions and the table of the
 * gufuncs that take no normalizer (those that do: glue_norm.c).
 *
 * Every kernel is registered here as a NumPy gufunc with a float32 and a
 * float64 loop.  Loop functions only unpack arguments (pointers, sizes, byte
 * strides) and call kernels; kernels live in the other .c files.
 */
#include "glue.h"
#include "an_simd.h"
#include "normalize.h"
#include "glue_norm.h"
#include "glue_linear.h"
#include "glue_diagnostics.h"
#include "glue_topk.h"

void an_raise(int code, const char *what, an_int detail)
{
    PyGILState_STATE st = PyGILState_Ensure();
    if (!PyErr_Occurred()) {
        switch (code) {
        case AN_ERR_INTERRUPTED:
            /* the interpreter's SIGINT handler (KeyboardInterrupt by
             * default) on this thread; KeyboardInterrupt if it raises
             * nothing (another thread, or a handler that returns) */
            if (PyErr_CheckSignals() == 0 && !PyErr_Occurred())
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
/* The gufuncs that do not take a normalizer (those that do are generated   */
/* from the descriptors: glue_norm.c)                                       */
/* ------------------------------------------------------------------------ */
static const an_gufunc_entry an_gufuncs[] = {
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
    /* their VJPs */
    { "linear_attention_vjp", "(n,d),(m,d),(m,e),(n,e),(),(),(),()->(n,d),(m,d),(m,e),()",
      "TTTTqqTq-TTTT",
      "linear_attention_vjp(q, k, v, grad, feature_map, causal, eps, normalize) -> dq, dk, dv, deps",
      an_linear_vjp_loop_f, an_linear_vjp_loop_d, NULL },
    { "log_attention_vjp",
      "(n,d),(m,d),(m,e),(n,e),(d,w),(d,w),(),(),()->(n,d),(m,d),(m,e),(d,w)",
      "TTTTTTqqq-TTTT",
      "log_attention_vjp(q, k, v, grad, state, grad_state, causal, has_state, has_grad_state)"
      " -> dq, dk, dv, dstate",
      an_log_vjp_loop_f, an_log_vjp_loop_d, NULL },
    { "zeros_attention_vjp",
      "(n,d),(m,d),(m,e),(m),(),(),(),(n,e)->(n,d),(m,d),(m,e),(m),(),()",
      "TTTTTTqT-TTTTTT",
      "zeros_attention_vjp(q, k, v, s, gate_linear, gate_softmax, causal, grad)"
      " -> dq, dk, dv, ds, d_gate_linear, d_gate_softmax",
      an_zeros_vjp_loop_f, an_zeros_vjp_loop_d, NULL },
    { "soft_attention_vjp", "(n,d),(n,e),(l,d),(k),(),(n,e)->(n,d),(n,e),(l,d)",
      "TTTTqT-TTT",
      "soft_attention_vjp(q, v, landmarks, iterations, mean_landmarks, grad) -> dq, dv, dlandmarks",
      an_soft_vjp_loop_f, an_soft_vjp_loop_d, NULL },
    /* ---- end linear-time attention ---- */

    /* ---- diagnostics (README "Diagnostics") ---- */
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
    /* ---- end diagnostics ---- */
    /* ---- key-sharded sparse attention (attnnorm/_shard.py) ---- */
    { "topk_scores", "(n,d),(m,d),(n,m),(),(k)->(n,k),(n,k)", "TTbTT-Tq",
      "topk_scores(q, k, mask, scale, slots) -> the K = len(slots) largest visible scores "
      "(scale q) . k_j of each row, decreasing, and their key indices (-inf, -1: padding)",
      topk_scores_loop_f, topk_scores_loop_d, NULL },
};

/* ------------------------------------------------------------------------ */

static int type_code(char c, int real)
{
    switch (c) {
    case 'T': return real;
    case 'b': return NPY_BOOL;
    case 'q': return NPY_INT64;
    default: return -1;
    }
}

static int add_gufunc(void *ctx, const an_gufunc_entry *e)
{
    PyObject *module = (PyObject *)ctx;
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
    (void)self;
    /* 1 <= n <= AN_MAX_THREADS (larger requests crash inside libgomp) */
    int overflow = 0;
    long n = PyLong_AsLongAndOverflow(arg, &overflow);
    if (n == -1 && PyErr_Occurred()) return NULL;   /* not an integer: TypeError */
    if (overflow || n < 1 || n > AN_MAX_THREADS) {
        PyErr_Format(PyExc_ValueError,
                     "set_num_threads: n must be an integer in [1, %d]; got %R",
                     AN_MAX_THREADS, arg);
        return NULL;
    }
    an_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyLong_FromLong(an_num_threads());
}

static PyObject *py_simd_path(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyUnicode_FromString(an_vf->name);
}

static PyObject *py_simd_best(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyUnicode_FromString(an_simd_best());
}

static PyObject *py_has_openmp(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
#ifdef _OPENMP
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef an_methods[] = {
    {"set_num_threads", py_set_num_threads, METH_O, "set_num_threads($module, n, /)\n--\n\nCap the OpenMP threads used by attnnorm's kernels at n, 1 <= n <= 1024 (omp_set_num_threads;\nthread-local with GNU OpenMP). Results are bit-identical for every thread count."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "get_num_threads($module, /)\n--\n\nThe number of OpenMP threads the next kernel call will use (an int >= 1)."},
    {"simd_path", py_simd_path, METH_NOARGS, "simd_path($module, /)\n--\n\nThe SIMD path in use: 'avx512', 'avx2' or 'default' (set ATTNNORM_CPU to force one)."},
    {"simd_best", py_simd_best, METH_NOARGS, "simd_best($module, /)\n--\n\nThe best SIMD path this CPU supports: 'avx512', 'avx2' or 'default'."},
    {"normalizer_info", an_normalizer_info, METH_NOARGS,
     "normalizer_info($module, /)\n--\n\nThe normalizer descriptors: name, parameters (name, "
     "kind, default, domain, per row), traits, as a tuple of dicts."},
    {"has_openmp", py_has_openmp, METH_NOARGS, "has_openmp($module, /)\n--\n\nWhether the extension was built with OpenMP (False: every kernel runs serially)."},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef an_module = {
    PyModuleDef_HEAD_INIT, "_core",
    "attnnorm._core: C gufuncs for attention normalisation (see attnnorm).",
    -1, an_methods, NULL, NULL, NULL, NULL
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
    if (an_normalizer_gufuncs(add_gufunc, m) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
