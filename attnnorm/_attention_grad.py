"""Backward pass of fused attention: ``attention_vjp``.

``attention_vjp(q, k, v, grad_out, normalizer)`` returns the gradients of
``sum(grad_out * attention(q, k, v, normalizer))`` with respect to ``q``,
``k``, ``v`` and the normalizer's real parameters, without an ``(n, m)``
matrix: the C kernels recompute score tiles (for the softmax family from
the log-normaliser of the forward pass, as FlashAttention-2 does [Dao2023]).
"""
from typing import NamedTuple

import numpy as np

from . import _core
from ._attention import AttentionStats, _operands
from ._common import friendly_errors, sum_to
from ._docs import fill_doc
from ._grad import param_grads_of
from ._normalizers import INFO

__all__ = ["attention_vjp", "attention_forward", "AttentionGrad", "FUSED_BACKWARD"]

#: normalizers whose attention backward is fused in C: those whose descriptor
#: has a log-normaliser (the softmax family)
FUSED_BACKWARD = tuple(nm for nm, info in INFO.items() if info["lognorm"])
# normalizers whose own log-normaliser the backward uses (their online forward
# writes it); affine_softmax and stochastic_softmax use the plain softmax
# (temperature 1) of their scores
_OWN_LSE = tuple(nm for nm in FUSED_BACKWARD
                 if INFO[nm]["online"] in ("softmax", "softmax_sink", "ssmax"))


class AttentionGrad(NamedTuple):
    """Gradients returned by :func:`attention_vjp`: ``q``, ``k``, ``v`` with
    the shapes of the inputs, and ``params``, a dict with one entry per real
    parameter of the normalizer (passed or defaulted), each reduced to the
    shape the parameter was given in (a per-head ``(H, 1, 1)`` temperature
    gets an ``(H, 1, 1)`` gradient)."""
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    params: dict


@friendly_errors
@fill_doc
def attention_forward(q, k, v, normalizer="softmax", *, scale=None, causal=False, window=None,
                      mask=None, **params):
    """Attention output and the per-query log-normaliser its backward reads.

    Parameters
    ----------
    q, k, v : array_like, shapes ``(..., n, d)``, ``(..., m, d)``, ``(..., m, e)``
        Queries, keys and values, as for :func:`attention`.
    normalizer : str, default "softmax"
        A key of ``attnnorm.NORMALIZERS``.
    scale : float or array_like, optional
        Scores are ``scale * q . k``; None means ``1/sqrt(d)``.
    {visibility}
    **params
        The normalizer's keyword parameters (as for :func:`attention`).

    Returns
    -------
    out : ndarray, shape ``(..., n, e)``
        ``attention(q, k, v, normalizer, ...)`` (empty rows 0).
    lognorm : ndarray, shape ``(..., n)``
        ``AttentionStats.lognorm``: the softmax family's log-normaliser
        (NaN for empty rows), NaN for the other normalizers.

    Raises
    ------
    ValueError, TypeError
        As :func:`attention`.

    Notes
    -----
    For the softmax family (``FUSED_BACKWARD``) this is the pass of
    ``attention`` (the online one where it has one) writing the
    log-normaliser as well, cheaper than ``return_stats=True``; the other
    normalizers' backward does not read it and this is ``attention`` itself.

    References
    ----------
    [Dao2023] (the log-normaliser saved for the backward pass).

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = (rng.standard_normal((2, 16, 4)) for _ in range(3))
    >>> out, lse = an.attention_forward(q, k, v, causal=True)
    >>> bool(np.allclose(out, an.attention(q, k, v, causal=True))), lse.shape
    (True, (2, 16))
    """
    if normalizer in FUSED_BACKWARD:
        _, ops = _operands(normalizer, q, k, v, scale, causal, window, mask, "zero", params)
        return tuple(getattr(_core, "attention_lse_" + normalizer)(q, k, v, *ops))
    from ._attention import attention
    out = attention(q, k, v, normalizer, scale=scale, causal=causal, window=window, mask=mask,
                    **params)
    return out, np.full(out.shape[:-1], np.nan, dtype=out.dtype)


def _lognorm_of(stats):
    if stats is None:
        return None
    if isinstance(stats, AttentionStats):
        return stats.lognorm
    return stats


@friendly_errors
@fill_doc
def attention_vjp(q, k, v, grad_out, normalizer="softmax", *, out=None, stats=None, scale=None,
                  causal=False, window=None, mask=None, param_grads=True, **params):
    """Gradients of ``sum(grad_out * attention(q, k, v, normalizer, ...))``.

    Parameters
    ----------
    q, k, v : array_like, shapes ``(..., n, d)``, ``(..., m, d)``, ``(..., m, e)``
        Queries, keys and values, exactly as for :func:`attention` (the
        forward pass this differentiates; empty rows use ``empty="zero"``).
    grad_out : array_like, shape ``(..., n, e)``
        Gradient with respect to the attention output.
    normalizer : str, default "softmax"
        A key of ``attnnorm.NORMALIZERS``.
    out, stats : optional
        The output and the statistics (an :class:`AttentionStats`, or just
        its ``lognorm``) of the forward pass, from
        ``attention(..., return_stats=True)`` or :func:`attention_forward`.
        With both, the softmax, softmax_sink and ssmax backward does no
        forward work; otherwise it recomputes them.
    scale : float or array_like, optional
        Scores are ``scale * q . k``; None means ``1/sqrt(d)``.
    {visibility}
    param_grads : bool, default True
        False skips the parameter gradients (``params`` is then empty),
        which saves work in the row VJPs of the generic path.
    **params
        The normalizer's keyword parameters (as for :func:`attention`).

    Returns
    -------
    AttentionGrad
        ``q``, ``k``, ``v``: gradients with the inputs' shapes (leading axes
        that broadcasting added summed, e.g. over the query groups of
        grouped-query attention); ``params``: the gradient of every real
        parameter of the normalizer (``REAL_PARAMS``), reduced to the shape
        it was given in (None for sigmoid's length-aware default bias).

    Raises
    ------
    ValueError
        ``grad_out`` not of the output's shape; everything :func:`attention`
        rejects.
    TypeError
        As :func:`attention`.

    Notes
    -----
    No ``(n, m)`` array is formed; score tiles are recomputed and key chunks
    outside the causal/window range are skipped.

    * softmax, softmax_sink, ssmax, affine_softmax, stochastic_softmax: a
      fused kernel in the manner of FlashAttention-2 [Dao2023]: with
      ``P = exp(mul * s - lognorm)``, ``D_i = rowsum(dO * (P v))`` and
      ``dS = P * (dO v^T - D)`` per (query block, key chunk) tile.
      stochastic_softmax uses the straight-through estimator: the backward
      of softmax attention at temperature 1 (``dv`` from the softmax
      probabilities, the expectation of the sampled weights).
    * sigmoid, relu, polynomial, softpick, nap, sparsemax, entmax: per query
      block the row kernel recomputes the weights over all keys the block
      sees and the normalizer's row VJP (that of :func:`normalizer_vjp`)
      gives ``dS`` (``48 x m`` scores per thread).
    * sinkhorn: differentiated through its ``n_iter`` iterations with every
      potential kept (``O(n_iter (n + m))``), each pass over recomputed
      tiles; ``eps`` gets its gradient.

    ``dq``, ``dk``, ``dv`` and the parameter sums are accumulated in a fixed
    order, so the results are bit-identical for every thread count.  Rows
    that see no key, whose scores are all ``-inf``, or that hold ``+inf`` or
    NaN scores get zero score gradient.

    References
    ----------
    [Dao2023] (the tiled backward from the saved log-normaliser); the
    normalizers' own references (``help(attnnorm.normalizer_vjp)``).

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> rng = np.random.default_rng(0)
    >>> q, k, v, go = (rng.standard_normal((2, 16, 4)) for _ in range(4))
    >>> out, lse = an.attention_forward(q, k, v, temperature=0.5, causal=True)
    >>> g = an.attention_vjp(q, k, v, go, out=out, stats=lse, temperature=0.5, causal=True)
    >>> g.q.shape, g.k.shape, g.v.shape, float(g.params["temperature"]) != 0
    ((2, 16, 4), (2, 16, 4), (2, 16, 4), True)
    >>> g2 = an.attention_vjp(q, k, v, go, "entmax", alpha=1.5, window=(4, 0))
    >>> sorted(g2.params)
    ['alpha']
    """
    name = normalizer
    qa, ka, va, go = (np.asarray(x) for x in (q, k, v, grad_out))
    _, ops = _operands(name, qa, ka, va, scale, causal, window, mask, "zero", params)
    mk, causal_, wl, wr, _ecode, sc, rop, iop, rpop = ops
    n, e = qa.shape[-2], va.shape[-1]
    if go.ndim < 2 or go.shape[-2:] != (n, e):
        raise ValueError(f"grad_out must have shape (..., n, e) = (..., {n}, {e}) like the "
                         f"attention output; got {go.shape}")
    lognorm = _lognorm_of(stats)
    if name not in FUSED_BACKWARD:
        # generic path (the row kernel recomputes the weights) and Sinkhorn
        zero = np.zeros((), sc.dtype)
        pv, lognorm = np.broadcast_to(zero, (n, e)), np.broadcast_to(zero, (n,))
    elif name in _OWN_LSE:
        pv = out
        if pv is None or lognorm is None:
            pv_f, ln_f = attention_forward(qa, ka, va, name, scale=scale, causal=causal,
                                           window=window, mask=mask, **params)
            pv = pv_f if pv is None else pv
            lognorm = ln_f if lognorm is None else lognorm
    else:
        # the softmax part of affine_softmax / the softmax stochastic_softmax samples
        pv, ln_f = attention_forward(qa, ka, va, "softmax", scale=scale, causal=causal,
                                     window=window, mask=mask)
        lognorm = ln_f if lognorm is None else lognorm
    vjp = getattr(_core, "attention_vjp_" + name)
    dq, dk, dv, dr, drp = vjp(qa, ka, va, go, pv, lognorm, mk, causal_, wl, wr, sc,
                              bool(param_grads), rop, iop, rpop)
    grads = param_grads_of(name, params, dr, drp, param_grads, dr.dtype)
    return AttentionGrad(_reduce(dq, qa.shape), _reduce(dk, ka.shape), _reduce(dv, va.shape),
                         grads)


def _reduce(g, shape):
    """g summed (in float64) over the leading axes broadcasting added, in g's dtype."""
    return g if g.shape == tuple(shape) else sum_to(g, shape, g.dtype)
