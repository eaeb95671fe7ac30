"""Time fused attention (attnnorm.attention) for every normalizer against what a
user would otherwise run on the same CPU, in one run on the same inputs.

    python benchmarks/bench_attention.py [--shape 8,2048,2048,64] [--repeat 3]
        [--threads 2] [--dtype float32,float64] [--causal both|yes|no]
        [--only softmax,sigmoid] [--no-numpy] [--no-torch] [--numpy-repeat 3]
        [--numpy-heads 2]

Peers:
* softmax: PyTorch CPU ``torch.nn.functional.scaled_dot_product_attention``;
* the other normalizers: PyTorch eager code with the (n, m) weights
  materialised (scores -> masked normalizer -> @ v), the ``entmax`` package
  for sparsemax/entmax;
* every normalizer: the NumPy reference pipeline (float64 scores ->
  attnnorm._reference normalizer -> @ v), timed once per (normalizer, causal)
  since it runs in float64 whatever the input dtype.  To keep the default run
  short it is timed on the first --numpy-heads of the batch (default 2) and
  scaled by batch / numpy-heads (it is a loop-free batched computation, linear
  in the batch); --numpy-heads 0 times the whole batch.  Such columns are
  marked with '*'.

Each time is the median of --repeat runs after one warm-up (the NumPy
pipeline: of --numpy-repeat runs after one warm-up; its first call alone is
several times slower than the next ones).  GFLOP/s counts 4 n m d flops per
head (half when causal).  Ratios > 1 mean attnnorm is faster; ``/softmax`` is
the normalizer's time over softmax attention's own time (same dtype/mask),
the median over --repeat pairs of the two timed back to back (so that load
drifting on a shared machine cancels out of the ratio); for sinkhorn it is per iteration (time / (n_iter + 1): n_iter passes for the
potentials plus the output pass).
"""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import attnnorm as an  # noqa: E402
from attnnorm import _reference as ref  # noqa: E402
from attnnorm._timing import median_time, paired_times  # noqa: E402

# keyword arguments a normalizer needs for a call (others use their defaults)
CALL_KW = {"stochastic_softmax": {"trials": 64, "seed": 0}}
SINKHORN_ITERS = 5




def threads_and_torch(threads, no_torch):
    """Set attnnorm's (and torch's) thread count; torch, or None when it is
    not wanted or not installed."""
    an.set_num_threads(threads)
    if no_torch:
        return None
    try:
        import torch
    except ImportError:
        print("torch not installed: torch columns skipped")
        return None
    torch.set_num_threads(threads)
    return torch


def run_lists(args):
    """(normalizers with softmax first, causal flags, dtypes) from --only,
    --causal and --dtype."""
    names = sorted(an.NORMALIZERS, key=lambda x: (x != "softmax", x))
    if args.only:
        names = [x for x in args.only.split(",") if x in an.NORMALIZERS]
        if "softmax" not in names:
            names = ["softmax"] + names
    causals = {"both": [False, True], "yes": [True], "no": [False]}[args.causal]
    return names, causals, [np.dtype(x) for x in args.dtype.split(",")]


def _torch_attention(torch, name, kw, causal):
    """name -> function(q, k, v) -> out: eager PyTorch with materialised
    weights and the same masking semantics (n_i = keys the row sees)."""
    F = torch.nn.functional

    def prep(q, k):
        n, m, d = q.shape[-2], k.shape[-2], q.shape[-1]
        s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
        if causal:
            vis = torch.ones(n, m, dtype=torch.bool).tril(m - n)
        else:
            vis = torch.ones(n, m, dtype=torch.bool)
        ni = vis.sum(-1, keepdim=True).to(s.dtype)
        return s, vis, ni

    def masked(s, vis):
        return s.masked_fill(~vis, float("-inf"))

    def w_softmax_sink(s, vis, ni, sink=0.0):
        z = masked(s, vis)
        mx = torch.clamp(z.amax(-1, keepdim=True), min=sink)
        e = torch.exp(z - mx)
        return e / (e.sum(-1, keepdim=True) + torch.exp(sink - mx))

    def w_softpick(s, vis, ni, eps=1e-8):
        z = masked(s, vis)
        mx = z.amax(-1, keepdim=True)
        dd = torch.where(vis, torch.exp(z - mx) - torch.exp(-mx), 0)
        return F.relu(dd) / (dd.abs().sum(-1, keepdim=True) + eps * torch.exp(-mx))

    def w_nap(s, vis, ni, gain=1.0, bias=0.0, eps=1e-3):
        z = torch.where(vis, s, 0)
        mu = z.sum(-1, keepdim=True) / ni
        var = (torch.where(vis, s - mu, 0) ** 2).sum(-1, keepdim=True) / ni
        return torch.where(vis, gain * (s - mu) / (var.sqrt() + eps) + bias, 0)

    def w_stochastic(s, vis, ni, trials=64, seed=0):
        p = torch.softmax(masked(s, vis), -1)
        gen = torch.Generator().manual_seed(seed)
        flat = p.reshape(-1, p.shape[-1]).double()
        idx = torch.multinomial(flat, trials, replacement=True, generator=gen)
        cnt = torch.zeros_like(flat).scatter_add_(1, idx, torch.ones_like(idx, dtype=flat.dtype))
        return (cnt / trials).reshape(p.shape).to(s.dtype)

    def w_sinkhorn(s, vis, ni, n_iter=SINKHORN_ITERS, eps=1.0):
        n, m = s.shape[-2:]
        c = masked(s, vis) / eps
        u = torch.zeros(s.shape[:-1] + (1,), dtype=s.dtype)
        v = torch.zeros(s.shape[:-2] + (1, m), dtype=s.dtype)
        for it in range(n_iter):
            if it % 2 == 0:
                u = -math.log(n) - torch.logsumexp(c + v, -1, keepdim=True)
            else:
                v = -math.log(m) - torch.logsumexp(c + u, -2, keepdim=True)
        return n * torch.exp(c + u + v)

    entmax = None
    try:
        import entmax
    except ImportError:
        pass

    weights = {
        "softmax": lambda s, vis, ni, temperature=1.0: torch.softmax(masked(s, vis) / temperature, -1),
        "softmax_sink": w_softmax_sink,
        "ssmax": lambda s, vis, ni, c=0.43: torch.softmax(masked(s, vis) * (c * torch.log(ni)), -1),
        "sigmoid": lambda s, vis, ni: torch.where(vis, torch.sigmoid(s - torch.log(ni)), 0),
        "relu": lambda s, vis, ni, power=1: torch.where(vis, F.relu(s) ** power / ni, 0),
        "polynomial": lambda s, vis, ni, power=3: torch.where(vis, s ** power / ni.sqrt(), 0),
        "softpick": w_softpick,
        "nap": w_nap,
        "affine_softmax": lambda s, vis, ni, a=1.0, b=0.0: torch.where(
            vis, a * torch.softmax(masked(s, vis), -1) + b, 0),
        "stochastic_softmax": w_stochastic,
        "sinkhorn": w_sinkhorn,
    }
    if entmax is not None:
        weights["sparsemax"] = lambda s, vis, ni: entmax.sparsemax(masked(s, vis), dim=-1)
        weights["entmax"] = lambda s, vis, ni: entmax.entmax15(masked(s, vis), dim=-1)
    if name == "softmax" and not kw:
        return (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal)), "sdpa"
    if name not in weights:
        return None, None
    wf = weights[name]

    def run(q, k, v):
        s, vis, ni = prep(q, k)
        return wf(s, vis, ni, **kw) @ v
    return run, ("entmax pkg" if name in ("sparsemax", "entmax") else "eager")


def _numpy_pipeline(name, kw, causal):
    rf = getattr(ref, name, None)
    if rf is None:
        return None

    def run(q, k, v):
        s = ref.attention_scores(q, k)
        return rf(s, causal=causal, **kw) @ np.asarray(v, dtype=np.float64)
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="8,2048,2048,64", help="batch*heads,n,m,d (e = d)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of attnnorm and torch")
    ap.add_argument("--numpy-repeat", type=int, default=3)
    ap.add_argument("--numpy-heads", type=int, default=2,
                    help="time the NumPy pipeline on this many heads and scale (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32,float64")
    ap.add_argument("--causal", default="both", choices=["both", "yes", "no"])
    ap.add_argument("--only", default="", help="comma-separated subset of normalizers")
    ap.add_argument("--no-numpy", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args(argv)

    B, n, m, d = (int(x) for x in args.shape.split(","))
    torch = threads_and_torch(args.threads, args.no_torch)
    names, causals, dtypes = run_lists(args)

    rng = np.random.default_rng(0)
    base = [rng.standard_normal((B, n, d)), rng.standard_normal((B, m, d)),
            rng.standard_normal((B, m, d))]
    print(f"attention q,k,v ({B}, {n}|{m}, {d}), threads={args.threads}, "
          f"simd={an.simd_path()}, repeat={args.repeat}, numpy-repeat={args.numpy_repeat}")
    numpy_times = {}
    for causal in causals:
        flops = 4.0 * B * n * m * d / (2.0 if causal else 1.0)
        for dt in dtypes:
            q, k, v = (x.astype(dt) for x in base)
            tq = [torch.from_numpy(x) for x in (q, k, v)] if torch is not None else None
            print(f"\n{dt.name}, causal={causal}")
            star = "*" if 0 < args.numpy_heads < B else ""
            head = (f"{'normalizer':<20}{'attnnorm ms':>12}{'GFLOP/s':>9}{'/softmax':>9}"
                    f"{'peer':>11}{'peer ms':>10}{'peer/an':>9}{'numpy ms' + star:>10}"
                    f"{'numpy/an' + star:>10}")
            print(head)
            print("-" * len(head))
            def soft():
                return an.attention(q, k, v, "softmax", causal=causal)

            for name in names:
                kw = dict(CALL_KW.get(name, {}))
                try:
                    run = lambda: an.attention(q, k, v, name, causal=causal, **kw)  # noqa: E731
                    if name == "softmax":
                        t_an, rel = median_time(run, args.repeat), 1.0
                    else:
                        t_an, rel = paired_times(run, soft, args.repeat)
                except Exception as exc:
                    print(f"{name:<20}  skipped: {type(exc).__name__}: {exc}")
                    continue
                if name == "sinkhorn":
                    rel /= kw.get("n_iter", SINKHORN_ITERS) + 1
                t_peer = peer = None
                if torch is not None:
                    with torch.no_grad():
                        f, peer = _torch_attention(torch, name, kw, causal)
                        if f is not None:
                            t_peer = median_time(lambda: f(*tq), args.repeat)
                t_np = None
                if not args.no_numpy:
                    key = (name, causal)
                    if key not in numpy_times:
                        f = _numpy_pipeline(name, kw, causal)
                        hb = args.numpy_heads if 0 < args.numpy_heads < B else B
                        t = (median_time(lambda: f(q[:hb], k[:hb], v[:hb]), args.numpy_repeat)
                             if f else None)
                        numpy_times[key] = t * B / hb if t is not None else None
                    t_np = numpy_times[key]

                def ms(t):
                    return f"{1e3 * t:.1f}" if t is not None else "-"

                def ratio(t):
                    return f"{t / t_an:.2f}" if t is not None else "-"

                print(f"{name:<20}{ms(t_an):>12}{flops / t_an / 1e9:>9.1f}{rel:>9.2f}"
                      f"{peer or '-':>11}{ms(t_peer):>10}{ratio(t_peer):>9}{ms(t_np):>10}"
                      f"{ratio(t_np):>10}", flush=True)


if __name__ == "__main__":
    main()
