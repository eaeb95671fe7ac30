"""Gradients (vector-Jacobian products) of the normalizers.

``normalizer_vjp(scores, grad_weights, normalizer)`` returns the gradient of
``sum(grad_weights * f(scores))`` with respect to the scores and to every real
parameter of the normalizer ``f``, exactly (no finite differences), computed
in C by one row VJP per normalizer (a matrix VJP for Sinkhorn) over the
visible keys of every row, with the masking conventions of the normalizers.
"""
import inspect
from typing import NamedTuple

import numpy as np

from . import _core
from ._attention import _loop_dtype, _params, param_operands
from ._common import check_param_broadcast, empty_code, mask_operand, sum_to, window_bounds
from ._normalizers import NORMALIZERS, PARAMS, ROW_PARAMS

__all__ = ["normalizer_vjp", "NormalizerGrad", "REAL_PARAMS"]

#: name -> its real (differentiable) parameters, in the order of the C
#: kernels: the () reals, then the per-row (n) reals.  Integer parameters
#: (n_iter, trials, seed) have no gradient.
REAL_PARAMS = {
    "softmax": ("temperature",),
    "softmax_sink": ("sink",),
    "ssmax": ("c",),
    "sigmoid": ("bias",),
    "relu": ("power",),
    "polynomial": ("power",),
    "softpick": ("eps",),
    "nap": ("gain", "bias", "eps"),
    "affine_softmax": ("a", "b"),
    "sparsemax": (),
    "entmax": ("alpha",),
    "stochastic_softmax": (),
    "sinkhorn": ("eps",),
}

# normalizers whose VJP reads the forward weights (the others recompute what
# they need from the scores)
_READS_WEIGHTS = {"softmax", "softmax_sink", "ssmax", "sparsemax", "entmax"}


class NormalizerGrad(NamedTuple):
    """Result of :func:`normalizer_vjp`.

    ``scores``: the gradient with respect to the scores (their shape; masked
    entries 0).  ``params``: a dict from every real parameter's name to its
    gradient, of the shape the parameter was given in (a scalar gives a
    scalar; a per-head ``(H,)`` array for scores ``(B, H, n, m)`` gives ``(H,)``), or None for
    sigmoid's ``bias`` when it is left at its length-aware default."""
    scores: np.ndarray
    params: dict


def normalizer_vjp(scores, grad_weights, normalizer="softmax", *, weights=None, mask=None,
                   causal=False, window=None, empty="zero", param_grads=True, **params):
    """Gradient of ``sum(grad_weights * normalizer(scores, **params))``.

    Returns ``NormalizerGrad(scores, params)``: ``scores`` is ``dL/dscores``
    with the shape of ``scores`` and ``params`` maps each real parameter of
    the normalizer (:data:`REAL_PARAMS`) to its gradient, reduced to the
    shape the parameter was given in (a per-head temperature of shape
    ``(H,)`` for scores ``(B, H, n, m)`` gets an ``(H,)`` gradient; a
    parameter left at its default gets a scalar).  ``mask``, ``causal``, ``window`` and the
    parameters are those of the forward call; ``weights`` (the forward's
    result) may be passed to skip recomputing it, and ``empty`` only affects
    that recomputation (``"raise"`` raises on empty rows).  With
    ``param_grads=False`` only the scores' gradient is computed (saving, e.g.,
    relu's logarithms) and ``params`` is empty.  Sinkhorn and
    stochastic_softmax recompute what they need and ignore ``weights``.

    Exact formulas, per row over the visible keys (``a`` the weights, ``g``
    the upstream gradient):

    * softmax family: ``a * (g - <a, g>)`` times the score multiplier, with
      the derivatives of the temperature, sink, ``c`` (ssmax) and the affine
      ``a``, ``b``;
    * sparsemax and entmax: on the support, ``s * g - s <s, g> / sum s`` with
      ``s = a**(2 - alpha)`` [Peters2019], and the derivative in ``alpha``
      [Correia2019] (the same on the exact and the bisection paths;
      ``alpha = 1`` gives its limit from above);
    * Sinkhorn: differentiated through its ``n_iter`` log-domain iterations
      (``eps`` included);
    * NAP through its mean and standard deviation; sigmoid, relu, polynomial,
      softpick elementwise or through their denominators.

    Length-aware defaults (sigmoid's ``-log n_i``, ssmax's ``log n_i``, relu's
    ``1/n_i``, polynomial's ``1/sqrt(n_i)``) treat ``n_i`` as a constant, and
    sigmoid's default bias has no gradient (``None``).  ``stochastic_softmax``
    uses the straight-through estimator: its gradient is softmax's.
    polynomial's ``power`` is an integer; its gradient is that of
    ``sign(s)**p |s|**p`` in a real ``p``.  Masked keys, fully masked rows and
    rows that carry no mass get gradient 0, never NaN; ``+inf`` scores
    (whose weights are a limit) get 0; NaN scores give NaN.

    Deterministic: the per-matrix parameter gradients are summed in row
    order, so the result is bit-identical for every thread count.
    """
    if not isinstance(normalizer, str) or normalizer not in NORMALIZERS:
        raise ValueError(f"normalizer must be one of {sorted(NORMALIZERS)}; got {normalizer!r}")
    name = normalizer
    empty_code(empty)
    s_shape = np.shape(scores)
    g_shape = np.shape(grad_weights)
    if len(s_shape) == 0:
        raise ValueError("scores must have at least 1 dimension (a row of scores); got a scalar")
    row = len(s_shape) == 1
    dt = _loop_dtype(scores, grad_weights) if weights is None \
        else _loop_dtype(scores, grad_weights, weights)
    reals, ints = _params(name, dt, params)
    if weights is None and (name in _READS_WEIGHTS or empty == "raise"):
        weights = NORMALIZERS[name](scores, mask=mask, causal=causal, window=window,
                                    empty=empty, **params)
    s = np.asarray(scores, dtype=dt)
    g = np.asarray(grad_weights, dtype=dt)
    w = s if weights is None else np.asarray(weights, dtype=dt)
    if row:
        s, g, w = s[None], (g[None] if g.ndim == 1 else g), (w[None] if w.ndim == 1 else w)
    n, m = s.shape[-2:]
    for nm, arr in (("grad_weights", g), ("weights", w)):
        if arr.ndim < 2 or arr.shape[-2:] != (n, m):
            raise ValueError(f"{nm} must have the scores' last two dimensions {(n, m)}; "
                             f"got shape {np.shape(grad_weights if nm == 'grad_weights' else weights)}")
    try:
        lead = np.broadcast_shapes(s.shape[:-2], g.shape[:-2], w.shape[:-2])
    except ValueError:
        raise ValueError(f"scores {s_shape}, grad_weights {g_shape} and weights "
                         f"{np.shape(weights)} do not broadcast") from None
    if mask is not None and np.ndim(mask) > 2:
        try:
            lead = np.broadcast_shapes(lead, np.shape(mask)[:-2])
        except ValueError:
            pass  # mask_operand names it
    check_param_broadcast(lead, "scores", params, skip=ROW_PARAMS.get(name, ()))
    if name == "stochastic_softmax":
        ints = tuple(ints) + (np.zeros((), dtype=np.int64),)   # unused: straight-through
    rop, iop, rpop = param_operands(name, dt, reals, ints, n, lead)
    mk = mask_operand(mask, lead, n, m)
    wl, wr = window_bounds(window)
    dx, dr, drp = getattr(_core, "normalizer_vjp_" + name)(s, w, g, mk, bool(causal), wl, wr,
                                                          rop, iop, rpop, bool(param_grads))
    # gradients in the shapes of the inputs
    dscores = dx if dx.shape == s.shape else sum_to(dx, s.shape, dt)
    if row:
        dscores = dscores[0]
    defaults = {k: p.default for k, p in inspect.signature(PARAMS[name]).parameters.items()}
    grads = {}
    names = REAL_PARAMS[name]
    nrow = len(ROW_PARAMS.get(name, ()))
    nscal = len(names) - nrow
    for q, pn in enumerate(names if param_grads else ()):
        value = params.get(pn, defaults.get(pn))
        if name == "sigmoid" and value is None:
            grads[pn] = None
            continue
        src = dr[..., q] if q < nscal else drp[..., q - nscal]
        shape = np.shape(value)
        grads[pn] = sum_to(src, shape, dt)
    return NormalizerGrad(dscores, grads)
