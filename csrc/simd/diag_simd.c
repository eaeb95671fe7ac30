/* diag_simd.c -- compiles diag_simd.inc for the portable baseline and for
 * AVX2+FMA, and picks one per call from the path attnnorm chose at import
 * (an_vf->name, so ATTNNORM_CPU=default also forces these helpers). */
#include <string.h>
#include "diagnostics.h"
#include "an_simd.h"

#define AN_DSFX _default
#include "diag_simd.inc"
#undef AN_DSFX

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define AN_DIAG_X86 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define AN_DSFX _avx2
#include "diag_simd.inc"
#undef AN_DSFX
#pragma GCC pop_options
#endif

static int use_avx2(void)
{
#ifdef AN_DIAG_X86
    return strcmp(an_vf->name, "default") != 0;   /* avx2 or avx512 chosen */
#else
    return 0;
#endif
}

#ifdef AN_DIAG_X86
#define AN_DISPATCH(call_avx2, call_default) \
    do { if (use_avx2()) call_avx2; else call_default; } while (0)
#else
#define AN_DISPATCH(call_avx2, call_default) call_default
#endif

void an_rowstats_f(const float *x, an_int n, int want_log, double thr, an_rowstats *r)
{ AN_DISPATCH(rowstats_f_avx2(x, n, want_log, thr, r), rowstats_f_default(x, n, want_log, thr, r)); }
void an_rowstats_d(const double *x, an_int n, int want_log, double thr, an_rowstats *r)
{ AN_DISPATCH(rowstatsd_d_avx2(x, n, want_log, thr, r), rowstatsd_d_default(x, n, want_log, thr, r)); }
double an_margin_f(const float *x, an_int n, double *top1)
{ double r; AN_DISPATCH(r = margin_f_avx2(x, n, top1), r = margin_f_default(x, n, top1)); return r; }
double an_margin_d(const double *x, an_int n, double *top1)
{ double r; AN_DISPATCH(r = margin_d_avx2(x, n, top1), r = margin_d_default(x, n, top1)); return r; }
an_int an_scale_acc_f(const float *e, an_int n, float c, double *dst)
{ an_int r; AN_DISPATCH(r = scale_acc_f_avx2(e, n, c, dst), r = scale_acc_f_default(e, n, c, dst)); return r; }
an_int an_scale_acc_d(const double *e, an_int n, double c, double *dst)
{ an_int r; AN_DISPATCH(r = scale_acc_d_avx2(e, n, c, dst), r = scale_acc_d_default(e, n, c, dst)); return r; }
void an_secular_sums(const double *d, const double *w, an_int n, an_int i1, double d1,
                     double mu, double zs2, double *R, double *dR)
{ AN_DISPATCH(secular_sums__avx2(d, w, n, i1, d1, mu, zs2, R, dR),
              secular_sums__default(d, w, n, i1, d1, mu, zs2, R, dR)); }
