/* normalizers_shared.h -- row helpers that several normalizers reuse. */
#ifndef AN_NORMALIZERS_SHARED_H
#define AN_NORMALIZERS_SHARED_H
#include "an_common.h"
/* softmax of s[0..nv) into x at inverse temperature mul, s may be x
 * (normalizers_impl.inc) */
int an_softmax_to_f(const float *s, float *x, an_int nv, double mul);
int an_softmax_to_d(const double *s, double *x, an_int nv, double mul);
/* the same up to its last step: x = exp(mul (s - M)) for a shift M <= max s,
 * the softmax being *wscale * x (1 for the NaN, +inf and empty rows, which
 * are final); the nv values' bytes at ahead (or NULL) prefetched meanwhile */
int an_softmax_exp_f(const float *s, float *x, an_int nv, double mul, const void *ahead,
                     double *wscale);
int an_softmax_exp_d(const double *s, double *x, an_int nv, double mul, const void *ahead,
                     double *wscale);
#endif
