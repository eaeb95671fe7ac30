"""Plain float64 NumPy reference implementations (the oracles of the tests).

Written independently of the C kernels, for clarity rather than speed: masks
are built explicitly as (n, m) boolean arrays and every formula is spelled out
as in the public docstrings (references: docs/references.md).  Each function takes the same keyword arguments as its public
counterpart and returns float64.
"""
import numpy as np

# --------------------------------------------------------------------------
# masks and lengths (README "Conventions")
# --------------------------------------------------------------------------


def visible(n, m, *, causal=False, window=None, mask=None):
    """Boolean array (..., n, m): True where query i sees key j.

    causal=True or "bottom_right": j <= i + (m - n); causal="top_left":
    j <= i.  window=(left, right): additionally diag - left <= j <= diag + right
    with diag the same diagonal (i + (m - n), or i for "top_left"), None
    meaning unbounded.  A bound beyond n + m excludes nothing and is clipped
    there, so bounds of any size are exact."""
    top_left = isinstance(causal, str) and causal == "top_left"
    i = np.arange(n)[:, None]
    j = np.arange(m)[None, :]
    diag = i if top_left else i + (m - n)
    vis = np.ones((n, m), dtype=bool)
    if causal:
        vis &= j <= diag
    if window is not None:
        left, right = window
        if left is not None:
            vis &= j >= diag - min(int(left), n + m)
        if right is not None:
            vis &= j <= diag + min(int(right), n + m)
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
# normalizers
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


# ---- section: softmax family and elementwise maps ----


def _lead_param(p):
    """A () parameter (scalar or per-head array over the leading axes) shaped
    to broadcast against (..., n, m)."""
    return np.asarray(p, dtype=np.float64)[..., None, None]


def _nan_rows(s, vis):
    return np.isnan(np.where(vis, s, 0.0)).any(axis=-1)


def _share_posinf(z, vis, extra=0.0):
    """Weights of the +inf limit: each visible +inf score gets 1/(count + extra)."""
    inf = vis & np.isposinf(z)
    return inf / (inf.sum(axis=-1, keepdims=True) + extra)


def softmax_sink(scores, *, sink=0.0, mask=None, causal=False, window=None, empty="zero"):
    """a_j = exp(s_j) / (exp(sink) + sum_k exp(s_k)) over visible keys, computed
    with M = max(max s, sink) subtracted; +inf limits shared equally."""
    s, vis, row = _prepare(scores, causal, window, mask)
    sk = _lead_param(sink)
    z = np.where(vis, s, -np.inf)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mx = np.max(z, axis=-1, keepdims=True)
        big = np.maximum(mx, sk)
        inf_case = np.isposinf(big)
        shift = np.where(np.isfinite(big), big, 0.0)
        e = np.where(vis, np.exp(z - shift), 0.0)
        den = e.sum(axis=-1, keepdims=True) + np.exp(sk - shift)
        w = e / den
        w = np.where(inf_case, _share_posinf(z, vis, np.isposinf(sk) * 1.0), w)
    w = np.array(np.broadcast_to(w, s.shape))
    has_nan = _nan_rows(s, vis)
    w[has_nan] = np.nan
    all_neginf = np.broadcast_to(np.isneginf(big[..., 0]), has_nan.shape)
    empty_rows = ~has_nan & (all_neginf | ~vis.any(axis=-1))
    return _finish(w, empty_rows, empty, row)


def ssmax(scores, *, c=0.43, mask=None, causal=False, window=None, empty="zero"):
    """softmax(c * log(n_i) * s) with n_i the visible length; multiplier 0 (n_i = 1)
    taken as the limit from above (uniform over finite scores)."""
    s, vis, row = _prepare(scores, causal, window, mask)
    n_i = n_visible(vis)[..., None]
    mul = _lead_param(c) * np.log(np.maximum(n_i, 1))
    z = np.where(vis, s, -np.inf)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        pos = mul > 0
        zz = np.where(pos, z, np.where(np.isfinite(z), 0.0, z))
        mx = np.max(zz, axis=-1, keepdims=True)
        d = zz - np.where(np.isfinite(mx), mx, 0.0)       # <= 0 on finite rows
        t = np.where(pos, d * np.where(pos, mul, 1.0), d)
        e = np.where(vis, np.exp(t), 0.0)
        w = e / e.sum(axis=-1, keepdims=True)
        w = np.where(np.isposinf(mx), _share_posinf(zz, vis), w)
    w = np.array(np.broadcast_to(w, s.shape))
    has_nan = _nan_rows(s, vis)
    w[has_nan] = np.nan
    empty_rows = ~has_nan & (np.isneginf(np.max(z, axis=-1)) | ~vis.any(axis=-1))
    return _finish(w, empty_rows, empty, row)


def sigmoid(scores, *, bias=None, mask=None, causal=False, window=None, empty="zero"):
    """a_j = 1 / (1 + exp(-(s_j + b))), b = -log(n_i) by default; masked keys 0."""
    s, vis, row = _prepare(scores, causal, window, mask)
    if bias is None:
        b = -np.log(np.maximum(n_visible(vis), 1))[..., None]
    else:
        b = _lead_param(bias)
    with np.errstate(over="ignore"):
        w = np.where(vis, 1.0 / (1.0 + np.exp(-(s + b))), 0.0)
    return _finish(w, ~vis.any(axis=-1), empty, row)


def relu(scores, *, power=1, mask=None, causal=False, window=None, empty="zero"):
    """a_j = max(s_j, 0)**p / n_i."""
    s, vis, row = _prepare(scores, causal, window, mask)
    n_i = np.maximum(n_visible(vis), 1)[..., None]
    with np.errstate(over="ignore"):
        w = np.where(vis, np.maximum(s, 0.0) ** _lead_param(power) / n_i, 0.0)
    return _finish(w, ~vis.any(axis=-1), empty, row)


def polynomial(scores, *, power=3, mask=None, causal=False, window=None, empty="zero"):
    """a_j = s_j**p / sqrt(n_i) (integer p)."""
    s, vis, row = _prepare(scores, causal, window, mask)
    n_i = np.maximum(n_visible(vis), 1)[..., None]
    with np.errstate(over="ignore", invalid="ignore"):
        w = np.where(vis, np.power(s, _lead_param(power)) / np.sqrt(n_i), 0.0)
    return _finish(w, ~vis.any(axis=-1), empty, row)


def softpick(scores, *, eps=1e-8, mask=None, causal=False, window=None, empty="zero"):
    """Stable softpick [Zuhri2025] with m = max s:
    ReLU(e^(s-m) - e^-m) / (sum over finite s of |e^(s-m) - e^-m| + eps)."""
    s, vis, row = _prepare(scores, causal, window, mask)
    z = np.where(vis, s, -np.inf)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        m = np.max(z, axis=-1, keepdims=True)
        mf = np.where(np.isfinite(m), m, 0.0)
        d = np.exp(z - mf) - np.exp(-mf)
        num = np.where(vis, np.maximum(d, 0.0), 0.0)
        den = np.where(vis & np.isfinite(z), np.abs(d), 0.0).sum(axis=-1, keepdims=True)
        w = num / (den + _lead_param(eps))
        w = np.where(np.isneginf(m), 0.0, w)
        w = np.where(np.isposinf(m), _share_posinf(z, vis), w)
    w = np.array(np.broadcast_to(w, s.shape))
    has_nan = _nan_rows(s, vis)
    w[has_nan] = np.nan
    return _finish(w, ~has_nan & ~vis.any(axis=-1), empty, row)


def nap(scores, *, gain=1.0, bias=0.0, eps=1e-3, mask=None, causal=False, window=None,
        empty="zero"):
    """a_j = g (s_j - mu) / (sigma + eps) + b with mu, sigma the mean and population
    std of the visible scores.  Rows with infinite scores: the standardisation of
    u = +1 (+inf), -1 (-inf), 0 (finite), or b if u is constant."""
    s, vis, row = _prepare(scores, causal, window, mask)
    g, b, ep = _lead_param(gain), _lead_param(bias), _lead_param(eps)
    n_i = np.maximum(n_visible(vis), 1)[..., None]
    has_inf = (vis & np.isinf(s)).any(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        x = np.where(vis, np.where(has_inf, np.sign(s) * np.isinf(s), s), 0.0)
        # shifted by one visible score, so constant rows have deviations exactly 0
        pivot = np.take_along_axis(x, np.argmax(vis, axis=-1)[..., None], axis=-1)
        mu = np.where(vis, x - pivot, 0.0).sum(axis=-1, keepdims=True) / n_i
        dev = np.where(vis, (x - pivot) - mu, 0.0)
        sd = np.sqrt((dev ** 2).sum(axis=-1, keepdims=True) / n_i)
        finite_w = g * dev / (sd + ep) + b
        inf_w = np.where(sd > 0, g * dev / sd, 0.0) + b
        w = np.where(vis, np.where(has_inf, inf_w, finite_w), 0.0)
    w = np.array(np.broadcast_to(w, s.shape))
    has_nan = _nan_rows(s, vis)
    w[has_nan] = np.nan
    return _finish(w, ~has_nan & ~vis.any(axis=-1), empty, row)


def affine_softmax(scores, *, a=1.0, b=0.0, mask=None, causal=False, window=None,
                   empty="zero"):
    """a_i * softmax(s)_j + b_i on visible keys (a, b broadcast against (..., n));
    masked keys 0; rows empty for softmax stay empty."""
    s, vis, row = _prepare(scores, causal, window, mask)
    w = softmax(s, mask=vis, empty="zero")
    av = np.asarray(a, dtype=np.float64)[..., None]
    bv = np.asarray(b, dtype=np.float64)[..., None]
    z = np.where(vis, s, -np.inf)
    has_nan = _nan_rows(s, vis)
    empty_rows = ~has_nan & np.isneginf(np.max(z, axis=-1))
    w = np.where(vis, av * w + bv, 0.0)
    w = np.array(np.broadcast_to(w, np.broadcast_shapes(w.shape, empty_rows.shape + (1,))))
    return _finish(w, np.broadcast_to(empty_rows, w.shape[:-1]), empty, row)

# ---- end section: softmax family and elementwise maps ----


# ---- section: sparse, stochastic and Sinkhorn normalizers ----


def _current_key(n, m):
    """(n, m) boolean: True at each query's aligned position i + (m - n)."""
    return np.arange(m)[None, :] == np.arange(n)[:, None] + (m - n)


def stickbreaking(scores, *, include_current=True, mask=None, causal=False, window=None,
                  empty="zero"):
    """Stick-breaking attention [Tan2025]: over the keys query i sees, taken
    nearest first (decreasing key index), beta_j = sigma(s_ij) and
    a_ij = beta_j prod_{k visible, k > j} (1 - beta_k), evaluated as
    exp(log sigma(s_ij) - sum_{k > j} softplus(s_ik)) with a reverse cumulative
    sum.  include_current=False leaves out the key at i + (m - n) (weight 0)."""
    s, vis, row = _prepare(scores, causal, window, mask)
    n, m = s.shape[-2:]
    use = vis & (True if include_current else ~_current_key(n, m))
    with np.errstate(invalid="ignore", over="ignore"):
        z = np.where(use, s, -np.inf)                       # -inf: breaks nothing
        sp = np.logaddexp(0.0, z)                           # softplus(z) = -log(1 - beta)
        # sum over the nearer keys k > j: reverse cumulative sum, shifted by one
        tail = np.cumsum(sp[..., ::-1], axis=-1)[..., ::-1]
        tail = np.concatenate([tail[..., 1:], np.zeros(tail.shape[:-1] + (1,))], axis=-1)
        w = np.where(use, np.exp(-np.logaddexp(0.0, -z) - tail), 0.0)
    return _finish(w, ~vis.any(axis=-1), empty, row)


def stickbreaking_jacobian(scores, *, include_current=True, current=None):
    """d a / d s of one row of visible scores (ascending key order) from the
    scores: d a_j / d s_j = a_j (1 - beta_j), d a_j / d s_l = -a_j beta_l for
    the nearer keys l > j; ``current``: index of the excluded key (if any)."""
    z = np.asarray(scores, dtype=np.float64)
    beta = 1.0 / (1.0 + np.exp(-z))
    if not include_current and current is not None:
        beta[current] = 0.0
    nv = z.size
    a = np.array([beta[j] * np.prod(1 - beta[j + 1:]) for j in range(nv)])
    J = np.diag(a * (1 - beta))
    for j in range(nv):
        J[j, j + 1:] = -a[j] * beta[j + 1:]
    return J


def stickbreaking_vjp_row(x, g, keys, current_key, include_current=True):
    """J^T g for one row of stick-breaking by its explicit Jacobian
    (stickbreaking_jacobian: products of (1 - beta), not logs): x, g the
    visible scores and upstream gradient at the visible key indices ``keys``
    (ascending); ``current_key`` the query's aligned key i + (m - n)."""
    cur = None
    if not include_current:
        hit = np.flatnonzero(np.asarray(keys) == current_key)
        cur = int(hit[0]) if hit.size else None
    J = stickbreaking_jacobian(x, include_current=include_current, current=cur)
    return J.T @ np.asarray(g, dtype=np.float64)


def _row_classes(s, vis):
    """Visible scores z (-inf where masked) and the special rows: NaN rows,
    rows with +inf, empty rows (nothing visible or all -inf), as booleans."""
    z = np.where(vis, s, -np.inf)
    nan_rows = np.isnan(z).any(axis=-1)
    pinf_rows = ~nan_rows & np.isposinf(z).any(axis=-1)
    empty_rows = ~nan_rows & np.all(np.isneginf(z), axis=-1)
    return z, nan_rows, pinf_rows, empty_rows


def _special_rows(w, z, vis, nan_rows, pinf_rows):
    """NaN rows -> NaN on visible entries; +inf rows -> equal share of the +inf entries."""
    share = np.isposinf(z) / np.maximum(np.isposinf(z).sum(axis=-1, keepdims=True), 1)
    w = np.where(pinf_rows[..., None], share, w)
    w = np.where(nan_rows[..., None] & vis, np.nan, w)
    return w


def sparsemax(scores, *, return_tau=False, mask=None, causal=False, window=None, empty="zero"):
    """Euclidean projection onto the simplex by sorting (Martins & Astudillo 2016):
    zs = sort(z) descending, k* = max{k : 1 + k zs_k > sum_{j<=k} zs_j},
    tau = (sum_{j<=k*} zs_j - 1) / k*, p = max(z - tau, 0)."""
    s, vis, row = _prepare(scores, causal, window, mask)
    z, nan_rows, pinf_rows, empty_rows = _row_classes(s, vis)
    ok = ~(nan_rows | pinf_rows | empty_rows)
    with np.errstate(invalid="ignore", over="ignore"):
        mx = np.where(ok, np.max(np.where(ok[..., None], z, 0.0), axis=-1), 0.0)
        d = np.where(ok[..., None], z - mx[..., None], -np.inf)     # shifted, <= 0
        ds = -np.sort(-d, axis=-1)
        k = np.arange(1, d.shape[-1] + 1)
        fin = np.isfinite(ds)
        cs = np.cumsum(np.where(fin, ds, 0.0), axis=-1)
        cond = fin & (1.0 + k * ds > cs)
        kstar = np.maximum(cond.sum(axis=-1), 1)
        csk = np.take_along_axis(cs, (kstar - 1)[..., None], axis=-1)[..., 0]
        tau_s = (csk - 1.0) / kstar
        w = np.where(vis & ok[..., None], np.maximum(d - tau_s[..., None], 0.0), 0.0)
    w = _special_rows(w, z, vis, nan_rows, pinf_rows)
    tau = np.where(ok, tau_s + mx, np.where(pinf_rows, np.inf, np.nan))
    return _sparse_finish(w, tau, empty_rows, empty, row, return_tau)


def _sparse_finish(w, tau, empty_rows, empty, row, return_tau):
    w = _finish(w, empty_rows, empty, False)
    tau = np.where(empty_rows, np.nan, tau)
    sup = np.count_nonzero(w, axis=-1).astype(np.int64)
    sup = np.where(empty_rows, 0, sup)
    if row:
        w, tau, sup = w[..., 0, :], tau[..., 0], sup[..., 0]
    return (w, tau, sup) if return_tau else w


def entmax(scores, *, alpha=1.5, n_iter=50, return_tau=False, mask=None, causal=False,
           window=None, empty="zero"):
    """alpha-entmax p = [(alpha-1) z - tau]_+^(1/(alpha-1)), sum p = 1, found by
    64 bisection steps on tau in [-1, 0] after shifting by the row maximum
    (2^-64 < double resolution; independent of n_iter, which only matters to
    the C bisection), then renormalised.  alpha = 2 is sparsemax
    (sorting), alpha = 1 softmax (tau = log-sum-exp).  Scalar alpha only."""
    alpha = float(alpha)
    if alpha == 2.0:
        return sparsemax(scores, return_tau=return_tau, mask=mask, causal=causal,
                         window=window, empty=empty)
    s, vis, row = _prepare(scores, causal, window, mask)
    z, nan_rows, pinf_rows, empty_rows = _row_classes(s, vis)
    ok = ~(nan_rows | pinf_rows | empty_rows)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        mx = np.where(ok, np.max(np.where(ok[..., None], z, 0.0), axis=-1), 0.0)
        d = np.where(ok[..., None], z - mx[..., None], -np.inf)
        if alpha == 1.0:
            e = np.exp(d)
            tot = e.sum(axis=-1)
            w = e / np.where(ok, tot, 1.0)[..., None]
            tau_full = mx + np.log(tot)
        else:
            am1 = alpha - 1.0
            X = am1 * d                                   # max 0; tau in [-1, 0]
            lo = np.full(mx.shape, -1.0)
            hi = np.zeros(mx.shape)
            for _ in range(64):
                mid = 0.5 * (lo + hi)
                p = np.maximum(X - mid[..., None], 0.0) ** (1.0 / am1)
                big = p.sum(axis=-1) >= 1.0
                lo = np.where(big, mid, lo)
                hi = np.where(big, hi, mid)
            tau_s = 0.5 * (lo + hi)
            p = np.maximum(X - tau_s[..., None], 0.0) ** (1.0 / am1)
            w = p / np.where(ok, p.sum(axis=-1), 1.0)[..., None]
            tau_full = tau_s + am1 * mx
        w = np.where(vis & ok[..., None], w, 0.0)
    w = _special_rows(w, z, vis, nan_rows, pinf_rows)
    tau = np.where(ok, tau_full, np.where(pinf_rows, np.inf, np.nan))
    return _sparse_finish(w, tau, empty_rows, empty, row, return_tau)


def stochastic_softmax(scores, *, trials=100, seed=0, mask=None, causal=False, window=None,
                       empty="zero"):
    """c / N with c ~ Multinomial(N, softmax(s)) per row, drawn with NumPy's
    Generator (same distribution as the C kernel, not the same numbers)."""
    p = softmax(scores, mask=mask, causal=causal, window=window, empty="nan")
    bad = np.isnan(p).any(axis=-1)
    rng = np.random.default_rng(seed)
    pv = np.where(bad[..., None], 0.0, p)
    pv[~bad] /= pv[~bad].sum(axis=-1, keepdims=True)
    pv[bad] = 1.0 / pv.shape[-1]
    c = rng.multinomial(int(trials), pv)
    w = c / float(trials)
    w = np.where(bad[..., None], p, w)
    z = np.asarray(scores, dtype=np.float64)
    _, vis, _ = _prepare(z, causal, window, mask)
    vis = vis[0] if z.ndim == 1 else vis
    empty_rows = bad & ~np.isnan(np.where(vis, np.broadcast_to(z, vis.shape), 0.0)).any(axis=-1)
    return _finish(w, empty_rows, empty, False)


def sinkhorn(scores, *, n_iter=5, eps=1.0, mask=None, causal=False, window=None, empty="zero"):
    """Log-domain Sinkhorn [Sander2021]: K = (s - max_j s)/eps, alternate
    n_iter steps starting with rows, f_i = log(1/n_r) - LSE_j(K_ij + g_j),
    g_j = log(1/m_c) - LSE_i(K_ij + f_i), A = n_r exp(K + f + g).  n_r, m_c:
    rows / columns with a visible entry (NaN rows and empty rows excluded);
    rows with +inf keep their +inf entries at equal scores."""
    from scipy.special import logsumexp

    s, vis, row = _prepare(scores, causal, window, mask)
    z, nan_rows, pinf_rows, empty_rows = _row_classes(s, vis)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        used = ~(nan_rows | empty_rows)
        # shift rows by their maximum before dividing by eps (absorbed by f;
        # keeps potentials small for huge scores and tiny eps)
        mx = np.where(used & ~pinf_rows, np.max(np.where(used[..., None], z, 0.0), axis=-1), 0.0)
        K = np.where(vis, (z - mx[..., None]) / eps, -np.inf)
        K = np.where(pinf_rows[..., None], np.where(np.isposinf(z), 0.0, -np.inf), K)
        K = np.where(used[..., None], K, -np.inf)
        colok = np.isfinite(K).any(axis=-2)
        n_r = used.sum(axis=-1)
        m_c = colok.sum(axis=-1)
        f = np.zeros(K.shape[:-1])
        g = np.zeros(K.shape[:-2] + K.shape[-1:])
        for it in range(n_iter):
            if it % 2 == 0:
                lse = logsumexp(K + g[..., None, :], axis=-1)
                f = np.where(used, -np.log(n_r)[..., None] - lse, 0.0)
            else:
                lse = logsumexp(K + f[..., :, None], axis=-2)
                g = np.where(colok, -np.log(m_c)[..., None] - lse, 0.0)
        A = n_r[..., None, None] * np.exp(K + f[..., :, None] + g[..., None, :])
        A = np.where(used[..., None], A, 0.0)
    A = np.where(nan_rows[..., None] & vis, np.nan, A)
    return _finish(A, empty_rows, empty, row)


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


def _attention_lognorm(s, vis, normalizer, params):
    """log([exp(sink)] + sum_visible exp(mul s)) for the softmax family, else NaN."""
    extra = None
    if normalizer == "softmax":
        t = params.get("temperature", 1.0)
        mul = 1.0 / (np.asarray(t, dtype=np.float64)[..., None, None] if np.ndim(t) else float(t))
    elif normalizer == "softmax_sink":
        mul, extra = 1.0, float(params.get("sink", 0.0))
    elif normalizer == "ssmax":
        mul = float(params.get("c", 0.43)) * np.log(np.maximum(vis.sum(-1, keepdims=True), 1))
    elif normalizer in ("affine_softmax", "stochastic_softmax"):
        mul = 1.0
    else:
        return np.full(s.shape[:-1], np.nan)
    z = np.where(vis, mul * s, -np.inf)
    if extra is not None:
        z = np.concatenate([z, np.full(z.shape[:-1] + (1,), extra)], axis=-1)
    mx = z.max(axis=-1, keepdims=True)
    fin = np.where(np.isfinite(mx), mx, 0.0)
    lse = (fin + np.log(np.exp(z - fin).sum(axis=-1, keepdims=True)))[..., 0]
    return np.where(np.isposinf(mx[..., 0]), np.inf, lse)


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
        lognorm = _attention_lognorm(s, vis, normalizer, params)
        wv = np.where(vis, w, 0.0)
        ent = -np.where(vis & (w > 0), w * np.log(np.where(w > 0, w, 1.0)), 0.0).sum(axis=-1)
        nomass = ~(vis & (w != 0)).any(axis=-1)
        anynan = np.isnan(np.where(vis, w, 0.0)).any(axis=-1)
        mxw = np.where(vis, w, -np.inf).max(axis=-1)
        arg = np.argmax(np.where(vis, w, -np.inf), axis=-1)
        top = np.sort(sv, axis=-1)
        margin = np.where(nv >= 2, top[..., -1] - top[..., -2], np.nan)
        margin = np.where(np.isnan(np.where(vis, s, 0.0)).any(axis=-1), np.nan, margin)
    bad = empty_rows | anynan
    return {
        "lognorm": np.where(empty_rows, np.nan, lognorm),
        "entropy": np.where(bad | nomass, np.nan, ent),
        "max_weight": np.where(bad, np.nan, mxw),
        "argmax": np.where(bad, -1, arg),
        "sink_weight": w[..., 0] if m > 0 else np.zeros(w.shape[:-1]),
        "margin": margin,
        "support": (vis & (w > 0)).sum(axis=-1),
        "weight_sum": np.where(nv == 0, w[..., 0] if m > 0 else 0.0, wv.sum(axis=-1)),
    }

# ---- end section: attention ----


# ---- section: linear-time attention ----
# Explicit O(n^2) float64 evaluations of the linear-time family (the oracles of
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
    """log sum exp over axis; -inf over an empty axis (an empty sum is 0)."""
    mx = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
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
        return _softmax_logits_at_v(logits, vis, v)
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
    return _softmax_logits_at_v(logits, visible(n, m, causal=causal), v)


def _softmax_logits_at_v(logits, vis, v):
    """softmax over the visible logits of each row, times v; rows without
    mass give 0 (shared by the exp-kernel and Heinsen quadratic forms)."""
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
    """r_i = C_i q_i with C_i = sum over the visible h_j of h_j h_j^T [Brebisson2016]."""
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
    """Explicit ZeroS weights [Lu2026]: r_{t,i} = s1 (s_i - sbar)/t + sh (p_i - 1/t - (s_i - sbar)/t)
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
    """S_ij = exp(-||q_i - q_j||^2 / (2 sqrt d)) [Lu2021]."""
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
    """Nystrom SOFT [Lu2021] for one (n, d) matrix: A (B^+ (A^T V)) with the
    Newton-Schulz B^+ (V0 = B / (||B||_1 ||B||_inf)); returns (out, residuals)."""
    q, v = np.asarray(q, dtype=np.float64), np.asarray(v, dtype=np.float64)
    n, d = q.shape
    if landmarks is None:
        landmarks = soft_landmarks(q, min(n, 64) if n_landmarks is None else n_landmarks)
    lm = np.asarray(landmarks, dtype=np.float64)
    g = 1.0 / (2 * np.sqrt(d))
    A = np.exp(-((q[:, None, :] - lm[None, :, :]) ** 2).sum(-1) * g)
    B = np.exp(-((lm[:, None, :] - lm[None, :, :]) ** 2).sum(-1) * g)
    V = B / (np.abs(B).sum(0).max() * np.abs(B).sum(1).max())
    eye = np.eye(len(B))
    res = []
    for _ in range(newton_iters):
        V = 2 * V - V @ B @ V
        res.append(np.linalg.norm(eye - B @ V))
    return A @ (V @ (A.T @ v)), np.array(res)

# ---- end section: linear-time attention ----


# ---- section: diagnostics ----
# Float64 references of attnnorm._diagnostics , written
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
    if normalizer == "ssmax":      # softmax(c log(n_i) s): T = 1 / (c log n_i)
        return (np.diag(a) - np.outer(a, a)) * p.get("c", 0.43) * np.log(ni)
    if normalizer == "softmax_sink":
        return np.diag(a) - np.outer(a, a)
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
    with np.errstate(invalid="ignore", over="ignore"):   # inf * 0 in q k^T is NaN, as intended
        s = sc * (q @ np.swapaxes(k, -1, -2))
    w = np.asarray(normalize(s), dtype=np.float64)
    vis = np.broadcast_to(visible(s.shape[-2], s.shape[-1], causal=causal, window=window,
                                  mask=mask), s.shape)
    return dict(entropy=entropy(w, causal=causal, window=window, mask=mask),
                max_weight=np.where(vis.any(-1), np.where(vis, w, -np.inf).max(-1), 0.0),
                sink_weight=w[..., 0],
                margin=separation_margin(s, causal=causal, window=window, mask=mask),
                support=support_size(w, causal=causal, window=window, mask=mask),
                column_mass=column_mass(w, causal=causal, window=window, mask=mask))

# ---- end section: diagnostics ----


# ---- section: gradients (normalizer VJPs) ----
# Each row's Jacobian is built as an explicit matrix and each parameter's
# derivative as an explicit vector d a / d theta (formulas derived for the
# reference, in the unscaled form of each normalizer), then
# d scores = J^T g and d theta = <g, d a / d theta>.  Sinkhorn pushes every
# tangent direction forward through its iterations (forward mode), so it
# shares nothing with the reverse-mode C kernel.  Scalar parameters only.


def _row_jacobian(name, x, p):
    """(J, {param: da/dparam}) of one row of visible, finite scores x."""
    nv = x.size
    ln = np.log(nv)

    def smx(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    if name in ("softmax", "stochastic_softmax"):
        T = p.get("temperature", 1.0) if name == "softmax" else 1.0
        a = smx(x / T)
        S = np.diag(a) - np.outer(a, a)
        return S / T, {"temperature": -S @ x / T ** 2}
    if name == "softmax_sink":
        sk = p.get("sink", 0.0)
        z = np.append(x, sk)
        az = smx(z)
        a, a0 = az[:-1], az[-1]
        return np.diag(a) - np.outer(a, a), {"sink": -a * a0}
    if name == "ssmax":
        c = p.get("c", 0.43)
        a = smx(c * ln * x)
        S = np.diag(a) - np.outer(a, a)
        return c * ln * S, {"c": ln * S @ x}
    if name == "sigmoid":
        b = p["bias"] if p.get("bias") is not None else -ln
        a = 1.0 / (1.0 + np.exp(-(x + b)))
        return np.diag(a * (1 - a)), {"bias": a * (1 - a)}
    if name == "relu":
        pw = p.get("power", 1.0)
        pos = x > 0
        xp = np.where(pos, x, 1.0)
        return (np.diag(np.where(pos, pw * xp ** (pw - 1) / nv, 0.0)),
                {"power": np.where(pos, xp ** pw * np.log(xp) / nv, 0.0)})
    if name == "polynomial":
        pw = p.get("power", 3.0)
        nz = x != 0
        xs = np.where(nz, x, 1.0)
        a = x ** pw / np.sqrt(nv)
        return (np.diag(pw * x ** (pw - 1) / np.sqrt(nv)),
                {"power": np.where(nz, a * np.log(np.abs(xs)), 0.0)})
    if name == "softpick":
        # a_j = relu(e^x_j - 1) / (sum_k |e^x_k - 1| + eps e^M),  M = max x
        eps = p.get("eps", 1e-8)
        M, jm = x.max(), int(np.argmax(x))
        u = np.expm1(x)
        N = np.maximum(u, 0.0)
        D = np.abs(u).sum() + eps * np.exp(M)
        dD = np.sign(u) * np.exp(x)
        dD[jm] += eps * np.exp(M)
        J = np.diag((u > 0) * np.exp(x) / D) - np.outer(N, dD) / D ** 2
        if M <= 0:
            return np.zeros((nv, nv)), {"eps": np.zeros(nv)}
        return J, {"eps": -N * np.exp(M) / D ** 2}
    if name == "nap":
        G, B, eps = p.get("gain", 1.0), p.get("bias", 0.0), p.get("eps", 1e-3)
        d = x - x.mean()
        sd = np.sqrt((d ** 2).mean())
        den = sd + eps
        J = G * ((np.eye(nv) - 1.0 / nv) / den
                 - (np.outer(d, d) / (nv * sd * den ** 2) if sd > 0 else 0.0))
        return J, {"gain": d / den, "bias": np.ones(nv), "eps": -G * d / den ** 2}
    if name == "affine_softmax":
        al = p.get("a", 1.0)
        q = smx(x)
        return al * (np.diag(q) - np.outer(q, q)), {"a": q, "b": np.ones(nv)}
    if name in ("sparsemax", "entmax"):
        alpha = 2.0 if name == "sparsemax" else float(p.get("alpha", 1.5))
        if alpha == 1.0:
            raise ValueError("reference entmax VJP: alpha > 1 only")
        a, tau, _ = entmax(x, alpha=alpha, return_tau=True)
        s = np.where(a > 0, a ** (2 - alpha), 0.0)
        J = np.diag(s) - np.outer(s, s) / s.sum()
        # d a / d alpha by the implicit function theorem on sum a = 1, with
        # a_j = u_j^(1/(alpha-1)), u_j = (alpha-1) x_j - tau on the support
        am1 = alpha - 1.0
        sup = a > 0
        u = np.where(sup, am1 * x - tau, 1.0)
        da_fixed = np.where(sup, a * (-np.log(u) / am1 ** 2 + x / (am1 * u)), 0.0)
        da_dtau = np.where(sup, -a / (am1 * u), 0.0)
        dtau = -da_fixed.sum() / da_dtau.sum()
        return J, {"alpha": da_fixed + da_dtau * dtau}
    raise ValueError(f"no reference VJP for {name!r}")


def _sinkhorn_jvp_all(s, vis, n_iter, eps):
    """Weights of sinkhorn() and their derivatives along every score and eps
    (forward mode: one tangent per direction), for one (n, m) matrix whose
    visible scores are finite and every row and column non-empty."""
    n, m = s.shape
    nd = n * m + 1
    K = np.where(vis, s / eps, -np.inf)
    dK = np.zeros((nd, n, m))
    dK[np.arange(n * m), np.repeat(np.arange(n), m), np.tile(np.arange(m), n)] = 1.0 / eps
    dK[-1] = np.where(vis, -s / eps ** 2, 0.0)
    dK = np.where(vis, dK, 0.0)
    n_r, m_c = vis.any(1).sum(), vis.any(0).sum()
    f, g = np.zeros(n), np.zeros(m)
    df, dg = np.zeros((nd, n)), np.zeros((nd, m))
    for it in range(n_iter):
        if it % 2 == 0:
            Z = K + g[None, :]
            P = np.exp(Z - Z.max(1, keepdims=True))
            P /= P.sum(1, keepdims=True)
            f = -np.log(n_r) - np.log(np.exp(Z - Z.max(1, keepdims=True)).sum(1)) - Z.max(1)
            df = -np.einsum("dij,ij->di", dK + dg[:, None, :], P)
        else:
            Z = K + f[:, None]
            Q = np.exp(Z - Z.max(0, keepdims=True))
            Q /= Q.sum(0, keepdims=True)
            g = -np.log(m_c) - np.log(np.exp(Z - Z.max(0, keepdims=True)).sum(0)) - Z.max(0)
            dg = -np.einsum("dij,ij->dj", dK + df[:, :, None], Q)
    A = n_r * np.exp(K + f[:, None] + g[None, :])
    dA = A[None] * (dK + df[:, :, None] + dg[:, None, :])
    return A, np.where(vis, dA, 0.0)


def normalizer_vjp(scores, grad, normalizer="softmax", *, mask=None, causal=False,
                   window=None, **params):
    """(d scores, {param: d param}) of sum(grad * normalizer(scores)) for
    finite scores and scalar parameters, row by row over the visible keys
    (fully masked rows give 0)."""
    s, vis, row = _prepare(scores, causal, window, mask)
    g = np.broadcast_to(np.asarray(grad, dtype=np.float64), s.shape)
    ds = np.zeros(s.shape)
    names = {"softmax": ["temperature"], "softmax_sink": ["sink"], "ssmax": ["c"],
             "sigmoid": ["bias"] if params.get("bias") is not None else [],
             "relu": ["power"], "polynomial": ["power"], "softpick": ["eps"],
             "nap": ["gain", "bias", "eps"], "affine_softmax": ["a", "b"],
             "entmax": ["alpha"], "sinkhorn": ["eps"]}.get(normalizer, [])
    dp = {k: 0.0 for k in names}
    for idx in np.ndindex(s.shape[:-2]):
        if normalizer == "sinkhorn":
            S, V = s[idx], vis[idx]
            rows = V.any(1)
            cols = V.any(0)
            _, dA = _sinkhorn_jvp_all(S[rows][:, cols], V[rows][:, cols],
                                      int(params.get("n_iter", 5)), float(params.get("eps", 1.0)))
            gg = g[idx][rows][:, cols]
            d = np.einsum("dij,ij->d", dA, gg)
            sub = np.zeros((rows.sum(), cols.sum()))
            sub[...] = d[:-1].reshape(sub.shape)
            full = np.zeros(S.shape)
            full[np.ix_(rows, cols)] = sub
            ds[idx] = np.where(V, full, 0.0)
            dp["eps"] += d[-1]
            continue
        for i in range(s.shape[-2]):
            v = vis[idx + (i,)]
            if not v.any():
                continue
            x = s[idx + (i,)][v]
            if normalizer == "stickbreaking":
                ds[idx + (i,)][v] = stickbreaking_vjp_row(
                    x, g[idx + (i,)][v], np.flatnonzero(v), i + s.shape[-1] - s.shape[-2],
                    **params)
                continue
            J, dth = _row_jacobian(normalizer, x, params)
            gi = g[idx + (i,)][v]
            ds[idx + (i,)][v] = J.T @ gi
            for k in names:
                dp[k] += float(gi @ dth[k])
    return (ds[..., 0, :] if row else ds), dp

# ---- end section: gradients ----


# ---- section: gradients of the linear family ----


def _suffix_pad(x, axis):
    """Inclusive suffix sums along ``axis`` with one extra zero slot at the end."""
    x = np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, 1)
    return np.pad(x, pad)


def _lin_phi_and_grad(x, fmap):
    if fmap == "elu1":
        ex = np.exp(np.minimum(x, 0.0))
        return np.where(x > 0, x + 1.0, ex), np.where(x > 0, 1.0, ex)
    if fmap == "relu":
        return np.maximum(x, 0.0), (x > 0).astype(np.float64)
    return x, np.ones_like(x)


def kernel_linear_vjp(Qf, Kf, v, G, t, eps, normalize=True):
    """VJP of o_i = Qf_i^T S_i / (Qf_i^T z_i + eps) (normalize) or
    o_i = Qf_i^T S_i, with S_i = sum_{j < t_i} Kf_j v_j^T, z_i = sum_{j < t_i} Kf_j:
    returns dQf, dKf, dv, deps.

      dnum_i = G_i / den_i,  dden_i = -<G_i, o_i> / den_i
      dQf_i = S_i dnum_i + z_i dden_i
      dS_j = sum_{i: t_i > j} Qf_i dnum_i^T,  dz_j = sum_{i: t_i > j} dden_i Qf_i
      dKf_j = dS_j v_j + dz_j,  dv_j = dS_j^T Kf_j
    """
    m = Kf.shape[-2]
    zero = np.zeros(Kf.shape[:-2] + (1,) + Kf.shape[-1:])
    Sc = np.concatenate([zero[..., None] * v[..., :1, None, :],
                         np.cumsum(Kf[..., :, :, None] * v[..., :, None, :], axis=-3)], axis=-3)
    zc = np.concatenate([zero, np.cumsum(Kf, axis=-2)], axis=-2)
    S = np.take(Sc, t, axis=-3)                       # (..., n, d, e)
    z = np.take(zc, t, axis=-2)                       # (..., n, d)
    seen = (t > 0)[:, None]
    num = np.einsum("...nd,...nde->...ne", Qf, S)
    if normalize:
        den = np.einsum("...nd,...nd->...n", Qf, z)[..., None] + eps
        den = np.where(seen, den, 1.0)
        o = num / den
        dnum = np.where(seen, G / den, 0.0)
        dden = np.where(seen, -(G * o).sum(-1, keepdims=True) / den, 0.0)
    else:
        dnum = np.where(seen, G, 0.0)
        dden = np.zeros(G.shape[:-1] + (1,))
    dQf = np.einsum("...nde,...ne->...nd", S, dnum) + z * dden
    i0 = np.searchsorted(t, np.arange(m), side="right")   # first query seeing key j
    R = _suffix_pad(Qf[..., :, :, None] * dnum[..., :, None, :], axis=-3)   # (..., n+1, d, e)
    r = _suffix_pad(Qf * dden, axis=-2)                                     # (..., n+1, d)
    dS = np.take(R, i0, axis=-3)                                        # (..., m, d, e)
    dz = np.take(r, i0, axis=-2)
    dKf = np.einsum("...mde,...me->...md", dS, v) + dz
    dv = np.einsum("...mde,...md->...me", dS, Kf)
    return dQf, dKf, dv, dden.sum(axis=(-2, -1))


def linear_attention_vjp(q, k, v, g, feature_map="elu1", *, causal=False, eps=1e-6):
    """(dq, dk, dv, deps) of sum(g * linear_attention(...)) for one (n, d) matrix
    (elu1, relu, identity), by prefix / suffix sums in float64."""
    q, k, v, g = (np.asarray(a, dtype=np.float64) for a in (q, k, v, g))
    n, m = q.shape[-2], k.shape[-2]
    t = n_visible(visible(n, m, causal=causal))          # keys [0, t_i) seen by query i
    Qf, dphq = _lin_phi_and_grad(q, feature_map)
    Kf, dphk = _lin_phi_and_grad(k, feature_map)
    dQf, dKf, dv, deps = kernel_linear_vjp(Qf, Kf, v, g, t, eps)
    return dQf * dphq, dKf * dphk, dv, deps


def log_state_values(state, d, e):
    """(logZ (…, d), logS+ (…, d, e), logS- (…, d, e)) of a log_attention state
    (…, d, 4e + 2) = [M_Z, s_Z, M+ (e), s+ (e), M- (e), s- (e)] per feature."""
    st = np.asarray(state, dtype=np.float64)
    with np.errstate(divide="ignore"):
        lz = st[..., 0] + np.log(st[..., 1])
        lp = st[..., 2:2 + e] + np.log(st[..., 2 + e:2 + 2 * e])
        ln = st[..., 2 + 2 * e:2 + 3 * e] + np.log(st[..., 2 + 3 * e:2 + 4 * e])
    fix = lambda x: np.where(np.isnan(x), -np.inf, x)   # (-inf) + log 0
    return fix(lz), fix(lp), fix(ln)


def _log_prefix(x, axis):
    """Inclusive log-sum-exp prefix scans along ``axis`` with a -inf slot in
    front, so index t is the scan over the first t entries."""
    with np.errstate(invalid="ignore"):
        x = np.logaddexp.accumulate(x, axis=axis)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 0)
    return np.pad(x, pad, constant_values=-np.inf)


def _log_suffix(x, axis):
    """Inclusive log-sum-exp suffix scans along ``axis`` plus a -inf slot."""
    with np.errstate(invalid="ignore"):
        x = np.flip(np.logaddexp.accumulate(np.flip(x, axis), axis=axis), axis)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, 1)
    return np.pad(x, pad, constant_values=-np.inf)


def exp_attention_vjp(q, k, v, G, t, st=None, gst=None):
    """VJP of the exp-kernel attention o_i = sum_c e^{q_ic} S_ic / sum_c e^{q_ic} Z_ic,
    Z_ic = Z0_c + sum_{j < t_i} e^{k_jc}, S_ice = S0_ce + sum_{j < t_i} e^{k_jc} v_je,
    in log space with the values split by sign (every exponential below is of
    a number <= 0 up to rounding, or bounded by |G|).

    st: the prior state as log-values (logZ0 (d), logS+0 (d, e), logS-0 (d, e)) or None;
    gst: the log-gradients lambda = X dL/dX of the state after all m keys
    (same layout) or None.  Returns dq, dk, dv, lambda of the prior state
    (or None), and the log-values of the final state.

      pi_ic = e^{q_ic} Z_ic / den_i,  o_ice = S_ice / Z_ic,  rho_ic = e^{q_ic} / den_i
      dq_ic = pi_ic (sum_e o_ice G_ie - <G_i, o_i>)
      A_ce(j) = sum_{i: t_i > j} rho_ic G_ie,  B_c(j) = sum_{i: t_i > j} rho_ic <G_i, o_i>
      dk_jc = e^{k_jc} (sum_e v_je A_ce(j) - B_c(j)),  dv_je = sum_c e^{k_jc} A_ce(j)
    plus the terms of the state after all keys, through lambda / X.
    """
    ninf = -np.inf
    m = k.shape[-2]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lv = np.log(np.abs(v))
        lvp = np.where(v > 0, lv, ninf)
        lvn = np.where(v < 0, lv, ninf)
        # prefix log-values over the first t keys (index t), (..., m+1, d[, e])
        lZc = _log_prefix(k, axis=-2)
        lPc = _log_prefix(k[..., :, :, None] + lvp[..., :, None, :], axis=-3)
        lNc = _log_prefix(k[..., :, :, None] + lvn[..., :, None, :], axis=-3)
        if st is not None:
            lZ0, lP0, lN0 = st
            lZc = np.logaddexp(lZc, lZ0[..., None, :])
            lPc = np.logaddexp(lPc, lP0[..., None, :, :])
            lNc = np.logaddexp(lNc, lN0[..., None, :, :])
        lZ = np.take(lZc, t, axis=-2)                 # (..., n, d)
        lP = np.take(lPc, t, axis=-3)                 # (..., n, d, e)
        lN = np.take(lNc, t, axis=-3)
        a = q + lZ
        amax = np.max(a, axis=-1, keepdims=True)
        seen = np.isfinite(amax)
        amax = np.where(seen, amax, 0.0)
        lden = amax + np.log(np.sum(np.exp(a - amax), axis=-1, keepdims=True))   # (..., n, 1)
        lden = np.where(seen, lden, 0.0)
        pi = np.where(seen, np.exp(a - lden), 0.0)                               # (..., n, d)
        oc = np.exp(lP - lZ[..., None]) - np.exp(lN - lZ[..., None])             # (..., n, d, e)
        oc = np.where(np.isfinite(lZ)[..., None], oc, 0.0)
        o = np.einsum("...nd,...nde->...ne", pi, oc)
        Go = (G * o).sum(-1, keepdims=True)                                      # (..., n, 1)
        Gs = np.where(seen, G, 0.0)
        Gos = np.where(seen, Go, 0.0)
        dq = pi * (np.einsum("...nde,...ne->...nd", oc, Gs) - Gos)
        lrho = np.where(seen, q - lden, ninf)                                    # (..., n, d)
        lGp = np.where(Gs > 0, np.log(np.abs(Gs)), ninf)
        lGn = np.where(Gs < 0, np.log(np.abs(Gs)), ninf)
        lBp = np.where(Gos > 0, np.log(np.abs(Gos)), ninf)
        lBn = np.where(Gos < 0, np.log(np.abs(Gos)), ninf)
        i0 = np.searchsorted(t, np.arange(m), side="right")
        lAp = np.take(_log_suffix(lrho[..., :, :, None] + lGp[..., :, None, :], -3), i0, axis=-3)
        lAn = np.take(_log_suffix(lrho[..., :, :, None] + lGn[..., :, None, :], -3), i0, axis=-3)
        lBps = np.take(_log_suffix(lrho + lBp, -2), i0, axis=-2)                # (..., m, d)
        lBns = np.take(_log_suffix(lrho + lBn, -2), i0, axis=-2)
        kk = k[..., :, :, None]
        eA = np.exp(kk + lAp) - np.exp(kk + lAn)                                 # e^{k_jc} A_ce(j)
        eB = np.exp(k + lBps) - np.exp(k + lBns)                                 # e^{k_jc} B_c(j)
        dk = np.einsum("...mde,...me->...md", eA, v) - eB
        dv = eA.sum(-2)
        lZf, lPf, lNf = lZc[..., m, :], lPc[..., m, :, :], lNc[..., m, :, :]
        lam0 = None
        if st is not None:
            # every query that sees anything sees the prior state:
            # lambda0 = X0 dL/dX0 = X0 sum_i rho_i (dden or dnum terms)
            lamZ = -np.einsum("...nd,...n->...d", np.exp(lZ0[..., None, :] + lrho), Gos[..., 0])
            eP0 = np.exp(lP0[..., None, :, :] + lrho[..., :, :, None])           # (..., n, d, e)
            eN0 = np.exp(lN0[..., None, :, :] + lrho[..., :, :, None])
            lam0 = [lamZ, np.einsum("...nde,...ne->...de", eP0, Gs),
                    -np.einsum("...nde,...ne->...de", eN0, Gs)]
        if gst is not None:
            gZ, gP, gN = gst
            # the final state X_f = X0 + all keys: dL/dX_f = lambda_f / X_f
            fZ, fP, fN = np.isfinite(lZf), np.isfinite(lPf), np.isfinite(lNf)
            cZ = np.where(fZ, gZ, 0.0)
            lZs = np.where(fZ, lZf, 0.0)
            lPs = np.where(fP, lPf, 0.0)[..., None, :, :]
            lNs = np.where(fN, lNf, 0.0)[..., None, :, :]
            cP = np.where(fP, gP, 0.0)[..., None, :, :]
            cN = np.where(fN, gN, 0.0)[..., None, :, :]
            dk = dk + np.exp(k - lZs[..., None, :]) * cZ[..., None, :]
            dk = dk + (cP * np.exp(kk + lvp[..., :, None, :] - lPs)).sum(-1) \
                    + (cN * np.exp(kk + lvn[..., :, None, :] - lNs)).sum(-1)
            # dS+/dv_je = e^{k_jc} (v > 0), dS-/dv_je = -e^{k_jc} (v < 0); at
            # v = 0 the derivative of S+ - S- through the stream that has mass
            wP = cP * np.exp(kk - lPs)                                          # (..., m, d, e)
            wN = cN * np.exp(kk - lNs)
            v3 = v[..., :, None, :]
            use_p = (v3 > 0) | ((v3 == 0) & fP[..., None, :, :])
            dv = dv + np.where(use_p, wP, -wN).sum(-2)
            if lam0 is not None:
                lam0[0] = lam0[0] + cZ * np.exp(lZ0 - lZs)
                lam0[1] = lam0[1] + np.where(fP, gP * np.exp(lP0 - np.where(fP, lPf, 0.0)), 0.0)
                lam0[2] = lam0[2] + np.where(fN, gN * np.exp(lN0 - np.where(fN, lNf, 0.0)), 0.0)
    return dq, dk, dv, lam0, (lZf, lPf, lNf)


def log_attention_vjp(q, k, v, g, *, causal=False, state=None, grad_state=None):
    """(dq, dk, dv, dstate) of log_attention for one matrix, in log space with
    NumPy's logaddexp scans (dstate in the state's (M, s) pair layout)."""
    q, k, v, g = (np.asarray(a, dtype=np.float64) for a in (q, k, v, g))
    n, d = q.shape
    m, e = v.shape
    t = n_visible(visible(n, m, causal=causal))          # keys [0, t_i) seen by query i
    st = None if state is None else log_state_values(state, d, e)
    gst = None
    if grad_state is not None:
        gs = np.asarray(grad_state, dtype=np.float64)
        gst = (gs[..., 0], gs[..., 2:2 + e], gs[..., 2 + 2 * e:2 + 3 * e])
    dq, dk, dv, lam0, _ = exp_attention_vjp(q, k, v, g, t, st, gst)
    if state is None:
        return dq, dk, dv, None
    s0 = np.asarray(state, dtype=np.float64)
    out = np.zeros(s0.shape)
    for lam, (sm, ss) in zip(lam0, [(slice(0, 1), slice(1, 2)),
                                    (slice(2, 2 + e), slice(2 + e, 2 + 2 * e)),
                                    (slice(2 + 2 * e, 2 + 3 * e), slice(2 + 3 * e, 2 + 4 * e))]):
        lam = lam[..., None] if lam.ndim == 1 else lam
        out[..., sm] = lam
        sv = s0[..., ss]
        out[..., ss] = np.where(sv != 0, lam / np.where(sv != 0, sv, 1.0), 0.0)
    return dq, dk, dv, out


def zeros_attention_vjp(q, k, v, s, gate_linear, gate_softmax, g, *, causal=True):
    """(dq, dk, dv, ds, d gate_linear, d gate_softmax) of zeros_attention for
    scalar gates, by prefix sums of k v^T, s k v^T, e^(s - max s) k v^T and
    their suffix sums over the queries (moderate logit ranges only)."""
    q, k, v, s, G = (np.asarray(x, dtype=np.float64) for x in (q, k, v, s, g))
    n, m = q.shape[-2], k.shape[-2]
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2], s.shape[:-1], G.shape[:-2])
    Q = np.broadcast_to(q, lead + q.shape[-2:])
    K = np.broadcast_to(k, lead + k.shape[-2:])
    V = np.broadcast_to(v, lead + v.shape[-2:])
    S = np.broadcast_to(s, lead + s.shape[-1:])
    G = np.broadcast_to(np.asarray(g, dtype=np.float64), lead + q.shape[-2:-1] + v.shape[-1:])
    a1, ah = float(gate_linear), float(gate_softmax)
    t = n_visible(visible(n, m, causal=causal))          # keys [0, t_i) seen by query i
    _suffix = _suffix_pad
    seen = t > 0
    T = np.maximum(t, 1).astype(np.float64)
    M = S.max(-1, keepdims=True) if m else np.zeros(tuple(lead) + (1,))
    E = np.exp(S - M)
    pad = lambda x: np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, -1)], -1)
    sbar = np.take(pad(S), t, axis=-1) / T
    Zt = np.take(pad(E), t, axis=-1)
    Zt = np.where(seen, Zt, 1.0)
    beta = np.where(seen, (a1 - ah) / T, 0.0)
    alpha = np.where(seen, -(a1 - ah) * sbar / T - ah / T, 0.0)
    gam = np.where(seen, ah / Zt, 0.0)
    kv = K[..., :, :, None] * V[..., :, None, :]                                  # (..., m, d, e)
    pad3 = lambda x: np.concatenate([np.zeros(x.shape[:-3] + (1,) + x.shape[-2:]),
                                     np.cumsum(x, -3)], -3)
    F = np.take(pad3(kv), t, axis=-3)
    Gm = np.take(pad3(S[..., :, None, None] * kv), t, axis=-3)
    Hm = np.take(pad3(E[..., :, None, None] * kv), t, axis=-3)
    U = alpha[..., None, None] * F + beta[..., None, None] * Gm + gam[..., None, None] * Hm
    dq = np.einsum("...nde,...ne->...nd", U, G)
    qFo = lambda X: np.einsum("...nd,...nde,...ne->...n", Q, X, G)
    dal, dbe, dga = qFo(F), qFo(Gm), qFo(Hm)
    W = Q[..., :, :, None] * G[..., :, None, :]                                   # (..., n, d, e)
    i0 = np.searchsorted(t, np.arange(m), side="right")
    Da = np.take(_suffix(alpha[..., None, None] * W, -3), i0, axis=-3)
    Db = np.take(_suffix(beta[..., None, None] * W, -3), i0, axis=-3)
    Dg = np.take(_suffix(gam[..., None, None] * W, -3), i0, axis=-3)
    D = Da + S[..., :, None, None] * Db + E[..., :, None, None] * Dg              # (..., m, d, e)
    dk = np.einsum("...mde,...me->...md", D, V)
    dv = np.einsum("...mde,...md->...me", D, K)
    ds = np.einsum("...md,...mde,...me->...m", K, Db + E[..., :, None, None] * Dg, V)
    # through sbar_t and Z_t
    ds += np.take(_suffix(np.where(seen, dal * (-(a1 - ah) / T) / T, 0.0), -1), i0, axis=-1)
    dZ = np.where(seen, -dga * ah / Zt ** 2, 0.0)
    ds += E * np.take(_suffix(dZ, -1), i0, axis=-1)
    dg1 = np.where(seen, dal * (-sbar / T) + dbe / T, 0.0).sum(-1)
    dgh = np.where(seen, dal * (sbar - 1.0) / T - dbe / T + dga / Zt, 0.0).sum(-1)
    return dq, dk, dv, ds, dg1.sum(), dgh.sum()


def soft_attention_vjp_one(q, v, lm, seg, iters, G):
    """VJP of SOFT's Nystrom form for one matrix: (dq, dv, dlandmarks)."""
    n, d = q.shape
    gm = 0.5 / np.sqrt(d) if d > 0 else 0.0
    if seg is not None:
        lm = np.stack([q[sg].mean(0) for sg in seg])
    A = np.exp(-((q[:, None, :] - lm[None, :, :]) ** 2).sum(-1) * gm)        # (n, L)
    B = np.exp(-((lm[:, None, :] - lm[None, :, :]) ** 2).sum(-1) * gm)       # (L, L)
    col, row = B.sum(0), B.sum(1)
    b_star, r_star = int(np.argmax(col)), int(np.argmax(row))
    N1, Ni = col[b_star], row[r_star]
    c = 1.0 / (N1 * Ni)       # V_0 = B / (||B||_1 ||B||_inf), B > 0
    Vs = [c * B]
    for _ in range(iters):
        Vk = Vs[-1]
        Vs.append(2 * Vk - Vk @ B @ Vk)
    Y = A.T @ v
    Wt = Vs[-1] @ Y
    dA = G @ Wt.T
    dWt = A.T @ G
    dVk = dWt @ Y.T
    dY = Vs[-1].T @ dWt
    dA += v @ dY.T
    dv = A @ dY
    dB = np.zeros_like(B)
    for k in range(iters - 1, -1, -1):
        Vk = Vs[k]
        dB -= Vk.T @ dVk @ Vk.T
        dVk = 2 * dVk - dVk @ (B @ Vk).T - (Vk @ B).T @ dVk
    dB += c * dVk
    dc = float(np.sum(dVk * B))
    dB[:, b_star] += dc * (-c / N1)
    dB[r_star, :] += dc * (-c / Ni)
    # Gaussian kernels: d exp(-gm |x - y|^2) / dx = -2 gm (x - y) exp(...)
    wA = dA * A
    dq = -2 * gm * (wA.sum(1)[:, None] * q - wA @ lm)
    dlm = 2 * gm * (wA.T @ q - wA.sum(0)[:, None] * lm)
    wB = (dB + dB.T) * B
    dlm += -2 * gm * (wB.sum(1)[:, None] * lm - wB @ lm)
    if seg is not None:
        for a, sg in enumerate(seg):
            dq[sg] += dlm[a] / len(sg)
        dlm = None
    return dq, dv, dlm

# ---- end section: gradients of the linear family ----
