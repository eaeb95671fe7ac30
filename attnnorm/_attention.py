"""Fused attention for every normalizer (DESIGN "Attention").

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
import inspect
from typing import NamedTuple

import numpy as np

from . import _core
from ._common import (causal_code, check_param_broadcast, core_shape, empty_code, loop_dtype,
                      mask_operand, scale_param, window_bounds)
from ._normalizers import NORMALIZERS, PARAMS, ROW_PARAMS, _rowparam_operand

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
    * ``weight0``: weight on key 0 (the sink), 0 if key 0 is not visible;
    * ``margin``: top-1 minus top-2 score (NaN with fewer than 2 visible keys);
    * ``support``: number of weights ``> 0`` (int64);
    * ``weight_sum``: ``sum_j w_j``.

    They equal the same quantities computed from ``attention_weights``.
    """
    lognorm: np.ndarray
    entropy: np.ndarray
    max_weight: np.ndarray
    argmax: np.ndarray
    weight0: np.ndarray
    margin: np.ndarray
    support: np.ndarray
    weight_sum: np.ndarray


def _n_row_params(name):
    """Number of per-row (n) real parameters of a normalizer (from its gufunc)."""
    sig = getattr(_core, name).signature
    ins = sig.split("->")[0]
    ops = ins.replace("),(", ")|(").split("|")
    return sum(1 for o in ops[6:] if o == "(n)")


def _params(name, dt, params):
    try:
        return PARAMS[name](dt, **params)
    except TypeError as exc:
        accepted = [p for p in inspect.signature(PARAMS[name]).parameters][1:]
        raise TypeError(f"normalizer {name!r} got unexpected parameter(s) "
                        f"{sorted(params)}; it accepts {accepted} ({exc})") from None


def _operands(name, q, k, v, scale, causal, window, mask, empty, params):
    """Validate everything and build the gufunc's operands (before any work)."""
    if not isinstance(name, str) or name not in NORMALIZERS:
        raise ValueError(f"normalizer must be one of {sorted(NORMALIZERS)}; got {name!r}")
    kind = "attention_weights_" if v is None else "attention_"
    if not hasattr(_core, kind + name):
        raise ValueError(f"normalizer {name!r} has no fused attention kernel in this build")
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
        raise ValueError("the leading axes of q, k" + ("" if v is None else ", v")
                         + f" do not broadcast: {[tuple(s) for s in shapes]}") from None
    dt = loop_dtype(q=q, k=k, v=v)
    sc = scale_param(scale, d, dt)
    ecode = empty_code(empty)
    ccode = causal_code(causal)
    wl, wr = window_bounds(window)
    reals, ints = _params(name, dt, params)
    check_param_broadcast(lead, "q, k" + ("" if v is None else ", v"), dict(params, scale=scale),
                          skip=ROW_PARAMS.get(name, ()))
    if name == "stochastic_softmax":
        # per-matrix stream operand, numbered as the normalizer numbers its
        # matrices, so attention_weights equals stochastic_softmax(scores)
        from ._normalizers import stochastic_streams
        slead = lead
        if mask is not None and np.ndim(mask) > 2:
            slead = np.broadcast_shapes(lead, np.shape(mask)[:-2])
        ints = tuple(ints) + (stochastic_streams(slead),)
    nrow = _n_row_params(name)
    scalars = list(reals[:len(reals) - nrow])
    rows = list(reals[len(reals) - nrow:]) if nrow else []
    if scalars:
        rop = np.stack(np.broadcast_arrays(*[np.asarray(r, dtype=dt) for r in scalars]), axis=-1)
    else:
        rop = np.zeros((0,), dtype=dt)
    if ints:
        iop = np.stack(np.broadcast_arrays(*[np.asarray(i, dtype=np.int64) for i in ints]), axis=-1)
    else:
        iop = np.zeros((0,), dtype=np.int64)
    if rows:
        names = list(inspect.signature(PARAMS[name]).parameters)[1:]
        names = names[len(names) - nrow:] if len(names) >= nrow else [f"row parameter {r}" for r in range(nrow)]
        rws = [_rowparam_operand(pn, np.asarray(r, dtype=dt), n, lead) for pn, r in zip(names, rows)]
        rpop = np.stack(np.broadcast_arrays(*rws), axis=-1)
    else:
        rpop = np.zeros((n, 0), dtype=dt)
    mk = mask_operand(mask, lead, n, m)
    return dt, (mk, ccode, wl, wr, ecode, sc, rop, iop, rpop)


def attention(q, k, v, normalizer="softmax", *, scale=None, causal=False, window=None,
              mask=None, empty="zero", return_stats=False, **normalizer_params):
    """Fused attention ``out = normalizer(scale * q k^T) v`` (DESIGN "Attention").

    Parameters
    ----------
    q, k, v : arrays ``(..., n, d)``, ``(..., m, d)``, ``(..., m, e)``
        Leading axes broadcast (grouped-query attention: a size-1 head axis
        in ``k`` and ``v``).  float32 inputs run the float32 kernel (float32
        accumulation), anything else float64.
    normalizer : str
        A key of ``attnnorm.NORMALIZERS``; ``**normalizer_params`` are its
        keyword parameters (same names, defaults and validation as the
        normalizer function, e.g. ``temperature=`` for softmax).
    scale : float or array broadcasting against the leading axes
        Scores are ``scale * q . k``; ``None`` means ``1/sqrt(d)``.  Must be
        finite and nonzero.
    causal, window, mask, empty
        As for the normalizers: ``causal=True`` / ``"bottom_right"``
        (FlashAttention's alignment) or ``"top_left"`` (PyTorch's
        ``is_causal``), ``window=(left, right)`` from the same diagonal, boolean ``mask`` (True = keep) broadcasting to ``(..., n, m)``,
        and the policy for a query that sees no key (``"zero"``: output row 0,
        ``"nan"``, ``"raise"``).  Key blocks outside the causal/window range
        are skipped.
    return_stats : bool
        Also return an :class:`AttentionStats` of per-query ``(..., n)``
        arrays computed in the same pass.

    Returns
    -------
    out : ``(..., n, e)``, or ``(out, stats)`` with ``return_stats=True``.

    The n x m weight matrix is never materialised.  Extra memory: per
    thread a 48 x m block of scores, plus packed copies of k and v (for a
    group of problems of at most 32 MiB, shared by the threads); Sinkhorn
    adds its O(n + m) potentials.  softmax, softmax_sink and ssmax use an
    online (flash-attention style) pass with running maxima and sums; the
    other normalizers, and any query block holding NaN/+inf scores or values,
    use the generic pass (scores of the block -> the normalizer's row kernel
    -> weights x values), which is also what ``attention_weights`` and
    ``return_stats=True`` compute.  Results are identical for every thread
    count.
    """
    dt, ops = _operands(normalizer, q, k, v, scale, causal, window, mask, empty,
                        normalizer_params)
    if return_stats:
        res = getattr(_core, "attention_stats_" + normalizer)(q, k, v, *ops)
        return res[0], AttentionStats(*res[1:])
    return getattr(_core, "attention_" + normalizer)(q, k, v, *ops)


def attention_weights(q, k, normalizer="softmax", *, scale=None, causal=False, window=None,
                      mask=None, empty="zero", **normalizer_params):
    """The ``(..., n, m)`` weights ``attention`` uses: ``normalizer(scale * q k^T)``.

    Same arguments as :func:`attention` without ``v``; computed by the same
    score kernel and row normalizer, so ``attention(q, k, v, ...)`` equals
    ``attention_weights(q, k, ...) @ v`` up to the rounding of the product
    (exactly excluding masked keys).
    """
    dt, ops = _operands(normalizer, q, k, None, scale, causal, window, mask, empty,
                        normalizer_params)
    return getattr(_core, "attention_weights_" + normalizer)(q, k, *ops)
