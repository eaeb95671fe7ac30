/*
 * diagnostics.c -- materialised diagnostics of weights and scores
 * (README "Diagnostics").
 *
 * Row kernels gather the visible entries of one row (causal/window range,
 * then the boolean mask), exactly as normalize_driver.c does, and reduce
 * them; rows are independent, so results do not depend on the thread count.
 * Column and matrix kernels give each output to one thread, which sums in a
 * fixed order.
 */
#include <stdlib.h>
#include <string.h>
#include <float.h>
#include "diagnostics.h"


void an_column_counts(const an_vis *v, an_int *cnt)
{
    const an_int n = v->n, m = v->m;
    memset(cnt, 0, sizeof(an_int) * (size_t)(m + 1));
    for (an_int i = 0; i < n; i++) {
        an_int lo, hi;
        an_visible_range(i, n, m, v->causal, v->wleft, v->wright, &lo, &hi);
        if (v->mask) {
            const char *mk = v->mask + v->mk_n * i;
            for (an_int j = lo; j < hi; j++) cnt[j] += AN_AT(uint8_t, mk, v->mk_m, j) != 0;
        } else if (hi > lo) {          /* difference array, prefix-summed below */
            cnt[lo] += 1; cnt[hi] -= 1;
        }
    }
    if (!v->mask)
        for (an_int j = 1; j <= m; j++) cnt[j] += cnt[j - 1];
}

static int threads_for(double work, an_int tasks)
{
    int nthr = an_num_threads();
    if (work < 32768.0) nthr = 1;
    if (nthr > tasks) nthr = (int)(tasks > 0 ? tasks : 1);
    return nthr;
}

/* ------------------------------------------------------------------------ */
/* Row diagnostics ([Sander2021], [Vasylenko2025], [Mudarisov2025]):                                    */
/*   entropy H = -sum_{a>0} a log a (0 log 0 = 0), times p = 1/log(base);     */
/*   normalised H / log n_i; effective support exp(H); participation          */
/*   1 / sum a^2; negative mass sum min(a, 0); support #{a > p};              */
/*   separation margin top-1 minus top-2 of the visible scores.               */
/* Undefined -> NaN: a row with no visible key or no mass (all weights 0)     */
/* has no entropy/participation; normalised entropy needs n_i >= 2.           */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Column mass ([Gu2024]): m_j = (1/|Q_j|) sum_{i in Q_j} a_ij, Q_j the  */
/* queries that see key j; NaN if Q_j is empty.  Rows are cut into 16 fixed  */
/* chunks (not one per thread), each summed in row order into its own        */
/* partial, and the partials are added in chunk order: contiguous row reads  */
/* and the same result for any thread count.                                 */
/* ------------------------------------------------------------------------ */
#define AN_CM_CHUNKS 16

/* ------------------------------------------------------------------------ */
/* Matrix diagnostics: residuals ([Sander2021]), ||a||_F ([Saratchandran2024]), rank collapse */
/* (B15).  One thread per matrix.                                            */
/* ------------------------------------------------------------------------ */
static inline void norm_acc(double *acc, double r, int ord)
{
    double a = fabs(r);
    if (ord == AN_ORD_1) *acc += a;
    else if (ord == AN_ORD_INF) *acc = (a > *acc || a != a) ? a : *acc;
    else *acc += r * r;
}


/* ------------------------------------------------------------------------ */
/* Largest eigenvalue of A = diag(d) - zs2 w w^T, exactly ([Mudarisov2025]).    */
/* Entries with w_i = 0 are eigenvalues d_i; a pole d shared by c >= 2      */
/* entries is an eigenvalue (multiplicity c - 1).  The other eigenvalues are */
/* the roots of the secular equation 1 = zs2 sum_i w_i^2 / (d_i - lambda),   */
/* which interlace the distinct poles; the largest lies in (d2, d1), d1 > d2 */
/* the two largest poles.  With mu = d1 - lambda it is the root of           */
/*   G(mu) = mu (1 + zs2 sum_{i != 1} w_i^2 / (d1 - d_i - mu)) - zs2 w_1^2,  */
/* increasing and convex on (0, d1 - d2), G(0) < 0: Newton safeguarded by    */
/* bisection on the bracket (bisection whenever |G| fails to halve), stopped */
/* when the bracket or the residual reaches rounding level.                  */
/* ------------------------------------------------------------------------ */
double an_downdate_max_eig(const double *d, const double *w, double zs2, an_int n)
{
    double defl = -INFINITY, d1 = -INFINITY, d2 = -INFINITY, w1 = 0;
    an_int c1 = 0, i1 = -1;
    for (an_int i = 0; i < n; i++) {
        if (w[i] == 0) { if (d[i] > defl) defl = d[i]; continue; }
        if (d[i] > d1) { d2 = d1; d1 = d[i]; c1 = 1; i1 = i; w1 = w[i]; }
        else if (d[i] == d1) c1++;
        else if (d[i] > d2) d2 = d[i];
    }
    if (i1 < 0) return defl == -INFINITY ? 0.0 : defl;
    double lam;
    if (c1 >= 2) lam = d1;
    else if (d2 == -INFINITY) lam = d1 - zs2 * w1 * w1;
    else {
        const double gap = d1 - d2, c = zs2 * w1 * w1;
        double lo = 0, hi = gap, mu = 0, gprev = INFINITY;
        for (int it = 0; it < 400; it++) {
            double R, dR;
            an_secular_sums(d, w, n, i1, d1, mu, zs2, &R, &dR);
            double G = mu * R - c, dG = R + mu * dR;
            if (G == 0) break;
            if (G < 0) lo = mu; else hi = mu;
            if (hi - lo <= 4 * DBL_EPSILON * hi) { mu = 0.5 * (lo + hi); break; }
            double next = mu - G / dG;
            /* Newton while it converges (|G| at least halves and stays inside
             * the bracket); bisection otherwise, e.g. next to the pole d2 */
            if (!(next > lo && next < hi) || !(fabs(G) <= 0.5 * gprev))
                next = 0.5 * (lo + hi);
            if (fabs(next - mu) <= 2 * DBL_EPSILON * next
                && fabs(G) <= 64 * DBL_EPSILON * (c + fabs(mu * R))) { mu = next; break; }
            gprev = fabs(G);
            mu = next;
        }
        lam = d1 - mu;
    }
    return lam > defl ? lam : defl;
}

/* Largest eigenvalue of the symmetric nv x nv matrix B (overwritten), by
 * cyclic Jacobi rotations until the off-diagonal part is negligible. */
static double sym_max_eig(double *B, an_int nv)
{
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0, diag = 0;
        for (an_int p = 0; p < nv; p++) {
            diag += B[p * nv + p] * B[p * nv + p];
            for (an_int q = p + 1; q < nv; q++) off += B[p * nv + q] * B[p * nv + q];
        }
        if (!(off > 1e-32 * diag)) break;
        for (an_int p = 0; p < nv; p++)
            for (an_int q = p + 1; q < nv; q++) {
                const double bpq = B[p * nv + q];
                if (bpq == 0) continue;
                const double theta = (B[q * nv + q] - B[p * nv + p]) / (2 * bpq);
                const double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                const double c = 1 / sqrt(t * t + 1), s = t * c;
                for (an_int k = 0; k < nv; k++) {   /* B <- B R (columns p, q) */
                    const double bkp = B[k * nv + p], bkq = B[k * nv + q];
                    B[k * nv + p] = c * bkp - s * bkq;
                    B[k * nv + q] = s * bkp + c * bkq;
                }
                for (an_int k = 0; k < nv; k++) {   /* B <- R^T B (rows p, q) */
                    const double bpk = B[p * nv + k], bqk = B[q * nv + k];
                    B[p * nv + k] = c * bpk - s * bqk;
                    B[q * nv + k] = s * bpk + c * bqk;
                }
            }
    }
    double mx = 0;
    for (an_int p = 0; p < nv; p++) if (B[p * nv + p] > mx) mx = B[p * nv + p];
    return mx;
}

/* ||J||_2 and ||J||_F of a dense nv x nv J: sqrt of the largest eigenvalue
 * of J^T J (built in B), and sqrt(sum J^2). */
static double dense_norm(const double *J, double *B, an_int nv, int fro)
{
    if (fro) {
        double s = 0;
        for (an_int k = 0; k < nv * nv; k++) s += J[k] * J[k];
        return sqrt(s);
    }
    for (an_int p = 0; p < nv; p++)
        for (an_int q = 0; q < nv; q++) {
            double s = 0;
            for (an_int k = 0; k < nv; k++) s += J[k * nv + p] * J[k * nv + q];
            B[p * nv + q] = s;
        }
    return sqrt(sym_max_eig(B, nv));
}

#define AN_TEMPLATE "diagnostics_impl.inc"
#include "an_template.h"
