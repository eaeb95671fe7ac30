"""Measure this machine's peak FMA throughput (GFLOP/s) with a tiny C probe.

    python benchmarks/fma_peak.py [--threads 2] [--isa avx2,avx512]

The probe (compiled on the fly with the system C compiler, OpenMP) runs, on
every thread, a loop of 12 independent accumulator chains
acc_j = fma(acc_j, x, y): 12 chains hide the FMA latency (4 cycles) on two
FMA pipes, so the loop is bound by FMA throughput only.  One FMA on a vector
of w lanes counts 2 w flops.  Each thread's rate is taken over its own CPU
time (the time it actually ran), best of the repetitions, and the peak is the
sum over the threads: on a shared machine, other processes then do not lower
it (the wall-clock rate, which they do lower, is printed alongside).  The compiled loop is checked by disassembly
(objdump): it must hold 12 vfmadd instructions on 12 distinct vector
registers of the ISA's width (ymm for AVX2, zmm for AVX-512), else the probe
refuses to report.  The peak is the best of several timed runs.

bench_attention.py imports `measure_peak` to print "% of peak" next to every
GFLOP/s figure.
"""
import argparse
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile

CHAINS = 12

_SRC = r"""
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CH 12
#define BODY(V, FMA, SET1)                                                   \
    V acc[CH];                                                               \
    for (int j = 0; j < CH; j++) acc[j] = SET1(1.0 + 1e-3 * j);              \
    const V x = SET1(0.999999), y = SET1(1e-6);                              \
    for (long it = 0; it < iters; it++) {                                    \
        acc[0] = FMA(acc[0], x, y);   acc[1] = FMA(acc[1], x, y);            \
        acc[2] = FMA(acc[2], x, y);   acc[3] = FMA(acc[3], x, y);            \
        acc[4] = FMA(acc[4], x, y);   acc[5] = FMA(acc[5], x, y);            \
        acc[6] = FMA(acc[6], x, y);   acc[7] = FMA(acc[7], x, y);            \
        acc[8] = FMA(acc[8], x, y);   acc[9] = FMA(acc[9], x, y);            \
        acc[10] = FMA(acc[10], x, y); acc[11] = FMA(acc[11], x, y);          \
    }                                                                        \
    for (int j = 1; j < CH; j++) acc[0] = acc[0] + acc[j];                   \
    memcpy(out, &acc[0], sizeof acc[0]);

__attribute__((target("avx2,fma"), noinline))
void peak_avx2_f(long iters, char *out) { BODY(__m256, _mm256_fmadd_ps, _mm256_set1_ps) }
__attribute__((target("avx2,fma"), noinline))
void peak_avx2_d(long iters, char *out) { BODY(__m256d, _mm256_fmadd_pd, _mm256_set1_pd) }
__attribute__((target("avx512f"), noinline))
void peak_avx512_f(long iters, char *out) { BODY(__m512, _mm512_fmadd_ps, _mm512_set1_ps) }
__attribute__((target("avx512f"), noinline))
void peak_avx512_d(long iters, char *out) { BODY(__m512d, _mm512_fmadd_pd, _mm512_set1_pd) }

int main(int argc, char **argv)
{
    /* argv: isa (avx2|avx512) dtype (f|d) threads iters reps */
    const int w512 = strcmp(argv[1], "avx512") == 0, dbl = argv[2][0] == 'd';
    int thr = atoi(argv[3]);
    const long iters = atol(argv[4]);
    const int reps = atoi(argv[5]);
    void (*f)(long, char *) = w512 ? (dbl ? peak_avx512_d : peak_avx512_f)
                                   : (dbl ? peak_avx2_d : peak_avx2_f);
    const double lanes = (w512 ? 64.0 : 32.0) / (dbl ? 8.0 : 4.0);
    /* per thread, the best rate over the repetitions in its own CPU time
     * (CLOCK_THREAD_CPUTIME_ID: time the thread ran, so other processes on a
     * shared machine do not lower the figure); the peak is their sum */
    double best[256] = {0}, wall_best = 0, sink = 0;
    if (thr > 256) thr = 256;
    for (int r = 0; r < reps; r++) {
        double w0 = 0, w1 = 0;
        #pragma omp parallel num_threads(thr) reduction(+:sink)
        {
            char out[64];
            struct timespec a, b;
            const int t = omp_get_thread_num();
            #pragma omp barrier
            #pragma omp master
            w0 = omp_get_wtime();
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
            f(iters, out);
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
            #pragma omp barrier
            #pragma omp master
            w1 = omp_get_wtime();
            const double cpu = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
            const double gf = 2.0 * lanes * CH * (double)iters / cpu / 1e9;
            if (gf > best[t]) best[t] = gf;
            sink += dbl ? *(double *)out : *(float *)out;
        }
        const double gw = 2.0 * lanes * CH * (double)iters * thr / (w1 - w0) / 1e9;
        if (gw > wall_best) wall_best = gw;
    }
    double total = 0;
    for (int t = 0; t < thr; t++) total += best[t];
    printf("%.3f %.3f %g\n", total, wall_best, sink);
    return 0;
}
"""


def _cpu_has(flag):
    try:
        with open("/proc/cpuinfo") as f:
            return any(flag in line.split() for line in f if line.startswith("flags"))
    except OSError:
        return False


def check_disassembly(exe, isa, dtype):
    """The vfmadd instructions of peak_<isa>_<dtype>: (count, distinct
    destination registers).  Raises if the loop is not 12 independent
    full-width FMAs."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", exe], check=True,
                         capture_output=True, text=True).stdout
    m = re.search(rf"<peak_{isa}_{dtype}>:\n(.*?)\n\n", out, re.S)
    if not m:
        raise RuntimeError(f"peak_{isa}_{dtype} not found in the disassembly")
    reg = "zmm" if isa == "avx512" else "ymm"
    suffix = "ps" if dtype == "f" else "pd"
    fmas = re.findall(rf"vfmadd\w*{suffix}\s+.*?%({reg}\d+)\s*$", m.group(1), re.M)
    dests = set(fmas)
    if len(fmas) < CHAINS or len(dests) < CHAINS:
        raise RuntimeError(f"peak_{isa}_{dtype}: {len(fmas)} {reg} FMAs on {len(dests)} "
                           f"registers in the loop, expected {CHAINS} independent chains")
    return len(fmas), len(dests)


@functools.lru_cache(maxsize=None)
def _build():
    cc = os.environ.get("CC", "cc")
    tmp = tempfile.mkdtemp(prefix="attnnorm_peak_")
    src, exe = os.path.join(tmp, "peak.c"), os.path.join(tmp, "peak")
    with open(src, "w") as f:
        f.write(_SRC)
    subprocess.run([cc, "-O2", "-fopenmp", src, "-o", exe], check=True)
    return exe


def available_isas():
    isas = []
    if _cpu_has("avx2") and _cpu_has("fma"):
        isas.append("avx2")
    if _cpu_has("avx512f"):
        isas.append("avx512")
    return isas


@functools.lru_cache(maxsize=None)
def measure_peak(threads, isa, dtype, iters=10_000_000, reps=25):
    """Peak GFLOP/s of `threads` threads issuing independent FMAs of the ISA
    ('avx2' or 'avx512') on dtype 'float32' or 'float64'."""
    exe = _build()
    dch = "d" if dtype in ("float64", "d") else "f"
    check_disassembly(exe, isa, dch)
    return _probe(threads, isa, dch, iters, reps)[0]


def _probe(threads, isa, dch, iters, reps):
    """(CPU-time peak, wall-clock best) in GFLOP/s"""
    out = subprocess.run([_build(), isa, dch, str(threads), str(iters), str(reps)],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--isa", default=",".join(available_isas()))
    args = ap.parse_args(argv)
    if not shutil.which("objdump"):
        sys.exit("objdump not found: the probe's loop cannot be checked")
    exe = _build()
    for isa in [x for x in args.isa.split(",") if x]:
        for dt in ("float32", "float64"):
            dch = "d" if dt == "float64" else "f"
            n, r = check_disassembly(exe, isa, dch)
            gf, wall = _probe(args.threads, isa, dch, 10_000_000, 25)
            print(f"{isa:<7} {dt:<8} threads={args.threads}  {gf:7.1f} GFLOP/s "
                  f"(wall clock {wall:.1f})  (loop: {n} FMAs on {r} registers)")


if __name__ == "__main__":
    main()
