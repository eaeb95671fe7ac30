"""Backward pass of fused attention: ``attention_vjp``.

``attention_vjp(q, k, v, grad_out, normalizer)`` returns the gradients of
``sum(grad_out * attention(q, k, v, normalizer))`` with respect to ``q``,
``k``, ``v`` and the normalizer's real parameters, without an ``(n, m)``
matrix: the C kernels recompute score tiles (for the softmax family from
the log-normaliser of the forward pass, as FlashAttention-2 does [Dao2023]).
"""
import inspect
from typing import NamedTuple

import numpy as np

from . import _core
from ._attention import AttentionStats, _operands
from ._grad import REAL_PARAMS, _sum_to
from ._normalizers import PARAMS, ROW_PARAMS

__all__ = ["attention_vjp", "attention_forward", "AttentionGrad", "FUSED_BACKWARD"]

#: normalizers whose attention backward is fused in C
FUSED_BACKWARD = ("softmax", "softmax_sink", "ssmax", "affine_softmax", "stochastic_softmax")
# normalizers whose own log-normaliser the backward uses; affine_softmax and
# stochastic_softmax use the plain softmax (temperature 1) of their scores
_OWN_LSE = ("softmax", "softmax_sink", "ssmax")


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


def attention_forward(q, k, v, normalizer="softmax", *, scale=None, causal=False, window=None,
                      mask=None, **params):
    """``(out, lognorm)``: the attention output (empty rows 0) and the
    per-query log-normaliser that :func:`attention_vjp` takes as ``stats``.
    For the softmax family this is the pass of ``attention`` (the online one
    where it has one) that also writes the log-normaliser, cheaper than
    ``return_stats=True``; for the other normalizers it is
    ``attention(..., return_stats=True)``."""
    if normalizer in FUSED_BACKWARD:
        _, ops = _operands(normalizer, q, k, v, scale, causal, window, mask, "zero", params)
        return tuple(getattr(_core, "attention_lse_" + normalizer)(q, k, v, *ops))
    from ._attention import attention
    out, st = attention(q, k, v, normalizer, scale=scale, causal=causal, window=window,
                        mask=mask, return_stats=True, **params)
    return out, st.lognorm


def _lognorm_of(stats):
    if stats is None:
        return None
    if isinstance(stats, AttentionStats):
        return stats.lognorm
    return stats


def attention_vjp(q, k, v, grad_out, normalizer="softmax", *, out=None, stats=None, scale=None,
                  causal=False, window=None, mask=None, param_grads=True, **params):
    """Gradients of ``sum(grad_out * attention(q, k, v, normalizer, ...))``.

    Parameters
    ----------
    q, k, v, normalizer, scale, causal, window, mask, **params
        Exactly as for :func:`attnnorm.attention` (the forward pass this
        differentiates; empty rows use ``empty="zero"``).
    grad_out : array ``(..., n, e)``
        Gradient with respect to the attention output.
    out, stats : optional
        The output and the statistics (an :class:`AttentionStats` or just
        its ``lognorm`` array) of the forward pass, from
        ``attention(..., return_stats=True)`` or :func:`attention_forward`.
        When both are given the softmax, softmax_sink and ssmax backward
        does no forward work; otherwise it recomputes them.
    param_grads : bool
        False skips the parameter gradients (``params`` is then empty), which
        saves work in the row VJPs of the generic path.

    Returns
    -------
    AttentionGrad
        ``q``, ``k``, ``v`` gradients with the inputs' shapes (broadcast
        leading axes summed, e.g. over the query groups of grouped-query
        attention) and ``params``: the gradient of every real parameter of
        the normalizer, reduced to the parameter's shape.

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
    defaults = {p: v.default for p, v in inspect.signature(PARAMS[name]).parameters.items()}
    names = REAL_PARAMS[name] if param_grads else ()
    nscal = len(REAL_PARAMS[name]) - len(ROW_PARAMS.get(name, ()))
    grads = {}
    for r, pname in enumerate(names):
        given = params.get(pname, defaults[pname])
        if given is None:          # sigmoid's length-aware default bias
            grads[pname] = None
            continue
        src = dr[..., r] if r < nscal else drp[..., r - nscal]
        g = _sum_to(src.astype(np.float64), np.shape(given))
        grads[pname] = g.astype(src.dtype)[()] if g.ndim == 0 else g.astype(src.dtype)
    return AttentionGrad(_reduce(dq, qa.shape), _reduce(dk, ka.shape), _reduce(dv, va.shape),
                         grads)


def _reduce(g, shape):
    """g summed (in float64) over the leading axes broadcasting added, in g's dtype."""
    return g if g.shape == tuple(shape) else _sum_to(g.astype(np.float64), shape).astype(g.dtype)
