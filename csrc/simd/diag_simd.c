/* diag_simd.c -- compiles diag_simd.inc for the portable baseline and for
 * AVX2+FMA (the AVX-512 path uses the latter); an_simd_init picks the table
 * (an_diag) with the other SIMD tables. */
#include <string.h>
#include "diagnostics.h"
#include "an_simd.h"

#define AN_DSFX _default
#include "diag_simd.inc"
#undef AN_DSFX

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define AN_DSFX _avx2
#include "diag_simd.inc"
#undef AN_DSFX
#pragma GCC pop_options
#endif

void an_rowstats_f(const float *x, an_int n, int want_log, double thr, an_rowstats *r)
{ an_diag->rowstats_f(x, n, want_log, thr, r); }
void an_rowstats_d(const double *x, an_int n, int want_log, double thr, an_rowstats *r)
{ an_diag->rowstats_d(x, n, want_log, thr, r); }
double an_margin_f(const float *x, an_int n, double *top1) { return an_diag->margin_f(x, n, top1); }
double an_margin_d(const double *x, an_int n, double *top1) { return an_diag->margin_d(x, n, top1); }
an_int an_scale_acc_f(const float *e, an_int n, float c, double *dst)
{ return an_diag->scale_acc_f(e, n, c, dst); }
an_int an_scale_acc_d(const double *e, an_int n, double c, double *dst)
{ return an_diag->scale_acc_d(e, n, c, dst); }
void an_secular_sums(const double *d, const double *w, an_int n, an_int i1, double d1,
                     double mu, double zs2, double *R, double *dR)
{ an_diag->secular_sums(d, w, n, i1, d1, mu, zs2, R, dR); }
