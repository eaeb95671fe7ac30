/*
 * an_template.h -- the templating convention.  Type-generic code lives in a
 * *_impl.inc file written with
 *   T            the real type (float, double)
 *   TS           its suffix (f, d); AT(name) is name with TS appended
 *   AN_VOPS      its vector table (an_simd.h), AN_TMAX its largest finite
 *                value, AN_EXPF the project's scalar exp, AN_EXP / AN_LOG the
 *                C library's exp / log, AN_GEMM_ACC the GEMM's gemm_acc
 * A .c file defines AN_TEMPLATE as the .inc's name (a string) and includes
 * this header, which includes the .inc once per type.  (No include guard:
 * it is included once per template.)
 */
#ifndef AN_TEMPLATE
#error "define AN_TEMPLATE before including an_template.h"
#endif
#include <float.h>
#define AN_TCAT2(a, b) a##b
#define AN_TCAT(a, b) AN_TCAT2(a, b)
#define AT(name) AN_TCAT(name, TS)

#define T float
#define TS f
#define AN_VOPS an_vf
#define AN_TMAX FLT_MAX
#define AN_EXPF an_exp_f
#define AN_EXP expf
#define AN_LOG logf
#define AN_GEMM_ACC an_gemm->gemm_acc_f
#include AN_TEMPLATE
#undef T
#undef TS
#undef AN_VOPS
#undef AN_TMAX
#undef AN_EXPF
#undef AN_EXP
#undef AN_LOG
#undef AN_GEMM_ACC

#define T double
#define TS d
#define AN_VOPS an_vd
#define AN_TMAX DBL_MAX
#define AN_EXPF an_exp_d
#define AN_EXP exp
#define AN_LOG log
#define AN_GEMM_ACC an_gemm->gemm_acc_d
#include AN_TEMPLATE
#undef T
#undef TS
#undef AN_VOPS
#undef AN_TMAX
#undef AN_EXPF
#undef AN_EXP
#undef AN_LOG
#undef AN_GEMM_ACC

#undef AT
#undef AN_TCAT
#undef AN_TCAT2
#undef AN_TEMPLATE
