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
    """Stable softpick of papers A13 with m = max s:
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
        mu = x.sum(axis=-1, keepdims=True) / n_i
        dev = np.where(vis, x - mu, 0.0)
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
    """Log-domain Sinkhorn (Sinkformers, papers.md A5): K = (s - max_j s)/eps, alternate
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
# (helper H3 writes here)

# ---- end section: attention ----


# ---- section: linear-time attention ----
# (helper H4 writes here)

# ---- end section: linear-time attention ----


# ---- section: diagnostics ----
# (helper H5 writes here)

# ---- end section: diagnostics ----
