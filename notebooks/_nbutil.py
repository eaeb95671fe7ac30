"""Small helpers shared by the notebooks (plot style, provenance of each function).

``impl(name)`` returns ``attnnorm.<name>`` (the C kernels).  If this build of
attnnorm lacks that function it falls back to ``attnnorm._reference.<name>``
(float64 NumPy) or to a NumPy fallback defined here, and *prints* which one
ran, so a number is never attributed to code that did not compute it.
"""
import numpy as np
import matplotlib
import matplotlib.pyplot as plt

import attnnorm

SOURCES = {}


def setup():
    """Readable plots at notebook width; print where attnnorm was imported from."""
    matplotlib.rcParams.update({
        "figure.figsize": (8.0, 3.6), "figure.dpi": 80, "axes.grid": True,
        "grid.alpha": 0.3, "axes.titlesize": 11, "axes.labelsize": 10,
        "legend.fontsize": 8, "xtick.labelsize": 9, "ytick.labelsize": 9,
    })
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    print(f"attnnorm {attnnorm.__version__} from {attnnorm.__file__}; SIMD path: "
          f"{getattr(attnnorm, 'simd_path', lambda: '?')()}")


def impl(name, fallback=None):
    """attnnorm.<name> if it exists, else the reference or the given fallback."""
    fn = getattr(attnnorm, name, None)
    quiet = name in SOURCES  # say it once per name
    if fn is not None:
        SOURCES[name] = "attnnorm (C)"
        return fn
    ref = getattr(getattr(attnnorm, "_reference", None), name, None)
    if ref is not None:
        SOURCES[name] = "attnnorm._reference (NumPy float64; the C function is missing from this build)"
        if not quiet:
            print(f"NOTE: attnnorm.{name} is missing from this build; using attnnorm._reference.{name}")
        return ref
    if fallback is not None:
        SOURCES[name] = "notebook NumPy fallback (attnnorm has no such function in this build)"
        if not quiet:
            print(f"NOTE: attnnorm.{name} is missing from this build; using the notebook's NumPy fallback")
        return fallback
    raise AttributeError(f"attnnorm has no {name} and no fallback was given")


def provenance():
    """Print which implementation computed each function used so far."""
    for name, src in sorted(SOURCES.items()):
        print(f"  {name:24s} {src}")


CHECKS = []


def check(label, value, bound, *, at_least=False):
    """Record and print one check of the notebook: ``value <= bound`` (or
    ``value >= bound`` with ``at_least``).  A failed check raises
    AssertionError, so a notebook run by the tests fails when the library
    disagrees with the notebook's own computation."""
    value = float(value)
    ok = value >= bound if at_least else value <= bound
    CHECKS.append((label, value, bound, ok))
    rel = ">=" if at_least else "<="
    print(f"check {'ok  ' if ok else 'FAIL'} {label}: {value:.3g} (required {rel} {bound:.3g})")
    if not ok:
        raise AssertionError(f"{label}: {value!r} is not {rel} {bound!r}")
    return value


def loglog_slope(x, y):
    """Least-squares slope of log y against log x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(y)
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


# ---- NumPy fallbacks (used only when this build of attnnorm lacks the function) ----

def fb_entropy(a, normalized=False, **_):
    a = np.asarray(a, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0).sum(-1)
        if normalized:
            h = h / np.log(a.shape[-1])
    return h


def fb_column_mass(a, causal=False, **_):
    a = np.asarray(a, float)
    n, m = a.shape[-2:]
    if not causal:
        return a.mean(-2)
    vis = np.arange(m)[None, :] <= np.arange(n)[:, None] + (m - n)
    return (a * vis).sum(-2) / np.maximum(vis.sum(-2), 1)


def fb_sink_mass(a, sink=0, causal=False, **_):
    return fb_column_mass(a, causal=causal)[..., sink]


def fb_separation_margin(s, **_):
    s = np.sort(np.asarray(s, float), axis=-1)
    return s[..., -1] - s[..., -2]


def fb_row_residual(a, **_):
    return np.abs(np.asarray(a, float).sum(-1) - 1.0)


def fb_frobenius_norm(a, **_):
    return np.sqrt((np.asarray(a, float) ** 2).sum((-2, -1)))


def fb_column_residual(a, **_):
    a = np.asarray(a, float)
    n, m = a.shape[-2:]
    return np.abs(a.sum(-2) - n / m)


def _lse(x, axis):
    mx = np.max(x, axis=axis, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(x - mx).sum(axis=axis, keepdims=True)) + mx


def fb_sinkhorn(scores, n_iter=5, eps=1.0, **_):
    """Log-domain Sinkhorn [Sander2021]: alternate row / column steps with
    uniform marginals starting with a row step; returns n * pi."""
    c = np.asarray(scores, float) / eps
    n, m = c.shape[-2:]
    u = np.zeros(c.shape[:-1] + (1,))
    v = np.zeros(c.shape[:-2] + (1, m))
    for it in range(n_iter):
        if it % 2 == 0:
            u = np.log(1.0 / n) - _lse(c + v, -1)
        else:
            v = np.log(1.0 / m) - _lse(c + u, -2)
    return n * np.exp(c + u + v)


# unmasked NumPy fallbacks of the normalizers; n_i = m without masks
def fb_softmax(s, temperature=1.0, **_):
    z = np.asarray(s, float) / temperature
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def fb_sigmoid(s, bias=None, **_):
    s = np.asarray(s, float)
    b = -np.log(s.shape[-1]) if bias is None else bias
    return 1.0 / (1.0 + np.exp(-(s + b)))


def fb_polynomial(s, power=3, **_):
    s = np.asarray(s, float)
    return s ** power / np.sqrt(s.shape[-1])


def fb_relu(s, power=1, **_):
    s = np.asarray(s, float)
    return np.maximum(s, 0.0) ** power / s.shape[-1]


def fb_nap(s, gain=1.0, bias=0.0, eps=1e-3, **_):
    s = np.asarray(s, float)
    return gain * (s - s.mean(-1, keepdims=True)) / (s.std(-1, keepdims=True) + eps) + bias


def fb_ssmax(s, c=0.43, **_):
    s = np.asarray(s, float)
    return fb_softmax(c * np.log(s.shape[-1]) * s)


def fb_softpick(s, eps=1e-8, **_):
    s = np.asarray(s, float)
    m = s.max(-1, keepdims=True)
    e = np.where(np.isfinite(s), np.exp(s - m) - np.exp(-m), 0.0)  # -inf keys contribute nothing
    return np.maximum(e, 0.0) / (np.abs(e).sum(-1, keepdims=True) + eps)


def fb_entmax(s, alpha=1.5, n_iter=60, **_):
    """alpha-entmax by bisection on tau [Peters2019]."""
    z = (alpha - 1.0) * np.asarray(s, float)
    hi = z.max(-1, keepdims=True)
    lo = hi - 1.0
    for _ in range(n_iter):
        tau = (lo + hi) / 2
        p = np.maximum(z - tau, 0.0) ** (1.0 / (alpha - 1.0))
        big = p.sum(-1, keepdims=True) >= 1.0
        lo, hi = np.where(big, tau, lo), np.where(big, hi, tau)
    p = np.maximum(z - (lo + hi) / 2, 0.0) ** (1.0 / (alpha - 1.0))
    return p / p.sum(-1, keepdims=True)


def fb_sparsemax(s, **_):
    return fb_entmax(s, alpha=2.0)


def fb_attention_weights(q, k, normalizer="softmax", *, scale=None, **params):
    q, k = np.asarray(q, float), np.asarray(k, float)
    sc = (q @ np.swapaxes(k, -1, -2)) * (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale)
    return normalizer_fn(normalizer)(sc, **params)


def fb_attention(q, k, v, normalizer="softmax", **kw):
    return fb_attention_weights(q, k, normalizer, **kw) @ np.asarray(v, float)


_FB_NORM = {"softmax": fb_softmax, "sigmoid": fb_sigmoid, "polynomial": fb_polynomial,
            "relu": fb_relu, "nap": fb_nap, "ssmax": fb_ssmax, "softpick": fb_softpick,
            "entmax": fb_entmax, "sparsemax": fb_sparsemax, "sinkhorn": fb_sinkhorn}


def normalizer_fn(name):
    """attnnorm.NORMALIZERS[name], or the NumPy fallback (noted) if this build lacks it."""
    if name in attnnorm.NORMALIZERS:
        SOURCES[name] = "attnnorm (C)"
        return attnnorm.NORMALIZERS[name]
    return impl(name, _FB_NORM.get(name))


def fb_jacobian_norm(a, normalizer="softmax", ord=2, **_):
    """Exact norm of the softmax Jacobian diag(a) - a a^T per row [Mudarisov2025]."""
    if normalizer != "softmax":
        raise NotImplementedError("the notebook fallback covers softmax only")
    a = np.asarray(a, float)
    if ord == "fro":
        s2 = (a ** 2).sum(-1)
        return np.sqrt(np.maximum(s2 - 2 * (a ** 3).sum(-1) + s2 ** 2, 0.0))
    J = a[..., :, None] * np.eye(a.shape[-1]) - a[..., :, None] * a[..., None, :]
    return np.abs(np.linalg.eigvalsh(J)).max(-1)


def fb_vanishing_bounds(q, k, temperature=1.0, **_):
    """Corollary 1 of [Mudarisov2025] for logits q.k: per row
    (e^{-2D/T}/L, e^{2D/T}/L) with D = |q_i| max_j |k_j|."""
    q, k = np.asarray(q, float), np.asarray(k, float)
    delta = np.linalg.norm(q, axis=-1) * np.linalg.norm(k, axis=-1).max(-1, keepdims=True)
    L = k.shape[-2]
    return np.exp(-2 * delta / temperature) / L, np.exp(2 * delta / temperature) / L


def fb_softmax_sink(s, sink=0.0, **_):
    s = np.asarray(s, float)
    m = np.maximum(s.max(-1, keepdims=True), sink)
    e = np.exp(s - m)
    return e / (np.exp(sink - m) + e.sum(-1, keepdims=True))


def fb_affine_softmax(s, a=1.0, b=0.0, **_):
    return a * fb_softmax(s) + b


def fb_stochastic_softmax(s, trials=64, seed=0, **_):
    p = fb_softmax(s)
    rng = np.random.default_rng(seed)
    flat = p.reshape(-1, p.shape[-1])
    out = np.stack([rng.multinomial(trials, r / r.sum()) for r in flat]) / trials
    return out.reshape(p.shape)


_FB_NORM.update({"softmax_sink": fb_softmax_sink, "affine_softmax": fb_affine_softmax,
                 "stochastic_softmax": fb_stochastic_softmax})


def _with_masks(fn, name):
    """Apply an unmasked row fallback to the visible keys of each row (n_i = visible count)."""
    def wrapped(scores, *, mask=None, causal=False, window=None, **params):
        s = np.asarray(scores, float)
        if mask is None and not causal and window is None:
            return fn(s, **params)
        if name == "sinkhorn":
            raise NotImplementedError("the notebook's Sinkhorn fallback has no masks")
        from attnnorm._reference import visible
        row = s.ndim == 1
        s2 = s[None] if row else s
        vis = np.broadcast_to(visible(*s2.shape[-2:], causal=causal, window=window, mask=mask), s2.shape)
        out = np.zeros_like(s2)
        for idx in np.ndindex(s2.shape[:-1]):
            keep = vis[idx]
            if keep.any():
                out[idx + (keep,)] = fn(s2[idx][keep], **params)
        return out[0] if row else out
    return wrapped


for _k, _f in list(_FB_NORM.items()):
    _FB_NORM[_k] = _with_masks(_f, _k)


def fb_cheap_linear_attention(h, q, causal=False, **_):
    """r_i = H^T (H q_i) = C q_i with C = sum_j h_j h_j^T (no normalisation)."""
    h, q = np.asarray(h, float), np.asarray(q, float)
    k = v = h
    s = q @ np.swapaxes(k, -1, -2)
    if causal:
        n, m = s.shape[-2:]
        s = s * (np.arange(m)[None, :] <= np.arange(n)[:, None] + (m - n))
    return s @ v


def fb_log_attention(q, k, v, causal=False, **_):
    """[exp(Q) exp(K)^T / rowsum] V [Heinsen2024], quadratic NumPy form."""
    q, k, v = (np.asarray(x, float) for x in (q, k, v))
    w = np.exp(q - q.max()) @ np.exp(k - k.max()).T
    if causal:
        w = np.tril(w)
    return (w / w.sum(-1, keepdims=True)) @ v


def fb_zeros_weights(s, gate_linear, gate_softmax, causal=True, **_):
    """Explicit ZeroS weights r_{t,i} [Lu2026], causal, n = m."""
    s = np.asarray(s, float)
    m = s.shape[-1]
    r = np.zeros((m, m))
    for t in range(m):
        si = s[:t + 1]; tt = t + 1
        p = np.exp(si - si.max()); p /= p.sum()
        dev = (si - si.mean()) / tt
        r[t, :tt] = gate_linear * dev + gate_softmax * (p - 1.0 / tt - dev)
    return r


def fb_zeros_attention(q, k, v, s, gate_linear, gate_softmax, causal=True, **_):
    r = fb_zeros_weights(s, gate_linear, gate_softmax)
    return (r * (np.asarray(q, float) @ np.asarray(k, float).T)) @ np.asarray(v, float)


def fb_soft_kernel(q, **_):
    q = np.asarray(q, float)
    d2 = ((q[:, None, :] - q[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * np.sqrt(q.shape[-1])))


def fb_soft_attention(q, v, landmarks=None, *, n_landmarks=None, newton_iters=20, return_residuals=False, **_):
    """Nyström + Newton-Schulz [Lu2021] with segment-mean landmarks."""
    q, v = np.asarray(q, float), np.asarray(v, float)
    L = n_landmarks or min(len(q), 64)
    lm = np.stack([seg.mean(0) for seg in np.array_split(q, L)]) if landmarks is None else np.asarray(landmarks, float)
    c = 2 * np.sqrt(q.shape[-1])
    A = np.exp(-((q[:, None] - lm[None]) ** 2).sum(-1) / c)
    B = np.exp(-((lm[:, None] - lm[None]) ** 2).sum(-1) / c)
    Vk = 2.0 / np.abs(B).sum(0).max() ** 2 * B
    res = []
    for _ in range(newton_iters):
        Vk = 2 * Vk - Vk @ B @ Vk
        res.append(np.linalg.norm(np.eye(len(B)) - B @ Vk))
    out = A @ (Vk @ (A.T @ v))
    return (out, np.array(res)) if return_residuals else out


def fb_attention_norms(a, fx, **_):
    return np.abs(np.asarray(a, float)) * np.linalg.norm(np.asarray(fx, float), axis=-1)[..., None, :]


def fb_mixing_ratios(a, fx, x, *, gamma=None, beta=None, eps=1e-12, return_vectors=False, **_):
    """[Kobayashi2021], NumPy: per-pair vectors and mixing ratios."""
    from collections import namedtuple
    a, fx, x = (np.asarray(t, float) for t in (a, fx, x))
    H, n, _ = a.shape
    e = x.shape[-1]
    gamma = np.ones(e) if gamma is None else np.asarray(gamma, float)
    beta = np.zeros(e) if beta is None else np.asarray(beta, float)
    w = np.einsum("hij,hje->ije", a, fx)                        # Attn vectors
    v = w + np.eye(n)[:, :, None] * x[:, None, :]               # AttnRes vectors
    pre = v.sum(1)                                              # y_i + x_i
    sd = np.sqrt(pre.var(-1) + eps)
    g = gamma * (v - v.mean(-1, keepdims=True)) / sd[:, None, None]
    eye = np.eye(n, dtype=bool)

    def ratio(t):
        mix = np.linalg.norm(np.where(eye[:, :, None], 0.0, t).sum(1), axis=-1)
        own = np.linalg.norm(t[eye], axis=-1)
        return mix / (mix + own)
    vec = {"attn": w, "attn_res": v, "attn_res_ln": g,
           "ln_out": gamma * (pre - pre.mean(-1, keepdims=True)) / sd[:, None] + beta} if return_vectors else None
    MR = namedtuple("MixingRatios", ["attn", "attn_res", "attn_res_ln", "vectors"])
    return MR(ratio(w), ratio(v), ratio(g), vec)
