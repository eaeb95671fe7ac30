/*
 * glue_norm.c -- generate the gufuncs of every normalizer from its
 * descriptor (see glue_norm.h for the families), and describe the
 * descriptors to Python (normalizer_info).
 */
#include "glue_norm.h"
#include "attention_vjp.h"
#include <string.h>
#include <stdio.h>

/* One operand: role, type code ('T' the loop's real type, 'b' bool, 'q'
 * int64), core dimensions ("n,m", "" for a scalar). */
typedef struct { int role; char type; const char *core; const char *name; } an_opspec;
#define AN_END { -1, 0, NULL, NULL }

#define AN_VIS_OPS                                                             \
    { AN_OP_MASK, 'b', "n,m", "mask" }, { AN_OP_CAUSAL, 'q', "", "causal" },   \
    { AN_OP_WLEFT, 'q', "", "wleft" }, { AN_OP_WRIGHT, 'q', "", "wright" }
#define AN_PARAM_OPS                                                           \
    { AN_OP_REALS, 'T', "r", "reals" }, { AN_OP_INTS, 'q', "i", "ints" },      \
    { AN_OP_ROWP, 'T', "n,w", "rowparams" }

static const an_opspec ops_normalize[] = {
    { AN_OP_SCORES, 'T', "n,m", "scores" }, AN_VIS_OPS, { AN_OP_EMPTY, 'q', "", "empty" },
    AN_PARAM_OPS, AN_END };
static const an_opspec outs_normalize[] = { { AN_OP_WEIGHTS, 'T', "n,m", "weights" }, AN_END };
static const an_opspec outs_normalize_tau[] = {
    { AN_OP_WEIGHTS, 'T', "n,m", "weights" }, { AN_OP_TAU, 'T', "n", "tau" },
    { AN_OP_SUPPORT, 'q', "n", "support" }, AN_END };

static const an_opspec ops_attention[] = {
    { AN_OP_Q, 'T', "n,d", "q" }, { AN_OP_K, 'T', "m,d", "k" }, { AN_OP_V, 'T', "m,e", "v" },
    AN_VIS_OPS, { AN_OP_EMPTY, 'q', "", "empty" }, { AN_OP_SCALE, 'T', "", "scale" },
    AN_PARAM_OPS, AN_END };
static const an_opspec outs_attention[] = { { AN_OP_OUT, 'T', "n,e", "out" }, AN_END };
static const an_opspec outs_attention_stats[] = {
    { AN_OP_OUT, 'T', "n,e", "out" }, { AN_OP_ST_LOGNORM, 'T', "n", "lognorm" },
    { AN_OP_ST_ENTROPY, 'T', "n", "entropy" }, { AN_OP_ST_MAXW, 'T', "n", "max_weight" },
    { AN_OP_ST_ARGMAX, 'q', "n", "argmax" }, { AN_OP_ST_W0, 'T', "n", "weight0" },
    { AN_OP_ST_MARGIN, 'T', "n", "margin" }, { AN_OP_ST_SUPPORT, 'q', "n", "support" },
    { AN_OP_ST_WSUM, 'T', "n", "weight_sum" }, AN_END };

static const an_opspec ops_attention_weights[] = {
    { AN_OP_Q, 'T', "n,d", "q" }, { AN_OP_K, 'T', "m,d", "k" },
    AN_VIS_OPS, { AN_OP_EMPTY, 'q', "", "empty" }, { AN_OP_SCALE, 'T', "", "scale" },
    AN_PARAM_OPS, AN_END };
static const an_opspec outs_attention_weights[] = {
    { AN_OP_WEIGHTS, 'T', "n,m", "weights" }, AN_END };

static const an_opspec ops_diagnose[] = {
    { AN_OP_Q, 'T', "n,d", "q" }, { AN_OP_K, 'T', "m,d", "k" },
    AN_VIS_OPS, { AN_OP_SCALE, 'T', "", "scale" }, AN_PARAM_OPS, AN_END };
static const an_opspec outs_diagnose[] = {
    { AN_OP_D_ENTROPY, 'T', "n", "entropy" }, { AN_OP_D_MAXW, 'T', "n", "max_weight" },
    { AN_OP_D_SINKW, 'T', "n", "sink_weight" }, { AN_OP_D_MARGIN, 'T', "n", "margin" },
    { AN_OP_D_SUPPORT, 'q', "n", "support" }, { AN_OP_D_COLMASS, 'T', "m", "column_mass" },
    AN_END };

static const an_opspec ops_jacobian[] = {
    { AN_OP_SCORES, 'T', "n,m", "a" }, AN_VIS_OPS, { AN_OP_FRO, 'q', "", "fro" },
    AN_PARAM_OPS, AN_END };
static const an_opspec outs_jacobian[] = { { AN_OP_JNORM, 'T', "n", "norm" }, AN_END };

/* want_params = 0: the parameter gradients are skipped (left 0) */
static const an_opspec ops_vjp[] = {
    { AN_OP_SCORES, 'T', "n,m", "scores" }, { AN_OP_WEIGHTS, 'T', "n,m", "weights" },
    { AN_OP_GRAD, 'T', "n,m", "grad" }, AN_VIS_OPS, AN_PARAM_OPS,
    { AN_OP_WANT, 'q', "", "want_params" }, AN_END };
static const an_opspec outs_vjp[] = {
    { AN_OP_DSCORES, 'T', "n,m", "d_scores" }, { AN_OP_DREALS, 'T', "r", "d_reals" },
    { AN_OP_DROWP, 'T', "n,w", "d_rowparams" }, AN_END };

static const an_opspec outs_attention_lse[] = {
    { AN_OP_OUT, 'T', "n,e", "out" }, { AN_OP_LSE, 'T', "n", "lognorm" }, AN_END };

/* pv = P v of the softmax part and lognorm its log-normaliser (the softmax
 * forms; unused otherwise); param_grads = 0 lets the generic path skip the
 * parameter gradients */
static const an_opspec ops_attention_vjp[] = {
    { AN_OP_Q, 'T', "n,d", "q" }, { AN_OP_K, 'T', "m,d", "k" }, { AN_OP_V, 'T', "m,e", "v" },
    { AN_OP_GRAD_OUT, 'T', "n,e", "grad_out" }, { AN_OP_PV, 'T', "n,e", "pv" },
    { AN_OP_LSE_IN, 'T', "n", "lognorm" }, AN_VIS_OPS, { AN_OP_SCALE, 'T', "", "scale" },
    { AN_OP_WANT, 'q', "", "param_grads" }, AN_PARAM_OPS, AN_END };
static const an_opspec outs_attention_vjp[] = {
    { AN_OP_DQ, 'T', "n,d", "dq" }, { AN_OP_DK, 'T', "m,d", "dk" },
    { AN_OP_DV, 'T', "m,e", "dv" }, { AN_OP_DREALS, 'T', "r", "d_reals" },
    { AN_OP_DROWP, 'T', "n,w", "d_rowparams" }, AN_END };

typedef struct {
    const char *prefix;
    const an_opspec *ins, *outs;
    PyUFuncGenericFunction loop_f, loop_d;
} an_family;

static const an_family families[AN_NFAM] = {
    [AN_FAM_NORMALIZE] = { "", ops_normalize, outs_normalize,
                           an_normalize_loop_f, an_normalize_loop_d },
    [AN_FAM_ATTENTION] = { "attention_", ops_attention, outs_attention,
                           an_attention_loop_f, an_attention_loop_d },
    [AN_FAM_ATTENTION_STATS] = { "attention_stats_", ops_attention, outs_attention_stats,
                                 an_attention_loop_f, an_attention_loop_d },
    [AN_FAM_ATTENTION_WEIGHTS] = { "attention_weights_", ops_attention_weights,
                                   outs_attention_weights,
                                   an_attention_loop_f, an_attention_loop_d },
    [AN_FAM_DIAGNOSE] = { "diagnose_", ops_diagnose, outs_diagnose,
                          an_diagnose_loop_f, an_diagnose_loop_d },
    [AN_FAM_JACOBIAN] = { "jacobian_norm_", ops_jacobian, outs_jacobian,
                          an_jacobian_loop_f, an_jacobian_loop_d },
    [AN_FAM_VJP] = { "normalizer_vjp_", ops_vjp, outs_vjp, an_vjp_loop_f, an_vjp_loop_d },
    [AN_FAM_ATTENTION_LSE] = { "attention_lse_", ops_attention, outs_attention_lse,
                               an_attention_loop_f, an_attention_loop_d },
    [AN_FAM_ATTENTION_VJP] = { "attention_vjp_", ops_attention_vjp, outs_attention_vjp,
                               an_attvjp_loop_f, an_attvjp_loop_d },
};

/* Whether normalizer d has a gufunc of family f. */
static int family_applies(const an_normdesc *d, int f)
{
    switch (f) {
    case AN_FAM_DIAGNOSE: return d->row_f != NULL;
    case AN_FAM_JACOBIAN:
        return d->jac != AN_JAC_NONE && d->jac != AN_JAC_SCORES;
    case AN_FAM_VJP: return an_has_vjp(d);
    case AN_FAM_ATTENTION_LSE: return an_att_has_lse(d);
    case AN_FAM_ATTENTION_VJP: return an_attvjp_kind(d) >= 0;
    default: return 1;
    }
}

/* Append to a bounded string buffer. */
static void cat(char *buf, size_t size, const char *s)
{
    size_t len = strlen(buf);
    if (len + 1 < size) snprintf(buf + len, size - len, "%s", s);
}

/* Fill the loop data (roles, core-stride and dim positions) and build the
 * signature, type codes (2 loops) and doc of one gufunc.  Returns nin. */
static int describe(const an_normdesc *d, int f, an_loopdata *L, char *sig, size_t sigsz,
                    char *types, char *doc, size_t docsz, int *nout)
{
    const an_family *F = &families[f];
    const an_opspec *outs = f == AN_FAM_NORMALIZE && d->tau_support ? outs_normalize_tau
                                                                       : F->outs;
    char dimnames[16] = "";
    int nin = 0, no = 0, core = 0, nargs = 0;
    for (const an_opspec *o = F->ins; o->core; o++) nargs++;
    for (const an_opspec *o = outs; o->core; o++) nargs++;
    for (int r = 0; r < AN_NROLES; r++) L->arg[r] = L->core[r] = -1;
    L->desc = d;
    L->family = f;
    snprintf(L->name, sizeof(L->name), "%s%s", F->prefix, d->name);
    sig[0] = doc[0] = 0;
    cat(doc, docsz, L->name);
    cat(doc, docsz, "(");
    core = nargs;   /* core strides follow the nargs outer strides */
    for (int pass = 0; pass < 2; pass++) {
        const an_opspec *list = pass ? outs : F->ins;
        cat(sig, sigsz, pass ? "->" : "");
        if (pass) cat(doc, docsz, ") -> ");
        for (const an_opspec *o = list; o->core; o++) {
            const int a = nin + no;
            if ((pass ? no : nin) > 0) { cat(sig, sigsz, ","); cat(doc, docsz, ", "); }
            cat(sig, sigsz, "(");
            cat(sig, sigsz, o->core);
            cat(sig, sigsz, ")");
            cat(doc, docsz, o->name);
            L->arg[o->role] = a;
            L->core[o->role] = core;
            for (const char *c = o->core; *c; c++) {
                if (*c == ',') continue;
                core++;
                if (!strchr(dimnames, *c)) {
                    size_t nd = strlen(dimnames);
                    dimnames[nd] = *c;
                    dimnames[nd + 1] = 0;
                }
            }
            types[a] = o->type;
            if (pass) no++; else nin++;
        }
    }
    /* dims[0] is the outer loop; core dims follow in order of appearance */
    const char *letters = "nmdeiwr";
    int *slots[] = { &L->dim_n, &L->dim_m, &L->dim_d, &L->dim_e, &L->dim_i, &L->dim_w, &L->dim_r };
    for (int t = 0; t < 7; t++) {
        const char *at = strchr(dimnames, letters[t]);
        *slots[t] = at ? 1 + (int)(at - dimnames) : -1;
    }
    if (d->nparams) {
        cat(doc, docsz, "\n\nparameters (reals, ints, rowparams):");
        for (int k = 0; k < d->nparams; k++) {
            const an_param *p = &d->params[k];
            cat(doc, docsz, k ? ", " : " ");
            cat(doc, docsz, p->name);
            cat(doc, docsz, p->kind == AN_PARAM_INT ? " (int)" : (p->flags & AN_PF_ROW) ? " (row)" : "");
        }
    }
    *nout = no;
    return nin;
}

int an_normalizer_gufuncs(int (*add)(void *ctx, const an_gufunc_entry *e), void *ctx)
{
    for (const an_normdesc *const *dp = an_normalizers; *dp; dp++) {
        for (int f = 0; f < AN_NFAM; f++) {
            if (!family_applies(*dp, f)) continue;
            /* lives as long as the gufunc */
            an_loopdata *L = (an_loopdata *)PyMem_Calloc(1, sizeof(an_loopdata));
            char *sig = (char *)PyMem_Calloc(1, 256);
            char *doc = (char *)PyMem_Calloc(1, 512);
            char *types = (char *)PyMem_Calloc(1, 40);
            if (!L || !sig || !doc || !types) { PyErr_NoMemory(); return -1; }
            char codes[40];
            int nout, nin = describe(*dp, f, L, sig, 256, codes, doc, 512, &nout);
            memcpy(types, codes, (size_t)nin);
            types[nin] = '-';
            memcpy(types + nin + 1, codes + nin, (size_t)nout);
            an_gufunc_entry e = { L->name, sig, types, doc, families[f].loop_f,
                                  families[f].loop_d, L };
            if (add(ctx, &e) < 0) return -1;
        }
    }
    return 0;
}

/* ---- normalizer_info ---- */

static PyObject *domain_dict(const an_domain *dom)
{
    return Py_BuildValue("{s:d,s:d,s:O,s:z}", "lo", dom->lo, "hi", dom->hi,
                         "lo_open", dom->lo_open ? Py_True : Py_False, "text", dom->text);
}

static PyObject *param_dict(const an_param *p)
{
    PyObject *dom = domain_dict(&p->dom);
    PyObject *jac = p->jac_dom.text ? domain_dict(&p->jac_dom) : (Py_INCREF(Py_None), Py_None);
    PyObject *def;
    if (p->flags & (AN_PF_NONE | AN_PF_STREAM)) { def = Py_None; Py_INCREF(def); }
    else if (p->flags & AN_PF_BOOL) def = PyBool_FromLong(p->def != 0);
    else if (p->kind == AN_PARAM_INT || ((p->flags & AN_PF_INTEGER) && p->def == floor(p->def)))
        def = PyLong_FromLongLong((long long)p->def);
    else def = PyFloat_FromDouble(p->def);
    PyObject *r = NULL;
    if (dom && jac && def)
        r = Py_BuildValue("{s:s,s:s,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O}",
                          "name", p->name, "kind", p->kind == AN_PARAM_INT ? "int" : "real",
                          "row", (p->flags & AN_PF_ROW) ? Py_True : Py_False,
                          "finite", (p->flags & AN_PF_FINITE) ? Py_True : Py_False,
                          "integer", (p->flags & AN_PF_INTEGER) ? Py_True : Py_False,
                          "none", (p->flags & AN_PF_NONE) ? Py_True : Py_False,
                          "stream", (p->flags & AN_PF_STREAM) ? Py_True : Py_False,
                          "bool", (p->flags & AN_PF_BOOL) ? Py_True : Py_False,
                          "default", def, "domain", dom, "jacobian_domain", jac);
    Py_XDECREF(dom); Py_XDECREF(jac); Py_XDECREF(def);
    return r;
}

static const char *const online_names[] = { NULL, "softmax", "softmax_sink", "ssmax",
                                             "affine_softmax", "softpick" };
static const char *const jac_names[] = { NULL, "diag", "downdate", "projection", "dense",
                                         "scores" };

PyObject *an_normalizer_info(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    for (const an_normdesc *const *dp = an_normalizers; *dp; dp++) {
        const an_normdesc *d = *dp;
        PyObject *params = PyTuple_New(d->nparams);
        if (!params) { Py_DECREF(list); return NULL; }
        for (int k = 0; k < d->nparams; k++) {
            PyObject *pd = param_dict(&d->params[k]);
            if (!pd) { Py_DECREF(params); Py_DECREF(list); return NULL; }
            PyTuple_SET_ITEM(params, k, pd);
        }
        PyObject *info = Py_BuildValue(
            "{s:s,s:N,s:O,s:O,s:O,s:O,s:O,s:z,s:O,s:z,s:O,s:O}",
            "name", d->name, "params", params,
            "row_kernel", d->row_f ? Py_True : Py_False,
            "tau_support", d->tau_support ? Py_True : Py_False,
            "lists_support", d->lists_support ? Py_True : Py_False,
            "uses_length", d->uses_length ? Py_True : Py_False,
            "elementwise", d->map_f ? Py_True : Py_False,
            "online", online_names[d->online],
            "lognorm", d->lognorm ? Py_True : Py_False,
            "jacobian", jac_names[d->jac],
            "vjp", an_has_vjp(d) ? Py_True : Py_False,
            "vjp_weights", d->vjp_weights ? Py_True : Py_False);
        if (!info || PyList_Append(list, info) < 0) {
            Py_XDECREF(info); Py_DECREF(list); return NULL;
        }
        Py_DECREF(info);
    }
    PyObject *t = PyList_AsTuple(list);
    Py_DECREF(list);
    return t;
}
