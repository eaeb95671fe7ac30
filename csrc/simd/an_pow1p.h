/*
 * an_pow1p.h -- entmax's power sums, vectorised (included by simd_impl.inc
 * once per target, after the double exp AN_F(expd_)).
 *
 *   p_r = [1 + u_r]_+^(1/am1),  u_r = am1 (d_r - theta),
 *   returns sum_r p_r - 1, *der = sum_r p_r / (1 + u_r), and p_r in pw[r].
 * The power is exp(log1p(u) / am1), log1p(u) = log(w) + (u - (w - 1)) / w
 * for w = 1 + u rounded (the correction restores what the rounding lost, so
 * small u keep their relative accuracy), with a branch-free log:
 * w = 2^e m, m in [sqrt(2)/2, sqrt(2)), f = m - 1, s = f / (2 + f),
 *   log w = e ln 2 + f - f^2/2 + s (f^2/2 + R(s^2))
 * (R: the degree-7 minimax polynomial in s^2 of fdlibm's e_log.c, error
 * below 1 ulp), and a division-free exp (2^k times a degree-13 Taylor
 * polynomial).  One division per term gives both s and 1 / w:
 * q = 1 / ((2 + f) w), s = f w q, 1 / w = (2 + f) q.  Terms with
 * w < 2^-1022 (u within 2^-1022 of -1) count as 0; u <= 0 here (theta >= 0
 * >= d_r), so the exponent never exceeds 0 by more than rounding.
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

/* log1p(u) for w = 1 + u >= 2^-1022 (u > -1), and *rw = 1 / w (rounded w):
 * log w by the branch-free log above plus (u - (w - 1)) / w, which restores
 * what the rounding of 1 + u lost, so small u keep their relative accuracy.
 * One division gives both s = f / (2 + f) and 1 / w: q = 1 / ((2 + f) w),
 * s = f w q, 1 / w = (2 + f) q.  (stickbreaking's softplus uses it too.) */
static inline double AN_F(log1p_rw_)(double u, double w, double *rw_out)
{
    double f;
    const double ed = AN_F(logd_f_)(w, &f);
    const double q = 1.0 / ((2.0 + f) * w);
    const double rw = (2.0 + f) * q, sl = f * w * q;
    const double hfsq = 0.5 * f * f, z = sl * sl, w2 = z * z;
    const double t1 = w2 * (3.999999999940941908e-01 + w2 * (2.222219843214978396e-01
                      + w2 * 1.531383769920937332e-01));
    const double t2 = z * (6.666666666666735130e-01 + w2 * (2.857142874366239149e-01
                      + w2 * (1.818357216161805012e-01 + w2 * 1.479819860511658591e-01)));
    const double R = t2 + t1;
    const double lw = ed * 6.93147180369123816490e-01
                      - ((hfsq - (sl * (hfsq + R) + ed * 1.90821492927058770002e-10)) - f);
    *rw_out = rw;
    return lw + (u - (w - 1.0)) * rw;
}

static double AN_F(pow1p_sums_)(const double *d, an_int k, double am1, double th,
                                double *der, double *pw)
{
    const double inv = 1.0 / am1;
    double s = 0.0, dr = 0.0;
    _Pragma("omp simd reduction(+:s, dr)")
    for (an_int r = 0; r < k; r++) {
        const double u = am1 * (d[r] - th), w = 1.0 + u;
        const int live = w >= 2.2250738585072014e-308;
        const double wl = live ? w : 1.0;
        double rw;
        const double l1p = AN_F(log1p_rw_)(u, wl, &rw);
        const double p = live ? AN_F(exp_poly_d_)(l1p * inv) : 0.0;
        pw[r] = p;
        s += p;
        dr += p * rw;
    }
    *der = dr;
    return s - 1.0;
}
#undef AN_PFMA
