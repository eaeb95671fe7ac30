"""python -m attnnorm: a report over every normalizer on a built-in example.

Scores are scale * q k^T of seeded Gaussian queries and keys (default 8 heads,
n = m = 512, d = 64).  For each normalizer the report gives the mean row sum,
the mean row entropy (nats, of each row rescaled to sum 1; NaN for signed
weights), the mean max weight, the mean support size (weights != 0) and the
median time per call.
"""
import argparse
import sys

import numpy as np

import attnnorm
from attnnorm._timing import median_time


def row_stats(w, causal):
    """Means over rows of: row sum, entropy, max weight and support size.

    Entropy (nats) is that of each row rescaled to sum 1, and only reported
    when the weights are non-negative (for signed maps such as nap and
    polynomial it is not defined: NaN)."""
    w64 = np.asarray(w, dtype=np.float64)
    rowsum = w64.sum(axis=-1)
    if np.all(w64 >= 0):
        with np.errstate(invalid="ignore", divide="ignore"):
            p = w64 / rowsum[..., None]
        ent = float(np.nanmean(attnnorm.entropy(p, causal=causal)))
    else:
        ent = float("nan")
    return {
        "row_sum": float(np.mean(rowsum)),
        "entropy": ent,
        "max_weight": float(np.mean(np.max(w64, axis=-1))),
        "support": float(np.mean(attnnorm.support_size(np.abs(w64)))),
    }


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m attnnorm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--heads", type=int, default=8, help="number of heads (default 8)")
    p.add_argument("--n", type=int, default=512, help="queries per head (default 512)")
    p.add_argument("--m", type=int, default=None, help="keys per head (default n)")
    p.add_argument("--d", type=int, default=64, help="head dimension (default 64)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--causal", action="store_true", help="bottom-right causal mask")
    p.add_argument("--repeat", type=int, default=5, help="timed calls per normalizer")
    p.add_argument("--normalizers", default="all",
                   help="comma-separated names (default: all of attnnorm.NORMALIZERS)")
    args = p.parse_args(argv)
    m = args.n if args.m is None else args.m
    for name, val in (("--heads", args.heads), ("--n", args.n), ("--m", m), ("--d", args.d),
                      ("--repeat", args.repeat)):
        if val < 1:
            p.error(f"{name} must be >= 1, got {val}")
    names = list(attnnorm.NORMALIZERS) if args.normalizers == "all" else [
        s.strip() for s in args.normalizers.split(",") if s.strip()]
    unknown = [s for s in names if s not in attnnorm.NORMALIZERS]
    if unknown:
        p.error(f"unknown normalizer(s) {unknown}; known: {sorted(attnnorm.NORMALIZERS)}")

    rng = np.random.default_rng(args.seed)
    dt = np.dtype(args.dtype)
    q = rng.standard_normal((args.heads, args.n, args.d)).astype(dt)
    k = rng.standard_normal((args.heads, m, args.d)).astype(dt)
    scores = (q @ np.swapaxes(k, -1, -2)) / np.sqrt(args.d).astype(dt)

    print(f"attnnorm {attnnorm.__version__}: {len(names)} normalizers on scores "
          f"q k^T / sqrt(d), heads={args.heads}, n={args.n}, m={m}, d={args.d}, "
          f"{dt.name}, seed={args.seed}{', causal' if args.causal else ''}")
    print(f"threads={attnnorm.get_num_threads()}, simd={attnnorm.simd_path()}, "
          f"openmp={attnnorm.has_openmp()}")
    hdr = f"{'normalizer':<20}{'row sum':>10}{'entropy':>10}{'max w':>10}{'support':>10}{'ms/call':>10}"
    print(hdr)
    print("-" * len(hdr))
    for name in names:
        fn = attnnorm.NORMALIZERS[name]
        w = fn(scores, causal=args.causal)
        st = row_stats(w, args.causal)
        t = median_time(lambda: fn(scores, causal=args.causal), args.repeat)
        print(f"{name:<20}{st['row_sum']:>10.4f}{st['entropy']:>10.4f}{st['max_weight']:>10.4f}"
              f"{st['support']:>10.1f}{t * 1e3:>10.3f}")
    print("means over all rows; entropy in nats of each row rescaled to sum 1 (nan for "
          "signed weights); support: weights != 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
