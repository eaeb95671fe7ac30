/* topk.c -- per-row top-K scores (topk.h), per real type (topk_impl.inc). */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include "topk.h"
#include "an_gemm.h"

#define AN_ROUNDUP(x, b) ((((x) + (b) - 1) / (b)) * (b))
#define AN_TOPK_KB 512   /* keys per packed chunk */
#define AN_TOPK_RB 192   /* at most this many queries per block (a multiple of AN_ATT_RM) */
#define AN_TOPK_LBYTES (1u << 21)   /* their candidate lists: at most about this much */
#define AN_TOPK_VW 16    /* scores tested together against a row's bound */

/* index of the lowest set bit of a nonzero word */
static inline int an_ctz(unsigned x)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(x);
#else
    int t = 0;
    while (!(x & 1u)) { x >>= 1; t++; }
    return t;
#endif
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define AN_TOPK_X86 1
#include <immintrin.h>
/* topk_append_ (topk_impl.inc) for float rows on the AVX-512 path: the
 * scores s[j] >= thr of 64 keys at a time by four compares into masks, the
 * hits appended in key order (the same list as the portable loop). */
__attribute__((target("avx512f")))
static an_int topk_append_avx512_f(const float *s, an_int kc, an_int j0, float thr, float *cs,
                                   an_int *ci, an_int c)
{
    const __m512 tv = _mm512_set1_ps(thr);
    an_int j = 0;
    for (; j < kc; j += 64) {
        uint64_t bits = 0;
        for (int q = 0; q < 4; q++) {
            const an_int r = kc - j - 16 * q;
            if (r <= 0) break;
            const __mmask16 in = r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1u);
            const __m512 x = _mm512_maskz_loadu_ps(in, s + j + 16 * q);
            bits |= (uint64_t)_mm512_mask_cmp_ps_mask(in, x, tv, _CMP_GE_OQ) << (16 * q);
        }
        for (; bits; bits &= bits - 1) {
            const int t = __builtin_ctzll(bits);
            cs[c] = s[j + t]; ci[c] = j0 + j + t;
            c += s[j + t] > -INFINITY;
        }
    }
    return c;
}
#endif

#define AN_TEMPLATE "topk_impl.inc"
#include "an_template.h"
