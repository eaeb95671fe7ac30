"""Time attention's forward + backward pass (attnnorm.attention_forward /
attention + attnnorm.attention_vjp) for every normalizer against PyTorch on
the same CPU, in one run on the same inputs, and measure the backward's peak
memory on one long head.

    python benchmarks/bench_backward.py [--shape 1,8,2048,64] [--repeat 5]
        [--peer-repeat 3] [--threads 2] [--dtype float32,float64]
        [--causal both|yes|no] [--only softmax,entmax] [--no-torch]
        [--memory-n 32768] [--memory-only softmax,sigmoid,entmax]

Inputs are 4-D ``(B, H, n, d)`` (e = d) so that PyTorch picks its flash CPU
kernel for ``scaled_dot_product_attention``; the backend it chose is printed.
Both libraries use --threads threads.  Peers:
* softmax: ``torch.nn.functional.scaled_dot_product_attention`` forward and
  its autograd backward;
* sparsemax, entmax (alpha = 1.5): the ``entmax`` package's autograd
  functions on materialised scores;
* the other normalizers: eager PyTorch with the (n, m) weights materialised
  (benchmarks/bench_attention.py), differentiated by autograd
  (stochastic_softmax has no autograd peer: its samples are not
  differentiable).

Columns: ``fwd+bwd ms`` and ``bwd ms`` are medians of --repeat runs after a
warm-up (attnnorm's backward is given the forward's output and
log-normaliser, as a training step has them, and computes the gradients of
q, k, v like the peers: ``param_grads=False``); ``bwd/softmax`` is the median
over pairs timed back to back of the normalizer's backward over softmax's
backward (sinkhorn: per iteration, divided by n_iter + 1); ``peer ms`` is the
peer's forward + backward (--peer-repeat runs) and ``peer/an`` the median of
the paired ratios peer / attnnorm; for softmax ``sdpa bwd/an bwd`` compares
the two backward passes alone (the median of paired ratios).  Ratios > 1 mean
attnnorm is faster.

Memory: for n = m = --memory-n, d = 64, one head, float32, a subprocess per
normalizer builds q, k, v, grad_out, resets its peak RSS (Linux
/proc/self/clear_refs), and reads the peak (VmHWM) after the forward +
backward pass; "beyond" is that peak minus the RSS before the passes minus
the output, log-normaliser and the three gradients, i.e. what the passes
allocated besides their results.
"""
import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir))
sys.path.insert(0, HERE)
import attnnorm as an  # noqa: E402
from attnnorm._timing import median_time, paired_times  # noqa: E402
from bench_attention import _torch_attention, run_lists, threads_and_torch  # noqa: E402

CALL_KW = {"stochastic_softmax": {"trials": 64, "seed": 0}}
SINKHORN_ITERS = 5

MEM_CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import attnnorm as an
name, n, d, threads = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
an.set_num_threads(threads)
rng = np.random.default_rng(0)
q, k, v, go = (rng.standard_normal((n, d), dtype=np.float32) for _ in range(4))
an.attention_forward(q[:64], k[:64], v[:64], name)   # first-call set-up outside the window
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as f:   # reset the peak (VmHWM) to the current RSS
    f.write("5")
before = status("VmRSS")
t0 = time.perf_counter()
out, lse = an.attention_forward(q, k, v, name)
g = an.attention_vjp(q, k, v, go, name, out=out, stats=lse)
dt = time.perf_counter() - t0
after = status("VmHWM")
res = out.nbytes + lse.nbytes + g.q.nbytes + g.k.nbytes + g.v.nbytes
print(json.dumps({"before": before, "after": after, "results": res, "seconds": dt,
                  "finite": bool(all(np.isfinite(x).all() for x in g[:3]))}))
"""


def _ours(name, kw, causal, q, k, v, go):
    """(fwd+bwd, bwd) closures of attnnorm; bwd reuses one forward's results."""
    fw = {}

    def forward():
        fw["out"], fw["lse"] = an.attention_forward(q, k, v, name, causal=causal, **kw)

    def backward():   # q, k, v gradients, as the peers compute
        an.attention_vjp(q, k, v, go, name, out=fw["out"], stats=fw["lse"], causal=causal,
                         param_grads=False, **kw)

    def both():
        forward()
        backward()
    forward()
    return both, backward


def _torch_peer(torch, name, kw, causal, q, k, v, go):
    """(fwd+bwd, bwd or None, label) of the PyTorch peer, or (None, None, None)."""
    if name == "stochastic_softmax":
        return None, None, None
    tkw = dict(kw)
    if name == "sinkhorn":
        tkw = {"n_iter": SINKHORN_ITERS}
    fn, label = _torch_attention(torch, name, tkw, causal)
    if fn is None:
        return None, None, None
    tq, tk, tv = (torch.from_numpy(x).requires_grad_(True) for x in (q, k, v))
    tgo = torch.from_numpy(go)

    def both():
        o = fn(tq, tk, tv)
        torch.autograd.grad(o, (tq, tk, tv), tgo)
    held = {}

    def backward():
        torch.autograd.grad(held["o"], (tq, tk, tv), tgo, retain_graph=True)
    bwd = None
    if name == "softmax":
        held["o"] = fn(tq, tk, tv)
        bwd = backward
    return both, bwd, label


def _memory(args):
    names = [x for x in args.memory_only.split(",") if x]
    n, d = args.memory_n, 64
    print(f"\npeak memory of forward + backward: one head, n = m = {n}, d = e = {d}, float32, "
          f"threads={args.threads}; inputs (q, k, v, grad_out) {4 * n * d * 4 / 2**20:.0f} MiB, "
          f"results {(4 * n * d + n) * 4 / 2**20:.0f} MiB; an n x m matrix would be "
          f"{n * n * 4 / 2**30:.1f} GiB")
    print(f"{'normalizer':<20}{'beyond MiB':>11}{'target':>8}{'ok':>4}{'seconds':>9}")
    root = os.path.join(HERE, os.pardir)
    for name in names:
        r = subprocess.run([sys.executable, "-c", MEM_CHILD, root, name, str(n), str(d),
                            str(args.threads)], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{name:<20} failed: {r.stderr.strip().splitlines()[-1:]}")
            continue
        rec = json.loads(r.stdout.strip().splitlines()[-1])
        beyond = (rec["after"] - rec["before"] - rec["results"]) / 2**20
        ok = beyond < 128 and rec["finite"]
        print(f"{name:<20}{beyond:>11.1f}{'128':>8}{'yes' if ok else 'NO':>4}{rec['seconds']:>9.1f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="1,8,2048,64", help="B,H,n,d (m = n, e = d)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--peer-repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32,float64")
    ap.add_argument("--causal", default="both", choices=["both", "yes", "no"])
    ap.add_argument("--only", default="", help="comma-separated subset of normalizers")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--memory-n", type=int, default=32768, help="0: skip the memory part")
    ap.add_argument("--memory-only", default="softmax,sigmoid,entmax")
    args = ap.parse_args(argv)

    B, H, n, d = (int(x) for x in args.shape.split(","))
    torch = threads_and_torch(args.threads, args.no_torch)
    names, causals, dtypes = run_lists(args)
    rng = np.random.default_rng(0)
    base = [rng.standard_normal((B, H, n, d)) for _ in range(4)]
    print(f"attention forward + backward, q,k,v,grad_out ({B}, {H}, {n}, {d}), "
          f"threads={args.threads} (attnnorm and torch), simd={an.simd_path()}, "
          f"repeat={args.repeat}, peer-repeat={args.peer_repeat}")
    if torch is not None:
        from torch.nn.attention import SDPBackend
        tq = torch.from_numpy(base[0].astype(np.float32)).requires_grad_(True)
        for causal in causals:
            c = torch._fused_sdp_choice(tq, tq, tq, None, 0.0, causal)
            print(f"torch {torch.__version__} scaled_dot_product_attention backend "
                  f"(causal={causal}): {SDPBackend(c).name}")
    for causal in causals:
        for dt in dtypes:
            q, k, v, go = (x.astype(dt) for x in base)
            print(f"\n{dt.name}, causal={causal}")
            head = (f"{'normalizer':<20}{'fwd+bwd ms':>11}{'bwd ms':>9}{'bwd/softmax':>12}"
                    f"{'peer':>11}{'peer ms':>10}{'peer/an':>9}{'sdpa bwd/an bwd':>16}")
            print(head)
            print("-" * len(head))
            sm_both, sm_bwd = _ours("softmax", {}, causal, q, k, v, go)
            for name in names:
                kw = dict(CALL_KW.get(name, {}))
                if name == "sinkhorn":
                    kw["n_iter"] = SINKHORN_ITERS
                both, bwd = _ours(name, kw, causal, q, k, v, go)
                t_both = median_time(both, args.repeat)
                t_bwd = median_time(bwd, args.repeat)
                if name == "softmax":
                    rel = 1.0
                else:
                    _, rel = paired_times(bwd, sm_bwd, args.repeat)
                    if name == "sinkhorn":
                        rel /= SINKHORN_ITERS + 1
                peer, pms, pratio, bratio = "-", "-", "-", "-"
                if torch is not None:
                    pboth, pbwd, label = _torch_peer(torch, name, kw, causal, q, k, v, go)
                    if pboth is not None:
                        tp, r = paired_times(pboth, both, args.peer_repeat)
                        peer, pms, pratio = label, f"{1e3 * tp:.1f}", f"{r:.2f}"
                    if pbwd is not None:
                        _, rb = paired_times(pbwd, bwd, args.repeat)
                        bratio = f"{rb:.2f}"
                print(f"{name:<20}{1e3 * t_both:>11.1f}{1e3 * t_bwd:>9.1f}{rel:>12.2f}"
                      f"{peer:>11}{pms:>10}{pratio:>9}{bratio:>16}")
                sys.stdout.flush()
    if args.memory_n > 0:
        _memory(args)


if __name__ == "__main__":
    main()
