/*
 * attention.c -- fused attention kernels (DESIGN "Attention"); the driver is
 * attention_impl.inc, compiled here for float and double.  The matrix
 * products go through the run-time dispatched micro-kernel table of
 * an_gemm.c (shared with diagnose.c); the row normalizers are the ones of normalize.h, so a
 * new normalizer works in attention as soon as it has a row kernel.
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "attention.h"
#include "an_simd.h"

#define AN_ATT_QB 48     /* query rows per block (a multiple of AN_ATT_RM) */
#define AN_ATT_KB 256    /* keys per packed chunk (a multiple of every nr) */
#define AN_ATT_PACK_BYTES ((size_t)32 << 20)   /* packed K/V of a group of problems */
#define AN_SK_CACHE_BYTES ((size_t)32 << 20)   /* Sinkhorn's cached n x m log kernel */
#define AN_SK_SOLO_BYTES ((size_t)128 << 20)   /* ... all threads' caches, one problem each */
#define AN_ROUNDUP(x, b) ((((x) + (b) - 1) / (b)) * (b))
#define AN_ALIGN64(x) ((((x) + 63) / 64) * 64)

/*
 * The log-normaliser statistic, where the normalizer defines one:
 *   lognorm_i = log( [exp(extra)] + sum_{j visible} exp(mul * s_ij) )
 *   softmax:        mul = 1/T
 *   softmax_sink:   mul = 1, extra = sink
 *   ssmax:          mul = c log n_i
 *   affine_softmax: mul = 1 (the softmax inside a . softmax(s) + b)
 *   stochastic_softmax: mul = 1 (the softmax the counts are drawn from)
 * Returns 0 (statistic NaN) for the other normalizers.
 */
static int an_att_lognorm_form(const an_normdesc *d, const an_normmat *M, an_int i,
                               an_int nv, double *mul, int *has_extra, double *extra)
{
    (void)i;
    *has_extra = 0; *extra = 0.0; *mul = 1.0;
    if (d == &an_norm_softmax) { *mul = 1.0 / M->p[0]; return 1; }
    if (d == &an_norm_softmax_sink) { *has_extra = 1; *extra = M->p[0]; return 1; }
    if (d == &an_norm_ssmax) { *mul = M->p[0] * log((double)nv); return 1; }
    if (d == &an_norm_affine_softmax || d == &an_norm_stochastic_softmax) return 1;
    return 0;
}

/* Normalizers with an online (flash-attention style) fast path. */
enum { AN_ATT_ONLINE_NONE = 0, AN_ATT_ONLINE_SOFTMAX, AN_ATT_ONLINE_SINK, AN_ATT_ONLINE_SSMAX,
       AN_ATT_ONLINE_AFFINE, AN_ATT_ONLINE_SOFTPICK };
static int an_att_online_kind(const an_normdesc *d)
{
    if (getenv("ATTNNORM_ATTENTION_GENERIC")) return AN_ATT_ONLINE_NONE;   /* tests */
    if (d == &an_norm_softmax) return AN_ATT_ONLINE_SOFTMAX;
    if (d == &an_norm_softmax_sink) return AN_ATT_ONLINE_SINK;
    if (d == &an_norm_ssmax) return AN_ATT_ONLINE_SSMAX;
    if (d == &an_norm_affine_softmax) return AN_ATT_ONLINE_AFFINE;
    if (d == &an_norm_softpick) return AN_ATT_ONLINE_SOFTPICK;
    return AN_ATT_ONLINE_NONE;
}

/* Sinkhorn row states (attention_impl.inc) */
enum { AN_SK_OK = 0, AN_SK_EMPTY = 1, AN_SK_NAN = 2 };

#define T float
#define TS f
#define AN_VOPS an_vf
#define AN_EXPF an_exp_f
#include "attention_impl.inc"
#undef T
#undef TS
#undef AN_VOPS
#undef AN_EXPF

#define T double
#define TS d
#define AN_VOPS an_vd
#define AN_EXPF an_exp_d
#include "attention_impl.inc"
#undef T
#undef TS
#undef AN_VOPS
#undef AN_EXPF
