"""Fused attention for every normalizer.

``attention(q, k, v, normalizer=...)`` computes ``out = A v`` with
``A = normalizer(scale * q k^T)`` row by row, without ever holding the
``(n, m)`` weight matrix: the C kernels tile queries into blocks, compute the
block's scores against packed key chunks, normalise each row over the keys it
sees, and multiply by packed value chunks, in parallel over
(leading axes x query blocks).  ``attention_weights`` returns exactly the
weights that ``attention`` multiplies with ``v`` (same score kernel, same row
normalizer), so ``attention(q, k, v) == attention_weights(q, k) @ v`` up to
rounding of the final product.

Masks, causal/window alignment, the per-row visible length ``n_i`` and the
empty-row policy are those of the normalizers (see ``attnnorm._normalizers``).
"""
from typing import NamedTuple

import numpy as np

from . import _core
from ._common import (causal_code, check_param_broadcast, core_shape, empty_code, friendly_errors,
                      lead_mismatch, loop_dtype, mask_operand, scale_param, window_bounds)
from ._docs import fill_doc
from ._normalizers import NORMALIZERS, param_operands, row_param_names, validate

__all__ = ["attention", "attention_weights", "AttentionStats"]


class AttentionStats(NamedTuple):
    """Per-query statistics of ``attention(..., return_stats=True)``, each of
    shape ``(..., n)``, computed in the same pass as the output.

    Over the keys a query sees (``w`` its weights, ``s`` its scaled scores):

    * ``lognorm``: log-normaliser of the softmax family,
      ``log([e^sink] + sum_j exp(mul s_j))`` with ``mul = 1/T`` (softmax),
      ``c log n_i`` (ssmax), 1 (softmax_sink, affine_softmax, and the softmax
      stochastic_softmax samples from); NaN for the other normalizers and for
      empty rows;
    * ``entropy``: ``-sum_j w_j log w_j`` over ``w_j > 0``, as
      ``attnnorm.entropy`` (NaN for empty rows, rows without mass, NaN rows);
    * ``max_weight``, ``argmax``: largest weight and its key index (first one;
      NaN and -1 for empty rows or NaN weights);
    * ``sink_weight``: weight on key 0 (the sink), 0 if key 0 is not visible
      (the same name as in :class:`Diagnosis`; ``weight0`` is an alias);
    * ``margin``: top-1 minus top-2 score (NaN with fewer than 2 visible keys);
    * ``support``: number of weights ``> 0`` (int64);
    * ``weight_sum``: ``sum_j w_j``.

    They equal the same quantities computed from ``attention_weights``.
    """
    lognorm: np.ndarray
    entropy: np.ndarray
    max_weight: np.ndarray
    argmax: np.ndarray
    sink_weight: np.ndarray
    margin: np.ndarray
    support: np.ndarray
    weight_sum: np.ndarray

    @property
    def weight0(self) -> np.ndarray:
        """Alias of ``sink_weight`` (the weight on key 0)."""
        return self.sink_weight


def _operands(name, q, k, v, scale, causal, window, mask, empty, params):
    """Validate everything and build the gufunc's operands (before any work)."""
    if not isinstance(name, str) or name not in NORMALIZERS:
        raise ValueError(f"normalizer must be one of {sorted(NORMALIZERS)}; got {name!r}")
    qs = core_shape("q", q, 2)
    ks = core_shape("k", k, 2)
    n, d = qs[-2:]
    m = ks[-2]
    if ks[-1] != d:
        raise ValueError(f"q and k must have the same last dimension d; got q {qs} and k {ks}")
    shapes = [qs[:-2], ks[:-2]]
    if v is not None:
        vs = core_shape("v", v, 2)
        if vs[-2] != m:
            raise ValueError(f"k and v must have the same number of keys m; got k {ks} and v {vs}")
        shapes.append(vs[:-2])
    try:
        lead = np.broadcast_shapes(*shapes)
    except ValueError:
        raise lead_mismatch(["q", "k", "v"][:len(shapes)], shapes) from None
    dt = loop_dtype(q=q, k=k, v=v)
    sc = scale_param(scale, d, dt)
    ecode = empty_code(empty)
    ccode = causal_code(causal)
    wl, wr = window_bounds(window)
    values = validate(name, dt, params)
    rows = row_param_names(name)
    check_param_broadcast(lead, "q, k" + ("" if v is None else ", v"),
                          {key: val for key, val in dict(params, scale=scale).items()
                           if key not in rows})
    # matrices numbered as the normalizer numbers them (stochastic streams),
    # so attention_weights equals the normalizer on the scores
    slead = lead
    if mask is not None and np.ndim(mask) > 2:
        slead = np.broadcast_shapes(lead, np.shape(mask)[:-2])
    ops = param_operands(name, dt, values, n, lead, slead)
    mk = mask_operand(mask, lead, n, m)
    return dt, (mk, ccode, wl, wr, ecode, sc) + ops


@friendly_errors
@fill_doc
def attention(q, k, v, normalizer="softmax", *, scale=None, causal=False, window=None,
              mask=None, empty="zero", return_stats=False, **normalizer_params):
    """Fused attention ``normalizer(scale * q k^T) @ v`` for every normalizer, without the n x m weights.

    The kernels tile queries into blocks, compute each block's scores against
    packed key chunks, normalise each row over the keys it sees and multiply by
    packed value chunks, in parallel over (leading axes x query blocks).  Key
    blocks outside the causal/window range are skipped.  Results are identical
    for every thread count.

    Parameters
    ----------
    q : array_like, shape ``(..., n, d)``
        Queries.
    k : array_like, shape ``(..., m, d)``
        Keys.
    v : array_like, shape ``(..., m, e)``
        Values.  Leading axes of q, k and v broadcast; grouped-query attention
        is ``q (B, Hkv, G, n, d)`` with ``k, v (B, Hkv, 1, m, d)``.  float32
        inputs run the float32 kernel (float32 accumulation), anything else
        float64.
    normalizer : str, default "softmax"
        A key of ``attnnorm.NORMALIZERS``.
    scale : float or array_like, optional
        Scores are ``scale * q . k``; None means ``1/sqrt(d)``.  Finite and
        nonzero; an array broadcasts against the leading axes (one per head).
    {visibility}
    empty : {"zero", "nan", "raise"}, default "zero"
        What a query that sees no key gets: an output row of 0, of NaN, or a
        ValueError.
    return_stats : bool, default False
        Also return an :class:`AttentionStats` of per-query ``(..., n)`` arrays
        computed in the same pass.
    **normalizer_params
        The normalizer's keyword parameters, with the names, defaults and
        validation of the normalizer function (e.g. ``temperature=`` for
        softmax, ``alpha=`` for entmax).

    Returns
    -------
    out : ndarray, shape ``(..., n, e)``
        The attention output.
    stats : AttentionStats
        Only with ``return_stats=True``.

    Raises
    ------
    ValueError
        Unknown normalizer, mismatched core shapes, leading axes that do not
        broadcast (the message shows the grouped-query reshape when PyTorch-style
        head counts divide), a parameter outside its domain, a mask that does not
        broadcast; with ``empty="raise"``, a query that sees no key.  All before
        any work starts.
    TypeError
        A parameter the normalizer does not take; PyTorch's ``is_causal=``,
        ``attn_mask=``, ``dropout_p=``, ``enable_gqa=`` and NumPy's ``axis=``
        get a message naming attnnorm's equivalent; complex, object or string
        inputs.

    See Also
    --------
    attention_weights : the exact weights this function multiplies with ``v``.
    diagnose : per-query and per-key diagnostics of the same weights, streamed.

    Notes
    -----
    ``out_i = sum_j a_ij v_j`` with ``a_i = normalizer(scale * q_i . k_j)`` over
    the visible keys ``j``.  Extra memory: per thread a 48 x m block of scores,
    plus packed copies of k and v (for a group of problems of at most 32 MiB,
    shared by the threads); Sinkhorn adds its O(n + m) potentials and, when a
    problem's n x m log kernel fits in 32 MiB, that kernel (one per problem
    in flight), so that its passes read it instead of recomputing the
    scores; larger problems recompute them and keep O(n + m).  softmax,
    softmax_sink and ssmax use an online (flash-attention style) pass with
    running maxima and sums (rescaled lazily: a row's running maximum M
    serves while no new score exceeds M + 8); the other normalizers, and any query block holding
    NaN/+inf scores or values, use the generic pass (scores of the block, the
    normalizer's row kernel, weights times values), which is also what
    ``attention_weights`` and ``return_stats=True`` compute.

    References
    ----------
    [Vaswani2017] (scaled dot-product attention, ``scale = 1/sqrt(d)``); the
    normalizers' own references (``help(attnnorm.<normalizer>)``).

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> rng = np.random.default_rng(0)
    >>> q = rng.standard_normal((2, 8, 16, 4))            # (batch, heads, n, d)
    >>> k = rng.standard_normal((2, 2, 16, 4))            # 2 key/value heads
    >>> v = rng.standard_normal((2, 2, 16, 4))
    >>> qg, kg, vg = q.reshape(2, 2, 4, 16, 4), k[:, :, None], v[:, :, None]
    >>> o = an.attention(qg, kg, vg, "entmax", alpha=1.5, causal=True)
    >>> o.shape
    (2, 2, 4, 16, 4)
    >>> w = an.attention_weights(qg, kg, "entmax", alpha=1.5, causal=True)
    >>> bool(np.allclose(o, w @ vg))
    True
    >>> o, st = an.attention(qg, kg, vg, return_stats=True)
    >>> st.entropy.shape
    (2, 2, 4, 16)
    """
    dt, ops = _operands(normalizer, q, k, v, scale, causal, window, mask, empty,
                        normalizer_params)
    if return_stats:
        res = getattr(_core, "attention_stats_" + normalizer)(q, k, v, *ops)
        return res[0], AttentionStats(*res[1:])
    return getattr(_core, "attention_" + normalizer)(q, k, v, *ops)


@friendly_errors
@fill_doc
def attention_weights(q, k, normalizer="softmax", *, scale=None, causal=False, window=None,
                      mask=None, empty="zero", **normalizer_params):
    """The ``(..., n, m)`` weights :func:`attention` uses: ``normalizer(scale * q k^T)``.

    Computed by the same score kernel and row normalizer as :func:`attention`,
    so ``attention(q, k, v, ...)`` equals ``attention_weights(q, k, ...) @ v``
    up to the rounding of the product (masked keys exactly excluded).

    Parameters
    ----------
    q : array_like, shape ``(..., n, d)``
    k : array_like, shape ``(..., m, d)``
        Leading axes broadcast.
    normalizer : str, default "softmax"
        A key of ``attnnorm.NORMALIZERS``.
    scale : float or array_like, optional
        None means ``1/sqrt(d)``; finite and nonzero.
    {visibility}
    empty : {"zero", "nan", "raise"}, default "zero"
        What a row that sees no key gets.
    **normalizer_params
        The normalizer's keyword parameters.

    Returns
    -------
    weights : ndarray, shape ``(..., n, m)``

    Raises
    ------
    ValueError
        As :func:`attention`.
    TypeError
        As :func:`attention`.

    Notes
    -----
    Materialises the n x m matrix: for inspection and small problems.

    References
    ----------
    The normalizers' own references.

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> q, k = np.random.default_rng(0).standard_normal((2, 6, 4))
    >>> w = an.attention_weights(q, k, "softmax", causal=True)
    >>> bool(np.allclose(w, an.softmax(q @ k.T / 2.0, causal=True)))
    True
    """
    dt, ops = _operands(normalizer, q, k, None, scale, causal, window, mask, empty,
                        normalizer_params)
    return getattr(_core, "attention_weights_" + normalizer)(q, k, *ops)
