/* an_gemm.c -- compiles an_gemm.inc (an_gemm.h) per target (portable, AVX2+FMA,
 * AVX-512F); an_simd_init (simd.c) picks the table with the other SIMD tables. */
#include <string.h>
#include "an_gemm.h"
#include "an_simd.h"

/* a*b+c contracts to FMA where the target has it (ISO C mode turns it off) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

/* portable: two SSE2-width registers per row */
#define AN_GSFX _default
#define AN_GSFX_NAME "default"
#define AN_GNR_F 8
#define AN_GVB 16
#define AN_GNR_D 4
#include "an_gemm.inc"
#undef AN_GSFX
#undef AN_GSFX_NAME
#undef AN_GNR_F
#undef AN_GNR_D
#undef AN_GVB

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define AN_ATT_HAVE_X86 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define AN_GSFX _avx2
#define AN_GSFX_NAME "avx2"
#define AN_GNR_F 16
#define AN_GVB 32
#define AN_GNR_D 8
#include "an_gemm.inc"
#undef AN_GSFX
#undef AN_GSFX_NAME
#undef AN_GNR_F
#undef AN_GNR_D
#undef AN_GVB
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx2,fma")
#define AN_GSFX _avx512
#define AN_GSFX_NAME "avx512"
#define AN_GNR_F 32
#define AN_GVB 64
#define AN_GNR_D 16
#include "an_gemm.inc"
#undef AN_GSFX
#undef AN_GSFX_NAME
#undef AN_GNR_F
#undef AN_GNR_D
#undef AN_GVB
#pragma GCC pop_options
#endif
