"""Gradients (vector-Jacobian products) of the normalizers.

``normalizer_vjp(scores, grad_weights, normalizer)`` returns the gradient of
``sum(grad_weights * f(scores))`` with respect to the scores and to every real
parameter of the normalizer ``f``, exactly (no finite differences), computed
in C by one row VJP per normalizer (a matrix VJP for Sinkhorn) over the
visible keys of every row, with the masking conventions of the normalizers.
"""
from typing import NamedTuple

import numpy as np

from . import _core
from ._common import (causal_code, check_param_broadcast, loop_dtype, empty_code, friendly_errors, mask_operand, sum_to,
                      window_bounds)
from ._normalizers import (_LAYOUT, INFO, NORMALIZERS, param_operands, row_param_names,
                           validate)

__all__ = ["normalizer_vjp", "NormalizerGrad", "REAL_PARAMS"]

#: name -> its real (differentiable) parameters, in the order of the C
#: kernels: the per-matrix reals, then the per-row reals (read from the
#: normalizer descriptors).  Integer parameters (n_iter, trials, seed,
#: include_current) have no gradient.
REAL_PARAMS = {name: _LAYOUT[name][0] + _LAYOUT[name][2]
               for name, info in INFO.items() if info["vjp"]}


class NormalizerGrad(NamedTuple):
    """Result of :func:`normalizer_vjp`.

    ``scores``: the gradient with respect to the scores (their shape; masked
    entries 0).  ``params``: a dict from every real parameter's name to its
    gradient, of the shape the parameter was given in (a scalar gives a
    scalar; a per-head ``(H,)`` array for scores ``(B, H, n, m)`` gives ``(H,)``), or None for
    sigmoid's ``bias`` when it is left at its length-aware default."""
    scores: np.ndarray
    params: dict


@friendly_errors
def normalizer_vjp(scores, grad_weights, normalizer="softmax", *, weights=None, mask=None,
                   causal=False, window=None, empty="zero", param_grads=True, **params):
    """Gradient of ``sum(grad_weights * normalizer(scores, **params))``.

    The exact vector-Jacobian product of a normalizer with respect to the
    scores and to every real parameter, computed in C by one row VJP per
    normalizer (a matrix VJP for Sinkhorn) over the keys each row sees.

    Parameters
    ----------
    scores : array_like, shape ``(..., n, m)``
        The scores the forward call normalised (a 1-D vector is one row).
    grad_weights : array_like, shape ``(..., n, m)``
        The upstream gradient ``dL/dweights``; broadcasts against the scores.
    normalizer : str, default "softmax"
        A name of :data:`NORMALIZERS`.
    weights : array_like, optional
        The forward's weights, to skip recomputing them (Sinkhorn and
        stochastic_softmax recompute what they need and ignore it).
    mask, causal, window
        As in the forward call (see :func:`softmax`).
    empty : {"zero", "nan", "raise"}, default "zero"
        Only used when the weights are recomputed (``"raise"`` raises on a
        row that sees no key); such rows get gradient 0 either way.
    param_grads : bool, default True
        False computes only the scores' gradient (saving, e.g., relu's
        logarithms); ``params`` is then empty.
    **params
        The normalizer's parameters, as in the forward call; arrays
        broadcast against the leading axes (one value per head).

    Returns
    -------
    grad : NormalizerGrad
        ``grad.scores``: ``dL/dscores`` of the scores' shape (masked entries
        0); ``grad.params``: a dict from each real parameter of the
        normalizer (:data:`REAL_PARAMS`) to its gradient, summed to the shape
        the parameter was given in (a per-head ``(H,)`` temperature for
        scores ``(B, H, n, m)`` gets an ``(H,)`` gradient; a parameter left at
        its default a scalar), or None for sigmoid's default bias.

    Raises
    ------
    ValueError
        An unknown normalizer, a parameter outside its domain, a gradient or
        weights whose last two axes differ from the scores', shapes that do
        not broadcast, a bad ``window`` or ``empty``; with ``empty="raise"``
        a row that sees no key.
    TypeError
        An unknown keyword parameter.

    Notes
    -----
    Per row over the visible keys (``a`` the weights, ``g`` the upstream
    gradient): the softmax family gives ``a * (g - <a, g>)`` times its score
    multiplier, with the derivatives of the temperature, sink, ``c``
    (ssmax) and the affine ``a``, ``b``; sparsemax and entmax give, on the
    support, ``s * g - s <s, g> / sum s`` with ``s = a**(2 - alpha)``
    [Peters2019], and the derivative in ``alpha`` [Correia2019] (the same on
    the exact and the bisection paths; at ``alpha = 1`` its limit from
    above); Sinkhorn is differentiated through its ``n_iter`` log-domain
    iterations [Sander2021] (``eps`` included); NAP through its mean and
    standard deviation; sigmoid, relu, polynomial and softpick elementwise or
    through their denominators.  Length-aware defaults (sigmoid's
    ``-log n_i``, ssmax's ``log n_i``, relu's ``1/n_i``, polynomial's
    ``1/sqrt(n_i)``) treat ``n_i`` as a constant.  ``stochastic_softmax`` uses
    the straight-through estimator: its gradient is softmax's.
    ``stickbreaking`` [Tan2025] gives, with ``sigma_l = sigmoid(s_l)`` over the
    keys that break the stick, ``g_l a_l (1 - sigma_l) - sigma_l sum_{j < l}
    g_j a_j`` (the weights recomputed in log space; ``include_current`` is
    an integer option, without a gradient).
    polynomial's integer ``power`` gets the derivative of
    ``sign(s)**p |s|**p / sqrt(n_i)`` in a real ``p``.  Masked keys, fully
    masked rows and rows without mass get gradient 0, never NaN; ``+inf``
    scores (whose weights are a limit) get 0; NaN scores give NaN in their
    row.  The per-matrix parameter gradients are summed in row order, so
    results are bit-identical for every thread count.

    References
    ----------
    [Peters2019]; [Correia2019] (entmax's ``alpha``); [Sander2021] (Sinkhorn);
    [Tan2025] (stick-breaking).

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> rng = np.random.default_rng(0)
    >>> s, g = rng.standard_normal((2, 3, 4, 5))
    >>> grad = an.normalizer_vjp(s, g, "softmax", temperature=np.array([0.5, 1.0, 2.0]))
    >>> grad.scores.shape, grad.params["temperature"].shape
    ((3, 4, 5), (3,))
    >>> bool(np.allclose(grad.scores.sum(-1), 0))     # softmax is shift-invariant
    True
    """
    if not isinstance(normalizer, str) or normalizer not in REAL_PARAMS:
        raise ValueError(f"normalizer must be one of {sorted(REAL_PARAMS)}; got {normalizer!r}")
    name = normalizer
    info = INFO[name]
    empty_code(empty)
    s_shape = np.shape(scores)
    g_shape = np.shape(grad_weights)
    if len(s_shape) == 0:
        raise ValueError("scores must have at least 1 dimension (a row of scores); got a scalar")
    row = len(s_shape) == 1
    dt = loop_dtype(scores=scores, grad_weights=grad_weights, weights=weights)
    values = validate(name, dt, params)
    if weights is None and (info["vjp_weights"] or empty == "raise"):
        weights = NORMALIZERS[name](scores, mask=mask, causal=causal, window=window,
                                    empty=empty, **params)
    s = np.asarray(scores, dtype=dt)
    g = np.asarray(grad_weights, dtype=dt)
    w = s if weights is None or not info["vjp_weights"] else np.asarray(weights, dtype=dt)
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
    rows = row_param_names(name)
    check_param_broadcast(lead, "scores", {k: v for k, v in params.items() if k not in rows})
    ops = param_operands(name, dt, values, n, lead)
    mk = mask_operand(mask, lead, n, m)
    wl, wr = window_bounds(window)
    dx, dr, drp = getattr(_core, "normalizer_vjp_" + name)(s, w, g, mk, causal_code(causal), wl, wr,
                                                          *ops, bool(param_grads))
    # gradients in the shapes of the inputs
    dscores = dx if dx.shape == s.shape else sum_to(dx, s.shape, dt)
    if row:
        dscores = dscores[0]
    return NormalizerGrad(dscores, param_grads_of(name, params, dr, drp, param_grads, dt))


def param_grads_of(name, params, dr, drp, wanted, dt):
    """{parameter: gradient} from the kernels' per-matrix (dr, ``(..., r)``)
    and per-row (drp, ``(..., n, w)``) real-parameter gradients, each summed
    to the shape the parameter was given in (its default's when not given);
    None for a length-aware default (a constant); {} unless ``wanted``."""
    defaults = {p["name"]: p["default"] for p in INFO[name]["params"]}
    grads = {}
    names = REAL_PARAMS[name]
    nscal = len(names) - len(row_param_names(name))
    for q, pn in enumerate(names if wanted else ()):
        value = params.get(pn, defaults.get(pn))
        if value is None:
            grads[pn] = None     # a length-aware default (a constant)
            continue
        src = dr[..., q] if q < nscal else drp[..., q - nscal]
        grads[pn] = sum_to(src, np.shape(value), dt)
    return grads
