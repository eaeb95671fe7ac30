/*
 * an_simd.h -- vectorised row primitives with run-time CPU dispatch.
 *
 * simd_impl.inc is compiled three times (portable, AVX2+FMA, AVX-512F) into
 * tables of function pointers; an_simd_init() picks one at import from
 * __builtin_cpu_supports, or from ATTNNORM_CPU=default|avx2|avx512 to force a
 * path (the tests use it to exercise the portable code).  The wheel therefore
 * runs on any x86-64 (and any other CPU through the portable table).
 */
#ifndef AN_SIMD_H
#define AN_SIMD_H
#include "an_common.h"

#define AN_VECOPS_FIELDS(T)                                                   \
    /* max over x[0..n) (NaN-propagating: returns NaN if any x is NaN) */     \
    T (*max)(const T *x, an_int n);                                           \
    /* e[i] = exp((s[i] - shift) * mul); returns sum e[i] (e may be s) */    \
    double (*exp_shift_to)(const T *s, T *e, an_int n, T shift, T mul);       \
    /* e[i] = exp((s[i] - shift) * mul); returns sum e[i] and sets      \
     * *dot = sum e[i] (s[i] - shift) (in double): softmax mass and the      \
     * entropy's mean score in one pass (diagnose) */                         \
    double (*exp_shift_sum_dot)(const T *s, T *e, an_int n, T shift, T mul,  \
                                double *dot);                                 \
    /* e[i] = exp((s[i] - shift) * mul) over the leading blocks of 16 (one   \
     * vector on AVX-512: 8 doubles) in which every s[i] <= cap (NaN is     \
     * not): returns their sum, and in                                      \
     * *done how many entries they hold (n when every block is; e may be    \
     * s).  Softmax with a lazy shift: an estimate of the maximum serves     \
     * while no score exceeds it by more than the cap allows.  ahead: NULL,  \
     * or bytes to prefetch along the pass, the line at ahead + b with the   \
     * line at s + b (b < *done * sizeof(T)): the next row of a caller that  \
     * streams rows from memory, fetched while this one is computed */       \
    double (*exp_capped)(const T *s, T *e, an_int n, T shift, T mul, T cap,  \
                         const void *ahead, an_int *done);                    \
    /* x[i] = v, x[i] = s[i]: plain vector stores, never the C library's     \
     * memset / memcpy (AN_NO_MEMCALL, an_common.h) */                        \
    void (*fill)(T *x, an_int n, T v);                                        \
    void (*copy)(const T *s, T *x, an_int n);                                 \
    /* x[i] = c * s[i] with non-temporal stores where the target has them:  \
     * the lines of x go to memory without being read first (the caller     \
     * issues an_store_fence() before the data is used elsewhere); plain     \
     * elsewhere */                                                          \
    void (*stream)(const T *s, T *x, an_int n, T c);                         \
    /* x[i] *= c */                                                           \
    void (*scale)(T *x, an_int n, T c);                                       \
    /* y[i] += a * x[i] */                                                    \
    void (*axpy)(T *y, const T *x, an_int n, T a);                            \
    /* sum x[i] y[i] (accumulated in T lanes) */                             \
    double (*dot)(const T *x, const T *y, an_int n);                          \
    /* indices i (increasing) with x[i] > thr into idx[0..count), count      \
     * returned; idx holds n entries (NaN is never above; n < 2^31) */        \
    an_int (*above)(const T *x, an_int n, T thr, int32_t *idx);              \
    /* entmax power sums, candidates d in double, precision of T:          \
     * p_r = [1 + u_r]_+^(1/am1), u_r = am1 (d[r] - th); returns sum p_r,  \
     * sets *der = sum p_r / (1 + u_r), *live = #{p_r > 0}, pw[r] = p_r   \
     * unless pw is NULL, tw[r] = p_r / (1 + u_r) unless tw is NULL and     \
     * *cur = sum p_r / (1 + u_r)^2 unless cur is NULL (an_pow1p.h) */      \
    double (*pow1p_sums)(const double *d, an_int k, double am1, double th,   \
                         double *der, an_int *live, double *pw, double *tw,   \
                         double *cur);                                        \
    /* sum of x[r] - cut over the x[r] > cut, their number in *cnt: in      \
     * double, or for float within cnt (max x - cut) 2^-20 (float lanes) */ \
    double (*sum_above)(const T *x, an_int k, T cut, an_int *cnt);             \
    /* keep the s[r] > cut into d (d = s: in place) and their idx[r] (in   \
     * place; idx may be NULL), in order; returns their number */            \
    an_int (*keep_above)(const double *s, double *d, an_int *idx, an_int k, double cut); \
    /* entmax's last steps: p[r] = max(p[r] + a t[r], 0), returns their sum \
     * (an_pow1p.h) */                                                       \
    double (*axpy_pos_sum)(double *p, const double *t, an_int k, double a);   \
    /* entmax's weights out: x[idx[r]] = (T)(pw[r] inv) for r < k, idx kept \
     * for the pw[r] inv > 0 (in place, in order); returns their number */  \
    an_int (*put_listed)(const double *pw, double inv, an_int *idx, an_int k, T *x); \
    /* the sparse kernels' candidates: the keys k with x[k] > thr (a float \
     * superset), then those with d = (double)x[k] - mx > lim: cand[j] =  \
     * mul d, cidx[j] = k (increasing); returns their number.  tmp: 2 n     \
     * int32 of scratch; n < 2^31 */                                         \
    an_int (*gather_above)(const T *x, an_int n, T thr, double mx, double lim, \
                           double mul, double *cand, an_int *cidx, int32_t *tmp); \
    /* Float rows' entmax candidates kept as the scores themselves, 16 a    \
     * vector (the same functions in both tables of a target):              \
     * gather_raw_f: the x[k] > thr into v and their keys k into key (in   \
     * order; v and key hold n; n < 2^31), returns their number;          \
     * keep_above_zf: the z[r] > cut into zo and key[r] into ko (ko NULL:  \
     * no keys; zo = z, ko = key: in place), in order, returns their number; \
     * pow1p_sums_zf: pow1p_sums of d_r = (double)z[r] - mx (exact);       \
     * pow1p_est_zf: its sums (no pw, tw) to a relative 1e-6 or better, at \
     * most as dear (the start's estimates: float lanes where they pay);    \
     * put_listed_zf: x[key[r]] = (float)(pw[r] inv), the keys of the      \
     * pw[r] inv > 0 into nz (in order), returns their number;             \
     * list_weights_zf: the same list, the weights into w[0, count) beside  \
     * it instead of x (w holds k) */                                        \
    an_int (*gather_raw_f)(const float *x, an_int n, float thr, float *v, int32_t *key); \
    an_int (*keep_above_zf)(const float *z, float *zo, const int32_t *key, int32_t *ko, \
                            an_int k, float cut);                             \
    double (*pow1p_sums_zf)(const float *z, an_int k, double am1, double th, double mx, \
                            double *der, an_int *live, double *pw, double *tw, \
                            double *cur);                                     \
    double (*pow1p_est_zf)(const float *z, an_int k, double am1, double th, double mx, \
                           double *der, an_int *live, double *cur);          \
    an_int (*put_listed_zf)(const double *pw, double inv, const int32_t *key, an_int k, \
                            float *x, an_int *nz);                            \
    an_int (*list_weights_zf)(const double *pw, double inv, const int32_t *key, an_int k, \
                              float *w, an_int *nz);                          \
    /* The primitives below that write x[0..n) read s[0..n), which may be x \
     * itself (in place) or another row (the normalizer driver reads the    \
     * scores where they are and writes the weights).                       \
     * x[i] = sigmoid(s[i] + shift) = 1 / (1 + exp(-(s[i] + shift))),       \
     * overflow-free through exp(-|v|) (simd_impl.inc: sigmoidf_/sigmoidd_) */ \
    void (*sigmoid_shift)(const T *s, T *x, an_int n, T shift);               \
    /* softpick terms: d_i = exp(s[i] - shift) - t; x[i] = max(d_i, 0)  \
     * where s[i] > 0, else 0 (t = exp(-shift): d_i = 0 there in exact math); \
     * returns the sum of |d_i| over the s[i] != -inf (shift finite) */       \
    double (*softpick_terms)(const T *s, T *x, an_int n, T shift, T t);      \
    /* x[i] = elu(x[i]) + 1 = x[i] > 0 ? x[i] + 1 : exp(x[i])          \
     * (the elu1 feature map of linear attention; NaN stays NaN) */          \
    void (*elu1)(T *x, an_int n);                                             \
    /* d_i = ((double)x[i] - s1) - s2: returns sum d_i, *sq = sum d_i^2 */ \
    double (*dev_sums)(const T *x, an_int n, double s1, double s2, double *sq); \
    /* x[i] = (T)(g * (d_i * r) + b), d_i = ((double)s[i] - s1) - s2 */  \
    void (*dev_affine)(const T *s, T *x, an_int n, double s1, double s2,      \
                       double r, double g, double b);                         \
    /* x[i] = (T)(v^p / den), v = (double)s[i], or max(v, 0) (v <= 0: 0,   \
     * NaN stays NaN) when relu, p = 1, 2 or 3; the division is correctly    \
     * rounded for T = double, a multiply by rden = 1 / den for float */     \
    void (*powi_scale)(const T *s, T *x, an_int n, int p, int relu, double den, \
                       double rden);                                          \
    /* stick-breaking weights of the keys [hi, n) of x, nearest (n - 1)     \
     * first: walks in blocks until the stick left is below tiny, returns   \
     * hi (0: every key).  Writes                                            \
     * w[k] = a_k (w may be x), and where a is not NULL a[k] = a_k,         \
     * sig[k] = sigma(x[k]), rest[k] = 1 - sigma(x[k]) in double          \
     * (simd_ops_impl.inc) */                                                 \
    an_int (*stickbreaking)(const T *x, an_int n, double tiny, T *w,         \
                            double *a, double *sig, double *rest);           \
    /* o[c] += sum_t a_t V[key_t ep + c], c < e, over the listed weights   \
     * t < nnz in list order, a_t = w[t], or x[nz[t]] when w is NULL        \
     * (key_t = idx[nz[t]], or lo + nz[t] without idx): a sparse row of     \
     * weights times the values.  Lists of                                   \
     * 4 AN_LISTED_NACC entries or more go round-robin into AN_LISTED_NACC  \
     * accumulators (o, then the rows of ot, ep apart), added into o in     \
     * order at the end: the consecutive updates do not wait on one        \
     * another.  The value rows are fetched ahead (they are scattered). */  \
    void (*listed_sums)(T *o, T *ot, const T *V, an_int ep, an_int e, const T *x, \
                        const T *w, const an_int *nz, an_int nnz, const an_int *idx, \
                        an_int lo);                                           \
    /* bit t set where s[t] >= thr, t < r <= 64 (NaN: never) */             \
    uint64_t (*hits64)(const T *s, an_int r, T thr);

#define AN_LISTED_NACC 4   /* accumulators of listed_sums */
#define AN_LISTED_AHEAD 6  /* ... and how many entries ahead its portable form fetches */

typedef struct { AN_VECOPS_FIELDS(float) const char *name; } an_vecops_f;
typedef struct { AN_VECOPS_FIELDS(double) const char *name; } an_vecops_d;

extern const an_vecops_f *an_vf;   /* the chosen float table */
extern const an_vecops_d *an_vd;   /* the chosen double table */
/* 1 when the chosen path is AVX-512 (F, DQ, VL, POPCNT): the one kernel
 * compiled for that target outside the tables (stochastic_softmax's
 * sampling, target attributes) runs only then */
extern int an_simd_avx512;

/* Orders the non-temporal stores of `stream` before the stores that follow
 * (x86: sfence; elsewhere nothing is needed). */
void an_store_fence(void);

/* Choose the tables; returns the name of the chosen path. */
const char *an_simd_init(void);
/* Name of the best path this CPU supports ("avx512", "avx2", "default"). */
const char *an_simd_best(void);

/* an_pack_lut[m]: the positions of the set bits of the byte m, one per byte
 * in increasing order (the left-pack table of the x86 `above`). */
extern uint64_t an_pack_lut[256];

/* Scalar exp with the same algorithm as the vector code (used in scalar tails
 * and by kernels that need one value at a time). */
double an_exp_d(double x);
float an_exp_f(float x);

#endif
