/* normalizers_shared.h -- row helpers that several normalizers reuse. */
#ifndef AN_NORMALIZERS_SHARED_H
#define AN_NORMALIZERS_SHARED_H
#include "an_common.h"
/* in-place softmax at inverse temperature mul (see normalizers.c) */
int an_softmax_inplace_f(float *x, an_int nv, double mul);
int an_softmax_inplace_d(double *x, an_int nv, double mul);
#endif
