"""Helpers shared by the training notebooks (21-26): seeds, threads, timing,
mean and spread over seeds, and a check of attnnorm's PyTorch adapter against
attention written in plain PyTorch from each normaliser's formula.

The reference attention here never calls attnnorm: it is the formula of the
normaliser in ``torch`` operations (for α-entmax, the ``entmax`` package when it
is installed), so a wrong kernel or a wrong gradient in attnnorm makes
``check_adapter`` fail.
"""
import math
import time

import numpy as np
import torch

import attnnorm
import _nbutil as nbu


def setup(threads=1):
    """One thread for PyTorch and attnnorm (small tensors; the machine is shared)."""
    nbu.setup()
    torch.set_num_threads(threads)
    attnnorm.set_num_threads(threads)
    print(f"torch {torch.__version__}, {threads} thread(s)")


def seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    return np.random.default_rng(seed)


class Clock:
    """Wall-clock and CPU seconds of the training cells, summed and printed at the end.
    On a shared machine the CPU seconds (this process) are the better estimate of the
    time a quiet machine would take."""

    def __init__(self):
        self.parts = {}

    def __call__(self, label):
        clock = self

        class _Part:
            def __enter__(self):
                self.t0, self.c0 = time.perf_counter(), time.process_time()

            def __exit__(self, *exc):
                w, c = clock.parts.get(label, (0.0, 0.0))
                clock.parts[label] = (w + time.perf_counter() - self.t0,
                                      c + time.process_time() - self.c0)
        return _Part()

    @property
    def total(self):
        return tuple(sum(v[i] for v in self.parts.values()) for i in (0, 1))

    def report(self):
        print(f"  {'':32s} {'wall s':>8s} {'CPU s':>8s}")
        for k, (w, c) in self.parts.items():
            print(f"  {k:32s} {w:8.1f} {c:8.1f}")
        w, c = self.total
        print(f"  {'total':32s} {w:8.1f} {c:8.1f}")


def mean_spread(x, axis=0):
    """Mean and sample standard deviation over seeds (axis); std is 0 for one seed."""
    x = np.asarray(x, float)
    n = x.shape[axis]
    return x.mean(axis), (x.std(axis, ddof=1) if n > 1 else np.zeros_like(x.mean(axis)))


def fmt(m, s, digits=3):
    return f"{m:.{digits}g} ± {s:.{digits}g}"


# ------------------------------------------------------------------ reference attention
def _visible(n, m, causal, device=None):
    """Boolean (n, m): key j is visible to query i (causal: j <= i, top-left as in PyTorch)."""
    if not causal:
        return torch.ones(n, m, dtype=torch.bool)
    return torch.arange(m)[None, :] <= torch.arange(n)[:, None]


def ref_weights(s, normalizer, vis, **p):
    """Attention weights from scores s (..., n, m) and a visibility mask, from the formulas:

    softmax        e^s / Σ e^s
    softmax_sink   e^s / (e^sink + Σ e^s)                        (sink = 0: softmax₁)
    ssmax          softmax(c · log n_i · s)                       (c = 0.43)
    sigmoid        σ(s + b), b = −log n_i
    relu           ReLU(s)^power / n_i                            (power = 1)
    entmax         argmax_p pᵀs + Tsallis_α(p) over the simplex  (α = 1.5; entmax package)
    n_i = number of keys query i sees."""
    n_i = vis.sum(-1, keepdim=True).to(s.dtype).clamp(min=1)
    neg = torch.tensor(float("-inf"), dtype=s.dtype)
    if normalizer == "softmax":
        w = torch.softmax(torch.where(vis, s, neg), -1)
    elif normalizer == "softmax_sink":
        sm = torch.where(vis, s, neg)
        sink = torch.full(s.shape[:-1] + (1,), float(p.get("sink", 0.0)), dtype=s.dtype)
        w = torch.softmax(torch.cat([sm, sink], -1), -1)[..., :-1]
    elif normalizer == "ssmax":
        c = p.get("c", 0.43)
        w = torch.softmax(torch.where(vis, c * torch.log(n_i) * s, neg), -1)
    elif normalizer == "sigmoid":
        b = p.get("bias", None)
        b = -torch.log(n_i) if b is None else b
        w = torch.where(vis, torch.sigmoid(s + b), torch.zeros((), dtype=s.dtype))
    elif normalizer == "relu":
        w = torch.where(vis, torch.relu(s) ** p.get("power", 1), torch.zeros((), dtype=s.dtype)) / n_i
    elif normalizer == "entmax":
        import entmax as entmax_pkg  # deep-spin's implementation (exact sort for α = 1.5)
        alpha = p.get("alpha", 1.5)
        sm = torch.where(vis, s, torch.tensor(-1e30 if s.dtype == torch.float64 else -1e15,
                                                dtype=s.dtype))
        if alpha == 1.5:
            w = entmax_pkg.entmax15(sm, dim=-1)
        else:
            w = entmax_pkg.entmax_bisect(sm, alpha=alpha, dim=-1)
        w = torch.where(vis, w, torch.zeros((), dtype=s.dtype))
    else:
        raise ValueError(f"no reference formula for normalizer {normalizer!r}")
    return w


def ref_attention(q, k, v, normalizer, *, causal=False, scale=None, **p):
    """Plain-PyTorch attention: weights(q kᵀ · scale) @ v, scale = 1/√d by default."""
    sc = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.transpose(-1, -2)) * sc
    vis = _visible(q.shape[-2], k.shape[-2], causal)
    return ref_weights(s, normalizer, vis, **p) @ v


def check_adapter(normalizer, *, causal=False, shape=(3, 2, 7, 5), tol=1e-9, seed=0, **p):
    """attnnorm.torch.scaled_dot_product_attention against ref_attention, in float64:
    outputs and the gradients of a random linear functional with respect to q, k, v.
    Prints and raises through nbu.check; returns the largest difference."""
    import attnnorm.torch as at
    g = torch.Generator().manual_seed(seed)
    B, H, n, d = shape
    q, k, v = (torch.randn(B, H, n, d, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    w = torch.randn(B, H, n, d, generator=g, dtype=torch.float64)
    out_a = at.scaled_dot_product_attention(q, k, v, is_causal=causal, normalizer=normalizer, **p)
    ga = torch.autograd.grad((out_a * w).sum(), (q, k, v))
    out_r = ref_attention(q, k, v, normalizer, causal=causal, **p)
    gr = torch.autograd.grad((out_r * w).sum(), (q, k, v))
    return _compare(f"adapter {normalizer}{' causal' if causal else ''}", out_a, out_r, ga, gr, tol)


def check_normalize(normalizer, *, shape=(3, 6, 7), tol=1e-9, seed=0, **p):
    """attnnorm.torch.normalize against ref_weights (float64, no mask): weights and the
    gradient of a random linear functional with respect to the scores."""
    import attnnorm.torch as at
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(*shape, generator=g, dtype=torch.float64)
    vis = torch.ones(shape[-2:], dtype=torch.bool)
    out_a = at.normalize(s, normalizer, **p)
    out_r = ref_weights(s, normalizer, vis, **p)
    ga = torch.autograd.grad((out_a * w).sum(), (s,))
    gr = torch.autograd.grad((out_r * w).sum(), (s,))
    return _compare(f"normalize {normalizer}", out_a, out_r, ga, gr, tol)


def _compare(tag, out_a, out_r, ga, gr, tol):
    d_out = float((out_a - out_r).detach().abs().max())
    d_grad = max(float((a - r).abs().max()) for a, r in zip(ga, gr))
    nbu.check(f"{tag}: max |output − PyTorch formula|", d_out, tol)
    nbu.check(f"{tag}: max |gradient − PyTorch autograd|", d_grad, tol)
    return max(d_out, d_grad)


def sdpa(q, k, v, normalizer, *, causal=False, **p):
    """attnnorm.torch.scaled_dot_product_attention with the normaliser's parameters."""
    import attnnorm.torch as at
    return at.scaled_dot_product_attention(q, k, v, is_causal=causal, normalizer=normalizer, **p)


def plot_band(ax, x, runs, label, **kw):
    """Mean over seeds (axis 0) with a ±1 std band."""
    m, s = mean_spread(runs, 0)
    line, = ax.plot(x, m, label=label, **kw)
    ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.2)
    return line
