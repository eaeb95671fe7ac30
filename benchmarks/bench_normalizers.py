"""Time every normalizer in attnnorm.NORMALIZERS against its NumPy reference
(attnnorm._reference) and, where one exists, the PyTorch CPU equivalent, in one
run on the same scores.

    python benchmarks/bench_normalizers.py [--shape 8,1024,1024] [--repeat 5]
        [--ref-repeat 3] [--threads 2] [--dtype float32] [--only softmax,sigmoid]

Each timing is the median of its repetitions after one untimed warm-up call
(a NumPy reference's first call alone is several times slower than the next
ones).  attnnorm and PyTorch both write into a preallocated output (``out=``;
PyTorch through ``out=`` and in-place ops where it has them; the entmax
package has neither).  Ratios > 1 mean attnnorm is faster; ``torch/an`` is
the median over --repeat pairs of the two timed back to back (in alternating
order: attnnorm._timing.paired_times), and
``an/copy`` the median ratio of attnnorm's time to a plain
``np.copyto(out, s)`` of the same array timed back to back (the memory-bound
floor of a pass that reads s and writes out).  The NumPy references are plain
float64 code written for clarity, so they are slow: --ref-repeat (default 3)
times them fewer times.  torch and the entmax package are imported lazily
and skipped if missing; torch uses the same number of threads.
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

# keyword arguments for normalizers whose defaults do not make a call on their own
CALL_KW = {"stochastic_softmax": {"trials": 64, "seed": 0}}


def _torch_equivalents(torch, m):
    """name -> function(tensor, out) -> tensor: the PyTorch code a user would
    write (no mask: n_i = m for every row), writing into the preallocated
    `out` (``out=`` and in-place ops) wherever PyTorch offers it, as attnnorm
    gets ``out=``.  Only what exists is returned."""
    F = torch.nn.functional
    log_m = math.log(m)
    eq = {
        "softmax": lambda t, o: torch.softmax(t, -1, out=o),
        "sigmoid": lambda t, o: torch.sigmoid_(torch.sub(t, log_m, out=o)),
        "ssmax": lambda t, o: torch.softmax(torch.mul(t, 0.43 * log_m, out=o), -1, out=o),
        "relu": lambda t, o: torch.clamp_min(t, 0, out=o).div_(m),
        "polynomial": lambda t, o: torch.pow(t, 3, out=o).div_(math.sqrt(m)),
        "affine_softmax": lambda t, o: torch.softmax(t, -1, out=o).mul_(1.0).add_(0.0),
    }

    def softmax_sink(t, o, sink=0.0):
        mx = torch.clamp(t.amax(dim=-1, keepdim=True), min=sink)
        e = torch.exp(torch.sub(t, mx, out=o), out=o)
        return e.div_(e.sum(dim=-1, keepdim=True) + torch.exp(sink - mx))

    def softpick(t, o, eps=1e-8):
        mx = t.amax(dim=-1, keepdim=True)
        d = torch.exp(torch.sub(t, mx, out=o), out=o).sub_(torch.exp(-mx))
        den = torch.where(t.isfinite(), d.abs(), 0).sum(dim=-1, keepdim=True)
        return F.relu_(d).div_(den + eps)

    def nap(t, o, gain=1.0, bias=0.0, eps=1e-3):
        sd, mu = torch.std_mean(t, dim=-1, keepdim=True, unbiased=False)
        return torch.sub(t, mu, out=o).div_(sd + eps).mul_(gain).add_(bias)

    eq.update(softmax_sink=softmax_sink, softpick=softpick, nap=nap)
    try:
        import entmax
        eq["sparsemax"] = lambda t, o: entmax.sparsemax(t, dim=-1)
        eq["entmax"] = lambda t, o: entmax.entmax15(t, dim=-1)
    except ImportError:
        pass
    return eq


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="8,1024,1024", help="scores shape (..., n, m)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of attnnorm and torch")
    ap.add_argument("--ref-repeat", type=int, default=3, help="timed runs of the NumPy reference")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="wall time, or CPU time of all the process's threads "
                         "(not inflated by other processes on a shared machine)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--only", default="", help="comma-separated subset of names")
    ap.add_argument("--no-ref", action="store_true", help="skip the NumPy references")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    args = ap.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    shape = tuple(int(x) for x in args.shape.split(","))
    m = shape[-1]
    rng = np.random.default_rng(0)
    s = rng.normal(size=shape).astype(args.dtype)
    an.set_num_threads(args.threads)

    torch_eq, ts = {}, None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
            torch_eq = _torch_equivalents(torch, m)
            ts = torch.from_numpy(s)
        except ImportError:
            print("torch not installed: torch column skipped")

    names = list(an.NORMALIZERS)
    if args.only:
        names = [x for x in args.only.split(",") if x in an.NORMALIZERS]

    print(f"scores {shape} {args.dtype}, threads={args.threads}, simd={an.simd_path()}, "
          f"repeat={args.repeat}, ref-repeat={args.ref_repeat}, clock={args.clock}")
    head = f"{'normalizer':<20}{'attnnorm ms':>12}{'numpy ms':>11}{'torch ms':>10}" \
           f"{'numpy/an':>10}{'torch/an':>10}{'an/copy':>9}"
    print(head)
    print("-" * len(head))
    cbuf = np.empty_like(s)
    for name in names:
        f = an.NORMALIZERS[name]
        kw = CALL_KW.get(name, {})
        out = np.empty_like(s)
        try:
            t_an, per_copy = paired_times(lambda: f(s, out=out, **kw),
                                          lambda: np.copyto(cbuf, s), args.repeat, clock=clock)
        except Exception as exc:  # a normalizer that cannot run with defaults
            print(f"{name:<20}  skipped: {type(exc).__name__}: {exc}")
            continue
        t_np = t_t = torch_ratio = None
        rf = getattr(ref, name, None)
        if rf is not None and not args.no_ref:
            try:
                t_np = median_time(lambda: rf(s, **kw), args.ref_repeat, clock=clock)
            except Exception as exc:
                print(f"  ({name}: reference failed: {type(exc).__name__}: {exc})")
        if name in torch_eq and ts is not None:
            tf, to = torch_eq[name], torch.empty_like(ts)
            _, r = paired_times(lambda: f(s, out=out, **kw), lambda: tf(ts, to), args.repeat,
                                clock=clock)
            torch_ratio = 1.0 / r
            t_t = t_an * torch_ratio

        def ms(t):
            return f"{1e3 * t:.1f}" if t is not None else "-"

        nr = f"{t_np / t_an:.2f}" if t_np is not None else "-"
        tr = f"{torch_ratio:.2f}" if torch_ratio is not None else "-"
        print(f"{name:<20}{ms(t_an):>12}{ms(t_np):>11}{ms(t_t):>10}"
              f"{nr:>10}{tr:>10}{per_copy:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
