/* simd.c -- compiles simd_impl.inc per target and chooses, once at import,
 * the SIMD path of every dispatched table (an_simd_init). */
#include <stdlib.h>
#include <string.h>
#include "an_simd.h"
#include "an_gemm.h"
#include "diagnostics.h"
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>   /* intrinsics usable inside the target regions below */
#endif

/* portable path: compiled for the compiler's baseline */
#define AN_SFX _default
#define AN_SFX_NAME "default"
#include "simd_impl.inc"
#undef AN_SFX
#undef AN_SFX_NAME

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define AN_HAVE_X86_DISPATCH 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define AN_SFX _avx2
#define AN_SFX_NAME "avx2"
#include "simd_impl.inc"
#undef AN_SFX
#undef AN_SFX_NAME
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx2,fma")
/* the omp simd forms that simd_avx512_impl.inc replaces stay compiled, unused */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#define AN_SFX _avx512
#define AN_SFX_NAME "avx512"
#include "simd_impl.inc"
#undef AN_SFX
#undef AN_SFX_NAME
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

uint64_t an_pack_lut[256];

static void an_pack_lut_init(void)
{
    for (int m = 0; m < 256; m++) {
        uint64_t v = 0;
        int k = 0;
        for (int b = 0; b < 8; b++)
            if (m >> b & 1) v |= (uint64_t)b << (8 * k++);
        an_pack_lut[m] = v;
    }
}

const an_vecops_f *an_vf = &an_vecops_f__default;
int an_simd_avx512 = 0;
const an_vecops_d *an_vd = &an_vecops_d__default;

double an_exp_d(double x) { return expd__default(x); }
float an_exp_f(float x) { return expf_fma__default(x); }

/* x[i] = exp(x[i]) by the dispatched vector exp (the accuracy test calls
 * these through ctypes) */
void an_exp_inplace_f(float *x, an_int n) { an_vf->exp_shift_to(x, x, n, 0.0f, 1.0f); }
void an_exp_inplace_d(double *x, an_int n) { an_vd->exp_shift_to(x, x, n, 0.0, 1.0); }

void an_store_fence(void)
{
#if defined(AN_HAVE_X86_DISPATCH)
    _mm_sfence();   /* SSE: every x86-64 */
#endif
}

const char *an_simd_best(void)
{
#ifdef AN_HAVE_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        return "avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "avx2";
#endif
    return "default";
}

/* Every run-time dispatched table, per path: the vector primitives
 * (simd_impl.inc), the GEMM micro-kernel (an_gemm.inc) and the diagnostics
 * helpers (diag_simd.inc).  an_simd_init chooses one row for all of them. */
typedef struct {
    const char *name;
    const an_vecops_f *vf;
    const an_vecops_d *vd;
    const an_gemm_ops *gemm;
    const an_diagops *diag;
} an_simd_path;
static const an_simd_path an_paths[] = {
    { "default", &an_vecops_f__default, &an_vecops_d__default, &an_gemm_ops__default,
      &an_diagops__default },
#ifdef AN_HAVE_X86_DISPATCH
    { "avx2", &an_vecops_f__avx2, &an_vecops_d__avx2, &an_gemm_ops__avx2, &an_diagops__avx2 },
    { "avx512", &an_vecops_f__avx512, &an_vecops_d__avx512, &an_gemm_ops__avx512,
      &an_diagops__avx2 },
#endif
};
const an_gemm_ops *an_gemm = &an_gemm_ops__default;
const an_diagops *an_diag = &an_diagops__default;

const char *an_simd_init(void)
{
    an_pack_lut_init();
    const char *best = an_simd_best();
    const char *want = getenv("ATTNNORM_CPU");
    const char *use = best;
    if (want && *want) {
        /* a forced path is honoured only if the CPU supports it */
        if (strcmp(want, "default") == 0) use = "default";
        else if (strcmp(want, "avx2") == 0 && strcmp(best, "default") != 0) use = "avx2";
        else if (strcmp(want, "avx512") == 0 && strcmp(best, "avx512") == 0) use = "avx512";
    }
    for (size_t k = 0; k < sizeof(an_paths) / sizeof(an_paths[0]); k++)
        if (strcmp(an_paths[k].name, use) == 0) {
            an_vf = an_paths[k].vf;
            an_vd = an_paths[k].vd;
            an_gemm = an_paths[k].gemm;
            an_diag = an_paths[k].diag;
            an_simd_avx512 = strcmp(an_paths[k].name, "avx512") == 0;
        }
    return an_vf->name;
}
