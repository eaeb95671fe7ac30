"""Streamed ``attnnorm.diagnose`` against materialising the weights and
computing the same diagnostics in NumPy.

For n = m in --sizes (default 4096 16384), d = 64, one head, softmax with
scale 1/sqrt(d), each method runs in its own subprocess (so peak memory is
its own).  Reported: best wall time of --repeat runs and the peak resident
memory beyond the inputs (VmHWM of the subprocess minus its RSS just before
the first call).

Methods:
  diagnose        attnnorm.diagnose(q, k): entropy, max weight, sink weight,
                  margin, support per query and column mass per key, streamed
  numpy           s = scale q k^T (BLAS), stable softmax, then the same six
                  diagnostics in NumPy (what a user would write)
  attnnorm-mat    attnnorm weights materialised (attention_weights if present,
                  else softmax of the BLAS scores) + attnnorm's materialised
                  diagnostics (entropy, support_size, column_mass, margin)

The default run stays under ~2 minutes: at n >= 16384 the NumPy pipeline runs
once and attnnorm-mat is skipped (--full runs every method at every size; the
NumPy path alone takes over a minute at 16384 with its 5 GiB of temporaries).

Usage: python benchmarks/bench_diagnostics.py [--sizes 4096 16384] [--dtype float32]
       [--repeat R] [--threads N] [--full]
"""
import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, sys, time
import numpy as np
sys.path.insert(0, {root!r})
import attnnorm as an
method, n, dtype, repeat = {method!r}, {n}, {dtype!r}, {repeat}
d = 64
rng = np.random.default_rng(0)
q = rng.normal(size=(n, d)).astype(dtype)
k = rng.normal(size=(n, d)).astype(dtype)
scale = 1 / np.sqrt(d)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def run_diagnose():
    D = an.diagnose(q, k)
    return D.entropy, D.column_mass

def run_numpy():
    s = (q @ k.T) * np.asarray(scale, dtype)
    top2 = np.partition(s, n - 2, axis=-1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    w = s - s.max(-1, keepdims=True)
    np.exp(w, out=w)
    w /= w.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.sum(np.where(w > 0, w * np.log(w), 0.0), axis=-1)
    mx = w.max(-1)
    sink = w[:, 0].copy()
    sup = (w > 0).sum(-1)
    col = w.mean(0)
    return ent, col

def run_mat():
    if hasattr(an, "attention_weights"):
        w = an.attention_weights(q, k)
    else:
        w = an.softmax((q @ k.T) * np.asarray(scale, dtype))
    ent = an.entropy(w)
    sup = an.support_size(w)
    col = an.column_mass(w)
    mx = w.max(-1)
    s = (q @ k.T) * np.asarray(scale, dtype)
    mg = an.separation_margin(s)
    return ent, col

fn = {{"diagnose": run_diagnose, "numpy": run_numpy, "attnnorm-mat": run_mat}}[method]
base = rss()
best = float("inf")
for _ in range(repeat):
    t0 = time.perf_counter()
    ent, col = fn()
    best = min(best, time.perf_counter() - t0)
    del ent, col
# VmHWM: this process's peak RSS (ru_maxrss would include the parent's at fork)
peak = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({{"time": best, "peak_beyond_inputs": max(peak - base, 0)}}))
"""


def run(method, n, dtype, repeat, threads):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    code = CHILD.format(root=root, method=method, n=n, dtype=dtype, repeat=repeat)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeat", type=int, default=0,
                    help="runs per method (best is reported); default 2, 1 for n >= 16384")
    ap.add_argument("--threads", type=int, default=0, help="OMP/BLAS threads (0: default)")
    ap.add_argument("--full", action="store_true",
                    help="also run attnnorm-mat at n >= 16384 (slow)")
    args = ap.parse_args()
    print(f"# diagnose vs materialised, d=64, {args.dtype}, softmax, one head; "
          f"threads={args.threads or 'default'}")
    print(f"{'n=m':>7} {'method':>13} {'time [s]':>10} {'peak MiB':>10} {'speedup':>8} {'mem ratio':>9}")
    for n in args.sizes:
        rep = args.repeat or (1 if n >= 16384 else 2)
        methods = ["diagnose", "numpy", "attnnorm-mat"]
        if n >= 16384 and not args.full:
            methods.remove("attnnorm-mat")
        res = {m: run(m, n, args.dtype, rep, args.threads) for m in methods}
        ref = res["diagnose"]
        for m, r in res.items():
            if "error" in r:
                print(f"{n:>7} {m:>13}   error: {r['error']}")
                continue
            mib = r["peak_beyond_inputs"] / 2 ** 20
            sp = r["time"] / ref["time"] if "time" in ref else float("nan")
            mr = (r["peak_beyond_inputs"] / ref["peak_beyond_inputs"]
                  if ref.get("peak_beyond_inputs") else float("nan"))
            print(f"{n:>7} {m:>13} {r['time']:>10.3f} {mib:>10.1f} {sp:>7.1f}x {mr:>8.1f}x")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
