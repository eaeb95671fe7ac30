/*
 * sparse.c -- sparsemax and alpha-entmax row kernels (papers.md A6).
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
 * support when they are many (exact_tau).  The reported tau is in the units
 * of the formula above: tau = tau' + (alpha - 1) max z.
 *
 * Limits: NaN anywhere in a row -> NaN row (tau NaN); all -inf -> empty row;
 * +inf entries share the mass equally (tau = +inf).
 */
#include <float.h>
#include <string.h>
#include "normalize.h"
#include "an_simd.h"
#include "normalizers_shared.h"

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

/* ---- sparsemax threshold on sorted candidates X (descending, X[0] = 0) ----
 *   k* = max{k : 1 + k X_(k) > sum_{j<=k} X_(j)},  tau' = (sum_{j<=k*} X_(j) - 1) / k*
 * (Martins & Astudillo 2016). */
static double sparsemax_tau_sorted(const double *X, an_int k)
{
    double cum = 0, tau = X[0] - 1.0;
    for (an_int r = 0; r < k; r++) {
        cum += X[r];
        if (1.0 + (double)(r + 1) * X[r] > cum) tau = (cum - 1.0) / (double)(r + 1);
        else break;
    }
    return tau;
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
 * h(tau) = sum_i [X_i - tau]_+^q = 1.  Few candidates (k <= 64): sort and use
 * the sort-based formulas above.  Many: find the support without sorting.
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
static double exact_tau(double *X, an_int k, int q)
{
    if (k <= 64) {
        sort_desc(X, k);
        return q == 1 ? sparsemax_tau_sorted(X, k) : entmax15_tau_sorted(X, k);
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

/* ---- alpha-entmax by bisection, alpha > 1, alpha != 1.5, 2 ----
 * Parametrised as p_i = [1 + (alpha-1)(z_i - max z - theta)]_+^(1/(alpha-1)),
 * i.e. tau' = (alpha-1) theta - 1, with theta in [0, (1 - n^(1-alpha))/(alpha-1)]
 * (p_max <= 1 and p_max >= 1/n).  The power is evaluated as
 * exp(log1p(u) / (alpha-1)), which tends to exp(z - max z - theta) as alpha -> 1,
 * so the map is continuous into softmax.  n_iter halvings, then the weights
 * are renormalised to sum to 1 (as the entmax package's entmax_bisect).
 * Candidates that reach 0 at the lower bracket are dropped as it rises. */
static inline double entmax_pow(double u, double am1)
{
    /* [1 + u]_+^(1/am1) */
    return u > -1.0 ? exp(log1p(u) / am1) : 0.0;
}

static double entmax_bisect_theta(double *d, an_int k, an_int nv,
                                  double am1, int64_t n_iter)
{
    /* d: candidates z - max z (> -1/am1); overwritten (pruned) */
    double lo = 0.0, hi = -expm1(-am1 * log((double)nv)) / am1;
    an_int work = 0;
    for (int64_t it = 0; it < n_iter; it++) {
        /* Ctrl-C: polled every ~2^20 element steps (the caller checks
         * an_interrupted and discards theta) */
        work += k + 1;
        if (work > ((an_int)1 << 20)) {
            work = 0;
            if (an_interrupt_check()) break;
        }
        double mid = 0.5 * (lo + hi), s = 0;
        an_int zeros = 0;
        for (an_int r = 0; r < k; r++) {
            double u = am1 * (d[r] - mid);
            if (u > -1.0) s += entmax_pow(u, am1); else zeros++;
        }
        if (s >= 1.0) {
            lo = mid;
            /* theta >= mid from now on: entries already at 0 stay at 0 */
            if (zeros) {
                an_int w = 0;
                for (an_int r = 0; r < k; r++)
                    if (am1 * (d[r] - mid) > -1.0) d[w++] = d[r];
                k = w;
            }
        } else {
            hi = mid;
        }
    }
    return 0.5 * (lo + hi);
}

/* Common prologue of every sparse row kernel: takes the row maximum and
 * returns from the kernel for NaN rows (NaN weights, tau NaN), rows of -inf
 * (AN_ROW_EMPTY) and rows with +inf (equal shares, tau = +inf); otherwise
 * defines mx, the finite row maximum, as double. */
#define AN_SPARSE_PROLOGUE(T, VOPS)                                           \
    T mxT = VOPS->max(x, nv);                                                 \
    if (mxT != mxT) {                                                         \
        for (an_int k = 0; k < nv; k++) x[k] = (T)NAN;                        \
        c->tau = NAN; return AN_OK;                                           \
    }                                                                         \
    if (mxT == -INFINITY) return AN_ROW_EMPTY;                                \
    if (mxT == INFINITY) {                                                    \
        an_int cnt = 0;                                                       \
        for (an_int k = 0; k < nv; k++) cnt += (x[k] == INFINITY);            \
        for (an_int k = 0; k < nv; k++) x[k] = x[k] == INFINITY ? (T)1 / (T)cnt : (T)0; \
        c->tau = INFINITY; return AN_OK;                                      \
    }                                                                         \
    const double mx = (double)mxT;

/* Gather the candidates mul * (z - max z) with z - max z > lim into cand and
 * their keys into cidx (increasing).  VOPS->above first picks, vectorised,
 * the keys above a threshold a little below max z + lim (a superset); the
 * exact test in double then runs on those few only.  Workspace (ws_mult = 3):
 * cand (m + 1 doubles) | cidx (m + 1 an_int) | raw (m + 1 int32). */
#define AN_GATHER_CANDIDATES_SCALED(T, VOPS, lim, mul)                        \
    double *cand = (double *)c->ws;                                           \
    an_int *cidx = (an_int *)(cand + c->m + 1);                               \
    an_int ncand = 0;                                                         \
    /* raw: the superset (all keys when nv does not fit int32) */             \
    int32_t *raw = nv <= INT32_MAX ? (int32_t *)(cidx + c->m + 1) : NULL;    \
    an_int nraw = nv;                                                         \
    if (raw) {                                                                \
        const double tl = mx + (lim);                                         \
        nraw = VOPS->above(x, nv, (T)(tl - (fabs(tl) * 1e-6 + 1e-30)), raw);  \
    }                                                                         \
    for (an_int r = 0; r < nraw; r++) {                                       \
        const an_int k = raw ? raw[r] : r;                                    \
        const double dk = (double)x[k] - mx;                                  \
        cand[ncand] = (mul) * dk; cidx[ncand] = k;                            \
        ncand += dk > (lim);                                                  \
    }
#define AN_GATHER_CANDIDATES(T, VOPS, lim) AN_GATHER_CANDIDATES_SCALED(T, VOPS, lim, 1.0)

/* Weights from the candidates: WEIGHT(xk) gives the weight (double, > 0 in
 * the support) of a candidate of score xk; every other key gets 0.  The
 * support is listed in c->nz (attention accumulates only those keys). */
#define AN_SPARSE_WRITE(T, WEIGHT)                                            \
    an_int nnz = 0;                                                           \
    for (an_int r = 0; r < ncand; r++) {                                      \
        const an_int k = cidx[r];                                             \
        const double w = WEIGHT((double)x[k]);                                \
        cand[nnz] = w; cidx[nnz] = k;                                         \
        nnz += w > 0;                                                         \
    }                                                                         \
    memset(x, 0, sizeof(T) * (size_t)nv);                                     \
    for (an_int r = 0; r < nnz; r++) x[cidx[r]] = (T)cand[r];                 \
    c->nz = cidx; c->nnz = nnz;

/* the weights of a candidate of score xk (in the kernels' scope: mx, tau,
 * theta, am1, inv) */
#define AN_W_SPARSEMAX(xk) pos_part(((xk) - mx) - tau)
#define AN_W_ENTMAX15(xk) (pos_part(0.5 * ((xk) - mx) - tau) * pos_part(0.5 * ((xk) - mx) - tau))
#define AN_W_BISECT(xk) (entmax_pow(am1 * (((xk) - mx) - theta), am1) * inv)
static inline double pos_part(double u) { return u > 0 ? u : 0.0; }

/* sparsemax:  p = [z - tau]_+ ; exact, on the candidates z > max z - 1 */
#define AN_SPARSEMAX_ROW(T, TS, VOPS)                                         \
static int sparsemax_row_##TS(T *x, an_int nv, an_rowctx *c)                  \
{                                                                             \
    AN_SPARSE_PROLOGUE(T, VOPS)                                               \
    AN_GATHER_CANDIDATES(T, VOPS, -1.0)                                       \
    const double tau = exact_tau(cand, ncand, 1);                             \
    AN_SPARSE_WRITE(T, AN_W_SPARSEMAX)                                        \
    c->tau = tau + mx;                                                        \
    return AN_OK;                                                             \
}

/* entmax: dispatch on alpha = p[0]; n_iter = ip[0] (bisection only) */
#define AN_ENTMAX_ROW(T, TS, VOPS)                                            \
static int entmax_row_##TS(T *x, an_int nv, an_rowctx *c)                     \
{                                                                             \
    const double alpha = c->mat->p[0];                                        \
    if (alpha == 2.0) return sparsemax_row_##TS(x, nv, c);                    \
    if (alpha == 1.0) {                                                       \
        /* softmax; tau = log-sum-exp = max z - log(max p), so p = exp(z - tau) */ \
        T mxs = VOPS->max(x, nv);                                             \
        int rc = an_softmax_inplace_##TS(x, nv, 1.0);                         \
        if (rc != AN_OK) return rc;                                           \
        c->tau = mxs != mxs ? NAN : (mxs == INFINITY ? INFINITY               \
                 : (double)mxs - log((double)VOPS->max(x, nv)));              \
        return AN_OK;                                                         \
    }                                                                         \
    if (!(alpha > 1.0)) return AN_ERR_VALUE;                                  \
    AN_SPARSE_PROLOGUE(T, VOPS)                                               \
    const double am1 = alpha - 1.0;                                           \
    if (alpha == 1.5) {                                                       \
        /* p = [X - tau']_+^2 with X = (z - max z) / 2 */                     \
        AN_GATHER_CANDIDATES_SCALED(T, VOPS, -2.0, 0.5)                       \
        const double tau = exact_tau(cand, ncand, 2);                         \
        AN_SPARSE_WRITE(T, AN_W_ENTMAX15)                                     \
        c->tau = tau + 0.5 * mx;                                              \
        return AN_OK;                                                         \
    }                                                                         \
    AN_GATHER_CANDIDATES(T, VOPS, -1.0 / am1)                                 \
    const double theta = entmax_bisect_theta(cand, ncand, nv, am1, c->mat->ip[0]); \
    if (an_interrupted()) return AN_ERR_INTERRUPTED;                          \
    /* renormalised: the sum in key order over the candidates (the other    \
     * keys add exact zeros) */                                              \
    double sum = 0;                                                           \
    for (an_int r = 0; r < ncand; r++)                                        \
        sum += entmax_pow(am1 * (((double)x[cidx[r]] - mx) - theta), am1);    \
    const double inv = 1.0 / sum;                                             \
    AN_SPARSE_WRITE(T, AN_W_BISECT)                                           \
    c->tau = am1 * (theta + mx) - 1.0;                                        \
    return AN_OK;                                                             \
}

AN_SPARSEMAX_ROW(float, f, an_vf)
AN_SPARSEMAX_ROW(double, d, an_vd)
AN_ENTMAX_ROW(float, f, an_vf)
AN_ENTMAX_ROW(double, d, an_vd)

const an_normdesc an_norm_sparsemax = {
    .row_f = sparsemax_row_f, .row_d = sparsemax_row_d,
    .ws_mult = 3, .has_extra = 1 };
const an_normdesc an_norm_entmax = {
    .row_f = entmax_row_f, .row_d = entmax_row_d,
    .ws_mult = 3, .nreal = 1, .nint = 1, .has_extra = 1 };
