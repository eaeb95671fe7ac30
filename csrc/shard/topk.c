/* topk.c -- per-row top-K scores (topk.h), per real type (topk_impl.inc). */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include "topk.h"
#include "an_gemm.h"
#include "an_simd.h"

#define AN_ROUNDUP(x, b) ((((x) + (b) - 1) / (b)) * (b))
#define AN_TOPK_KB 512   /* keys per packed chunk */
#define AN_TOPK_RB 192   /* at most this many queries per block (a multiple of AN_ATT_RM) */
#define AN_TOPK_LBYTES (1u << 21)   /* their candidate lists: at most about this much */
#define AN_TOPK_VW 16    /* scores tested together against a row's bound */
#define AN_TOPK_STEP 64  /* keys per step of the scan (the bits of a word) */

/* index of the lowest set bit of a nonzero word */
static inline int an_ctz64(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(x);
#else
    int t = 0;
    while (!(x & 1u)) { x >>= 1; t++; }
    return t;
#endif
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define AN_TOPK_X86 1
#include <immintrin.h>
/* topk_hits64_ (topk_impl.inc) for float rows on the AVX-512 path: bit t
 * set for s[t] >= thr, t < r <= 64, by four masked compares. */
__attribute__((target("avx512f")))
static uint64_t topk_hits64_avx512_f(const float *s, an_int r, float thr)
{
    const __m512 tv = _mm512_set1_ps(thr);
    uint64_t bits = 0;
    for (int q = 0; q < 4 && 16 * q < r; q++) {
        const an_int rq = r - 16 * q;
        const __mmask16 in = rq >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rq) - 1u);
        const __m512 x = _mm512_maskz_loadu_ps(in, s + 16 * q);
        bits |= (uint64_t)_mm512_mask_cmp_ps_mask(in, x, tv, _CMP_GE_OQ) << (16 * q);
    }
    return bits;
}
#endif

#define AN_TEMPLATE "topk_impl.inc"
#include "an_template.h"
