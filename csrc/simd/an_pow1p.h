/*
 * an_pow1p.h -- entmax's power sums, vectorised (included by simd_impl.inc
 * once per target, after the float exp AN_F(expf_fma_)).
 *
 *   p_r = [1 + u_r]_+^q,  u_r = am1 (d_r - theta),  q = 1 / am1,
 *   returns sum_r p_r, *der = sum_r p_r / (1 + u_r) (= -d/dtheta sum p_r),
 *   *live = #{r : p_r > 0}, p_r in pw[r] unless pw is NULL,
 *   p_r / (1 + u_r) in tw[r] unless tw is NULL and
 *   *cur = sum_r p_r / (1 + u_r)^2 (= d^2/dtheta^2 sum p_r / (1 - am1))
 *   unless cur is NULL.
 * w = 1 + u is formed in double in both versions (so the terms at the edge
 * of the support keep their relative accuracy), u <= 0 (theta >= 0 >= d_r).
 *
 * pow1p_sums_d, double precision: the power is exp(log1p(u) / am1),
 * log1p(u) = log(w) + (u - (w - 1)) / w for w = 1 + u rounded (the
 * correction restores what the rounding lost, so small u keep their
 * relative accuracy), with a branch-free log: w = 2^e m, m in
 * [sqrt(2)/2, sqrt(2)), f = m - 1, s = f / (2 + f),
 *   log w = e ln 2 + f - f^2/2 + s (f^2/2 + R(s^2))
 * (R: the degree-7 minimax polynomial in s^2 of fdlibm's e_log.c, error
 * below 1 ulp), and a division-free exp (2^k times a degree-13 Taylor
 * polynomial).  One division per term gives both s and 1 / w:
 * q = 1 / ((2 + f) w), s = f w q, 1 / w = (2 + f) q.  Terms with
 * w < 2^-1022 (u within 2^-1022 of -1) count as 0.
 *
 * pow1p_sums_f, float precision (relative error of a term a few 1e-7, the
 * sum of the powers in double): w = 2^e m split in double by integer
 * arithmetic on the bits, f = m - 1 rounded to float (exact e, f with its
 * full relative precision), then in float
 *   log w = e ln 2 + f - f^2/2 + f^3 P(f)   (P: Cephes logf's degree-8
 *                                           polynomial, about 1 ulp)
 *   t = w^(q-1) = exp((q - 1) log w),  p = w t,  p / w = t
 * so the derivative's terms come without a division.  Terms with
 * w < 2^-126 or p <= e^-87 count as 0 (so t is finite whatever q > 0, and
 * nothing is subnormal: subnormal floats cost a microcode assist each).
 * simd_avx512_impl.inc has the same terms 16 a vector (pow1p_sums16_f).
 *
 * sum_above (simd_ops_impl.inc, simd_avx512_impl.inc) / keep_above, for
 * entmax's bounds: the sum of x - cut and the count of the x > cut of a row;
 * the compaction of the candidates to the d > cut with their keys, in order,
 * in place or into another array (AVX-512 compresses 8 at a time).
 * axpy_pos_sum / put_listed, entmax's last steps: the first-order
 * correction of the powers, p + a t clamped at 0, and their sum; the
 * weights p inv written to their keys with the support listed.
 */
#if defined(__FMA__)
#define AN_PFMA(a, b, c) __builtin_fma((a), (b), (c))
#else
#define AN_PFMA(a, b, c) ((a) * (b) + (c))
#endif

/* w = 2^e m, m in [sqrt(2)/2, sqrt(2)), w >= 2^-1022: returns e, sets
 * *f_out = m - 1 */
static inline double AN_F(logd_f_)(double w, double *f_out)
{
    union { double f; int64_t i; } b = { w };
    int64_t e = (b.i >> 52) - 1023;
    union { int64_t i; double f; } mb = { (b.i & 0x000FFFFFFFFFFFFFLL) | 0x3FF0000000000000LL };
    double m = mb.f;
    const int big = m > 1.4142135623730951;
    m = big ? 0.5 * m : m;
    *f_out = m - 1.0;
    return (double)(e + big);
}

/* exp(y) for y <= 0.5: 2^k times the degree-13 Taylor polynomial of e^r,
 * |r| <= ln 2 / 2 (truncation below 5e-18), in FMA; y < -708 gives 0 */
static inline double AN_F(exp_poly_d_)(double y)
{
    const double yc = y < -708.0 ? -708.0 : y;
    double kf = AN_PFMA(yc, 1.4426950408889634074, 6755399441055744.0);
    union { double f; int64_t i; } kb = { kf };
    const int64_t k = kb.i - 0x4338000000000000LL;
    kf -= 6755399441055744.0;
    double r = AN_PFMA(kf, -6.93145751953125E-1, yc);
    r = AN_PFMA(kf, -1.42860682030941723212E-6, r);
    double p = 1.0 / 6227020800.0;
    p = AN_PFMA(p, r, 1.0 / 479001600.0);
    p = AN_PFMA(p, r, 1.0 / 39916800.0);
    p = AN_PFMA(p, r, 1.0 / 3628800.0);
    p = AN_PFMA(p, r, 1.0 / 362880.0);
    p = AN_PFMA(p, r, 1.0 / 40320.0);
    p = AN_PFMA(p, r, 1.0 / 5040.0);
    p = AN_PFMA(p, r, 1.0 / 720.0);
    p = AN_PFMA(p, r, 1.0 / 120.0);
    p = AN_PFMA(p, r, 1.0 / 24.0);
    p = AN_PFMA(p, r, 1.0 / 6.0);
    p = AN_PFMA(p, r, 0.5);
    p = AN_PFMA(p, r, 1.0);
    p = AN_PFMA(p, r, 1.0);
    /* exponent bits by an unsigned shift (no UB for a negative k + 1023) */
    union { int64_t i; double f; } sc = { (int64_t)((uint64_t)(k + 1023) << 52) };
    return y < -708.0 ? 0.0 : p * sc.f;
}

static double AN_F(pow1p_sums_d)(const double *d, an_int k, double am1, double th,
                                 double *der, an_int *live, double *pw, double *tw, double *cur)
{
    const double inv = 1.0 / am1;
    double s = 0.0, dr = 0.0, cu = 0.0;
    an_int nl = 0;
    _Pragma("omp simd reduction(+:s, dr, cu, nl)")
    for (an_int r = 0; r < k; r++) {
        const double u = am1 * (d[r] - th), w = 1.0 + u;
        const int on = w >= 2.2250738585072014e-308;
        const double wl = on ? w : 1.0;
        double f;
        const double ed = AN_F(logd_f_)(wl, &f);
        /* one division for s = f / (2 + f) and 1 / w */
        const double q = 1.0 / ((2.0 + f) * wl);
        const double rw = (2.0 + f) * q, sl = f * wl * q;
        const double hfsq = 0.5 * f * f, z = sl * sl, w2 = z * z;
        const double t1 = w2 * (3.999999999940941908e-01 + w2 * (2.222219843214978396e-01
                          + w2 * 1.531383769920937332e-01));
        const double t2 = z * (6.666666666666735130e-01 + w2 * (2.857142874366239149e-01
                          + w2 * (1.818357216161805012e-01 + w2 * 1.479819860511658591e-01)));
        const double R = t2 + t1;
        const double lw = ed * 6.93147180369123816490e-01
                          - ((hfsq - (sl * (hfsq + R) + ed * 1.90821492927058770002e-10)) - f);
        /* (u - (w - 1)) / w: the rounding of 1 + u restored */
        const double l1p = lw + (u - (wl - 1.0)) * rw;
        const double p = on ? AN_F(exp_poly_d_)(l1p * inv) : 0.0;
        if (pw) pw[r] = p;
        if (tw) tw[r] = p * rw;
        s += p;
        dr += p * rw;
        cu += p * rw * rw;
        nl += p > 0;
    }
    if (cur) *cur = cu;
    *der = dr;
    *live = nl;
    return s;
}

static inline __attribute__((always_inline))
double AN_F(pow1p_f_)(const double *d, const float *z, double mx, an_int k, double am1,
                      double th, double *der, an_int *live, double *pw, double *tw, double *cur)
{
#if defined(__FMA__)
#define AN_PFMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define AN_PFMAF(a, b, c) ((a) * (b) + (c))
#endif
    const float qm1 = (float)(1.0 / am1 - 1.0);
    const double c0 = 1.0 - am1 * th;    /* w = c0 + am1 d */
    double s = 0.0;
    float dr = 0.0f, cu = 0.0f;
    int nl = 0;
    const int want_cu = cur != NULL;
    _Pragma("omp simd reduction(+:s, dr, cu, nl)")
    for (an_int r = 0; r < k; r++) {
        const double w = AN_PFMA(am1, z ? (double)z[r] - mx : d[r], c0);   /* d, or z - mx */
        const int on = w >= 1.1754943508222875e-38;
        const double wl = on ? w : 1.1754943508222875e-38;
        /* w = 2^e m, m in [sqrt(2)/2, sqrt(2)), by integer arithmetic on
         * the bits: tb = bits(w) - bits(sqrt(2)/2) + bits of 2^0 has e + 1023
         * in its top 12 bits (positive for every w >= 2^-1022); e read as a
         * double from 2^52 + e + 1023 */
        union { double f; uint64_t i; } b = { wl };
        const uint64_t tb = b.i - 0x3FE6A09E667F3BCDULL + 0x3FF0000000000000ULL;
        union { uint64_t i; double f; } eb = { (tb >> 52) | 0x4330000000000000ULL },
                                        mb = { b.i - (tb & 0xFFF0000000000000ULL)
                                               + 0x3FF0000000000000ULL };
        const float e = (float)(eb.f - (4503599627370496.0 + 1023.0));
        const float f = (float)(mb.f - 1.0), z = f * f;
        float P = 7.0376836292E-2f;
        P = AN_PFMAF(P, f, -1.1514610310E-1f);
        P = AN_PFMAF(P, f, 1.1676998740E-1f);
        P = AN_PFMAF(P, f, -1.2420140846E-1f);
        P = AN_PFMAF(P, f, 1.4249322787E-1f);
        P = AN_PFMAF(P, f, -1.6668057665E-1f);
        P = AN_PFMAF(P, f, 2.0000714765E-1f);
        P = AN_PFMAF(P, f, -2.4999993993E-1f);
        P = AN_PFMAF(P, f, 3.3333331174E-1f);
        /* log w, ln 2 in two parts (e times the first is exact) */
        float lw = AN_PFMAF(f * z, P, AN_PFMAF(-0.5f, z, AN_PFMAF(e, -2.12194440e-4f, f)));
        lw = AN_PFMAF(e, 0.693359375f, lw);
        /* terms with p = w^q <= e^-87 (near float's smallest normal)
         * count as 0: no exp or product ever goes subnormal */
        const float y = qm1 * lw;
        const int in = on & (y + lw > -87.0f);
        const float t = AN_F(expf_fma_)(in ? y : 0.0f);
        const float p = in ? (float)w * t : 0.0f;
        if (pw) pw[r] = (double)p;
        if (tw) tw[r] = in ? (double)t : 0.0;
        s += (double)p;
        dr += in ? t : 0.0f;
        cu += in && want_cu ? t / (float)wl : 0.0f;
        nl += in;
    }
    if (cur) *cur = (double)cu;
    *der = (double)dr;
    *live = nl;
    return s;
#undef AN_PFMAF
}
static double AN_F(pow1p_sums_f)(const double *d, an_int k, double am1, double th,
                                 double *der, an_int *live, double *pw, double *tw, double *cur)
{ return AN_F(pow1p_f_)(d, NULL, 0.0, k, am1, th, der, live, pw, tw, cur); }
static double AN_F(pow1p_sums_z_f)(const float *z, an_int k, double am1, double th, double mx,
                                   double *der, an_int *live, double *pw, double *tw,
                                   double *cur)
{ return AN_F(pow1p_f_)(NULL, z, mx, k, am1, th, der, live, pw, tw, cur); }

static an_int AN_F(keep_above_)(const double *s, double *d, an_int *idx, an_int k, double cut)
{
    an_int w = 0, r = 0;
#if defined(__AVX512F__)
    /* the compressed block is stored whole at w <= r: it overwrites only
     * entries already read (d = s) or d[0, k) */
    const __m512d c = _mm512_set1_pd(cut);
    for (; r + 8 <= k; r += 8) {
        const __m512d x = _mm512_loadu_pd(s + r);
        const __mmask8 m = _mm512_cmp_pd_mask(x, c, _CMP_GT_OQ);
        _mm512_storeu_pd(d + w, _mm512_maskz_compress_pd(m, x));
        if (idx) {
            const __m512i j = _mm512_loadu_si512((const void *)(idx + r));
            _mm512_storeu_si512((void *)(idx + w), _mm512_maskz_compress_epi64(m, j));
        }
        w += __builtin_popcount((unsigned)m);
    }
#endif
    for (; r < k; r++) {
        const double x = s[r];
        d[w] = x;
        if (idx) idx[w] = idx[r];
        w += x > cut;
    }
    return w;
}
/* pow1p_est_zf, portable: the sums of pow1p_sums_z_f (more accurate than
 * the contract asks) */
static double AN_F(pow1p_est_z_f)(const float *z, an_int k, double am1, double th, double mx,
                                  double *der, an_int *live, double *cur)
{ return AN_F(pow1p_f_)(NULL, z, mx, k, am1, th, der, live, NULL, NULL, cur); }

static an_int AN_F(keep_above_z_f)(const float *z, float *zo, const int32_t *key, int32_t *ko,
                                   an_int k, float cut)
{
    an_int w = 0;
    for (an_int r = 0; r < k; r++) {
        const float x = z[r];
        zo[w] = x;
        if (ko) ko[w] = key[r];
        w += x > cut;
    }
    return w;
}

/* p[r] = max(p[r] + a t[r], 0), returns sum_r p[r] */
static double AN_F(axpy_pos_sum_)(double *p, const double *t, an_int k, double a)
{
    double sum = 0.0;
    _Pragma("omp simd reduction(+:sum)")
    for (an_int r = 0; r < k; r++) {
        const double v = AN_PFMA(a, t[r], p[r]);
        p[r] = v > 0.0 ? v : 0.0;
        sum += p[r];
    }
    return sum;
}

/* x[key[r]] = (T)(pw[r] inv), nz[0, w) the keys with pw[r] inv > 0 (in
 * order; nz may be key itself, for an_int keys); AVX-512: 8 a vector, the
 * weights scattered, the keys compressed (stored whole at w <= r: over keys
 * already read, or inside nz[0, k)).  The compact form (list_weights_zf)
 * writes the weights kept to x[0, w) instead, beside their keys. */
#define AN_PUT_LISTED(name, T, KT, LOADK8, PUT8, PUT1)                        \
static an_int AN_F(name)(const double *pw, double inv, const KT *key, an_int k, T *x, \
                         an_int *nz)                                          \
{                                                                             \
    an_int w = 0, r = 0;                                                      \
    AN_PUT_LISTED_VEC(LOADK8, PUT8)                                           \
    for (; r < k; r++) {                                                      \
        const double p = pw[r] * inv;                                         \
        const an_int j = key[r];                                              \
        PUT1(x, j, w, (T)p);                                                  \
        nz[w] = j;                                                            \
        w += p > 0.0;                                                         \
    }                                                                         \
    return w;                                                                 \
}
#define AN_PUT1_SCATTER(x, j, w, p) ((x)[j] = (p))
#define AN_PUT1_COMPACT(x, j, w, p) ((x)[w] = (p))
#if defined(__AVX512F__)
#define AN_PUT8_f(x, j, p, m, w) _mm512_i64scatter_ps((x), (j), _mm512_cvtpd_ps(p), 4)
#define AN_PUT8_d(x, j, p, m, w) _mm512_i64scatter_pd((x), (j), (p), 8)
#define AN_PUT8_fc(x, j, p, m, w)                                             \
    _mm256_storeu_ps((x) + (w), _mm512_castps512_ps256(_mm512_maskz_compress_ps( \
        (__mmask16)(m), _mm512_castps256_ps512(_mm512_cvtpd_ps(p)))))
#define AN_LOADK8_64(r) _mm512_loadu_si512((const void *)(key + (r)))
#define AN_LOADK8_32(r) _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(key + (r))))
#define AN_PUT_LISTED_VEC(LOADK8, PUT8)                                       \
    const __m512d iv = _mm512_set1_pd(inv), zero = _mm512_setzero_pd();        \
    for (; r + 8 <= k; r += 8) {                                              \
        const __m512d p = _mm512_mul_pd(_mm512_loadu_pd(pw + r), iv);        \
        const __m512i j = LOADK8(r);                                          \
        const __mmask8 m = _mm512_cmp_pd_mask(p, zero, _CMP_GT_OQ);           \
        PUT8(x, j, p, m, w);                                                  \
        _mm512_storeu_si512((void *)(nz + w), _mm512_maskz_compress_epi64(m, j)); \
        w += __builtin_popcount((unsigned)m);                                 \
    }
#else
#define AN_PUT_LISTED_VEC(LOADK8, PUT8)
#endif
AN_PUT_LISTED(put_listed_ff, float, an_int, AN_LOADK8_64, AN_PUT8_f, AN_PUT1_SCATTER)
AN_PUT_LISTED(put_listed_dd, double, an_int, AN_LOADK8_64, AN_PUT8_d, AN_PUT1_SCATTER)
AN_PUT_LISTED(put_listed_z_f, float, int32_t, AN_LOADK8_32, AN_PUT8_f, AN_PUT1_SCATTER)
AN_PUT_LISTED(list_weights_z_f, float, int32_t, AN_LOADK8_32, AN_PUT8_fc, AN_PUT1_COMPACT)
/* in place: idx compacted to the keys kept */
static an_int AN_F(put_listed_f)(const double *pw, double inv, an_int *idx, an_int k, float *x)
{ return AN_F(put_listed_ff)(pw, inv, idx, k, x, idx); }
static an_int AN_F(put_listed_d)(const double *pw, double inv, an_int *idx, an_int k, double *x)
{ return AN_F(put_listed_dd)(pw, inv, idx, k, x, idx); }
#undef AN_PUT_LISTED
#undef AN_PUT_LISTED_VEC
#undef AN_PUT1_SCATTER
#undef AN_PUT1_COMPACT
#if defined(__AVX512F__)
#undef AN_PUT8_f
#undef AN_PUT8_d
#undef AN_PUT8_fc
#undef AN_LOADK8_64
#undef AN_LOADK8_32
#endif
#undef AN_PFMA
