/* glue_linear.h -- loop functions and table data of the linear gufuncs
 * (defined in glue_linear.c and, for their VJPs, glue_linear_vjp.c; listed in the table in module.c). */
#ifndef AN_GLUE_LINEAR_H
#define AN_GLUE_LINEAR_H
#include "glue.h"

#define AN_LINEAR_LOOP_DECLS(TS)                                              \
    void linear_attention_loop_##TS(char **, npy_intp const *, npy_intp const *, void *); \
    void cheap_linear_loop_##TS(char **, npy_intp const *, npy_intp const *, void *);     \
    void log_attention_loop_##TS(char **, npy_intp const *, npy_intp const *, void *);    \
    void zeros_attention_loop_##TS(char **, npy_intp const *, npy_intp const *, void *);  \
    void zeros_weights_loop_##TS(char **, npy_intp const *, npy_intp const *, void *);    \
    void soft_attention_loop_##TS(char **, npy_intp const *, npy_intp const *, void *);   \
    void soft_kernel_loop_##TS(char **, npy_intp const *, npy_intp const *, void *);   \
    void an_linear_vjp_loop_##TS(char **, npy_intp const *, npy_intp const *, void *); \
    void an_log_vjp_loop_##TS(char **, npy_intp const *, npy_intp const *, void *);    \
    void an_zeros_vjp_loop_##TS(char **, npy_intp const *, npy_intp const *, void *);  \
    void an_soft_vjp_loop_##TS(char **, npy_intp const *, npy_intp const *, void *);
AN_LINEAR_LOOP_DECLS(f)
AN_LINEAR_LOOP_DECLS(d)
#undef AN_LINEAR_LOOP_DECLS

#endif
