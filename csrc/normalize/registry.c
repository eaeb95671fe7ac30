/* registry.c -- the list of normalizers.  Each descriptor lives next to its
 * kernel (normalize.h describes the fields); every gufunc and Python wrapper
 * is generated from this list, in this order. */
#include "normalize.h"

extern const an_normdesc an_norm_softmax, an_norm_softmax_sink, an_norm_ssmax,
    an_norm_sigmoid, an_norm_relu, an_norm_polynomial, an_norm_softpick, an_norm_nap,
    an_norm_affine_softmax, an_norm_sparsemax, an_norm_entmax,
    an_norm_stochastic_softmax, an_norm_sinkhorn, an_norm_stickbreaking;

const an_normdesc *const an_normalizers[] = {
    &an_norm_softmax, &an_norm_softmax_sink, &an_norm_ssmax, &an_norm_sigmoid,
    &an_norm_relu, &an_norm_polynomial, &an_norm_softpick, &an_norm_nap,
    &an_norm_affine_softmax, &an_norm_sparsemax, &an_norm_entmax,
    &an_norm_stochastic_softmax, &an_norm_sinkhorn, &an_norm_stickbreaking,
    NULL
};
