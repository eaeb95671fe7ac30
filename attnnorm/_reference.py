"""Plain float64 NumPy reference implementations (the oracles of the tests).

Written independently of the C kernels, for clarity rather than speed: masks
are built explicitly as (n, m) boolean arrays and every formula is spelled out
as in papers.md.  Each function takes the same keyword arguments as its public
counterpart and returns float64.
"""
import numpy as np

# --------------------------------------------------------------------------
# masks and lengths (DESIGN "Masks and lengths")
# --------------------------------------------------------------------------


def visible(n, m, *, causal=False, window=None, mask=None):
    """Boolean array (..., n, m): True where query i sees key j.

    causal: j <= i + (m - n) (bottom-right); window=(left, right): additionally
    i + (m-n) - left <= j <= i + (m-n) + right, None meaning unbounded."""
    i = np.arange(n)[:, None]
    j = np.arange(m)[None, :]
    diag = i + (m - n)
    vis = np.ones((n, m), dtype=bool)
    if causal:
        vis &= j <= diag
    if window is not None:
        left, right = window
        if left is not None:
            vis &= j >= diag - left
        if right is not None:
            vis &= j <= diag + right
    if mask is not None:
        mk = np.asarray(mask, dtype=bool)
        if mk.ndim < 2:
            mk = mk.reshape((1,) * (2 - mk.ndim) + mk.shape)
        vis = vis & mk
    return vis


def _prepare(scores, causal, window, mask):
    s = np.asarray(scores, dtype=np.float64)
    row = s.ndim == 1
    if row:
        s = s[None, :]
    n, m = s.shape[-2:]
    vis = np.broadcast_to(visible(n, m, causal=causal, window=window, mask=mask),
                          np.broadcast_shapes(s.shape, visible(n, m, causal=causal, window=window, mask=mask).shape))
    s = np.broadcast_to(s, vis.shape)
    return s, vis, row


def _finish(w, empty_rows, empty, row):
    w = np.array(w, dtype=np.float64)
    if np.any(empty_rows):
        if empty == "raise":
            raise ValueError("empty='raise' and a row sees no key")
        w[empty_rows] = np.nan if empty == "nan" else 0.0
    return w[..., 0, :] if row else w


def n_visible(vis):
    """n_i: number of keys each query row sees."""
    return vis.sum(axis=-1)


# --------------------------------------------------------------------------
# normalizers (papers.md section A)
# --------------------------------------------------------------------------


def softmax(scores, *, temperature=1.0, mask=None, causal=False, window=None, empty="zero"):
    """a_j = exp(s_j/T) / sum_k exp(s_k/T) over visible keys (stable form)."""
    s, vis, row = _prepare(scores, causal, window, mask)
    t = np.asarray(temperature, dtype=np.float64)[..., None, None] if np.ndim(temperature) else float(temperature)
    z = np.where(vis, s, -np.inf)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mx = np.max(z, axis=-1, keepdims=True)
        posinf = np.isposinf(mx)
        e = np.where(vis, np.exp((z - np.where(np.isfinite(mx), mx, 0.0)) / t), 0.0)
        # +inf scores share the mass equally (the limit of the formula)
        e = np.where(posinf, np.where(vis & np.isposinf(z), 1.0, 0.0), e)
        w = e / e.sum(axis=-1, keepdims=True)
    has_nan = np.isnan(np.where(vis, s, 0.0)).any(axis=-1)
    w[has_nan] = np.nan
    empty_rows = ~has_nan & (np.isneginf(mx[..., 0]) | ~vis.any(axis=-1))
    return _finish(w, empty_rows, empty, row)


# ---- section: more normalizers (softmax family and elementwise maps) ----
# (helper H1 writes here)

# ---- end section: softmax family and elementwise maps ----


# ---- section: sparse, stochastic and Sinkhorn normalizers ----
# (helper H2 writes here)

# ---- end section: sparse, stochastic and Sinkhorn normalizers ----


# ---- section: attention ----
# (helper H3 writes here)

# ---- end section: attention ----


# ---- section: linear-time attention ----
# (helper H4 writes here)

# ---- end section: linear-time attention ----


# ---- section: diagnostics ----
# Float64 references of attnnorm._diagnostics (papers.md section B), written
# from the formulas with explicit (n, m) visibility masks.


def _vis_of(a, causal=False, window=None, mask=None):
    a = np.asarray(a, dtype=np.float64)
    n, m = a.shape[-2:]
    return a, np.broadcast_to(visible(n, m, causal=causal, window=window, mask=mask), a.shape)


def entropy(a, *, normalized=False, base=None, mask=None, causal=False, window=None):
    """-sum a log a over visible a > 0; NaN if no visible key or no mass;
    normalized: / log n_i (NaN for n_i < 2)."""
    a, vis = _vis_of(a, causal, window, mask)
    av = np.where(vis, a, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(av > 0, av * np.log(np.where(av > 0, av, 1.0)), 0.0)
        h = -terms.sum(-1)
        ni = vis.sum(-1)
        nomass = (ni == 0) | ~(np.where(vis, a != 0, False).any(-1))
        h = np.where(nomass, np.nan, h)
        h = np.where(np.isnan(np.where(vis, a, 0.0)).any(-1), np.nan, h)
        if normalized:
            h = np.where(ni >= 2, h / np.log(np.maximum(ni, 1)), np.nan)
        elif base is not None:
            h = h / np.log(base)
    return h


def participation_ratio(a, *, mask=None, causal=False, window=None):
    a, vis = _vis_of(a, causal, window, mask)
    av = np.where(vis, a, 0.0)
    with np.errstate(divide="ignore"):
        pr = 1.0 / (av ** 2).sum(-1)
    return np.where((av != 0).any(-1), pr, np.nan)


def support_size(a, *, threshold=0.0, mask=None, causal=False, window=None):
    a, vis = _vis_of(a, causal, window, mask)
    return (vis & (a > threshold)).sum(-1)


def negative_mass(a, *, mask=None, causal=False, window=None):
    a, vis = _vis_of(a, causal, window, mask)
    return np.where(vis, np.minimum(a, 0.0), 0.0).sum(-1)


def separation_margin(scores, *, mask=None, causal=False, window=None):
    s, vis = _vis_of(scores, causal, window, mask)
    z = np.sort(np.where(vis, s, -np.inf), axis=-1)
    with np.errstate(invalid="ignore"):
        mg = z[..., -1] - z[..., -2] if s.shape[-1] >= 2 else np.full(s.shape[:-1], np.nan)
    ni = vis.sum(-1)
    bad = (ni < 2) | np.isnan(np.where(vis, s, 0.0)).any(-1)
    return np.where(bad, np.nan, mg)


def column_mass(a, *, mask=None, causal=False, window=None):
    a, vis = _vis_of(a, causal, window, mask)
    cnt = vis.sum(-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, np.where(vis, a, 0.0).sum(-2) / cnt, np.nan)


def row_residual(a, *, ord=2):
    a = np.asarray(a, dtype=np.float64)
    return np.linalg.norm(a.sum(-1) - 1.0, ord=ord, axis=-1)


def column_residual(a, *, ord=2):
    a = np.asarray(a, dtype=np.float64)
    n, m = a.shape[-2:]
    return np.linalg.norm(a.sum(-2) - n / m, ord=ord, axis=-1)


def frobenius_norm(a):
    return np.sqrt((np.asarray(a, dtype=np.float64) ** 2).sum((-2, -1)))


def rank_collapse(x):
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.linalg.norm(x - x.mean(-2, keepdims=True), axis=(-2, -1))
                / np.linalg.norm(x, axis=(-2, -1)))


def jacobian_matrix(a, normalizer, *, n_i=None, **p):
    """The Jacobian of one row as an explicit m x m matrix (for small m)."""
    a = np.asarray(a, dtype=np.float64)
    ni = a.size if n_i is None else n_i
    if normalizer == "softmax":
        return (np.diag(a) - np.outer(a, a)) / p.get("temperature", 1.0)
    if normalizer in ("sparsemax", "entmax"):
        alpha = 2.0 if normalizer == "sparsemax" else p.get("alpha", 1.5)
        s = np.where(a > 0, np.abs(a) ** (2 - alpha), 0.0)
        return np.diag(s) - np.outer(s, s) / s.sum()
    if normalizer == "sigmoid":
        return np.diag(a * (1 - a))
    pw = p.get("power", 1.0 if normalizer == "relu" else 3.0)
    if normalizer == "relu":
        r = np.where(a > 0, (ni * np.maximum(a, 0)) ** (1 / pw), 0.0)
        return np.diag(np.where(a > 0, pw * r ** (pw - 1) / ni, 0.0))
    sabs = (np.sqrt(ni) * np.abs(a)) ** (1 / pw)
    return np.diag(pw * sabs ** (pw - 1) / np.sqrt(ni))


def diagnose(q, k, normalize, *, scale=None, causal=False, window=None, mask=None):
    """Materialised diagnose: weights = normalize(scale q k^T) then the
    row/column statistics of attnnorm.diagnose."""
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    d = q.shape[-1]
    sc = 1 / np.sqrt(d) if scale is None else scale
    s = sc * (q @ np.swapaxes(k, -1, -2))
    w = np.asarray(normalize(s), dtype=np.float64)
    vis = np.broadcast_to(visible(s.shape[-2], s.shape[-1], causal=causal, window=window,
                                  mask=mask), s.shape)
    return dict(entropy=entropy(w, causal=causal, window=window, mask=mask),
                max_weight=np.where(vis.any(-1), w.max(-1), 0.0),
                sink_weight=w[..., 0],
                margin=separation_margin(s, causal=causal, window=window, mask=mask),
                support=support_size(w, causal=causal, window=window, mask=mask),
                column_mass=column_mass(w, causal=causal, window=window, mask=mask))

# ---- end section: diagnostics ----
