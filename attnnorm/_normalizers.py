"""Score -> weight normalizers (DESIGN "Normalizers"; papers.md section A).

Every function maps scores ``(..., n, m)`` to weights of the same shape over
the last axis and shares one set of masking semantics:

* ``mask``: boolean, broadcastable to ``(..., n, m)``, True = keep.
* ``causal=True``: query ``i`` sees key ``j`` iff ``j <= i + (m - n)``
  (bottom-right aligned, as FlashAttention).
* ``window=(left, right)``: additionally
  ``i + (m-n) - left <= j <= i + (m-n) + right``; ``None`` = unbounded side.
* ``n_i``: the number of keys row ``i`` sees after masking; the length-aware
  defaults use it.
* A row that sees no key (or whose visible scores are all ``-inf``) gets
  weights 0 (``empty="zero"``), NaN (``"nan"``) or raises (``"raise"``).

A 1-D score vector is treated as a single row.  ``out=`` takes an array of the
result's shape and dtype; ``axes=[(a, b), (c, d)]`` names the (query, key)
axes of the scores and of the output.
"""
import numpy as np

from . import _core
from ._common import (core_shape, empty_code, int_param, mask_operand, move_axes,
                      real_dtype_of, real_param, window_bounds)

__all__ = ["softmax", "NORMALIZERS"]


def _run(gufunc, name, scores, reals=(), ints=(), *, mask=None, causal=False,
         window=None, empty="zero", out=None, axes=None, extra=False):
    """Call a normalizer gufunc with the shared operands.

    reals/ints: the already validated ``()`` parameters, in gufunc order.
    extra: the gufunc also returns the per-row threshold and support size."""
    ecode = empty_code(empty)
    wl, wr = window_bounds(window)
    if axes is not None:
        try:
            ax_in, ax_out = axes
        except (TypeError, ValueError):
            raise ValueError(f"axes must be [(q_axis, k_axis), (q_axis, k_axis)]; got {axes!r}") from None
        scores = move_axes(np.asarray(scores), ax_in, "scores")
        if out is not None:
            out = move_axes(out, ax_out, "out")
    shape = np.shape(scores)
    if len(shape) == 0:
        raise ValueError("scores must have at least 1 dimension (a row of scores); got a scalar")
    row = len(shape) == 1
    if row:
        scores = np.asarray(scores)[None, :]
        if out is not None:
            out = out[None, :] if not isinstance(out, tuple) else tuple(o[None] for o in out)
        shape = scores.shape
    lead, (n, m) = shape[:-2], shape[-2:]
    mk = mask_operand(mask, lead, n, m)
    kw = {}
    if out is not None:
        kw["out"] = out
    res = gufunc(scores, mk, bool(causal), wl, wr, ecode, *reals, *ints, **kw)
    if row:
        res = tuple(r[0] for r in res) if isinstance(res, tuple) else res[0]
    if axes is not None:
        if isinstance(res, tuple):
            res = (np.moveaxis(res[0], (-2, -1), ax_out),) + res[1:]
        else:
            res = np.moveaxis(res, (-2, -1), ax_out)
    return res


#: name -> function(dtype, **params) -> (reals, ints): validates a normalizer's
#: keyword parameters and returns its () gufunc operands in order.  Shared by
#: the normalizer wrappers, attention and diagnose, so every entry point
#: validates identically.  (Length-aware defaults are resolved in C from n_i.)
PARAMS = {}


def _softmax_params(dt, temperature=1.0):
    return (real_param("temperature", temperature, dtype=dt, positive=True),), ()


PARAMS["softmax"] = _softmax_params


def softmax(scores, *, temperature=1.0, mask=None, causal=False, window=None,
            empty="zero", out=None, axes=None):
    """Softmax with temperature over the last axis.

    ``a_j = exp(s_j / T) / sum_k exp(s_k / T)`` over the visible keys, computed
    in the stable form with the row maximum subtracted.  ``T < 1`` sharpens
    (Focal Attention, papers.md A0); ``T`` may be an array broadcasting
    against the leading axes (one temperature per head).

    Limits: ``+inf`` scores share the row's mass equally; a row whose visible
    scores are all ``-inf`` is treated as empty; NaN in a row gives a NaN row.
    """
    reals, ints = _softmax_params(real_dtype_of(scores), temperature=temperature)
    return _run(_core.softmax, "softmax", scores, reals, ints, mask=mask, causal=causal,
                window=window, empty=empty, out=out, axes=axes)


# ---- section: softmax family and elementwise maps (H1) ----
_H1_NORMALIZERS = []
# ---- end section H1 ----


# ---- section: sparse, stochastic and Sinkhorn normalizers (H2) ----
_H2_NORMALIZERS = []
# ---- end section H2 ----


#: name -> function, for every normalizer of the DESIGN table
NORMALIZERS = {f.__name__: f for f in [softmax] + _H1_NORMALIZERS + _H2_NORMALIZERS}
__all__ = __all__ + [f.__name__ for f in _H1_NORMALIZERS + _H2_NORMALIZERS]
