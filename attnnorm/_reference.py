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
# Explicit O(n^2) float64 evaluations of papers.md A8-A11 (the oracles of
# tests/test_linear.py).  Causal masks come from visible() (bottom-right).


import warnings  # noqa: E402


def _lin_phi(x, feature_map):
    if feature_map == "elu1":
        return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))
    if feature_map == "relu":
        return np.maximum(x, 0.0)
    if feature_map == "identity":
        return x
    raise ValueError(feature_map)


def _logsumexp(x, axis):
    mx = np.max(x, axis=axis, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(mx, axis) + np.log(np.sum(np.exp(x - mx), axis=axis))


def linear_attention(q, k, v, feature_map="elu1", *, causal=False, eps=1e-6):
    """O(n^2): W = phi(Q) phi(K)^T on visible pairs, out = W V / (W 1 + eps);
    "exp": out = softmax_j(LSE_c(q_ic + k_jc)) V (exact, no eps)."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    n, m = q.shape[-2], k.shape[-2]
    vis = visible(n, m, causal=causal)
    if feature_map == "exp":
        logits = _logsumexp(q[..., :, None, :] + k[..., None, :, :], axis=-1)
        logits = np.where(vis, logits, -np.inf)
        mx = np.max(logits, axis=-1, keepdims=True)
        mx = np.where(np.isfinite(mx), mx, 0.0)
        w = np.exp(logits - mx)
        den = w.sum(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            o = np.where(den > 0, (w @ v) / den, 0.0)
        return o
    w = (_lin_phi(q, feature_map) @ np.swapaxes(_lin_phi(k, feature_map), -1, -2)) * vis
    with np.errstate(invalid="ignore", divide="ignore"):
        o = (w @ v) / (w.sum(-1, keepdims=True) + eps)
    return np.where(vis.any(-1)[:, None], o, 0.0)


def log_attention_quadratic(q, k, v, *, causal=False):
    """Heinsen's quadratic form (C2): softmax(log(exp(Q - c1) exp(K - c2)^T)) V
    with the stabilisers c1 = max(Q), c2 = max(K), masked causally."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    n, m = q.shape[-2], k.shape[-2]
    c1 = q.max(axis=(-2, -1), keepdims=True)
    c2 = k.max(axis=(-2, -1), keepdims=True)
    with np.errstate(divide="ignore"):
        logits = np.log(np.exp(q - c1) @ np.swapaxes(np.exp(k - c2), -1, -2))
    vis = visible(n, m, causal=causal)
    logits = np.where(vis, logits, -np.inf)
    mx = np.max(logits, axis=-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    w = np.exp(logits - mx)
    den = w.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (w @ v) / den, 0.0)


def log_attention_chunked(q, k, v, *, chunk_len=3):
    """Heinsen's causal streaming form (n == m), generalised to signed V:
    carry H_Z = LSE k and H+- = LSE (k + log|v|) over the positive/negative
    values, merge each chunk's logcumsumexp with logaddexp, and read
    out = exp(LSE_c(q + H+) - log Z) - exp(LSE_c(q + H-) - log Z)."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    n, d = q.shape
    e = v.shape[-1]
    with np.errstate(divide="ignore"):
        lvp = np.where(v > 0, np.log(np.abs(v)), -np.inf)
        lvn = np.where(v < 0, np.log(np.abs(v)), -np.inf)
    hz = np.full(d, -np.inf)
    hp = np.full((d, e), -np.inf)
    hn = np.full((d, e), -np.inf)
    out = np.zeros((n, e))
    for s0 in range(0, n, chunk_len):
        sl = slice(s0, min(n, s0 + chunk_len))
        kc = k[sl]
        cz = np.logaddexp(hz, np.logaddexp.accumulate(kc, axis=0))              # (L, d)
        cp = np.logaddexp(hp, np.logaddexp.accumulate(kc[:, :, None] + lvp[sl][:, None, :], axis=0))
        cn = np.logaddexp(hn, np.logaddexp.accumulate(kc[:, :, None] + lvn[sl][:, None, :], axis=0))
        qc = q[sl]
        logz = _logsumexp(qc + cz, axis=-1)                                      # (L,)
        logp = _logsumexp(qc[:, :, None] + cp, axis=-2)                          # (L, e)
        logn = _logsumexp(qc[:, :, None] + cn, axis=-2)
        out[sl] = np.exp(logp - logz[:, None]) - np.exp(logn - logz[:, None])
        hz, hp, hn = cz[-1], cp[-1], cn[-1]
    return out


def cheap_linear_attention(h, q, *, causal=False):
    """r_i = C_i q_i with C_i = sum over the visible h_j of h_j h_j^T (A10)."""
    h, q = np.asarray(h, dtype=np.float64), np.asarray(q, dtype=np.float64)
    n, m = q.shape[-2], h.shape[-2]
    vis = visible(n, m, causal=causal)
    out = np.zeros(np.broadcast_shapes(h.shape[:-2], q.shape[:-2]) + (n, h.shape[-1]))
    for i in range(n):
        hv = h[..., vis[i], :]
        c = np.swapaxes(hv, -1, -2) @ hv
        out[..., i, :] = (c @ q[..., i, :, None])[..., 0]
    return out


def zeros_weights(s, gate_linear, gate_softmax, *, causal=True, n=None):
    """Explicit ZeroS weights (A9): r_{t,i} = s1 (s_i - sbar)/t + sh (p_i - 1/t - (s_i - sbar)/t)
    over the t keys row t sees, zero elsewhere."""
    s = np.asarray(s, dtype=np.float64)
    m = s.shape[-1]
    n = m if n is None else n
    g1 = np.asarray(gate_linear, dtype=np.float64)[..., None, None]
    gh = np.asarray(gate_softmax, dtype=np.float64)[..., None, None]
    vis = visible(n, m, causal=causal)
    t = vis.sum(-1)[:, None].astype(np.float64)
    sv = np.where(vis, s[..., None, :], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # rows that see no key
        sbar = np.nanmean(sv, axis=-1, keepdims=True) if m else sv
        mx = np.nanmax(np.where(vis, sv, -np.inf), axis=-1, keepdims=True)
        ex = np.where(vis, np.exp(sv - mx), 0.0)
        p = ex / ex.sum(-1, keepdims=True)
        dev = (sv - sbar) / t
        r = g1 * dev + gh * (p - 1.0 / t - dev)
    return np.where(vis, r, 0.0)


def zeros_attention(q, k, v, s, gate_linear, gate_softmax, *, causal=True):
    """o_t = sum_i r_{t,i} (q_t . k_i) v_i with the explicit weights."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    r = zeros_weights(s, gate_linear, gate_softmax, causal=causal, n=q.shape[-2])
    return (r * (q @ np.swapaxes(k, -1, -2))) @ v


def soft_kernel(q):
    """S_ij = exp(-||q_i - q_j||^2 / (2 sqrt d)) (A11)."""
    q = np.asarray(q, dtype=np.float64)
    d = q.shape[-1]
    d2 = ((q[..., :, None, :] - q[..., None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * np.sqrt(d))) if d else np.ones(d2.shape)


def soft_landmarks(q, n_landmarks):
    """Means of n_landmarks contiguous segments of q (sizes as array_split)."""
    q = np.asarray(q, dtype=np.float64)
    segs = np.array_split(np.arange(q.shape[-2]), n_landmarks)
    return np.stack([q[..., sg, :].mean(-2) for sg in segs], axis=-2)


def soft_attention(q, v, landmarks=None, *, n_landmarks=None, newton_iters=20):
    """Nystrom SOFT (A11) for one (n, d) matrix: A (B^+ (A^T V)) with the
    Newton-Schulz B^+ (V0 = 2 B / ||B||_1^2); returns (out, residuals)."""
    q, v = np.asarray(q, dtype=np.float64), np.asarray(v, dtype=np.float64)
    n, d = q.shape
    if landmarks is None:
        landmarks = soft_landmarks(q, min(n, 64) if n_landmarks is None else n_landmarks)
    lm = np.asarray(landmarks, dtype=np.float64)
    g = 1.0 / (2 * np.sqrt(d))
    A = np.exp(-((q[:, None, :] - lm[None, :, :]) ** 2).sum(-1) * g)
    B = np.exp(-((lm[:, None, :] - lm[None, :, :]) ** 2).sum(-1) * g)
    V = 2.0 / np.abs(B).sum(0).max() ** 2 * B
    eye = np.eye(len(B))
    res = []
    for _ in range(newton_iters):
        V = 2 * V - V @ B @ V
        res.append(np.linalg.norm(eye - B @ V))
    return A @ (V @ (A.T @ v)), np.array(res)

# ---- end section: linear-time attention ----


# ---- section: diagnostics ----
# (helper H5 writes here)

# ---- end section: diagnostics ----
