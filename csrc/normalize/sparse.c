/*
 * sparse.c -- sparsemax and alpha-entmax row kernels ([Peters2019], [Vasylenko2025]).
 *
 *   alpha-entmax(z)_i = [(alpha - 1) z_i - tau]_+ ^ (1 / (alpha - 1)),  sum_i p_i = 1
 *
 * alpha = 2 is sparsemax (Euclidean projection onto the simplex), alpha = 1.5
 * has an exact sort-based threshold (Peters, Niculae & Martins 2019, as in
 * the entmax package's entmax15), any other alpha > 1 is solved by bisection
 * on tau, and alpha = 1 is softmax (tau reported as the log-sum-exp).
 *
 * Every row is shifted by its maximum first (X_i = (alpha - 1)(z_i - max z));
 * since p_max <= 1 the shifted threshold tau' lies in [-1, 0), so only the
 * candidates with X_i > -1 can be in the support.  The threshold is computed
 * in double on those candidates only (workspace: one double per key), which
 * makes the cost O(m) for the max / filter / output passes plus a sort of
 * the candidates when they are few, or a sort-free exact search of the
 * support when they are many (exact_tau; for 1.5-entmax, Newton steps on
 * the candidates whatever their number).  The reported tau is in the units
 * of the formula above: tau = tau' + (alpha - 1) max z.
 *
 * Limits: NaN anywhere in a row -> NaN row (tau NaN); all -inf -> empty row;
 * +inf entries share the mass equally (tau = +inf).
 */
#include <float.h>
#include <string.h>
#include "normalize.h"
#include "vjp.h"
#include "an_simd.h"
#include "normalizers_shared.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ---- descending sort of doubles (candidates; in place) ----
 * quicksort with median-of-three, insertion sort below 24 elements; the
 * smaller side is recursed on, so the stack depth is O(log k). */
static void sort_desc(double *a, an_int n)
{
    while (n > 24) {
        an_int mid = n / 2;
        /* median of a[0], a[mid], a[n-1] into a[mid] */
        if (a[0] < a[mid]) { double t = a[0]; a[0] = a[mid]; a[mid] = t; }
        if (a[mid] < a[n - 1]) { double t = a[mid]; a[mid] = a[n - 1]; a[n - 1] = t; }
        if (a[0] < a[mid]) { double t = a[0]; a[0] = a[mid]; a[mid] = t; }
        double piv = a[mid];
        an_int i = 0, j = n - 1;
        for (;;) {                       /* Hoare partition, descending */
            while (a[i] > piv) i++;
            while (a[j] < piv) j--;
            if (i >= j) break;
            double t = a[i]; a[i] = a[j]; a[j] = t;
            i++; j--;
        }
        an_int left = j + 1;             /* a[0..left) >= piv >= a[left..n) */
        if (left < n - left) { sort_desc(a, left); a += left; n -= left; }
        else { sort_desc(a + left, n - left); n = left; }
    }
    for (an_int i = 1; i < n; i++) {
        double v = a[i]; an_int j = i;
        while (j > 0 && a[j - 1] < v) { a[j] = a[j - 1]; j--; }
        a[j] = v;
    }
}

/* ---- 1.5-entmax threshold on sorted candidates X = (z - max z) / 2 ----
 * For the top-k: mean_k, ss_k = sum (X - mean_k)^2, delta_k = (1 - ss_k) / k,
 * tau_k = mean_k - sqrt(max(delta_k, 0)); support = #{k : tau_k <= X_(k)},
 * tau' = tau_support (Peters et al. 2019, exact for alpha = 1.5). */
static double entmax15_tau_sorted(const double *X, an_int k)
{
    /* the condition holds on a prefix k = 1..support: stop at the first failure */
    double cum = 0, cum2 = 0, tau_sel = X[0] - 1.0;
    for (an_int r = 0; r < k; r++) {
        double kk = (double)(r + 1);
        cum += X[r]; cum2 += X[r] * X[r];
        double mean = cum / kk;
        double ss = kk * (cum2 / kk - mean * mean);
        double delta = (1.0 - ss) / kk;
        double tau = mean - sqrt(delta > 0 ? delta : 0.0);
        if (tau <= X[r]) tau_sel = tau; else break;
    }
    return tau_sel;
}

/* ---- exact threshold for power q = 1 (sparsemax) or q = 2 (1.5-entmax) ----
 * X[0..k): candidates in (-1, 0] (max 0), overwritten.  tau' solves
 * h(tau) = sum_i [X_i - tau]_+^q = 1.  q = 2: Newton steps from below
 * (entmax15_tau_newton), and what follows only if they stall in rounding.
 * q = 2 with few candidates (k <= 64): sort and use the sort-based formula
 * above.  Otherwise: find the support without sorting.
 *  1. Lower bounds: for any set S of candidates, tau' >= (sum_S X - 1) / |S|
 *     (q = 1) and tau' >= mean_S X - 1 / sqrt(|S|) (q = 2, by Cauchy-Schwarz),
 *     so the candidates <= that bound are out; repeat on the rest while it
 *     shrinks (for q = 1 this is Michelot's algorithm and ends exactly).
 *  2. Bisection on [lo, hi] (h(lo) >= 1 >= h(hi); hi = -1/k^(1/q) as
 *     p_max >= 1/k), keeping only the candidates inside (lo, hi]: those
 *     <= lo are out for good, those > hi in the support for good and enter h
 *     through running sums.  When none is left inside, the support
 *     S = {X > hi} is exact and tau' is the sort-based closed form on S:
 *       q = 1: tau' = (sum_S X - 1) / |S|
 *       q = 2: tau' = mean_S - sqrt(max(0, (1 - ss_S) / |S|)),  ss_S = sum_S (X - mean_S)^2
 *     Candidates still inside after 64 halvings lie within 2^-64 of tau'
 *     (zero weight either way) and are counted in S, leaving tau' unchanged. */
static double entmax15_tau_newton(double *X, an_int *kp);
static double exact_tau(double *X, an_int k, int q)
{
    if (q == 2) {
        const double tau = entmax15_tau_newton(X, &k);
        if (tau == tau) return tau;
    }
    if (k <= 64 && q == 2) {   /* q = 1: Michelot's steps below, exact for any k */
        sort_desc(X, k);
        return entmax15_tau_sorted(X, k);
    }
    double lo = -1.0, hi = q == 1 ? -1.0 / (double)k : -1.0 / sqrt((double)k);
    /* 1. lower bounds from the candidate set itself */
    for (;;) {
        double sum = 0;
        _Pragma("omp simd reduction(+:sum)")
        for (an_int r = 0; r < k; r++) sum += X[r];
        const double lb = q == 1 ? (sum - 1.0) / (double)k
                                 : sum / (double)k - 1.0 / sqrt((double)k);
        if (q == 1 || lb > lo) lo = lb;
        an_int w = 0;
        for (an_int r = 0; r < k; r++) { const double x = X[r]; X[w] = x; w += x > lo; }
        if (w == k) break;
        k = w;
    }
    if (q == 1) return lo;          /* Michelot: every kept X is above lo */
    if (lo > hi) lo = hi;
    /* 2. bisection isolating the support */
    double n_in = 0, s1 = 0, s2 = 0;
    an_int na = k;
    for (int it = 0; it < 64 && na > 0; it++) {
        const double mid = 0.5 * (lo + hi);
        double h = s2 - 2.0 * mid * s1 + n_in * mid * mid;
        _Pragma("omp simd reduction(+:h)")
        for (an_int r = 0; r < na; r++) {
            double d = X[r] - mid;
            d = d > 0 ? d : 0.0;
            h += d * d;
        }
        if (h >= 1.0) lo = mid; else hi = mid;
        an_int w = 0;
        for (an_int r = 0; r < na; r++) {
            const double x = X[r];
            const int in = x > hi;
            n_in += in; s1 += in ? x : 0.0; s2 += in ? x * x : 0.0;
            X[w] = x; w += (x > lo) & !in;
        }
        na = w;
    }
    for (an_int r = 0; r < na; r++) { n_in += 1; s1 += X[r]; s2 += X[r] * X[r]; }
    const double mean = s1 / n_in;
    const double ss = s2 - n_in * mean * mean;
    const double delta = (1.0 - ss) / n_in;
    return mean - sqrt(delta > 0 ? delta : 0.0);
}

/* ---- 1.5-entmax threshold by Newton steps from below ----
 * h(t) = sum_i [X_i - t]_+^2 is convex and decreasing where positive, so a
 * Newton step t += (h(t) - 1) / (2 sum_i [X_i - t]_+) from a lower bound of
 * the root tau' stays a lower bound; the candidates X_i <= t are out.  The
 * first bound is mean X - 1 / sqrt(k) (Cauchy-Schwarz, as exact_tau).  Each
 * pass keeps S = {X > t} (with n, sum X, sum X^2 and min X over S) and the
 * closed form on S, tau_S = mean_S - sqrt(max(0, (1 - ss_S) / |S|)), is
 * tau' as soon as t <= tau_S <= min_S X (then h(tau_S) = h_S(tau_S) = 1).
 * Returns NaN (X[0..*kp) still holding every candidate of the support) when
 * the steps stall in rounding: exact_tau's bisection then finishes. */
static double entmax15_tau_newton(double *X, an_int *kp)
{
    an_int k = *kp;
    double s1 = 0;
    _Pragma("omp simd reduction(+:s1)")
    for (an_int r = 0; r < k; r++) s1 += X[r];
    double t = s1 / (double)k - 1.0 / sqrt((double)k);
    if (!(t > -1.0)) t = -1.0;
    for (int it = 0; it < 64; it++) {
        /* S = {X > t} with no branch on the data (masks as factors 0/1;
         * X <= 0, so X + 2 keeps a key outside S above every key of S in
         * the minimum); two interleaved sets of sums (even and odd r) halve
         * the chains of dependent adds */
        double a1 = 0, a2 = 0, b1 = 0, b2 = 0, amn = INFINITY, bmn = INFINITY;
        an_int w = 0, r = 0;
        for (; r + 2 <= k; r += 2) {
            const double x = X[r], y = X[r + 1];
            const int inx = x > t, iny = y > t;
            const double fx = (double)inx, fy = (double)iny;
            X[w] = x; w += inx;
            X[w] = y; w += iny;
            const double ux = fx * x, uy = fy * y;
            const double vx = x + (1.0 - fx) * 2.0, vy = y + (1.0 - fy) * 2.0;
            a1 += ux; a2 += ux * x; amn = vx < amn ? vx : amn;
            b1 += uy; b2 += uy * y; bmn = vy < bmn ? vy : bmn;
        }
        for (; r < k; r++) {
            const double x = X[r];
            const int inx = x > t;
            const double fx = (double)inx, ux = fx * x, vx = x + (1.0 - fx) * 2.0;
            X[w] = x; w += inx;
            a1 += ux; a2 += ux * x; amn = vx < amn ? vx : amn;
        }
        const double n = (double)w, s2 = a2 + b2, mn = amn < bmn ? amn : bmn;
        s1 = a1 + b1;
        k = w;
        *kp = k;
        if (k == 0) break;
        const double mean = s1 / n, ss = s2 - n * mean * mean, delta = (1.0 - ss) / n;
        const double tau = mean - sqrt(delta > 0 ? delta : 0.0);
        if (tau >= t && tau <= mn) return tau;
        const double h = s2 - 2.0 * t * s1 + n * t * t, g = s1 - n * t;
        const double nt = t + (h - 1.0) / (2.0 * g);
        if (!(nt > t && nt < 0.0)) break;   /* (max X = 0 stays in S) */
        t = nt;
    }
    return NAN;
}

/* ---- alpha-entmax by bisection, alpha > 1, alpha != 1.5, 2 ----
 * Parametrised as p_i = [1 + am1 (d_i - theta)]_+^q, d_i = z_i - max z,
 * am1 = alpha - 1, q = 1 / am1, i.e. tau' = am1 theta - 1, with theta in
 * [0, (1 - n^(-am1)) / am1] (p_max <= 1 and p_max >= 1/n).  The power is
 * evaluated as exp(log1p(u) / am1) (vectorised: VOPS->pow1p_sums), which tends
 * to exp(d_i - theta) as alpha -> 1, so the map is continuous into softmax.
 * The result is theta after n_iter halvings of that interval, and the weights
 * renormalised to sum to 1 (as the entmax package's entmax_bisect), but the
 * halvings are decided by the root theta* of s(theta) = sum_i p_i = 1, found
 * once (entmax_bisect_theta):
 *  1. lower bounds without powers (entmax_lb): for any set S of
 *     candidates 1 = s(theta*) >= sum_S [1 + am1 (d_i - theta*)]_+^q, so
 *       q >= 1 (convex power, Jensen):  theta* >= mean_S d + (1 - |S|^-am1) / am1
 *       q < 1 (w^q >= w for w <= 1):    theta* >= mean_S d + (1 - 1 / |S|) / am1;
 *     the candidates with d_i <= lo - 1/am1 have weight 0 at every theta >= lo
 *     and leave; repeated on the rest while that removes many (Michelot's
 *     algorithm when q = 1), by masked sums over the row (entmax_lower_ in
 *     sparse_impl.inc), before the candidates are gathered;
 *  2. Newton steps on phi(theta) = s(theta)^am1 (entmax_newton), which is
 *     linear in theta while the support holds and its weights are equal
 *     (s = k w^q): theta += (s - s^(1 - am1)) / (am1 sum_i p_i / w_i), kept
 *     inside the bracket [lo, hi] that every evaluation narrows (a step that
 *     leaves it bisects instead; for q >= 1, far from the root, lo is the
 *     root of s's tangent, s being convex), the candidates that drop out at
 *     lo leaving as above, until a step is below tol max(1, theta); float
 *     rows with q >= 1 on a fine grid (the default) instead take Halley
 *     steps on phi (the power sums also give s''): with over 64 candidates
 *     from an estimate of theta* on every 8th candidate (entmax_start: phi
 *     is then convex, so Newton's step from there is a lower bound for the
 *     removals, Halley's the estimate), then in the evaluations of the
 *     weights themselves, each ending with a step of its own
 *     (entmax_refine);
 * a float row evaluates the powers in float (an_vf: relative error of s a
 * few 1e-7, theta* to about 1e-6), then, for q < 1 only, where a weight's
 * sensitivity to theta, w^(q-1), is unbounded at the edge of the support,
 * polishes theta* with double evaluations (an_vd).  Removals keep a slack
 * above the float error and the halvings' final width, so no candidate
 * with weight at the final theta leaves. */
typedef double (*an_pow1p_fn)(const double *d, an_int k, double am1, double th,
                              double *der, an_int *live, double *pw, double *tw, double *cur);

/* 1 - x^-am1 = -expm1(-am1 log x), x >= 1: by exp where that is exact to a
 * few ulp (am1 log x >= 1/2, 1 - e^-y >= 0.39), a cheaper call than expm1 */
static inline double entmax_one_minus_pow(double x, double am1)
{
    const double y = am1 * log(x);
    return y >= 0.5 ? 1.0 - exp(-y) : -expm1(-y);
}

/* 1 - k^-am1 for a count k >= 1, remembered per thread for k < 4096 with
 * the am1 it was computed for (the bounds and entmax_top ask for the same
 * few counts row after row; the value is the same either way, so the
 * results do not depend on which rows a thread saw before) */
#define AN_POW_CACHE 4096
static _Thread_local struct { double am1, v; } entmax_pow_cache[AN_POW_CACHE];
static inline double entmax_one_minus_pow_k(an_int k, double am1)
{
    if (k >= AN_POW_CACHE) return entmax_one_minus_pow((double)k, am1);
    if (entmax_pow_cache[k].am1 != am1) {
        entmax_pow_cache[k].v = entmax_one_minus_pow((double)k, am1);
        entmax_pow_cache[k].am1 = am1;
    }
    return entmax_pow_cache[k].v;
}

/* step 1 above: the bound from a set of cnt candidates of mean d mean */
static inline double entmax_lb(double mean, an_int cnt, double am1)
{
    const double k = (double)cnt;
    return mean + (am1 <= 1.0 ? entmax_one_minus_pow_k(cnt, am1) : 1.0 - 1.0 / k) / am1;
}

/* Newton's step on phi = s^am1 from theta = th, where s = s(th) and
 * der = -s'(th) > 0:  th + (s - s^(1 - am1)) / (am1 der), the power as
 * exp(-am1 log s) s (two cheap calls instead of pow) */
static inline double entmax_phi_step(double th, double s, double der, double am1)
{
    return th + s * (1.0 - exp(-am1 * log(s))) / (am1 * der);
}

/* Halley's step on phi from theta = th, given also cur = sum_i p_i / w_i^2
 * (s'' = (1 - am1) cur) and Newton's step nt = entmax_phi_step(th, ...):
 *   th + N / (1 - L),  N = nt - th,
 *   L = N (1 - am1) (cur - der^2 / s) / (2 der)  (= f f'' / (2 f'^2) for
 * f = phi - 1; phi convex: L has the sign of N); Newton's step where
 * |L| > 1/2 (far from the root) or L is not finite */
static inline double entmax_halley_step(double th, double nt, double s, double der, double cur,
                                        double am1)
{
    const double N = nt - th;
    const double L = N * (1.0 - am1) * (cur * s - der * der) / (2.0 * der * s);
    return fabs(L) <= 0.5 ? th + N / (1.0 - L) : nt;
}

/* step 1 above among the gathered candidates d[0..k) (z - max z): from the
 * bound lo the rows' rounds reached, the sets S = the candidates above
 * lo - 1/am1 - slack as lo rises, while S has over 256 and a round removes
 * over 1/8 of it (as entmax_lower_ over the row: masked sums over the
 * candidates, vectorised; entmax_root compacts them once); returns lo */
static double entmax_lower_cand(const double *d, an_int k, double am1, double lo, double slack)
{
    an_int cnt = k, prev = k;
    if (k <= 256) return lo;
    for (int round = 0; round < 16; round++) {
        const double cut = lo - 1.0 / am1 - slack;
        const double sum = an_vd->sum_above(d, k, cut, &cnt);
        if (cnt == 0) break;
        const double lb = entmax_lb(sum / (double)cnt + cut, cnt, am1);
        if (!(lb > lo)) break;
        lo = lb;
        if (cnt <= 256 || (round > 0 && cnt > prev - prev / 8)) break;
        prev = cnt;
    }
    return lo;
}

/* The slack of every removal: the float evaluations' error of theta* (well
 * above it) plus the halvings' final width (theta ends at most that far
 * below the root). */
static inline double entmax_top(an_int nv, double am1)
{
    return entmax_one_minus_pow_k(nv, am1) / am1;
}
static inline double entmax_slack(double top, int64_t n_iter, double cell, int dbl)
{
    return (dbl ? 1e-12 : 1e-5) + (n_iter < 1000 ? top * cell : 0.0);
}
/* 2^-n_iter (n_iter capped at 1000): the grid's cell over [0, 1], one
 * scaling per row (products by it are exact) */
static inline double entmax_cell(int64_t n_iter)
{
    return ldexp(1.0, -(int)(n_iter < 1000 ? n_iter : 1000));
}

/* step 2 above from theta = th in [*lo, *hi]; returns theta*.  Stops after
 * a Newton step below ntol max(1, theta) or a bisection step below
 * tol max(1, theta) (the returned theta is that step's end, not evaluated). */
static double entmax_newton(an_pow1p_fn fn, double *d, an_int *idx, an_int *kp, double am1,
                            double th, double *lo, double *hi, double tol, double ntol,
                            double slack)
{
    an_int k = *kp;
    for (int it = 0; it < 100; it++) {
        double der;
        an_int live;
        const double s = fn(d, k, am1, th, &der, &live, NULL, NULL, NULL);
        if (s == 1.0) break;
        if (s > 1.0) {
            /* q >= 1: s is convex in theta, so the root of its tangent,
             * th + (s - 1) / der, is a lower bound of theta* as well; used
             * far from the root only (for the removals; near it the bracket
             * is left to the steps) */
            const double tan = am1 <= 1.0 && der > 0.0 && s > 1.25 ? th + (s - 1.0) / der : th;
            *lo = tan > th && tan < *hi ? tan : th;
            if (live < k - k / 16 || *lo > th)
                k = an_vd->keep_above(d, d, idx, k, *lo - 1.0 / am1 - slack);
        } else {
            *hi = th;
        }
        double nt = der > 0.0 ? entmax_phi_step(th, s, der, am1) : 0.5 * (*lo + *hi);
        const int newton = nt > *lo && nt < *hi;
        if (!newton) nt = 0.5 * (*lo + *hi);
        if (!(nt > *lo && nt < *hi)) break;           /* bracket exhausted */
        const double step = nt - th;
        th = nt;
        if (fabs(step) <= (newton ? ntol : tol) * (fabs(th) > 1.0 ? fabs(th) : 1.0)) break;
    }
    *kp = k;
    return th;
}

/* A float threshold t with every z of (double)z - mx > cut above it: mx + cut
 * lowered by 1e-6 of its size (far above the rounding of the sum and of the
 * conversion; a few more candidates at most, which weigh exactly 0) */
static inline float entmax_cut_f(double mx, double cut)
{
    const double t = mx + cut;
    return (float)(t - (fabs(t) * 1e-6 + 1e-30));
}

/* A better start for step 2 when q >= 1 and the candidates are many (float
 * rows, the candidates z as scores, d = z - mx):
 * phi = s^am1 = ||[w]_+||_q is convex in theta (a norm of a convex map), so
 * a Newton step on phi from any theta with live keys ends at or below
 * theta*: a lower bound however poor the point it starts from.  The point:
 * the caller's guess when it lies in (lo, hi) (fused attention: lo plus
 * the previous rows' distance from their bound to their root,
 * entmax_row_zf), else a Halley step on 8 s_T from lo, T every 8th
 * candidate (an estimate of theta* for a fraction of the work); the step
 * from there needs only the keys alive there (kept into tmp; the others add
 * exact zeros).  Returns the new lower bound (at least lo; theta*'s upper
 * bound in *hi when the point is above the root) and in *est Halley's step
 * from the point (an estimate of theta* inside the bracket), or the bound;
 * the caller keeps the candidates above the bound.  Only the speed depends
 * on the point.  On Gaussian scores of causal rows up to 2048 keys the
 * guess is mostly within 0.15 of theta* (the previous row's theta* itself:
 * 0.35), and entmax_refine then takes 1.24 evaluations a row on average
 * (1.67 from the previous theta*, about 1.6 from the sample). */
static double entmax_start(const float *z, an_int k, double mx, double am1, double lo,
                           double *hi, float *tmp, double *est, double guess)
{
    double der, cur, th = lo;
    an_int live, nt_ = 0;
    *est = lo;
    if (guess > lo && guess < *hi) {
        th = guess;
    } else {
        for (an_int r = 0; r < k; r += 8) tmp[nt_++] = z[r];
        const double s = 8.0 * an_vf->pow1p_est_zf(tmp, nt_, am1, th, mx, &der, &live, &cur);
        if (der > 0.0) {
            const double nt = entmax_halley_step(th, entmax_phi_step(th, s, 8.0 * der, am1), s,
                                                 8.0 * der, 8.0 * cur, am1);
            if (nt > lo && nt < *hi) th = nt;
        }
    }
    if (th == lo) return lo;
    const an_int nc = an_vf->keep_above_zf(z, tmp, NULL, NULL, k,
                                           entmax_cut_f(mx, th - 1.0 / am1));
    const double s = an_vf->pow1p_est_zf(tmp, nc, am1, th, mx, &der, &live, &cur);
    double nlo = lo;
    if (s >= 1.0) nlo = th;
    else if (th < *hi) *hi = th;
    *est = nlo;
    if (der > 0.0) {
        const double nt = entmax_phi_step(th, s, der, am1);
        if (nt > nlo && nt < *hi) nlo = nt;
        const double ht = entmax_halley_step(th, nt, s, der, cur, am1);
        *est = ht > nlo && ht < *hi ? ht : nlo;
    }
    return nlo;
}

/* theta* (steps 1 and 2 above).  d[0..*kp), keys idx: the candidates
 * z - max z, max 0, a superset of those above lo - 1/am1 - slack (lo: a
 * lower bound of theta*, step 1; hi: an upper bound, e.g. entmax_top of
 * the row); on return the candidates that may have weight at theta* (a
 * subset, in order).  dbl: the row is double (every evaluation in
 * double). */
static double entmax_root(double *d, an_int *idx, an_int *kp, double am1, int dbl, double lo,
                          double hi, double slack)
{
    if (!(lo < hi)) lo = hi;
    const double lo0 = lo, hi0 = hi;
    const an_pow1p_fn fn = dbl ? an_vd->pow1p_sums : an_vf->pow1p_sums;
    *kp = an_vd->keep_above(d, d, idx, *kp, lo - 1.0 / am1 - slack);
    double root = entmax_newton(fn, d, idx, kp, am1, lo, &lo, &hi, dbl ? 1e-14 : 3e-5,
                                dbl ? 1e-14 : 3e-5, slack);
    if (!dbl && am1 > 1.0) {
        lo = lo0; hi = hi0;
        root = entmax_newton(an_vd->pow1p_sums, d, idx, kp, am1, root, &lo, &hi, 1e-12, 1e-12,
                             slack);
    }
    return root;
}

/* The last steps of a float row with q >= 1 (the caller's corr): from the
 * estimate th in the bracket [lo, hi] of theta*, the weights' evaluation
 * (p_r in pw, t_r = p_r / w_r in tw) takes one more step of its own, to
 * first order in the weights:
 *   p_r(theta + delta) = p_r - delta t_r,
 * delta the root of s's Taylor polynomial of degree 2,
 *   s - delta T + delta^2 U / 2 = 1,  T = sum t_r,  U = (1 - am1) sum t_r / w_r
 * (s's error then about K delta^3, the weights' about
 * delta^2 (1 - am1) w_r^(q - 2) / 2, summing to delta^2 U / 2); accepted
 * when delta is below 1e-3 max(1, theta) and delta^2 U / 2 below 1e-7
 * (the weights then as accurate as from the exact root: the terms at the
 * edge of the support, w_r small, are the sensitive ones when q < 2), else
 * a Halley step (Newton's, bisection, as
 * entmax_newton, inside the bracket that the evaluation narrowed) and
 * again, up to 8 evaluations.  Returns theta* (pw corrected, clamped at 0,
 * *sum their sum), or NaN when no delta was small enough. */
static double entmax_refine(const float *z, an_int k, double mx, double am1, double th,
                            double lo, double hi, double *pw, double *tw, double *sum)
{
    for (int it = 0; it < 8; it++) {
        double der, cur;
        an_int live;
        const double s = an_vf->pow1p_sums_zf(z, k, am1, th, mx, &der, &live, pw, tw, &cur);
        if (!(der > 0.0)) break;
        const double e = s - 1.0, disc = 1.0 - 2.0 * (1.0 - am1) * cur * e / (der * der);
        const double delta = disc > 0.0 ? 2.0 * e / (der * (1.0 + sqrt(disc))) : e / der;
        if (fabs(delta) <= 1e-3 * (fabs(th) > 1.0 ? fabs(th) : 1.0)
            && delta * delta * (1.0 - am1) * cur <= 2e-7) {
            *sum = an_vd->axpy_pos_sum(pw, tw, k, -delta);
            return th + delta;
        }
        if (s >= 1.0) lo = th > lo ? th : lo;
        else hi = th < hi ? th : hi;
        const double newton = entmax_phi_step(th, s, der, am1);
        double nt = entmax_halley_step(th, newton, s, der, cur, am1);
        if (!(nt > lo && nt < hi)) nt = newton;
        if (!(nt > lo && nt < hi)) nt = 0.5 * (lo + hi);
        if (!(nt > lo && nt < hi)) break;
        th = nt;
    }
    return NAN;
}

/* theta after n_iter halvings of [0, top], top = (1 - nv^(-am1)) / am1
 * (entmax_top), each keeping the half that holds the root (s(mid) >= 1 iff
 * mid <= theta*): the midpoint of the cell j = floor(2^n_iter root / top)
 * of the grid of width top 2^-n_iter (j clamped to [0, 2^n_iter); cell =
 * entmax_cell(n_iter)); by
 * halvings beyond 2^-50 (they stop once a and b are adjacent: at most
 * ~2100, whatever n_iter) */
static double entmax_grid(double root, double top, int64_t n_iter, double cell)
{
    if (n_iter <= 50) {
        const double cells = 1.0 / cell;   /* 2^n_iter, exactly (entmax_cell) */
        double j = floor(root / top * cells);
        j = j > 0.0 ? (j < cells ? j : cells - 1.0) : 0.0;   /* NaN root: 0 */
        return top * ((j + 0.5) * cell);
    }
    double a = 0.0, b = top;
    for (int64_t it = 0; it < n_iter; it++) {
        const double mid = 0.5 * (a + b);
        if (mid == a || mid == b) break;
        const int le = mid <= root;   /* selects, not a branch on the data */
        a = le ? mid : a;
        b = le ? b : mid;
    }
    return 0.5 * (a + b);
}

/* alpha-entmax of a float row with 1 < alpha < 2 (q > 1) whose grid is
 * finer than float resolves (the caller's corr), the candidates kept as the
 * scores themselves (float values z and int32 keys, 16 a vector; d = z - mx
 * formed exactly in the power sums): those above lo - 1/am1 - slack (lo:
 * step 1's bound), the start (entmax_start), the candidates above its bound
 * kept, and the last steps in the evaluation of the weights
 * (entmax_refine), which go out with their keys listed.  Workspace
 * (ws_mult = 4: 32 (m + 1) bytes): z | key | start's scratch | - in 4 (m + 1)
 * bytes each, then pw and tw in 8 (m + 1) each (the list of keys out in
 * tw's place, tw read for the last time before).  Returns 0, having
 * written nothing, when the last steps did not converge: the caller then
 * takes the candidates in double (entmax_root). */
static int entmax_row_zf(const float *s, float *x, an_int nv, an_rowctx *c, double mx,
                         double am1, double lo, double top, double slack, int64_t n_iter,
                         double cell)
{
    const size_t m1 = (size_t)c->m + 1;
    float *z = (float *)c->ws, *tmp = z + 2 * m1;
    int32_t *key = (int32_t *)(z + m1);
    double *pw = (double *)c->ws + 2 * m1, *tw = pw + m1;
    an_int k = an_vf->gather_raw_f(s, nv, entmax_cut_f(mx, lo - 1.0 / am1 - slack), z, key);
    double hi = top, est = lo, sum;
    if (!(lo < hi)) lo = hi;
    /* theta* - lo varies less from row to row than theta* (on Gaussian
     * scores about 1 +- 0.12 where theta* spreads over +-0.35): the guess
     * is lo plus the previous rows' theta* - lo (c->carry, averaged with
     * weight 1/8 for the last row), the start's point or, for few
     * candidates, the last steps' first */
    const double lo0 = lo, guess = lo + c->carry;
    if (k <= 64 && guess > lo && guess < hi) est = guess;
    if (k > 64) {
        lo = entmax_start(z, k, mx, am1, lo, &hi, tmp, &est, guess);
        k = an_vf->keep_above_zf(z, z, key, key, k, entmax_cut_f(mx, lo - 1.0 / am1 - slack));
    }
    const double root = entmax_refine(z, k, mx, am1, est, lo, hi, pw, tw, &sum);
    if (root != root) return 0;
    an_int *nz = (an_int *)tw;
    if (c->listed_only) {
        /* the weights beside the list (z is read no more) */
        c->nnz = an_vf->list_weights_zf(pw, 1.0 / sum, key, k, z, nz);
        c->nzw = z;
    } else {
        an_vf->fill(x, nv, 0.0f);
        c->nnz = an_vf->put_listed_zf(pw, 1.0 / sum, key, k, x, nz);
    }
    c->nz = nz;
    c->tau = am1 * (entmax_grid(root, top, n_iter, cell) + mx) - 1.0;
    c->carry = c->carry == c->carry ? 0.875 * c->carry + 0.125 * (root - lo0) : root - lo0;
    return 1;
}

/* The weight of a candidate of score xk in the support:
 *   sparsemax  [xk - mx - tau]_+
 *   entmax15   [(xk - mx) / 2 - tau]_+^2
 *   bisection  [1 + am1 (xk - mx - theta)]_+^(1 / am1) * inv, the power
 *              of candidate r computed beforehand in pw[r] (written by
 *              sparse_write_ with put_listed, vectorised) */
enum { AN_W_SPARSEMAX, AN_W_ENTMAX15, AN_W_BISECT };
typedef struct { int form; double mx, tau, theta, am1, inv; const double *pw; } an_sparse_w;
/* [u]_+ without a branch (sparse_write_: none on the data): maxsd on x86
 * (compilers turn the C forms back into a compare and branch) */
static inline double pos_part(double u)
{
#if defined(__SSE2__)
    return _mm_cvtsd_f64(_mm_max_sd(_mm_set_sd(u), _mm_setzero_pd()));
#else
    return u > 0 ? u : 0.0;
#endif
}
static inline double an_sparse_weight(const an_sparse_w *w, double xk)
{
    return w->form == AN_W_SPARSEMAX
           ? pos_part((xk - w->mx) - w->tau)
           : pos_part(0.5 * (xk - w->mx) - w->tau) * pos_part(0.5 * (xk - w->mx) - w->tau);
}

/* rounds of entmax_lower_ over the row before entmax_row_zf: one (the
 * sampled start does the rest on the candidates for less; two rounds or
 * sixteen measured no faster) */
#define AN_ZF_ROUNDS 1
#define AN_TEMPLATE "sparse_impl.inc"
#include "an_template.h"

const an_normdesc an_norm_sparsemax = {
    .name = "sparsemax",
    .row_f = sparsemax_row_f, .row_d = sparsemax_row_d, .ws_mult = 3,
    .tau_support = 1, .lists_support = 1, .jac = AN_JAC_PROJECTION,
    .vjp_f = an_sparsemax_vjp_f, .vjp_d = an_sparsemax_vjp_d,
    .vjp_weights = 1, .vjp_ws_mult = 2 };

/* Jacobian diag(t) - t t^T / sum t with t = a^(2 - alpha) on the support */
static void entmax_jac(const an_normmat *M, an_int nv, double *e, double *T)
{ (void)nv; *e = 2.0 - M->p[0]; *T = 1.0; }
const an_normdesc an_norm_entmax = {
    .name = "entmax",
    .params = { { "alpha", AN_PARAM_REAL, AN_PF_FINITE, 1.5, { 1.0, INFINITY, 0, NULL },
                  AN_DOM_SAME },
                { "n_iter", AN_PARAM_INT, 0, 50, { 1.0, INFINITY, 0, NULL }, AN_DOM_SAME } },
    .nparams = 2,
    .row_f = entmax_row_f, .row_d = entmax_row_d, .ws_mult = 4,
    .tau_support = 1, .lists_support = 1,
    .jac = AN_JAC_DOWNDATE, .jac_sum = 1, .jac_downdate = entmax_jac,
    .vjp_f = an_entmax_vjp_f, .vjp_d = an_entmax_vjp_d,
    .vjp_weights = 1, .vjp_ws_mult = 2 };
