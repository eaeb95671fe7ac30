"""Diagnostics of attention weights and scores (definitions and references in
each docstring; keys as in docs/references.md).

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
from ._docs import fill_doc
from ._common import (causal_code, check_param_broadcast, friendly_errors, int_scalar, core_shape,
                      lead_mismatch, loop_dtype, mask_operand, real_dtype_of, real_param,
                      scale_param, visible_bounds, window_bounds)

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


@friendly_errors
@fill_doc
def entropy(a, *, normalized=False, base=None, mask=None, causal=False, window=None, out=None):
    """Attention entropy per row, in nats (or another base), optionally normalised by log n_i.

    Over the visible keys, with ``0 log 0 = 0``; only positive weights
    contribute (signed weights such as NAP's have no ``a log a``).
    ``normalized=True`` divides by ``log n_i``, the dispersion measure of
    [Vasylenko2025] (1 means uniform).

    Parameters
    ----------
    {weights_a}
    normalized : bool, default False
        Divide by ``log n_i``, ``n_i`` the number of visible keys.
    base : float, optional
        Logarithm base (``2`` gives bits); ``> 0``, ``!= 1``, finite; must be
        None with ``normalized=True``.
    {visibility}
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    entropy : ndarray, shape ``(..., n)``
        NaN for a row with no visible key or no mass, and for ``normalized``
        with ``n_i = 1``.

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    ``H(a_i) = -sum_{j visible, a_ij > 0} a_ij log a_ij``.

    References
    ----------
    [Vasylenko2025] (normalised entropy as dispersion).

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> bool(np.allclose(an.entropy(an.softmax(np.zeros((3, 4)))), np.log(4)))
    True
    >>> bool(np.allclose(an.entropy(an.softmax(s, causal=True), causal=True, normalized=True)[:, 1:] <= 1, True))
    True
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


@friendly_errors
@fill_doc
def effective_support(a, *, mask=None, causal=False, window=None, out=None):
    """Effective number of attended keys per row, exp(entropy) (the perplexity).

    Between 1 (one-hot) and ``n_i`` (uniform) for weights on the simplex.

    Parameters
    ----------
    {weights_a}
    {visibility}
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    support : ndarray, shape ``(..., n)``
        NaN where the entropy is undefined.

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    ``exp(H(a_i))`` with ``H`` as in :func:`entropy`.

    References
    ----------
    [Vasylenko2025].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> bool(np.allclose(an.effective_support(an.softmax(np.zeros((3, 5)))), 5))
    True
    """
    return _row_diag(a, _RD_EFF_SUPPORT, 1.0, mask=mask, causal=causal, window=window, out=out)


@friendly_errors
@fill_doc
def participation_ratio(a, *, mask=None, causal=False, window=None, out=None):
    """Participation ratio per row, 1 / sum of squared weights.

    Another effective number of keys: 1 for one-hot rows, ``n_i`` for uniform ones.

    Parameters
    ----------
    {weights_a}
    {visibility}
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    ratio : ndarray, shape ``(..., n)``
        NaN for a row with no visible key or no mass.

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    ``1 / sum_{j visible} a_ij^2``.

    References
    ----------
    [Vasylenko2025] (effective support measures).

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> bool(np.allclose(an.participation_ratio(np.eye(3)), 1))
    True
    """
    return _row_diag(a, _RD_PARTICIPATION, 1.0, mask=mask, causal=causal, window=window, out=out)


@friendly_errors
@fill_doc
def negative_mass(a, *, mask=None, causal=False, window=None, out=None):
    """Negative mass per row, the sum of the negative weights.

    Nonzero for signed maps such as NAP [Richter2020], ZeroS [Lu2026] and polynomial attention [Saratchandran2024].

    Parameters
    ----------
    {weights_a}
    {visibility}
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    mass : ndarray, shape ``(..., n)``
        ``<= 0``; 0 for a row with no visible key.

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    ``sum_{j visible} min(a_ij, 0)``.

    References
    ----------
    [Richter2020]; [Lu2026]; [Saratchandran2024].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> bool(np.all(an.negative_mass(an.nap(s)) < 0)) and bool(np.all(an.negative_mass(an.softmax(s)) == 0))
    True
    """
    return _row_diag(a, _RD_NEG_MASS, 1.0, mask=mask, causal=causal, window=window, out=out)


@friendly_errors
@fill_doc
def separation_margin(scores, *, mask=None, causal=False, window=None, out=None):
    """Top-1 minus top-2 score per row over the visible keys.

    The score gap that decides how peaked softmax can be [Mudarisov2025].
    Masked entries are ignored.

    Parameters
    ----------
    scores : array_like, shape ``(..., n, m)``
        Scores (not weights).
    {visibility}
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    margin : ndarray, shape ``(..., n)``
        NaN if the row sees fewer than 2 keys or has a NaN score; ``+inf`` if
        only one visible score is finite (the rest ``-inf``); NaN for two
        ``+inf`` scores (``inf - inf``).

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    ``max_j s_ij - max_{j != argmax} s_ij`` over the visible keys.

    References
    ----------
    [Mudarisov2025].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> bool(np.allclose(an.separation_margin(np.array([[3.0, 1.0, 2.5]])), 0.5))
    True
    """
    return _row_diag(scores, _RD_MARGIN, 1.0, mask=mask, causal=causal, window=window,
                     out=out, name="scores")


@friendly_errors
@fill_doc
def support_size(a, *, threshold=0.0, mask=None, causal=False, window=None, out=None):
    """Number of visible weights above a threshold per row (int64).

    With ``threshold=0`` it counts the support of sparse maps such as entmax [Peters2019] and softpick [Zuhri2025].

    Parameters
    ----------
    {weights_a}
    threshold : float, default 0.0
        Count the weights strictly greater than this.
    {visibility}
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    support : ndarray of int64, shape ``(..., n)``

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    ``|{j visible : a_ij > threshold}|``.

    References
    ----------
    [Peters2019]; [Zuhri2025].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> w, tau, sup = an.entmax(s, return_tau=True)
    >>> bool(np.all(an.support_size(w) == sup))
    True
    """
    a, row = _matrix_operand("a", a)
    mk, c, wl, wr = _vis_operands(a, mask, causal, window)
    thr = real_param("threshold", threshold, dtype=real_dtype_of(a))
    res = _core.diag_support(a, mk, c, wl, wr, thr, **_out_kw(out, row))
    return res[0] if row else res


@friendly_errors
@fill_doc
def column_mass(a, *, mask=None, causal=False, window=None, out=None):
    """Per key, the mean weight over the queries that can see it.

    With ``mask``/``causal``/``window`` those of the attention that produced
    ``a``, a key late in a causal sequence is averaged over the few queries that
    see it, not over all ``n``.

    Parameters
    ----------
    {weights_a}
    {visibility}
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    mass : ndarray, shape ``(..., m)``
        NaN for a key no query sees.

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    ``(1/|Q_j|) sum_{i in Q_j} a_ij`` with ``Q_j`` the queries that see key ``j``.

    References
    ----------
    [RanMilo2026] (sink mass as the column mass of the first key).

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> bool(np.allclose(an.column_mass(an.softmax(np.zeros((4, 4)), causal=True), causal=True)[0], 0.25 * (1 + 1/2 + 1/3 + 1/4)))
    True
    """
    a, _ = _matrix_operand("a", a)
    mk, c, wl, wr = _vis_operands(a, mask, causal, window)
    kw = {} if out is None else {"out": out}
    return _core.diag_column_mass(a, mk, c, wl, wr, **kw)


@friendly_errors
@fill_doc
def sink_mass(a, *, sink=0, mask=None, causal=False, window=None, out=None):
    """Column mass at the sink key (default 0, the BOS token): how much the queries that see it put on it.

    Computes only that column.

    Parameters
    ----------
    {weights_a}
    sink : int, default 0
        Key index in ``[-m, m)``.
    {visibility}
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    mass : ndarray, shape ``(...)``

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    ``column_mass(a)[..., sink]``.

    References
    ----------
    [RanMilo2026].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> a = an.softmax(s, causal=True)
    >>> bool(np.allclose(an.sink_mass(a, causal=True), an.column_mass(a, causal=True)[..., 0]))
    True
    """
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


@friendly_errors
@fill_doc
def row_residual(a, *, ord=2, out=None):
    """Row-normalisation residual per matrix, the norm of the row sums minus 1.

    0 for row-stochastic weights.

    Parameters
    ----------
    {weights_a}
    ord : {1, 2, inf}, default 2
        The vector norm.
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    residual : ndarray, shape ``(...)``

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    ``||a 1 - 1||_ord``.

    References
    ----------
    [Sander2021].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> bool(np.all(an.row_residual(an.softmax(s)) < 1e-12))
    True
    """
    a, _ = _matrix_operand("a", a)
    kw = {} if out is None else {"out": out}
    return _core.diag_matrix(a, _MD_ROW, _ord_code(ord), **kw)


@friendly_errors
@fill_doc
def column_residual(a, *, ord=2, out=None):
    """Doubly-stochastic residual per matrix, the norm of the column sums minus n/m.

    0 for doubly stochastic weights, the fixed point of Sinkhorn attention [Sander2021].

    Parameters
    ----------
    {weights_a}
    ord : {1, 2, inf}, default 2
        The vector norm.
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    residual : ndarray, shape ``(...)``

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    ``||a^T 1 - (n/m) 1||_ord``.

    References
    ----------
    [Sander2021].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> bool(np.all(an.column_residual(an.sinkhorn(s, n_iter=20)) < 1e-6))
    True
    """
    a, _ = _matrix_operand("a", a)
    kw = {} if out is None else {"out": out}
    return _core.diag_matrix(a, _MD_COL, _ord_code(ord), **kw)


@friendly_errors
@fill_doc
def frobenius_norm(a, *, out=None):
    """Frobenius norm per matrix.

    For row-stochastic ``n x m`` weights ``sqrt(n/m) <= ||a||_F <= sqrt(n)``;
    polynomial attention is scaled to keep it of softmax's order
    [Saratchandran2024].

    Parameters
    ----------
    {weights_a}
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    norm : ndarray, shape ``(...)``

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    ``||a||_F = sqrt(sum_ij a_ij^2)``.

    References
    ----------
    [Saratchandran2024].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> f = an.frobenius_norm(an.softmax(s))
    >>> bool(np.all((f >= 1) & (f <= np.sqrt(6))))
    True
    """
    a, _ = _matrix_operand("a", a)
    kw = {} if out is None else {"out": out}
    return _core.diag_matrix(a, _MD_FRO, 2, **kw)


@friendly_errors
@fill_doc
def rank_collapse(x, *, out=None):
    """Rank-collapse ratio of any (..., n, e) array: distance from its mean row, relative to its norm.

    0 when every row is equal (the representations collapsed to one token).

    Parameters
    ----------
    x : array_like, shape ``(..., n, e)``
        Any stack of row vectors (e.g. attention outputs ``a @ v``).
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    ratio : ndarray, shape ``(...)``
        NaN for ``x = 0``.

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    ``||x - 1 xbar^T||_F / ||x||_F`` with ``xbar`` the mean row.

    References
    ----------
    [Duthe2025] (oversmoothing of attention rollouts).

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> x = np.random.default_rng(0).standard_normal((6, 3))
    >>> float(an.rank_collapse(np.ones((4, 3))))
    0.0
    >>> bool(an.rank_collapse(an.softmax(s)[0] @ x) < an.rank_collapse(x))
    True
    """
    x, _ = _matrix_operand("x", x)
    kw = {} if out is None else {"out": out}
    return _core.diag_matrix(x, _MD_RANK, 2, **kw)


# --------------------------------------------------------------------------
# Jacobian norms
# --------------------------------------------------------------------------


def _softpick_jacobian(a, scores, ord, values, mask, causal, window):
    """Softpick Jacobian (softpick: [Zuhri2025]), derived here.

    With u_j = e^{x_j} - 1 over the visible keys and D = sum_j |u_j| + eps,
    a_i = relu(u_i) / D, so
        dA_i/dx_k = [u_i > 0] e^{x_i} delta_ik / D - a_i sign(u_k) e^{x_k} / D,
    i.e. J = diag(g) - a w^T with g_i = [u_i > 0] e^{x_i} / D and
    w_k = sign(u_k) e^{x_k} / D (masked keys: no row, no column).  ||J||_F has
    the closed form sum g^2 - 2 sum g a w + |a|^2 |w|^2; ||J||_2 (J is not
    symmetric) is computed by an SVD of the m x m matrix of each row.
    Evaluated in the shifted form (factor e^{-max x} cancels) in float64."""
    from ._reference import visible
    eps = float(np.asarray(values["eps"], dtype=np.float64))
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


#: normalizer -> Jacobian norm from the scores (descriptor jacobian form "scores")
_SCORE_JACOBIANS = {"softpick": _softpick_jacobian}


@friendly_errors
@fill_doc
def jacobian_norm(a, normalizer="softmax", ord=2, *, mask=None, causal=False, window=None,
                  scores=None, out=None, **params):
    """Exact norm of the normaliser's Jacobian d a_i / d s_i at each row, from the weights.

    Supported normalizers and their Jacobians (``s`` the visible scores,
    ``n_i`` their number):

    * ``softmax`` (``temperature=T``): ``J = (diag(a) - a a^T) / T``; ``||J||_2``
      is its largest eigenvalue, found exactly from the secular equation of the
      rank-one downdate (no m x m matrix); supremum ``1/(2T)``.
    * ``ssmax`` (``c``) and ``softmax_sink``: the softmax form with their scaling.
    * ``sparsemax``: ``J = diag(s) - s s^T/|S|`` (a projection): 1 if the
      support has >= 2 keys else 0; ``||J||_F = sqrt(|S| - 1)``.
    * ``entmax`` (``alpha``): ``J = diag(s) - s s^T / sum s`` with
      ``s = a^(2 - alpha)`` on the support (secular equation again).
    * ``sigmoid``: ``diag(a (1 - a))``.
    * ``relu`` (``power=p``): ``diag(p relu(s)^(p-1) / n_i)``.
    * ``polynomial`` (``power=p``): ``diag(p |s|^(p-1) / sqrt(n_i))``.
    * ``softpick`` (``eps``): needs ``scores=``; ``ord=2`` by an SVD per row
      (float64 NumPy, for small m).
    * ``stickbreaking``: ``d a_j / d s_j = a_j (1 - beta_j)`` and
      ``d a_j / d s_l = -a_j beta_l`` for the nearer keys ``l``, with
      ``beta_j = a_j / (1 - sum_{l nearer} a_l)`` recovered from the weights
      [Tan2025]; ``ord=2`` from the ``m x m`` matrix (Jacobi eigenvalues of
      ``J^T J``, for small m).

    Parameters
    ----------
    {weights_a}
    normalizer : str, default "softmax"
        One of the normalizers listed above.
    ord : {2, "fro"}, default 2
        Spectral or Frobenius norm.
    scores : array_like, optional
        The scores, required for ``softpick`` (its Jacobian depends on ``e^s``
        where the weight is 0).
    **params
        The normalizer's parameters (``temperature``, ``c``, ``alpha``,
        ``power``, ``eps``).
    {visibility}
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    norm : ndarray, shape ``(..., n)``
        NaN for a row with no visible key or a NaN weight.

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    Softmax: ``||J||_F^2 = (sum a^2 - 2 sum a^3 + (sum a^2)^2) / T^2``.
    The bound ``||J||_2 <= 1/(2T)`` is exact (attained by two keys of weight
    1/2); [Mudarisov2025] reports ``1/(4T)``, the supremum of the diagonal
    entries.  ``||J||_F <= 2 sqrt(N)`` for the matrix form [Saratchandran2024].

    References
    ----------
    [Mudarisov2025]; [Saratchandran2024]; [Peters2019] (entmax Jacobian).

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> a = an.softmax(s, temperature=0.5)
    >>> J = (np.einsum('...j,jk->...jk', a[0, 0], np.eye(6)) - np.outer(a[0, 0], a[0, 0])) / 0.5
    >>> bool(np.isclose(an.jacobian_norm(a, "softmax", temperature=0.5)[0, 0], np.linalg.norm(J, 2)))
    True
    """
    from ._normalizers import INFO, param_operands, validate
    if ord not in (2, "fro"):
        raise ValueError(f"ord must be 2 or 'fro'; got {ord!r}")
    avail = sorted(nm for nm in INFO if INFO[nm]["jacobian"])
    if normalizer not in avail:
        raise ValueError(f"normalizer must be one of {avail}; got {normalizer!r}")
    dt = real_dtype_of(a)
    by_scores = INFO[normalizer]["jacobian"] == "scores"   # computed in float64 NumPy
    try:
        values = validate(normalizer, np.float64 if by_scores else dt, params, jacobian=True)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    if by_scores:
        if scores is None:
            raise ValueError(f"jacobian_norm(normalizer={normalizer!r}) needs scores= (its "
                             "Jacobian depends on the scores where the weight is 0)")
        causal_code(causal)   # validated as every entry point does
        res = _SCORE_JACOBIANS[normalizer](a, scores, ord, values, mask, causal, window)
        if out is not None:
            out[...] = res
            return out
        return res
    a, row = _matrix_operand("a", a)
    mk, c, wl, wr = _vis_operands(a, mask, causal, window)
    shape = np.shape(a)
    ops = param_operands(normalizer, dt, values, shape[-2], shape[:-2])
    res = getattr(_core, "jacobian_norm_" + normalizer)(a, mk, c, wl, wr, ord == "fro", *ops,
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


@friendly_errors
@fill_doc
def vanishing_bounds(q, k, *, temperature=1.0, mask=None, causal=False, window=None):
    """Per-row lower and upper bounds on every softmax weight, from query and key norms.

    With bounded scores, softmax weights vanish like ``1/L`` as the number of
    keys grows ([Mudarisov2025], Corollary 1).  The scores are ``q_i . k_j``
    unscaled: pass ``q * scale`` for scaled attention.  O((n + m) d); no score
    is formed.

    Parameters
    ----------
    q : array_like, shape ``(..., n, d)``
        Queries.
    k : array_like, shape ``(..., m, d)``
        Keys.
    temperature : float, default 1.0
        ``T > 0``.
    {visibility}
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    lower, upper : ndarray, shape ``(..., n)``
        NaN for a row with no visible key.

    Raises
    ------
    {raises_diagnostic}

    Notes
    -----
    With ``Delta_i = ||q_i||_2 max_j ||k_j||_2`` and ``L_i = n_i``:
    ``exp(-2 Delta_i / T) / L_i <= a_ij <= exp(2 Delta_i / T) / L_i``.

    References
    ----------
    [Mudarisov2025].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal((2, 6, 6))
    >>> q, k = np.random.default_rng(1).standard_normal((2, 5, 3)) * 0.3
    >>> lo, hi = an.vanishing_bounds(q, k)
    >>> a = an.softmax(q @ k.T)
    >>> bool(np.all((lo[:, None] <= a) & (a <= hi[:, None])))
    True
    """
    dt = np.result_type(real_dtype_of(q), real_dtype_of(k))
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
        raise lead_mismatch(["q", "k"], [q.shape[:-2], k.shape[:-2]]) from None
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
    """Context s = sum over the top-N weights of a_i x_i and rest r [Mudarisov2025]."""
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


@friendly_errors
@fill_doc
def selectivity_distance(a, x, top):
    """Selectivity distance per row: how far the top-N context is from the rest of the output.

    With ``I_N`` the ``top`` largest weights of row ``i`` (ties: smaller key
    index first), the distance between the part of the output the selected keys
    contribute and the part the others contribute [Mudarisov2025].

    Parameters
    ----------
    a : array_like, shape ``(..., n, m)``
        Attention weights.
    x : array_like, shape ``(..., m, e)``
        Values (token representations).
    top : int
        ``N``, in ``[0, m]``.

    Returns
    -------
    distance : ndarray, shape ``(..., n)``

    Raises
    ------
    ValueError
        ``top`` outside ``[0, m]`` or ``x`` without ``m`` rows.
    TypeError
        Complex, object or string input.

    Notes
    -----
    ``||sum_{j not in I_N} a_ij x_j - sum_{j in I_N} a_ij x_j||_2``.

    References
    ----------
    [Mudarisov2025].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> x = np.random.default_rng(0).standard_normal((4, 3))
    >>> a = np.array([[1.0, 0, 0, 0]])
    >>> bool(np.isclose(an.selectivity_distance(a, x, 1)[0], np.linalg.norm(x[0])))
    True
    """
    s, r, _, _ = _top_split(a, x, top)
    return np.linalg.norm(r - s, axis=-1)


@friendly_errors
@fill_doc
def geometric_separability(a, x, top):
    """Fraction of the top-N tokens of each row that a threshold along the context direction separates from the rest.

    The paper's measurement ("geometric separability", [Mudarisov2025]) is
    defined by its Algorithm 4 and an unverified radius; this function
    implements the following documented definition instead.  With the context
    ``s = sum_{j in I_N} a_ij x_j`` and its direction ``u = s / ||s||``, a top
    token ``j in I_N`` is separable if ``x_j . u > max_{k not in I_N} x_k . u``.

    Parameters
    ----------
    a : array_like, shape ``(..., n, m)``
        Attention weights.
    x : array_like, shape ``(..., m, e)``
        Token representations.
    top : int
        ``N``, in ``[0, m]``.

    Returns
    -------
    fraction : ndarray, shape ``(..., n)``
        1 if every key is in the top set; NaN if ``top = 0`` or ``s = 0``.

    Raises
    ------
    ValueError
        ``top`` outside ``[0, m]`` or ``x`` without ``m`` rows.
    TypeError
        Complex, object or string input.

    Notes
    -----
    Ties in the top-N selection go to the smaller key index.

    References
    ----------
    [Mudarisov2025].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> x = np.eye(4)
    >>> a = np.array([[0.7, 0.1, 0.1, 0.1]])
    >>> float(an.geometric_separability(a, x, 1)[0])
    1.0
    """
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
# Norm-based analysis [Kobayashi2020], [Kobayashi2021]
# --------------------------------------------------------------------------


@friendly_errors
@fill_doc
def attention_norms(a, fx):
    """Norm of each weighted value vector, ||a_ij f(x_j)||, per query-key pair.

    Weights alone overstate the influence of keys whose transformed values are
    small; the norm of the weighted vector does not [Kobayashi2020].

    Parameters
    ----------
    a : array_like, shape ``(..., n, m)``
        Weights of one head.
    fx : array_like, shape ``(..., m, e)``
        Transformed values ``f(x_j) = (x_j W_V + b_V) W_O`` (without the output
        bias).

    Returns
    -------
    norms : ndarray, shape ``(..., n, m)``
        ``|a_ij| ||f(x_j)||``.

    Raises
    ------
    ValueError
        Shapes that do not match.
    TypeError
        Complex, object or string input.

    Notes
    -----
    ``||a_ij f(x_j)|| = |a_ij| ||f(x_j)||_2``.

    References
    ----------
    [Kobayashi2020].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> fx = np.array([[3.0, 4.0], [0.0, 1.0]])
    >>> an.attention_norms(np.array([[0.5, 0.5]]), fx).tolist()
    [[2.5, 0.5]]
    """
    a = np.asarray(a)
    fx = np.asarray(fx)
    if fx.ndim < 2 or a.ndim < 2 or fx.shape[-2] != a.shape[-1]:
        raise ValueError(f"a must be (..., n, m) and fx (..., m, e); got shapes {a.shape}, {fx.shape}")
    dt = np.result_type(real_dtype_of(a), real_dtype_of(fx))
    return np.abs(a.astype(dt, copy=False)) * np.linalg.norm(fx.astype(dt, copy=False), axis=-1)[..., None, :]


MixingRatios = namedtuple("MixingRatios", ["attn", "attn_res", "attn_res_ln", "vectors"])


@friendly_errors
@fill_doc
def mixing_ratios(a, fx, x, *, gamma=None, beta=None, eps=1e-12, return_vectors=False):
    """Mixing ratios of attention, attention + residual, and attention + residual + LayerNorm.

    How much of each token's new representation comes from the other tokens,
    measured with vector norms through the residual connection and the
    LayerNorm [Kobayashi2021].  All maps are linear in the per-pair vectors, so
    the sums are formed without the ``n x n x e`` tensor unless
    ``return_vectors=True``.

    Parameters
    ----------
    a : array_like, shape ``(..., H, n, n)``
        The weights of every head (self-attention).
    fx : array_like, shape ``(..., H, n, e)``
        Per-head transformed values ``f_h(x_j)`` (without the output bias).
    x : array_like, shape ``(..., n, e)``
        The layer input (residual stream).
    gamma, beta : array_like, shape ``(e,)``, optional
        LayerNorm affine parameters (default 1 and 0).
    eps : float, default 1e-12
        LayerNorm epsilon, ``> 0``.
    return_vectors : bool, default False
        Also return the per-pair vectors.

    Returns
    -------
    MixingRatios
        ``(attn, attn_res, attn_res_ln, vectors)``: ratios of shape ``(..., n)``
        in [0, 1]; ``vectors`` is None, or with ``return_vectors=True`` a dict
        with ``attn``, ``attn_res``, ``attn_res_ln`` (each ``(..., n, n, e)``)
        and ``ln_out`` (``(..., n, e)``).

    Raises
    ------
    ValueError
        Shapes that do not match, ``eps <= 0``.
    TypeError
        Complex, object or string input.

    Notes
    -----
    Per pair: ``w_ij = sum_h a^h_ij f_h(x_j)`` (Attn), ``v_ij = w_ij + delta_ij
    x_i`` (AttnRes), ``g(v_ij) = gamma (v_ij - mean(v_ij)) / sqrt(Var(y_i + x_i)
    + eps)`` (AttnResLn) with ``y_i = sum_j w_ij``.  Exact identities:
    ``sum_j v_ij = y_i + x_i`` and ``sum_j g(v_ij) + beta = LN(y_i + x_i)``.
    Mixing ratio of row ``i``: ``||sum_{j != i} w_ij|| / (||sum_{j != i} w_ij|| +
    ||w_ii||)``.

    References
    ----------
    [Kobayashi2021]; [Kobayashi2020].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> rng = np.random.default_rng(0)
    >>> a = an.softmax(rng.standard_normal((2, 5, 5)))
    >>> r = an.mixing_ratios(a, rng.standard_normal((2, 5, 3)), rng.standard_normal((5, 3)))
    >>> bool(np.all((r.attn >= 0) & (r.attn <= 1)))
    True
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


@friendly_errors
@fill_doc
def diagnose(q, k, normalizer="softmax", *, scale=None, causal=False, window=None, mask=None,
             out=None, **normalizer_params):
    """Streamed per-query and per-key diagnostics of ``normalizer(scale * q k^T)`` without the n x m matrix.

    One pass over key blocks per block of queries: scores are computed in
    tiles, normalised row by row with the normalizer's own row kernel, and
    reduced.  Memory is O(n + m) (16 m-length partial column sums plus a
    per-thread scratch of at most 8 MiB).  Results equal the materialised
    diagnostics of the same weights and are bit-identical for every thread
    count.

    Parameters
    ----------
    q : array_like, shape ``(..., n, d)``
    k : array_like, shape ``(..., m, d)``
        Leading axes broadcast (so grouped queries work).
    normalizer : str, default "softmax"
        A key of ``attnnorm.NORMALIZERS`` other than ``"sinkhorn"`` (which
        normalises the whole matrix, not row by row).
    scale : float or array_like, optional
        None means ``1/sqrt(d)``.
    {visibility}
    out : tuple of 6 ndarrays, optional
        Arrays of the shapes and dtypes of the result's fields.
    **normalizer_params
        The normalizer's keyword parameters, as for :func:`attention`.

    Returns
    -------
    Diagnosis
        ``(entropy, max_weight, sink_weight, margin, support, column_mass)``:
        per query ``(..., n)`` the entropy (nats), the largest visible weight,
        the weight on key 0 (the sink; also ``AttentionStats.sink_weight``), the
        top-1 minus top-2 score and the support size (int64); per key
        ``(..., m)`` the column mass.  A row with no visible key (or all scores
        ``-inf``) has entropy and margin NaN and max/sink weight and support 0.

    Raises
    ------
    ValueError
        ``normalizer="sinkhorn"`` or an unknown normalizer, mismatched shapes
        (with the grouped-query reshape in the message when head counts divide),
        a parameter outside its domain, a bad ``out``.
    TypeError
        As :func:`attention`.

    See Also
    --------
    attention : ``return_stats=True`` gives the per-query statistics with the output.

    Notes
    -----
    The fields equal ``entropy(w)``, ``w.max(-1)``, ``w[..., 0]``,
    ``separation_margin(scores)``, ``support_size(w)`` and ``column_mass(w)`` for
    ``w = attention_weights(q, k, normalizer, ...)``, with the same ``mask``,
    ``causal`` and ``window``.

    References
    ----------
    [Vasylenko2025] (entropy); [RanMilo2026] (sink weight, column mass);
    [Mudarisov2025] (margin).

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> q, k = np.random.default_rng(0).standard_normal((2, 2, 32, 8))
    >>> dg = an.diagnose(q, k, "entmax", causal=True)
    >>> w = an.attention_weights(q, k, "entmax", causal=True)
    >>> bool(np.allclose(dg.entropy, an.entropy(w, causal=True)))
    True
    >>> bool(np.allclose(dg.column_mass, an.column_mass(w, causal=True)))
    True
    """
    from ._normalizers import INFO, param_operands, row_param_names, validate
    if normalizer in INFO and not INFO[normalizer]["row_kernel"]:
        raise ValueError(f"diagnose does not support normalizer={normalizer!r} (it normalises "
                         "the whole matrix, not row by row); use attention_weights and the "
                         "materialised diagnostics")
    gufunc = getattr(_core, "diagnose_" + str(normalizer), None)
    if gufunc is None:
        avail = sorted(nm for nm in INFO if INFO[nm]["row_kernel"])
        raise ValueError(f"normalizer must be one of {avail}; got {normalizer!r}")
    qs = core_shape("q", q, 2)
    ks = core_shape("k", k, 2)
    if qs[-1] != ks[-1]:
        raise ValueError(f"q and k must have the same feature size d; got {qs[-1]} and {ks[-1]}")
    n, d, m = qs[-2], qs[-1], ks[-2]
    dt = loop_dtype(q=q, k=k)
    sc = scale_param(scale, d, dt)
    values = validate(normalizer, dt, normalizer_params)
    ccode = causal_code(causal)
    wl, wr = window_bounds(window)
    try:
        lead = np.broadcast_shapes(qs[:-2], ks[:-2])
    except ValueError:
        raise lead_mismatch(["q", "k"], [qs[:-2], ks[:-2]]) from None
    rows = row_param_names(normalizer)
    check_param_broadcast(lead, "q, k", {key: val for key, val in
                                          dict(normalizer_params, scale=scale).items()
                                          if key not in rows})
    mk = mask_operand(mask, lead, n, m)
    ops = param_operands(normalizer, dt, values, n, lead,
                         np.broadcast_shapes(tuple(lead), np.shape(mk)[:-2]))
    kw = {}
    if out is not None:
        if not isinstance(out, tuple) or len(out) != 6:
            raise ValueError("out must be a tuple of 6 arrays (entropy, max_weight, sink_weight, "
                             "margin, support, column_mass)")
        kw["out"] = out
    res = gufunc(q, k, mk, ccode, wl, wr, sc, *ops, **kw)
    return Diagnosis(*res)
