/*
 * an_exp_fma.h -- float exp for the row primitives, in FMA form
 * (included by simd_impl.inc once per target; a * b + c is one FMA where the
 * target has it, __FMA__, and two roundings on the portable path).
 *
 *   exp(x) = 2^k p(r),   k = round(x / ln 2),  r = x - k ln 2 (two-part ln 2,
 *   by FMA), |r| <= ln 2 / 2,
 *   p(r) = 1 + r + c2 r^2 + c3 r^3 + c4 r^4 + c5 r^5 (degree 5, Horner in
 *   FMA; coefficients from a discrete minimax fit of the relative error on
 *   |r| <= ln 2 / 2: 7.4e-8 before rounding),
 *   2^k applied as two exact factors 2^(k - k/2) 2^(k/2), so results down to
 *   the subnormal range keep their accuracy.
 * Max error over every float32 x with a normal result, checked
 * exhaustively against double exp: 2.34 ulp (FMA; 2.32 ulp portable), 1.4
 * ulp of the smallest subnormal below; tests/test_exp_accuracy.py checks
 * the bound on every dispatched path.
 * Above 88.72 the result is +inf, below -103.97 it is 0, NaN gives NaN,
 * all without blends: about 21 instructions per vector (AVX-512: 16 floats)
 * where the degree-6 form with three blends compiled without contraction
 * took 57.
 */
#if defined(__FMA__)
#define AN_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define AN_FMAF(a, b, c) ((a) * (b) + (c))
#endif

static inline float AN_F(expf_fma_)(float x)
{
    /* clamp by max/min only (no blends): NaN passes through both and
     * propagates to the result; x >= 89 gives 2^64 2^64 p = +inf and
     * x <= -104 gives 2^-75 2^-75 p < 2^-150, which rounds to 0 */
    float xc = -104.0f > x ? -104.0f : x;
    xc = 89.0f < xc ? 89.0f : xc;
    /* k = round(x log2 e) by the 1.5 2^23 trick */
    float kf = AN_FMAF(xc, 1.44269504088896341f, 12582912.0f);
    union { float f; int32_t i; } kb = { kf };
    const int32_t k = kb.i - 0x4B400000;
    kf -= 12582912.0f;
    /* ln 2 = 0.693359375 - 2.12194440e-4: k times the first part is exact,
     * so the portable a * b + c form loses nothing either */
    float r = AN_FMAF(kf, -0.693359375f, xc);
    r = AN_FMAF(kf, 2.12194440e-4f, r);
    float q = 0x1.1001c2p-7f;
    q = AN_FMAF(q, r, 0x1.571ce6p-5f);
    q = AN_FMAF(q, r, 0x1.55585ep-3f);
    q = AN_FMAF(q, r, 0x1.fffe2ap-2f);
    const float p = 1.0f + AN_FMAF(q, r * r, r);
    const int32_t k1 = k >> 1, k2 = k - k1;
    /* exponent bits by an unsigned shift (k < -127 for NaN input: no UB) */
    union { int32_t i; float f; } s1 = { (int32_t)((uint32_t)(k1 + 127) << 23) },
                                  s2 = { (int32_t)((uint32_t)(k2 + 127) << 23) };
    return p * s1.f * s2.f;
}
#undef AN_FMAF
