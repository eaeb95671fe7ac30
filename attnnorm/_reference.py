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


def attention_scores(q, k, *, scale=None):
    """scale * q @ k^T in float64; scale=None means 1/sqrt(d)."""
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    d = q.shape[-1]
    if scale is None:
        scale = 1.0 / np.sqrt(d)
    sc = np.asarray(scale, dtype=np.float64)
    if sc.ndim:
        sc = sc[..., None, None]
    return (q @ np.swapaxes(k, -1, -2)) * sc


def attention_weights(q, k, normalizer="softmax", *, scale=None, causal=False, window=None,
                      mask=None, empty="zero", **params):
    """The reference normalizer of this module applied to the float64 scores."""
    s = attention_scores(q, k, scale=scale)
    return globals()[normalizer](s, causal=causal, window=window, mask=mask, empty=empty,
                                 **params)


def attention(q, k, v, normalizer="softmax", *, scale=None, causal=False, window=None,
              mask=None, empty="zero", **params):
    """out_i = sum over the keys row i sees of a_ij v_j (masked keys excluded
    exactly, so a non-finite value of a key the row cannot see never enters)."""
    w = attention_weights(q, k, normalizer, scale=scale, causal=causal, window=window,
                          mask=mask, empty=empty, **params)
    v = np.asarray(v, dtype=np.float64)
    n, m = w.shape[-2:]
    vis = visible(n, m, causal=causal, window=window, mask=mask)
    vis = np.broadcast_to(vis, np.broadcast_shapes(vis.shape, w.shape))
    # empty rows keep their policy value (0 or NaN) in every output column
    empty_rows = ~vis.any(axis=-1)
    terms = np.where(vis[..., None], w[..., None] * v[..., None, :, :], 0.0)
    out = terms.sum(axis=-2)
    if np.any(empty_rows):
        fill = np.nan if empty == "nan" else 0.0
        out = np.where(empty_rows[..., None], fill, out)
    return out


def attention_stats(q, k, normalizer="softmax", *, scale=None, causal=False, window=None,
                    mask=None, empty="zero", **params):
    """The per-query statistics of attention(..., return_stats=True), computed
    from the explicit weights: dict name -> (..., n) array (see
    attnnorm.AttentionStats for the definitions)."""
    s = attention_scores(q, k, scale=scale)
    w = attention_weights(q, k, normalizer, scale=scale, causal=causal, window=window,
                          mask=mask, empty=empty, **params)
    n, m = w.shape[-2:]
    vis = np.broadcast_to(visible(n, m, causal=causal, window=window, mask=mask), w.shape)
    s = np.broadcast_to(s, w.shape)
    nv = vis.sum(axis=-1)
    sv = np.where(vis, s, -np.inf)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # rows that carry no mass: fully masked, or every visible score -inf
        empty_rows = (nv == 0) | np.all(np.where(vis, np.isneginf(s), True), axis=-1)
        if normalizer == "softmax":
            t = params.get("temperature", 1.0)
            t = np.asarray(t, dtype=np.float64)[..., None, None] if np.ndim(t) else float(t)
            z = np.where(vis, s / t, -np.inf)
            mx = z.max(axis=-1, keepdims=True)
            lognorm = (np.where(np.isfinite(mx), mx, 0.0)
                       + np.log(np.where(vis, np.exp(z - np.where(np.isfinite(mx), mx, 0.0)),
                                         0.0).sum(axis=-1, keepdims=True)))[..., 0]
            lognorm = np.where(np.isposinf(mx[..., 0]), np.inf, lognorm)
        else:
            lognorm = np.full(w.shape[:-1], np.nan)
        wv = np.where(vis, w, 0.0)
        ent = -np.where(vis & (w != 0), w * np.log(np.where(w != 0, w, 1.0)), 0.0).sum(axis=-1)
        anynan = np.isnan(np.where(vis, w, 0.0)).any(axis=-1)
        mxw = np.where(vis, w, -np.inf).max(axis=-1)
        arg = np.argmax(np.where(vis, w, -np.inf), axis=-1)
        top = np.sort(sv, axis=-1)
        margin = np.where(nv >= 2, top[..., -1] - top[..., -2], np.nan)
        margin = np.where(np.isnan(np.where(vis, s, 0.0)).any(axis=-1), np.nan, margin)
    bad = empty_rows | anynan
    return {
        "lognorm": np.where(empty_rows, np.nan, lognorm),
        "entropy": np.where(bad, np.nan, ent),
        "max_weight": np.where(bad, np.nan, mxw),
        "argmax": np.where(bad, -1, arg),
        "weight0": w[..., 0] if m > 0 else np.zeros(w.shape[:-1]),
        "margin": margin,
        "support": (vis & (w > 0)).sum(axis=-1),
        "weight_sum": np.where(nv == 0, w[..., 0] if m > 0 else 0.0, wv.sum(axis=-1)),
    }

# ---- end section: attention ----


# ---- section: linear-time attention ----
# (helper H4 writes here)

# ---- end section: linear-time attention ----


# ---- section: diagnostics ----
# (helper H5 writes here)

# ---- end section: diagnostics ----
