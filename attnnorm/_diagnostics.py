"""Diagnostics of attention weights and scores (DESIGN "Diagnostics";
definitions papers.md section B).

Row diagnostics of weights ``a (..., n, m)`` return ``(..., n)``; matrix
diagnostics return ``(...)``.  Those that depend on which keys a query sees
(normalised entropy, support, column and sink mass, margins, Jacobians of the
length-aware maps) take the shared ``mask=``, ``causal=`` and ``window=``
options with the normalizers' semantics (``causal=True`` / ``"bottom_right"``:
key ``j`` visible to query ``i`` iff ``j <= i + (m - n)``; ``"top_left"``: iff
``j <= i``); masked entries are ignored.

Conventions (documented choices):

* ``0 log 0 = 0``.  A row with no visible key, or whose weights are all 0
  ("no mass"), or that holds both ``+inf`` and ``-inf`` weights, has no
  entropy, effective support or participation ratio: NaN.  Streamed
  (``diagnose``, ``AttentionStats``) and materialised diagnostics agree.
  Entropy sums over the positive weights only (negative weights, e.g. NAP's,
  have no ``a log a``).
* ``entropy(normalized=True)`` divides by ``log n_i``; with ``n_i = 1`` that is
  0/0 and the result is NaN.
* ``column_mass`` of a key that no query sees is NaN.

``diagnose(q, k, ...)`` answers the per-query questions (entropy, max weight,
sink weight, margin, support) and the per-key column mass from ``q`` and ``k``
in one streamed pass, without the ``n x m`` matrix.
"""
from collections import namedtuple

import numpy as np

from . import _core
from ._common import (causal_code, check_param_broadcast, int_scalar, core_shape, loop_dtype,
                      mask_operand, real_dtype_of, real_param, scale_param, visible_bounds,
                      window_bounds)

__all__ = ["entropy", "effective_support", "participation_ratio", "support_size",
           "column_mass", "sink_mass", "separation_margin", "row_residual",
           "column_residual", "negative_mass", "frobenius_norm", "rank_collapse",
           "jacobian_norm", "vanishing_bounds", "selectivity_distance",
           "geometric_separability", "attention_norms", "mixing_ratios", "diagnose",
           "Diagnosis"]

# kinds of the diag_row gufunc (csrc/diagnostics.h)
_RD_ENTROPY, _RD_ENTROPY_NORM, _RD_EFF_SUPPORT, _RD_PARTICIPATION = 0, 1, 2, 3
_RD_NEG_MASS, _RD_MARGIN = 4, 5
# kinds and ords of diag_matrix
_MD_ROW, _MD_COL, _MD_FRO, _MD_RANK = 0, 1, 2, 3
_ORDS = {1: 1, 2: 2, np.inf: 3, "inf": 3}
# normalizer codes of diag_jacobian_norm
_JN = {"softmax": 0, "sparsemax": 1, "entmax": 2, "sigmoid": 3, "relu": 4, "polynomial": 5,
       "ssmax": 6, "softmax_sink": 7}


def _matrix_operand(name, a, ndim=2):
    shape = core_shape(name, a, 1)
    if isinstance(a, np.ndarray) and a.dtype.kind in "biu":
        a = a.astype(np.float64)   # else uint8/int16/bool pick the float32 loop (ints -> float64)
    if len(shape) < ndim:
        a = np.asarray(a)[None, :]
        return a, True
    return a, False


def _vis_operands(a, mask, causal, window):
    shape = np.shape(a)
    lead, (n, m) = shape[:-2], shape[-2:]
    wl, wr = window_bounds(window)
    return mask_operand(mask, lead, n, m), causal_code(causal), wl, wr


def _out_kw(out, row):
    if out is None:
        return {}
    return {"out": out[None] if row else out}


def _row_diag(a, kind, p, *, mask, causal, window, out, name="a"):
    a, row = _matrix_operand(name, a)
    mk, c, wl, wr = _vis_operands(a, mask, causal, window)
    p = real_param("p", p, dtype=real_dtype_of(a))
    res = _core.diag_row(a, mk, c, wl, wr, kind, p, **_out_kw(out, row))
    return res[0] if row else res


def entropy(a, *, normalized=False, base=None, mask=None, causal=False, window=None, out=None):
    """Attention entropy per row (papers.md B2).

    ``H(a_i) = -sum_j a_ij log a_ij`` over the visible keys, with ``0 log 0 = 0``,
    in nats (``base=2`` gives bits).  ``normalized=True`` returns ``H / log n_i``
    (ASEntmax's dispersion; 1 means uniform), ``n_i`` the number of visible keys.
    NaN for a row with no visible key or no mass, and for ``normalized`` with
    ``n_i = 1``.
    """
    if normalized and base is not None:
        raise ValueError(f"base must be None when normalized=True (the ratio has no unit); got {base!r}")
    if base is None:
        inv = 1.0
    else:
        b = real_param("base", base, exclusive_min=0.0)
        if np.any(b == 1) or np.any(np.isinf(b)):
            raise ValueError(f"base must be > 0, != 1 and finite; got {base!r}")
        inv = 1.0 / np.log(b)
    kind = _RD_ENTROPY_NORM if normalized else _RD_ENTROPY
    return _row_diag(a, kind, inv, mask=mask, causal=causal, window=window, out=out)


def effective_support(a, *, mask=None, causal=False, window=None, out=None):
    """Effective number of attended keys per row, ``exp(H(a_i))`` (perplexity,
    papers.md B2).  NaN where the entropy is undefined."""
    return _row_diag(a, _RD_EFF_SUPPORT, 1.0, mask=mask, causal=causal, window=window, out=out)


def participation_ratio(a, *, mask=None, causal=False, window=None, out=None):
    """Participation ratio per row, ``1 / sum_j a_ij^2`` (papers.md B2); NaN for a
    row with no visible key or no mass."""
    return _row_diag(a, _RD_PARTICIPATION, 1.0, mask=mask, causal=causal, window=window, out=out)


def negative_mass(a, *, mask=None, causal=False, window=None, out=None):
    """Negative mass per row, ``sum_j min(a_ij, 0)`` (papers.md B1; NAP, ZeroS,
    polynomial attention).  0 for a row with no visible key."""
    return _row_diag(a, _RD_NEG_MASS, 1.0, mask=mask, causal=causal, window=window, out=out)


def separation_margin(scores, *, mask=None, causal=False, window=None, out=None):
    """Top-1 minus top-2 score per row over the visible keys (#1's score gap).

    Masked entries are ignored; NaN if the row sees fewer than 2 keys or has a
    NaN score; ``+inf`` if only one visible score is finite (the rest ``-inf``);
    ``inf - inf`` (two ``+inf`` scores) is NaN."""
    return _row_diag(scores, _RD_MARGIN, 1.0, mask=mask, causal=causal, window=window,
                     out=out, name="scores")


def support_size(a, *, threshold=0.0, mask=None, causal=False, window=None, out=None):
    """Number of visible weights ``a_ij > threshold`` per row (int64;
    papers.md B3; threshold 0 counts the support of entmax/softpick)."""
    a, row = _matrix_operand("a", a)
    mk, c, wl, wr = _vis_operands(a, mask, causal, window)
    thr = real_param("threshold", threshold, dtype=real_dtype_of(a))
    res = _core.diag_support(a, mk, c, wl, wr, thr, **_out_kw(out, row))
    return res[0] if row else res


def column_mass(a, *, mask=None, causal=False, window=None, out=None):
    """Per key ``j``: the mean weight ``(1/|Q_j|) sum_{i in Q_j} a_ij`` over the
    queries ``Q_j`` that can see it (papers.md B8).  Returns ``(..., m)``; NaN for
    a key no query sees."""
    a, _ = _matrix_operand("a", a)
    mk, c, wl, wr = _vis_operands(a, mask, causal, window)
    kw = {} if out is None else {"out": out}
    return _core.diag_column_mass(a, mk, c, wl, wr, **kw)


def sink_mass(a, *, sink=0, mask=None, causal=False, window=None, out=None):
    """``column_mass`` at the sink key (default 0, the BOS token; papers.md B8):
    the mean weight the queries that see it put on it.  Returns ``(...)``.
    Computes only that column."""
    a, _ = _matrix_operand("a", a)
    m = np.shape(a)[-1]
    s = int_scalar("sink", sink, low=-m, high=m - 1,
                   what=f"an integer key index in [-{m}, {m})") % m
    mk, c, wl, wr = _vis_operands(a, mask, causal, window)
    kw = {} if out is None else {"out": out}
    return _core.diag_sink_mass(a, mk, c, wl, wr, s, **kw)


def _ord_code(ord):
    try:
        return _ORDS[ord]
    except (KeyError, TypeError):
        raise ValueError(f"ord must be 1, 2 or inf; got {ord!r}") from None


def row_residual(a, *, ord=2, out=None):
    """Row-normalisation residual ``||a 1 - 1||_ord`` per matrix (papers.md B1;
    ``ord`` = 1, 2 or ``inf``).  Returns ``(...)``."""
    a, _ = _matrix_operand("a", a)
    kw = {} if out is None else {"out": out}
    return _core.diag_matrix(a, _MD_ROW, _ord_code(ord), **kw)


def column_residual(a, *, ord=2, out=None):
    """Doubly-stochastic residual ``||a^T 1 - (n/m) 1||_ord`` per matrix
    (Sinkformers, papers.md B1).  Returns ``(...)``."""
    a, _ = _matrix_operand("a", a)
    kw = {} if out is None else {"out": out}
    return _core.diag_matrix(a, _MD_COL, _ord_code(ord), **kw)


def frobenius_norm(a, *, out=None):
    """``||a||_F`` per matrix (#3, papers.md B7).  For row-stochastic ``n x m``:
    ``sqrt(n/m) <= ||a||_F <= sqrt(n)``."""
    a, _ = _matrix_operand("a", a)
    kw = {} if out is None else {"out": out}
    return _core.diag_matrix(a, _MD_FRO, 2, **kw)


def rank_collapse(x, *, out=None):
    """Rank-collapse ratio ``||x - 1 xbar^T||_F / ||x||_F`` of any ``(..., n, e)``
    array, ``xbar`` the mean row (papers.md B15).  0 when every row is equal;
    NaN for ``x = 0``."""
    x, _ = _matrix_operand("x", x)
    kw = {} if out is None else {"out": out}
    return _core.diag_matrix(x, _MD_RANK, 2, **kw)


# --------------------------------------------------------------------------
# Jacobian norms
# --------------------------------------------------------------------------


def _softpick_jacobian(a, scores, ord, eps, mask, causal, window):
    """Softpick Jacobian (papers.md A13), derived here.

    With u_j = e^{x_j} - 1 over the visible keys and D = sum_j |u_j| + eps,
    a_i = relu(u_i) / D, so
        dA_i/dx_k = [u_i > 0] e^{x_i} delta_ik / D - a_i sign(u_k) e^{x_k} / D,
    i.e. J = diag(g) - a w^T with g_i = [u_i > 0] e^{x_i} / D and
    w_k = sign(u_k) e^{x_k} / D (masked keys: no row, no column).  ||J||_F has
    the closed form sum g^2 - 2 sum g a w + |a|^2 |w|^2; ||J||_2 (J is not
    symmetric) is computed by an SVD of the m x m matrix of each row.
    Evaluated in the shifted form (factor e^{-max x} cancels) in float64."""
    from ._reference import visible
    s = np.asarray(scores, dtype=np.float64)
    n, m = s.shape[-2:]
    vis = np.broadcast_to(visible(n, m, causal=causal, window=window, mask=mask), s.shape)
    z = np.where(vis, s, -np.inf)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        mx = np.max(z, axis=-1, keepdims=True)
        mx = np.where(np.isfinite(mx), mx, 0.0)
        ex = np.where(vis, np.exp(z - mx), 0.0)           # e^{x - M}
        u = np.where(vis, ex - np.exp(-mx), 0.0)         # (e^x - 1) e^{-M}
        D = np.abs(u).sum(-1, keepdims=True) + eps * np.exp(-mx)
        g = np.where(u > 0, ex / D, 0.0)
        w = np.sign(u) * ex / D
        aa = np.where(u > 0, u / D, 0.0)
    if ord == "fro":
        sq = (g * g).sum(-1) - 2 * (g * aa * w).sum(-1) + (aa * aa).sum(-1) * (w * w).sum(-1)
        res = np.sqrt(np.maximum(sq, 0.0))
    else:
        J = g[..., :, None] * np.eye(m) - aa[..., :, None] * w[..., None, :]
        res = np.linalg.norm(np.nan_to_num(J), 2, axis=(-2, -1))
    res = np.where(vis.any(-1) & ~np.isnan(s).any(-1, where=vis), res, np.nan)
    return res.astype(real_dtype_of(a), copy=False)


def _normalizer_params(normalizer, dt, params):
    """The normalizer's real parameters, validated by the same check as the
    normalizer itself (attnnorm._normalizers.PARAMS)."""
    from ._normalizers import PARAMS
    try:
        reals, _ = PARAMS[normalizer](dt, **params)
    except TypeError:
        raise ValueError(f"unexpected parameters for {normalizer}: {sorted(params)}") from None
    return reals


def jacobian_norm(a, normalizer="softmax", ord=2, *, mask=None, causal=False, window=None,
                  scores=None, out=None, **params):
    """Exact norm of the normaliser's Jacobian ``d a_i / d s_i`` at each row
    (#1 and #3; papers.md B6, B7), computed from the weights ``a``.

    ``ord=2`` (spectral) or ``"fro"``.  Supported normalizers and formulas
    (``s`` the visible scores, ``n_i`` their number):

    * ``softmax`` (``temperature=T``): ``J = (diag(a) - a a^T) / T``; ``||J||_2``
      is its largest eigenvalue, found exactly from the secular equation of the
      rank-one downdate (no m x m matrix); ``||J||_F^2 = (sum a^2 - 2 sum a^3 +
      (sum a^2)^2) / T^2``.  Supremum of ``||J||_2``: ``1/(2T)``.
    * ``sparsemax``: ``J = diag(s) - s s^T/|S|`` (a projection): 1 if the support
      has >= 2 keys else 0; ``||J||_F = sqrt(|S| - 1)``.
    * ``entmax`` (``alpha``): ``J = diag(s) - s s^T / sum s`` with
      ``s = a^(2 - alpha)`` on the support (secular equation again).
    * ``sigmoid``: ``diag(a (1 - a))``.
    * ``relu`` (``power=p``): ``diag(p relu(s)^(p-1) / n_i)`` with
      ``relu(s) = (n_i a)^(1/p)``.
    * ``polynomial`` (``power=p``): ``diag(p |s|^(p-1) / sqrt(n_i))`` with
      ``|s| = (sqrt(n_i) |a|)^(1/p)``.
    * ``softpick`` (``eps``): needs ``scores=`` (the weights do not determine
      ``e^s`` where they are 0); see ``_softpick_jacobian`` for the derivation;
      ``ord=2`` by SVD per row (float64 NumPy, small m).

    NaN for a row with no visible key or a NaN weight.
    """
    if ord not in (2, "fro"):
        raise ValueError(f"ord must be 2 or 'fro'; got {ord!r}")
    if normalizer == "softpick":
        if scores is None:
            raise ValueError("jacobian_norm(normalizer='softpick') needs scores= (the softpick "
                             "Jacobian depends on exp(s) where the weight is 0)")
        (eps,) = _normalizer_params("softpick", np.float64, params)
        res = _softpick_jacobian(a, scores, ord, float(eps), mask, causal, window)
        if out is not None:
            out[...] = res
            return out
        return res
    if normalizer not in _JN:
        raise ValueError(f"normalizer must be one of {sorted(_JN) + ['softpick']}; got {normalizer!r}")
    dt = real_dtype_of(a)
    reals = _normalizer_params(normalizer, dt, params)
    # J's parameter: temperature, c, alpha or power (the first real); the
    # weights alone determine J for softmax_sink (sink) and sigmoid (bias)
    p = reals[0] if normalizer in ("softmax", "ssmax", "entmax", "relu", "polynomial") \
        else np.asarray(1.0, dtype=dt)
    a, row = _matrix_operand("a", a)
    mk, c, wl, wr = _vis_operands(a, mask, causal, window)
    res = _core.diag_jacobian_norm(a, mk, c, wl, wr, _JN[normalizer], ord == "fro", p,
                                   **_out_kw(out, row))
    return res[0] if row else res


# --------------------------------------------------------------------------
# Bounds and geometry from q, k and values
# --------------------------------------------------------------------------


def _n_visible(n, m, causal, window, mask, lead=()):
    """n_i without building an n x m mask unless a mask is given."""
    lo, hi = visible_bounds(n, m, causal, window)
    cnt = hi - lo
    if mask is None:
        return cnt
    mk = mask_operand(mask, lead, n, m)
    j = np.arange(m)
    inrange = (j[None, :] >= lo[:, None]) & (j[None, :] < hi[:, None])
    return (mk & inrange).sum(-1)


def vanishing_bounds(q, k, *, temperature=1.0, mask=None, causal=False, window=None):
    """Per-row bounds of #1's Corollary 1 (papers.md B4) for softmax attention.

    With ``Delta_i = ||q_i||_2 * max_j ||k_j||_2`` and ``L_i = n_i`` visible keys,
    every weight of row ``i`` satisfies
    ``exp(-2 Delta_i / T) / L_i <= a_ij <= exp(2 Delta_i / T) / L_i``
    (the scores are ``q_i . k_j`` unscaled; pass ``q * scale`` for scaled
    attention).  Returns ``(lower, upper)``, each ``(..., n)``; NaN for a row
    with no visible key.  O((n + m) d), no scores are formed.
    """
    dt = loop_dtype(q=q, k=k)
    t = real_param("temperature", temperature, dtype=dt, positive=True)
    q = np.asarray(q)
    k = np.asarray(k)
    if q.ndim < 2 or k.ndim < 2:
        raise ValueError(f"q and k must be (..., n, d) and (..., m, d); got shapes {q.shape}, {k.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same feature size d; got {q.shape[-1]} and {k.shape[-1]}")
    n, m = q.shape[-2], k.shape[-2]
    try:
        lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    except ValueError:
        raise ValueError(f"q {q.shape} and k {k.shape} leading axes do not broadcast") from None
    qn = np.linalg.norm(q.astype(dt, copy=False), axis=-1)
    kmax = np.linalg.norm(k.astype(dt, copy=False), axis=-1).max(axis=-1, initial=0.0)
    delta = qn * kmax[..., None]
    L = _n_visible(n, m, causal, window, mask, lead).astype(dt)
    t = np.asarray(t)[..., None] if np.ndim(t) else t
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lower = np.exp(-2 * delta / t) / L
        upper = np.exp(2 * delta / t) / L
    lower = np.where(L > 0, lower, np.nan)
    upper = np.where(L > 0, upper, np.nan)
    return lower, upper


def _top_split(a, x, top):
    """Context s = sum over the top-N weights of a_i x_i and rest r (#1, B5)."""
    a = np.asarray(a)
    x = np.asarray(x)
    m = a.shape[-1]
    top = int_scalar("top", top, low=0, high=m,
                     what=f"an integer in [0, {m}] (the number of keys)")
    if x.shape[-2] != m:
        raise ValueError(f"x must be (..., m, e) with m = {m} keys; got shape {x.shape}")
    dt = np.result_type(real_dtype_of(a), real_dtype_of(x))
    a = a.astype(dt, copy=False)
    x = x.astype(dt, copy=False)
    if top == 0:
        idx = np.zeros(a.shape[:-1] + (0,), dtype=np.intp)
    else:
        # stable order: ties broken by the smaller key index
        idx = np.argsort(-a, axis=-1, kind="stable")[..., :top]
    at = np.take_along_axis(a, idx, axis=-1)                          # (..., n, N)
    xb = np.broadcast_to(x, np.broadcast_shapes(x.shape[:-2], a.shape[:-2]) + x.shape[-2:])
    xt = np.take_along_axis(xb[..., None, :, :], idx[..., :, :, None], axis=-2) \
        if idx.shape[-1] else np.zeros(a.shape[:-1] + (0, x.shape[-1]), dt)
    s = np.einsum("...nk,...nke->...ne", at, xt)
    total = a @ xb
    return s, total - s, idx, xt


def selectivity_distance(a, x, top):
    """Selectivity distance of #1 (papers.md B5): with ``I_N`` the ``top``
    largest weights of row ``i`` (ties: smaller key index first),
    ``||sum_{j not in I_N} a_ij x_j - sum_{j in I_N} a_ij x_j||_2``.
    ``a (..., n, m)``, ``x (..., m, e)`` -> ``(..., n)``."""
    s, r, _, _ = _top_split(a, x, top)
    return np.linalg.norm(r - s, axis=-1)


def geometric_separability(a, x, top):
    """Fraction of the top-``N`` tokens that are separable around the context
    (#1's "geometric separability", papers.md B5).

    The paper's exact radius is unverified (its Algorithm 4 defines the
    measurement), so this implements the following documented definition:
    with the context ``s = sum_{j in I_N} a_ij x_j`` and its direction
    ``u = s / ||s||``, a top token ``j in I_N`` is *separable* if its
    projection exceeds that of every non-top token,
    ``x_j . u > max_{k not in I_N} x_k . u``, i.e. a threshold along the
    context direction tells it apart from all unselected tokens.  Returns the
    fraction per row ``(..., n)`` (1 if every key is in the top set; NaN if
    ``top = 0`` or ``s = 0``)."""
    s, _, idx, xt = _top_split(a, x, top)
    x = np.asarray(x, dtype=s.dtype)
    sn = np.linalg.norm(s, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = s / sn
    proj_all = np.einsum("...ne,...me->...nm", u, np.broadcast_to(x, np.broadcast_shapes(
        x.shape[:-2], s.shape[:-2]) + x.shape[-2:]))
    m = proj_all.shape[-1]
    intop = np.zeros(proj_all.shape, dtype=bool)
    np.put_along_axis(intop, idx, True, axis=-1)
    rest_max = np.max(np.where(intop, -np.inf, proj_all), axis=-1, initial=-np.inf)
    proj_top = np.take_along_axis(proj_all, idx, axis=-1)
    with np.errstate(invalid="ignore"):
        frac = (proj_top > rest_max[..., None]).mean(axis=-1) if idx.shape[-1] else \
            np.full(proj_all.shape[:-1], np.nan)
    frac = np.where(sn[..., 0] > 0, frac, np.nan)
    if m == idx.shape[-1] and m > 0:
        frac = np.where(sn[..., 0] > 0, 1.0, np.nan)
    return frac


# --------------------------------------------------------------------------
# Norm-based analysis (Kobayashi et al. #18, papers.md B9)
# --------------------------------------------------------------------------


def attention_norms(a, fx):
    """``||a_ij f(x_j)||`` per pair (Kobayashi et al. 2020, #18; papers.md B9).

    ``a (..., n, m)`` weights of one head, ``fx (..., m, e)`` the transformed
    values ``f(x_j) = (x_j W_V + b_V) W_O`` (without the output bias).
    Returns ``(..., n, m)`` = ``|a_ij| * ||f(x_j)||``."""
    a = np.asarray(a)
    fx = np.asarray(fx)
    if fx.ndim < 2 or a.ndim < 2 or fx.shape[-2] != a.shape[-1]:
        raise ValueError(f"a must be (..., n, m) and fx (..., m, e); got shapes {a.shape}, {fx.shape}")
    dt = np.result_type(real_dtype_of(a), real_dtype_of(fx))
    return np.abs(a.astype(dt, copy=False)) * np.linalg.norm(fx.astype(dt, copy=False), axis=-1)[..., None, :]


MixingRatios = namedtuple("MixingRatios", ["attn", "attn_res", "attn_res_ln", "vectors"])


def mixing_ratios(a, fx, x, *, gamma=None, beta=None, eps=1e-12, return_vectors=False):
    """Mixing ratios of attention, attention + residual, and attention +
    residual + LayerNorm (Kobayashi et al. 2021, #18; papers.md B9, check C8).

    Inputs: ``a (..., H, n, n)`` the weights of every head, ``fx (..., H, n, e)``
    the per-head transformed values ``f_h(x_j)`` (without the output bias),
    ``x (..., n, e)`` the layer input (residual stream); ``gamma``/``beta`` the
    LayerNorm affine parameters (default 1, 0) and ``eps`` its epsilon.

    Per pair: ``w_ij = sum_h a^h_ij f_h(x_j)`` (Attn), ``v_ij = w_ij + delta_ij
    x_i`` (AttnRes), ``g(v_ij) = gamma * (v_ij - mean(v_ij)) / sqrt(Var(y_i +
    x_i) + eps)`` (AttnResLn) with ``y_i = sum_j w_ij``; exact identities:
    ``sum_j v_ij = y_i + x_i`` and ``sum_j g(v_ij) + beta = LN(y_i + x_i)``.
    Mixing ratio of row ``i``: ``||sum_{j != i} w_ij|| / (||sum_{j != i} w_ij|| +
    ||w_ii||)``, in [0, 1].  All maps are linear in ``v``, so the sums are
    formed without the ``n x n x e`` tensor unless ``return_vectors=True``,
    which adds a dict of the per-pair vectors (``attn``, ``attn_res``,
    ``attn_res_ln``, each ``(..., n, n, e)``) and ``ln_out``.

    Returns ``MixingRatios(attn, attn_res, attn_res_ln, vectors)``, ratios
    ``(..., n)``; ``vectors`` is None unless requested.
    """
    a = np.asarray(a)
    fx = np.asarray(fx)
    x = np.asarray(x)
    if a.ndim < 3 or fx.ndim < 3 or x.ndim < 2:
        raise ValueError("mixing_ratios needs a (..., H, n, n), fx (..., H, n, e), x (..., n, e); "
                         f"got shapes {a.shape}, {fx.shape}, {x.shape}")
    n = a.shape[-1]
    if a.shape[-2] != n or fx.shape[-2] != n or x.shape[-2] != n or fx.shape[-1] != x.shape[-1]:
        raise ValueError("mixing_ratios needs square weights (self-attention) and matching shapes; "
                         f"got a {a.shape}, fx {fx.shape}, x {x.shape}")
    e = x.shape[-1]
    eps = float(real_param("eps", eps, positive=True))
    dt = np.result_type(real_dtype_of(a), real_dtype_of(fx), real_dtype_of(x))
    a = a.astype(dt, copy=False)
    fx = fx.astype(dt, copy=False)
    x = x.astype(dt, copy=False)
    gam = np.ones(e, dt) if gamma is None else np.asarray(gamma, dtype=dt)
    bet = np.zeros(e, dt) if beta is None else np.asarray(beta, dtype=dt)
    # y_i = sum_j w_ij = sum_h a^h f_h ; w_ii = sum_h a^h_ii f_h(x_i)
    y = np.einsum("...hij,...hje->...ie", a, fx)
    diag_a = np.diagonal(a, axis1=-2, axis2=-1)                       # (..., H, n)
    w_ii = np.einsum("...hi,...hie->...ie", diag_a, fx)
    pre = y + x
    mu = pre.mean(-1, keepdims=True)
    sd = np.sqrt(pre.var(-1, keepdims=True) + eps)

    def g(v):
        return gam * (v - v.mean(-1, keepdims=True)) / sd

    def ratio(mix, own):
        nm, no = np.linalg.norm(mix, axis=-1), np.linalg.norm(own, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return nm / (nm + no)

    attn = ratio(y - w_ii, w_ii)
    attn_res = ratio(y - w_ii, w_ii + x)
    attn_res_ln = ratio(g(y - w_ii), g(w_ii + x))
    vectors = None
    if return_vectors:
        w = np.einsum("...hij,...hje->...ije", a, fx)
        eye = np.eye(n, dtype=dt)[..., None]
        v = w + eye * x[..., :, None, :]
        gv = gam * (v - v.mean(-1, keepdims=True)) / sd[..., None, :]
        vectors = {"attn": w, "attn_res": v, "attn_res_ln": gv,
                   "ln_out": gam * (pre - mu) / sd + bet}
    return MixingRatios(attn, attn_res, attn_res_ln, vectors)


# --------------------------------------------------------------------------
# Streamed diagnose
# --------------------------------------------------------------------------

Diagnosis = namedtuple("Diagnosis", ["entropy", "max_weight", "sink_weight", "margin",
                                     "support", "column_mass"])
Diagnosis.__doc__ = """Result of ``diagnose``: per query ``(..., n)`` entropy (nats),
max weight, sink weight (weight on key 0), margin (top-1 minus top-2 visible
score), support (int64, #weights > 0); per key ``(..., m)`` column mass."""


def _stack_params(vals, dtype, fill):
    if not vals:
        return np.full(1, fill, dtype=dtype)
    arrs = np.broadcast_arrays(*[np.asarray(v, dtype=dtype) for v in vals])
    return np.stack(arrs, axis=-1)


def diagnose(q, k, normalizer="softmax", *, scale=None, causal=False, window=None, mask=None,
             out=None, **normalizer_params):
    """Streamed per-query and per-key diagnostics of the attention weights
    ``normalizer(scale * q k^T)`` without the ``n x m`` matrix.

    ``q (..., n, d)``, ``k (..., m, d)`` (leading axes broadcast, so grouped
    queries work); ``scale=None`` means ``1/sqrt(d)``; ``causal``, ``window``,
    ``mask`` and the normalizer's keyword parameters as for ``attention``.
    One pass over key blocks per block of queries: scores are computed in
    tiles, normalised row by row with the normalizer's own row kernel, and
    reduced; memory is O(n + m) (16 m-length partial column sums plus a
    per-thread scratch of at most 8 MiB).  Results equal the materialised
    diagnostics of the same weights: ``entropy``, ``weights.max(-1)``,
    ``weights[..., 0]``, ``separation_margin`` of the scores, ``support_size``
    and ``column_mass``; they are bit-identical for every thread count.

    Returns ``Diagnosis(entropy, max_weight, sink_weight, margin, support,
    column_mass)`` (max weight over the visible keys); ``out=`` takes a tuple
    of six arrays of those shapes and dtypes (support int64).  A row with no visible key (or all scores ``-inf``) has
    entropy and margin NaN and max/sink weight and support 0.  Sinkhorn
    normalises the whole matrix and is not supported (ValueError).
    """
    from ._normalizers import PARAMS, ROW_PARAMS
    if normalizer == "sinkhorn":
        raise ValueError("diagnose does not support normalizer='sinkhorn' (it normalises the whole "
                         "matrix, not row by row); use attention_weights and the materialised "
                         "diagnostics")
    gufunc = getattr(_core, "diagnose_" + str(normalizer), None)
    if normalizer not in PARAMS or gufunc is None:
        avail = sorted(nm for nm in PARAMS if hasattr(_core, "diagnose_" + nm))
        raise ValueError(f"normalizer must be one of {avail}; got {normalizer!r}")
    qs = core_shape("q", q, 2)
    ks = core_shape("k", k, 2)
    if qs[-1] != ks[-1]:
        raise ValueError(f"q and k must have the same feature size d; got {qs[-1]} and {ks[-1]}")
    n, d, m = qs[-2], qs[-1], ks[-2]
    dt = loop_dtype(q=q, k=k)
    sc = scale_param(scale, d, dt)
    reals, ints = PARAMS[normalizer](dt, **normalizer_params)
    ccode = causal_code(causal)
    wl, wr = window_bounds(window)
    try:
        lead = np.broadcast_shapes(qs[:-2], ks[:-2])
    except ValueError:
        raise ValueError(f"q {qs} and k {ks} leading axes do not broadcast") from None
    check_param_broadcast(lead, "q, k", dict(normalizer_params, scale=scale),
                          skip=ROW_PARAMS.get(normalizer, ()))
    mk = mask_operand(mask, lead, n, m)
    if normalizer == "stochastic_softmax":
        # one random stream per matrix, numbered as the normalizer numbers them
        from ._normalizers import stochastic_streams
        full = np.broadcast_shapes(tuple(lead), np.shape(mk)[:-2])
        ints = tuple(ints) + (stochastic_streams(full),)
    if normalizer == "affine_softmax":
        # a and b are per-query-row (n) operands of the row kernel
        from ._normalizers import _rowparam_operand
        ra = _rowparam_operand("a", reals[0], n, lead)
        rb = _rowparam_operand("b", reals[1], n, lead)
        reals = ()
    else:
        ra = np.broadcast_to(np.asarray(1.0, dt), (n,))
        rb = np.broadcast_to(np.asarray(0.0, dt), (n,))
    rv = _stack_params(list(reals), dt, 0.0)
    iv = _stack_params(list(ints), np.int64, 0)
    kw = {}
    if out is not None:
        if not isinstance(out, tuple) or len(out) != 6:
            raise ValueError("out must be a tuple of 6 arrays (entropy, max_weight, sink_weight, "
                             "margin, support, column_mass)")
        kw["out"] = out
    res = gufunc(q, k, mk, ccode, wl, wr, sc, rv, iv, ra, rb, **kw)
    return Diagnosis(*res)
