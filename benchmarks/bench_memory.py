"""Peak memory of fused attention: one head with n = m = 32768, d = e = 64,
float32, for every normalizer, each in its own subprocess.

    python benchmarks/bench_memory.py [--n 32768] [--d 64] [--threads 2]
        [--only softmax,sinkhorn] [--causal]

The child builds q, k, v directly in float32 (no float64 temporaries), then
reads its peak RSS (resource.getrusage ru_maxrss) before and after one
``attnnorm.attention`` call; "beyond" = peak after - peak before - output
bytes, i.e. what the call allocated beyond its inputs and output.  The
target: < 64 MiB for every normalizer, and for
sinkhorn 64 MiB plus O(n + m).  The n x m weight matrix alone would be
n*m*4 bytes (4 GiB here).
"""
import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import attnnorm as an
name, n, d, threads, causal = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1"
an.set_num_threads(threads)
kw = {"stochastic_softmax": {"trials": 64, "seed": 0}}.get(name, {})
rng = np.random.default_rng(0)
q = rng.standard_normal((n, d), dtype=np.float32)
k = rng.standard_normal((n, d), dtype=np.float32)
v = rng.standard_normal((n, d), dtype=np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
out = an.attention(q, k, v, name, causal=causal, **kw)
dt = time.perf_counter() - t0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"before": before, "after": after, "out": out.nbytes, "seconds": dt,
                  "finite": bool(np.isfinite(out).all())}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=32768)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="")
    ap.add_argument("--causal", action="store_true")
    args = ap.parse_args(argv)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
    sys.path.insert(0, root)
    import attnnorm as an
    names = [x for x in args.only.split(",") if x] or sorted(an.NORMALIZERS)
    n, d = args.n, args.d
    print(f"one head, n = m = {n}, d = e = {d}, float32, threads={args.threads}, "
          f"causal={args.causal}; inputs {3 * n * d * 4 / 2**20:.0f} MiB, "
          f"output {n * d * 4 / 2**20:.0f} MiB, an n x m matrix would be {n * n * 4 / 2**30:.1f} GiB")
    head = f"{'normalizer':<20}{'beyond MiB':>11}{'target MiB':>11}{'ok':>4}{'seconds':>9}"
    print(head)
    print("-" * len(head))
    for name in names:
        r = subprocess.run([sys.executable, "-c", CHILD, root, name, str(n), str(d),
                            str(args.threads), "1" if args.causal else "0"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{name:<20}  failed: {r.stderr.strip().splitlines()[-1:]}")
            continue
        res = json.loads(r.stdout.strip().splitlines()[-1])
        beyond = max(0, res["after"] - res["before"] - res["out"]) / 2**20
        target = 64.0 + (16 * 2 * n / 2**20 if name == "sinkhorn" else 0.0)
        print(f"{name:<20}{beyond:>11.1f}{target:>11.1f}{'yes' if beyond < target else 'NO':>4}"
              f"{res['seconds']:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
