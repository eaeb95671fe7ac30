/*
 * an_common.h -- shared definitions for attnnorm kernels.
 *
 * Kernels see plain pointers, sizes (int64) and byte strides; nothing here
 * includes Python.h.  The CPython/NumPy glue lives in module.c.
 */
#ifndef AN_COMMON_H
#define AN_COMMON_H

#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <math.h>

#ifdef _OPENMP
#include <omp.h>
#endif

typedef int64_t an_int;   /* every size and index is 64-bit */

/* Error codes returned by kernels; module.c turns them into exceptions. */
enum {
    AN_OK = 0,
    AN_ERR_NOMEM = 1,       /* MemoryError */
    AN_ERR_EMPTY_ROW = 2,   /* ValueError: empty="raise" and a row sees no key */
    AN_ERR_VALUE = 3,       /* ValueError: a parameter found bad inside the loop */
    AN_ERR_INTERRUPTED = 4, /* a signal handler raised (KeyboardInterrupt) */
};

/* Ctrl-C (interrupt.c): long parameter-driven loops call an_interrupt_check()
 * between chunks (nonzero: stop and return AN_ERR_INTERRUPTED).  It reads a
 * flag that a chained SIGINT handler sets: one atomic load, any thread, never
 * the interpreter.  an_interrupted() is the same read, for callers that
 * check after a loop stopped.  The gufunc loops bracket their kernels with
 * an_interrupt_begin()/an_interrupt_end(). */
int an_interrupt_check(void);
int an_interrupted(void);
int an_interrupt_begin(void);   /* AN_ERR_INTERRUPTED: do not start */
void an_interrupt_end(void);

/* Empty-row policy (README "Conventions"). */
enum { AN_EMPTY_ZERO = 0, AN_EMPTY_NAN = 1, AN_EMPTY_RAISE = 2 };

/* A hint to fetch the line holding p into the caches (nothing where the
 * compiler has no prefetch builtin), and every line of [p, p + bytes). */
#if defined(__GNUC__) || defined(__clang__)
#define AN_PREFETCH(p) __builtin_prefetch((const void *)(p))
#else
#define AN_PREFETCH(p) ((void)(p))
#endif
static inline void an_prefetch_span(const void *p, ptrdiff_t bytes)
{
    for (ptrdiff_t b = 0; b < bytes; b += 64) AN_PREFETCH((const char *)p + b);
}

/* Strided element access: p is a char*, s a byte stride. */
#define AN_AT(T, p, s, i) (*(T *)((char *)(p) + (ptrdiff_t)(s) * (ptrdiff_t)(i)))

#ifdef _OPENMP
#define AN_OMP_TID(t) ((t) = omp_get_thread_num())
#else
#define AN_OMP_TID(t) ((void)0)
#endif

/* Scratch of one call (scratch.c): from AN_SCRATCH_KEEP bytes on, one
 * block is kept for the next call (huge pages where the system has them);
 * smaller requests are plain malloc.  Release with an_scratch_free and the
 * same size. */
#define AN_SCRATCH_KEEP ((size_t)4 << 20)
void *an_scratch_alloc(size_t bytes);
void an_scratch_free(void *buf, size_t bytes);

/* Per-thread scratch of one OpenMP region: nthr blocks of `per` bytes (the
 * request rounded up to a multiple of 64, so the blocks start on separate
 * cache lines) in one allocation; inside the region an_thread_block() is the
 * calling thread's block.  Release with free(b.mem). */
typedef struct { char *mem; size_t per; } an_thread_blocks;
static inline int an_thread_blocks_alloc(an_thread_blocks *b, size_t bytes, int nthr)
{
    b->per = (bytes + 63) & ~(size_t)63;
    b->mem = (char *)malloc(b->per * (size_t)(nthr > 0 ? nthr : 1));
    return b->mem != NULL;
}
static inline char *an_thread_block(const an_thread_blocks *b)
{
    int tid = 0;
    AN_OMP_TID(tid);
    return b->mem + b->per * (size_t)tid;
}

/* Number of OpenMP threads for the next parallel region (attnnorm.set_num_threads,
 * OMP_NUM_THREADS and threadpoolctl all act on this). */
int an_num_threads(void);
void an_set_num_threads(int n);
#define AN_MAX_THREADS 1024   /* set_num_threads' cap */

/* Causal operand codes: 0 none, 1 bottom-right (j <= i + m - n, as
 * FlashAttention), 2 top-left (j <= i, as PyTorch's is_causal).  Any other
 * nonzero value read from the operand means bottom-right. */
enum { AN_CAUSAL_NONE = 0, AN_CAUSAL_BOTTOM_RIGHT = 1, AN_CAUSAL_TOP_LEFT = 2 };
static inline int an_causal_code(int64_t v)
{
    return v == AN_CAUSAL_TOP_LEFT ? AN_CAUSAL_TOP_LEFT : v != 0;
}

/*
 * Visibility of keys for query row i of an (n, m) score matrix
 * (README "Conventions"), measured from the diagonal
 *   diag = i + (m - n)   (bottom-right alignment; also without causal)
 *   diag = i             (causal == AN_CAUSAL_TOP_LEFT)
 *   causal:  j <= diag
 *   window:  diag - left <= j <= diag + right   (left/right < 0: unbounded)
 * The result is the half-open range [*lo, *hi) of keys that are not excluded
 * by causal/window; a boolean mask (if any) is applied on top by the caller.
 * Window bounds beyond n + m exclude nothing, so they saturate there and
 * diag -/+ bound cannot overflow for bounds up to 2^63 - 1.
 */
static inline void an_visible_range(an_int i, an_int n, an_int m, int causal,
                                    an_int wleft, an_int wright,
                                    an_int *lo, an_int *hi)
{
    an_int diag = causal == AN_CAUSAL_TOP_LEFT ? i : i + (m - n);
    an_int l = 0, h = m;
    if (wleft > n + m) wleft = n + m;
    if (wright > n + m) wright = n + m;
    if (causal && diag + 1 < h) h = diag + 1;
    if (wleft >= 0 && diag - wleft > l) l = diag - wleft;
    if (wright >= 0 && diag + wright + 1 < h) h = diag + wright + 1;
    if (h < 0) h = 0;
    if (l > m) l = m;
    if (h < l) h = l;
    *lo = l; *hi = h;
}

/* A function whose loops the compiler must not turn into memset / memcpy
 * calls: the C library's `rep stos` / `rep movs` forms for rows of a few KiB
 * leave the row out of L1 on some CPUs, and the next pass over it stalls
 * (the row primitives fill and copy, the counts of stochastic_softmax). */
#if defined(__GNUC__) && !defined(__clang__)
#define AN_NO_MEMCALL __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define AN_NO_MEMCALL
#endif

/* ---- counter-based random numbers (same stream for any thread count) ----
 * splitmix64 finaliser applied to (key, counter): a stateless hash, so the
 * number drawn for (matrix seed, row, draw) does not depend on scheduling. */
static inline uint64_t an_mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
#define AN_RAND_CTR_MUL 0xD1B54A32D192ED03ULL
/* an_rand_u64(key, ctr) from mk = an_mix64(key), computed once per key */
static inline uint64_t an_rand_u64_mk(uint64_t mk, uint64_t ctr)
{
    return an_mix64(mk ^ (ctr * AN_RAND_CTR_MUL));
}
static inline uint64_t an_rand_u64(uint64_t key, uint64_t ctr)
{
    return an_rand_u64_mk(an_mix64(key), ctr);
}
/* uniform double in (0, 1) from 64 random bits: ((h >> 11) + 1/2) 2^-53 */
static inline double an_rand_unit(uint64_t h)
{
    return ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static inline double an_rand_uniform(uint64_t key, uint64_t ctr)
{
    return an_rand_unit(an_rand_u64(key, ctr));
}

#endif
