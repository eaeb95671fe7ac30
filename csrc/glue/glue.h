/*
 * glue.h -- shared pieces of the CPython/NumPy glue (module.c and glue_*.c).
 * Loop functions here unpack gufunc arguments into kernel structs and turn
 * kernel error codes into Python exceptions; they never compute.
 */
#ifndef AN_GLUE_H
#define AN_GLUE_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_2_0_API_VERSION
#include <numpy/arrayobject.h>
#include <numpy/ufuncobject.h>
#include <fenv.h>
#include "an_common.h"

/* Raise the exception for a kernel error code (takes the GIL itself; does
 * nothing if an exception is already set).  `what` names the function. */
void an_raise(int code, const char *what, an_int detail);

/* Operand op of outer-loop element k. */
static inline char *an_operand(char **args, npy_intp const *steps, int op, npy_intp k)
{
    return args[op] + k * steps[op];
}

/* The causal operand (int64: 0, 1 or 2 from attnnorm._common.causal_code)
 * of outer-loop element k as an AN_CAUSAL_* code. */
static inline int an_causal_operand(char **args, npy_intp const *steps, int op, npy_intp k)
{
    return an_causal_code(*(const int64_t *)an_operand(args, steps, op, k));
}

/* Kernels follow IEEE limits on purpose (NaN rows, +-inf scores); clear the
 * floating-point status they leave so NumPy does not warn about it. */
#define AN_CLEAR_FPE() feclearexcept(FE_ALL_EXCEPT)

/* One row of the gufunc table.  `types` spells the operand types of one loop
 * with 'T' standing for the loop's real type (float32 or float64):
 *   T real, b bool, q int64, '-' separates inputs from outputs
 * e.g. "Tbqqqq T-T" is (scores, mask, causal, wleft, wright, empty, temperature) -> weights. */
typedef struct {
    const char *name;
    const char *signature;
    const char *types;
    const char *doc;
    PyUFuncGenericFunction loop_f, loop_d;
    void *data;
} an_gufunc_entry;

#endif
