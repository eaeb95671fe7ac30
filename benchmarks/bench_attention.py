"""Time fused attention (attnnorm.attention) for every normalizer against what a
user would otherwise run on the same CPU, in one run on the same inputs.

    python benchmarks/bench_attention.py [--shape 1,8,2048,2048,64] [--repeat 5]
        [--threads 2] [--dtype float32,float64] [--causal both|yes|no]
        [--only softmax,sigmoid] [--no-numpy] [--no-torch] [--numpy-repeat 3]
        [--numpy-heads 2] [--no-peak]

--only takes normalizer names, each optionally with parameters after colons,
``name:key=value:key=value`` (e.g. ``--only entmax,entmax:alpha=1.3``): the
row is then labelled with its parameters and they reach attnnorm, the
PyTorch peer (entmax's peer is the ``entmax`` package's ``entmax15``, or its
``entmax_bisect`` for another alpha) and the NumPy reference.

Inputs are 4-D, q (batch, heads, n, d), k and v (batch, heads, m, d), on both
sides: that is what a user hands PyTorch, and the shape for which PyTorch's
``scaled_dot_product_attention`` picks its fused flash CPU kernel (with 3-D
inputs it falls back to its much slower "math" backend).  The backend PyTorch
ran is read from its profiler and printed (``sdpa:flash`` / ``sdpa:math``).
Both libraries use --threads threads (``torch.set_num_threads`` and
``attnnorm.set_num_threads``).

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

Times are wall-clock by default; --clock cpu times the CPU time of all the
process's threads instead (time.process_time), which other processes on a
shared machine do not inflate (GFLOP/s then reads "per CPU-second x
threads": flops / CPU time x --threads).  Each time is the median of
--repeat runs after one warm-up (the NumPy
pipeline: of --numpy-repeat runs after one warm-up; its first call alone is
several times slower than the next ones).  GFLOP/s counts 4 n m d flops per
head (half when causal); ``%peak`` is that rate over the FMA peak that
benchmarks/fma_peak.py measures for the same thread count, dtype and the
widest vector ISA attnnorm dispatched to (``attnnorm.simd_path()``).  Ratios
> 1 mean attnnorm is faster.  ``peer/an`` is the median over --repeat pairs of
the peer and attnnorm timed back to back, in alternating order
(attnnorm._timing.paired_times; same for ``/softmax``, which is
the normalizer's time over softmax attention's own time, same dtype and mask),
so that load drifting on a shared machine cancels out of the ratios.  For
sinkhorn ``/softmax`` is the total time, n_iter = 5.
"""
import argparse
import math
import os
import sys
import time

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


def parse_spec(spec):
    """'name:key=value:...' -> (name, {key: value}) with int, float or str values."""
    name, *pairs = spec.split(":")
    kw = {}
    for pair in pairs:
        key, sep, val = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--only: expected key=value after ':' in {spec!r}, got {pair!r}")
        for conv in (int, float, str):
            try:
                kw[key] = conv(val)
                break
            except ValueError:
                pass
    return name, kw


def run_lists(args):
    """(normalizer specs 'name[:key=value...]' with softmax first, causal flags,
    dtypes) from --only, --causal and --dtype."""
    names = sorted(an.NORMALIZERS, key=lambda x: (x != "softmax", x))
    if args.only:
        names = [x for x in args.only.split(",") if parse_spec(x)[0] in an.NORMALIZERS]
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
        def w_entmax(s, vis, ni, alpha=1.5, n_iter=50):
            if alpha == 1.5:
                return entmax.entmax15(masked(s, vis), dim=-1)
            return entmax.entmax_bisect(masked(s, vis), alpha=alpha, dim=-1, n_iter=n_iter)
        weights["entmax"] = w_entmax
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


def sdpa_backend(torch, q, k, v, causal):
    """Name of the backend PyTorch's SDPA runs for these inputs, read from the
    profiler ('flash', 'math', ...), or from torch._fused_sdp_choice."""
    F = torch.nn.functional
    try:
        with torch.profiler.profile() as prof:
            F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        keys = {e.key for e in prof.key_averages()}
        for op, name in (("flash_attention", "flash"), ("efficient_attention", "efficient"),
                         ("attention_math", "math"), ("cudnn", "cudnn")):
            if any(op in key for key in keys):
                return name
    except Exception:
        pass
    try:
        from torch.nn.attention import SDPBackend
        c = SDPBackend(torch._fused_sdp_choice(q, k, v, is_causal=causal))
        return c.name.lower().replace("_attention", "")
    except Exception:
        return "?"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="1,8,2048,2048,64", help="batch,heads,n,m,d (e = d)")
    ap.add_argument("--repeat", type=int, default=5, help="timed pairs of attnnorm and peer")
    ap.add_argument("--numpy-repeat", type=int, default=3)
    ap.add_argument("--numpy-heads", type=int, default=2,
                    help="time the NumPy pipeline on this many heads and scale (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="wall time, or CPU time of all the process's threads "
                         "(not inflated by other processes on a shared machine)")
    ap.add_argument("--dtype", default="float32,float64")
    ap.add_argument("--causal", default="both", choices=["both", "yes", "no"])
    ap.add_argument("--only", default="", help="comma-separated subset of normalizers")
    ap.add_argument("--no-numpy", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-peak", action="store_true", help="skip the FMA-peak probe")
    args = ap.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    Bt, H, n, m, d = (int(x) for x in args.shape.split(","))
    B = Bt * H
    torch = threads_and_torch(args.threads, args.no_torch)
    names, causals, dtypes = run_lists(args)

    isa = an.simd_path()
    peaks = {}
    if not args.no_peak and isa in ("avx2", "avx512"):
        try:
            import fma_peak
            for dt in dtypes:
                peaks[dt.name] = fma_peak.measure_peak(args.threads, isa, dt.name)
        except Exception as exc:
            print(f"FMA-peak probe unavailable ({type(exc).__name__}: {exc}): no %peak column")

    rng = np.random.default_rng(0)
    base = [rng.standard_normal((Bt, H, n, d)), rng.standard_normal((Bt, H, m, d)),
            rng.standard_normal((Bt, H, m, d))]
    print(f"attention q ({Bt}, {H}, {n}, {d}), k, v ({Bt}, {H}, {m}, {d}), "
          f"threads={args.threads} (attnnorm and torch), simd={isa}, repeat={args.repeat}, "
          f"numpy-repeat={args.numpy_repeat}, clock={args.clock}")
    if torch is not None:
        print(f"torch {torch.__version__}, cpu capability "
              f"{torch.backends.cpu.get_cpu_capability()}")
    for dt, pk in peaks.items():
        print(f"FMA peak ({isa}, {dt}, {args.threads} threads): {pk:.1f} GFLOP/s")
    numpy_times = {}
    for causal in causals:
        flops = 4.0 * B * n * m * d / (2.0 if causal else 1.0)
        for dt in dtypes:
            q, k, v = (x.astype(dt) for x in base)
            tq = [torch.from_numpy(x) for x in (q, k, v)] if torch is not None else None
            print(f"\n{dt.name}, causal={causal}")
            if torch is not None:
                with torch.no_grad():
                    ref_t = torch.nn.functional.scaled_dot_product_attention(
                        *tq, is_causal=causal).numpy()
                err = float(np.max(np.abs(an.attention(q, k, v, "softmax", causal=causal)
                                          - ref_t)))
                print(f"sdpa backend: {sdpa_backend(torch, *tq, causal)}; "
                      f"max |attnnorm - sdpa| = {err:.2e}")
            star = "*" if 0 < args.numpy_heads < B else ""
            head = (f"{'normalizer':<20}{'attnnorm ms':>12}{'GFLOP/s':>9}{'%peak':>7}"
                    f"{'/softmax':>9}{'peer':>12}{'peer ms':>10}{'peer/an':>9}"
                    f"{'numpy ms' + star:>10}{'numpy/an' + star:>10}")
            print(head)
            print("-" * len(head))

            def soft():
                return an.attention(q, k, v, "softmax", causal=causal)

            for spec in names:
                name, extra = parse_spec(spec)
                kw = dict(CALL_KW.get(name, {}), **extra)
                run = lambda: an.attention(q, k, v, name, causal=causal, **kw)  # noqa: E731
                t_peer = peer = peer_ratio = None
                f = None
                if torch is not None:
                    f, peer = _torch_attention(torch, name, kw, causal)
                    if peer == "sdpa":
                        peer = "sdpa:" + sdpa_backend(torch, *tq, causal)

                def run_peer():
                    with torch.no_grad():
                        return f(*tq)
                try:
                    if name == "softmax":
                        rel = 1.0
                        if f is not None:
                            t_an, r = paired_times(run, run_peer, args.repeat, clock=clock)
                            peer_ratio = 1.0 / r
                            t_peer = t_an * peer_ratio
                        else:
                            t_an = median_time(run, args.repeat, clock=clock)
                    else:
                        t_an, rel = paired_times(run, soft, args.repeat, clock=clock)
                        if f is not None:
                            _, r = paired_times(run, run_peer, max(1, args.repeat // 2), clock=clock)
                            peer_ratio = 1.0 / r
                            t_peer = t_an * peer_ratio
                except Exception as exc:
                    print(f"{spec:<20}  skipped: {type(exc).__name__}: {exc}")
                    continue
                t_np = None
                if not args.no_numpy:
                    key = (spec, causal)
                    if key not in numpy_times:
                        fn = _numpy_pipeline(name, kw, causal)
                        hb = args.numpy_heads if 0 < args.numpy_heads < B else B
                        q3, k3, v3 = (x.reshape(B, -1, d) for x in (q, k, v))
                        t = (median_time(lambda: fn(q3[:hb], k3[:hb], v3[:hb]),
                                         args.numpy_repeat, clock=clock) if fn else None)
                        numpy_times[key] = t * B / hb if t is not None else None
                    t_np = numpy_times[key]

                def ms(t):
                    return f"{1e3 * t:.1f}" if t is not None else "-"

                gf = flops / t_an / 1e9 * (args.threads if args.clock == "cpu" else 1)
                pct = f"{100 * gf / peaks[dt.name]:.0f}" if dt.name in peaks else "-"
                pr = f"{peer_ratio:.2f}" if peer_ratio is not None else "-"
                nr = f"{t_np / t_an:.2f}" if t_np is not None else "-"
                print(f"{spec:<20}{ms(t_an):>12}{gf:>9.1f}{pct:>7}{rel:>9.2f}"
                      f"{peer or '-':>12}{ms(t_peer):>10}{pr:>9}{ms(t_np):>10}"
                      f"{nr:>10}", flush=True)


if __name__ == "__main__":
    main()
