"""Score -> weight normalizers (DESIGN "Normalizers"; papers.md section A).

Every function maps scores ``(..., n, m)`` to weights of the same shape over
the last axis and shares one set of masking semantics:

* ``mask``: boolean, broadcastable to ``(..., n, m)``, True = keep.
* ``causal=True`` or ``"bottom_right"``: query ``i`` sees key ``j`` iff
  ``j <= i + (m - n)`` (bottom-right aligned, as FlashAttention);
  ``causal="top_left"``: iff ``j <= i`` (PyTorch's ``is_causal``).
* ``window=(left, right)``: additionally ``diag - left <= j <= diag + right``
  with the same diagonal (``diag = i + (m - n)``, or ``i`` for
  ``"top_left"``); ``None`` = unbounded side.
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
from ._common import (causal_code, check_param_broadcast, split_axes, empty_code, int_param, mask_operand,
                      move_axes, real_dtype_of, real_param, window_bounds)

__all__ = ["softmax", "NORMALIZERS"]


def _run(gufunc, name, scores, reals=(), ints=(), *, mask=None, causal=False,
         window=None, empty="zero", out=None, axes=None, extra=False, params=None):
    """Call a normalizer gufunc with the shared operands.

    reals/ints: the already validated ``()`` parameters, in gufunc order.
    params: the user's keyword parameters by name (for the broadcast check).
    extra: the gufunc also returns the per-row threshold and support size."""
    ecode = empty_code(empty)
    ccode = causal_code(causal)
    wl, wr = window_bounds(window)
    if axes is not None:
        ax_in, ax_out = split_axes(axes)
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
    check_param_broadcast(lead, "scores", params or {})
    mk = mask_operand(mask, lead, n, m)
    kw = {}
    if out is not None:
        kw["out"] = out
    if real_dtype_of(scores) == np.float64:
        # small integer/bool scores would pick the float32 loop when no float64
        # parameter operand forces float64 (sparsemax); README: ints -> float64
        kw["signature"] = (np.float64,) + (None,) * (gufunc.nargs - 1)
    res = gufunc(scores, mk, ccode, wl, wr, ecode, *reals, *ints, **kw)
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

#: name -> its per-query-row ``(..., n)`` parameters (the others are one per
#: matrix and broadcast against the leading axes).
ROW_PARAMS = {"affine_softmax": ("a", "b")}


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
    return _run(_core.softmax, "softmax", scores, reals, ints,
                params=dict(temperature=temperature), mask=mask, causal=causal,
                window=window, empty=empty, out=out, axes=axes)


# ---- section: softmax family and elementwise maps (H1) ----
# Formulas: papers.md section A; kernels in csrc/normalizers.c.  n_i-dependent
# defaults (sigmoid's bias, ssmax's log n_i, relu's 1/n_i, polynomial's
# 1/sqrt(n_i)) are resolved per row in C from the visible length.


def _softmax_sink_params(dt, sink=0.0):
    return (real_param("sink", sink, dtype=dt),), ()


def _ssmax_params(dt, c=0.43):
    return (real_param("c", c, dtype=dt, nonneg=True, allow_inf=False),), ()


def _sigmoid_params(dt, bias=None):
    if bias is None:
        return (np.zeros((), dtype=dt),), (np.ones((), dtype=np.int64),)
    return (real_param("bias", bias, dtype=dt, allow_inf=False),), (np.zeros((), dtype=np.int64),)


def _relu_params(dt, power=1):
    return (real_param("power", power, dtype=dt, positive=True, allow_inf=False),), ()


def _polynomial_params(dt, power=3):
    p = real_param("power", power, positive=True, allow_inf=False)
    if np.any(p != np.round(p)):
        raise ValueError(f"power must be a positive integer (s^p is then defined for "
                         f"negative scores); got {power!r}")
    if np.any(p > 2 ** 24):
        raise ValueError(f"power must be <= 2**24; got {power!r}")
    return (p.astype(dt),), ()


def _softpick_params(dt, eps=1e-8):
    return (real_param("eps", eps, dtype=dt, positive=True, allow_inf=False),), ()


def _nap_params(dt, gain=1.0, bias=0.0, eps=1e-3):
    return (real_param("gain", gain, dtype=dt, allow_inf=False),
            real_param("bias", bias, dtype=dt, allow_inf=False),
            real_param("eps", eps, dtype=dt, positive=True, allow_inf=False)), ()


def _affine_softmax_params(dt, a=1.0, b=0.0):
    """Validated a and b.  NOTE: these are per-row ``(n)`` core operands of the
    gufunc (not ``()``): callers broadcast them with :func:`_rowparam_operand`."""
    return (real_param("a", a, dtype=dt, allow_inf=False),
            real_param("b", b, dtype=dt, allow_inf=False)), ()


def _rowparam_operand(name, value, n, lead=()):
    """A per-query-row parameter as an ``(..., n)`` gufunc operand: scalars
    and arrays broadcasting against ``lead + (n,)`` (last axis 1 or n)."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        return np.broadcast_to(arr, (n,))
    try:
        if arr.shape[-1] not in (1, n):
            raise ValueError
        np.broadcast_shapes(arr.shape[:-1], tuple(lead))
    except ValueError:
        raise ValueError(f"{name} of shape {arr.shape} does not broadcast against the "
                         f"scores' (..., n) = {tuple(lead) + (n,)} (one value per query "
                         f"row; use shape (H, 1) for one value per head)") from None
    return np.broadcast_to(arr, arr.shape[:-1] + (n,))


PARAMS["softmax_sink"] = _softmax_sink_params
PARAMS["ssmax"] = _ssmax_params
PARAMS["sigmoid"] = _sigmoid_params
PARAMS["relu"] = _relu_params
PARAMS["polynomial"] = _polynomial_params
PARAMS["softpick"] = _softpick_params
PARAMS["nap"] = _nap_params
PARAMS["affine_softmax"] = _affine_softmax_params


def softmax_sink(scores, *, sink=0.0, mask=None, causal=False, window=None,
                 empty="zero", out=None, axes=None):
    """Softmax with an attention sink in the denominator (softmax_1 at sink=0).

    ``a_j = exp(s_j) / (exp(sink) + sum_k exp(s_k))`` over the visible keys
    (attention sinks, papers.md A / #4), computed with ``max(max s, sink)``
    subtracted.  Rows sum to less than 1; the rest is the sink's mass.
    ``sink`` may be an array broadcasting against the leading axes.

    Limits: ``sink=-inf`` is exactly :func:`softmax`; ``sink=+inf`` gives zeros
    (with ``+inf`` scores, the sink and each ``+inf`` score share the mass);
    ``+inf`` scores share the mass equally; a row of ``-inf`` scores with a
    finite sink gives zeros (the sink takes the mass; it is not an empty row,
    so ``empty`` applies only to rows with no visible key, or to ``-inf`` rows
    when ``sink=-inf``); NaN in a row gives a NaN row.
    """
    reals, ints = _softmax_sink_params(real_dtype_of(scores), sink=sink)
    return _run(_core.softmax_sink, "softmax_sink", scores, reals, ints,
                params=dict(sink=sink), mask=mask,
                causal=causal, window=window, empty=empty, out=out, axes=axes)


def ssmax(scores, *, c=0.43, mask=None, causal=False, window=None,
          empty="zero", out=None, axes=None):
    """Scalable-Softmax: ``softmax(c * log(n_i) * s)`` over the visible keys.

    ``n_i`` is the number of keys query ``i`` sees after masking (Nakanishi
    2025; papers.md A0 and #11).  ``c >= 0`` finite (default 0.43, the
    scalable-softmax package's default) may be an array broadcasting against
    the leading axes (one per head).

    With ``n_i = 1`` (or ``c = 0``) the multiplier is ``log 1 = 0``: the result
    is its limit as the multiplier goes to 0 from above, uniform over the finite
    scores (weight 1 for a single key), 0 for ``-inf`` scores.  Otherwise the
    limits are softmax's: ``+inf`` scores share the mass, a row of ``-inf`` is
    empty, NaN gives a NaN row.
    """
    reals, ints = _ssmax_params(real_dtype_of(scores), c=c)
    return _run(_core.ssmax, "ssmax", scores, reals, ints,
                params=dict(c=c), mask=mask, causal=causal,
                window=window, empty=empty, out=out, axes=axes)


def sigmoid(scores, *, bias=None, mask=None, causal=False, window=None,
            empty="zero", out=None, axes=None):
    """Sigmoid attention: ``a_j = sigma(s_j + b)`` elementwise, no normalisation.

    ``bias=None`` uses ``b = -log(n_i)`` per row, with ``n_i`` the number of
    visible keys (papers.md A4, #9: then ``sigma(s - log n) ~ e^s / n``);
    otherwise ``bias`` is a finite number or an array broadcasting against the
    leading axes.  ``sigma(v)`` is computed as ``exp(-softplus(-v))`` in the
    overflow-free form.  Masked keys get 0; a row of ``-inf`` scores is all 0
    (not an empty row: ``empty`` applies to rows with no visible key).
    """
    reals, ints = _sigmoid_params(real_dtype_of(scores), bias=bias)
    return _run(_core.sigmoid, "sigmoid", scores, reals, ints,
                params=dict(bias=bias), mask=mask, causal=causal,
                window=window, empty=empty, out=out, axes=axes)


def relu(scores, *, power=1, mask=None, causal=False, window=None,
         empty="zero", out=None, axes=None):
    """ReLU attention: ``a_j = max(s_j, 0)**power / n_i`` (papers.md A12, #4).

    ``power > 0`` (finite; may be an array over the leading axes).  ``n_i`` is
    the row's visible length.  No normalisation: a row of non-positive or
    ``-inf`` scores is all 0 (not an empty row); ``+inf`` gives ``+inf``; NaN
    stays NaN (in its own row).
    """
    reals, ints = _relu_params(real_dtype_of(scores), power=power)
    return _run(_core.relu, "relu", scores, reals, ints,
                params=dict(power=power), mask=mask, causal=causal,
                window=window, empty=empty, out=out, axes=axes)


def polynomial(scores, *, power=3, mask=None, causal=False, window=None,
               empty="zero", out=None, axes=None):
    """Polynomial attention: ``a_j = s_j**power / sqrt(n_i)`` (papers.md A3, #3).

    ``power`` must be a positive integer (``3``, the paper's default, or e.g.
    ``1``; a float such as ``3.0`` is accepted): the power is then defined for
    negative scores and odd powers keep the sign.  Non-integer powers raise
    ValueError rather than giving NaN for negative scores.  Weights may be
    negative and do not sum to 1; no max subtraction (papers.md A3), so large
    scores overflow to ``+-inf`` as the formula does.
    """
    reals, ints = _polynomial_params(real_dtype_of(scores), power=power)
    return _run(_core.polynomial, "polynomial", scores, reals, ints,
                params=dict(power=power), mask=mask,
                causal=causal, window=window, empty=empty, out=out, axes=axes)


def softpick(scores, *, eps=1e-8, mask=None, causal=False, window=None,
             empty="zero", out=None, axes=None):
    """Softpick: ``ReLU(e^s_j - 1) / (sum_k |e^s_k - 1| + eps)`` (papers.md A13).

    Computed in the stable form of the reference code with ``m = max s``:
    ``ReLU(e^(s_j-m) - e^-m) / (sum_{k: s_k finite} |e^(s_k-m) - e^-m| + eps)``
    (so ``eps`` acts on the rescaled denominator).  ``eps > 0``.  Rows sum to
    at most 1 and are exactly 0 where ``s <= 0``; a row with ``max s <= 0``
    (including all ``-inf``) is all 0, not an empty row.  ``+inf`` scores share
    the mass equally; NaN gives a NaN row.
    """
    reals, ints = _softpick_params(real_dtype_of(scores), eps=eps)
    return _run(_core.softpick, "softpick", scores, reals, ints, params=dict(eps=eps),
                mask=mask, causal=causal, window=window, empty=empty, out=out, axes=axes)


def nap(scores, *, gain=1.0, bias=0.0, eps=1e-3, mask=None, causal=False, window=None,
        empty="zero", out=None, axes=None):
    """Normalized Attention Pooling: ``g (s_j - mu) / (sigma + eps) + b``.

    ``mu`` and ``sigma`` are the mean and *population* standard deviation of
    the row's visible scores (papers.md A1, the title paper); masked keys get 0
    (``b`` is added to visible keys only).  ``gain``, ``bias`` (finite) and
    ``eps > 0`` may be arrays broadcasting against the leading axes (one per
    head).  Weights are signed and sum to ``n_i * b``.

    Limits: with infinite scores the result is the standardisation of their
    signs (``+1`` for ``+inf``, ``-1`` for ``-inf``, 0 for finite scores), its
    limit as they grow; a constant row (e.g. all ``-inf``) gives ``b``.  NaN
    gives a NaN row.
    """
    reals, ints = _nap_params(real_dtype_of(scores), gain=gain, bias=bias, eps=eps)
    return _run(_core.nap, "nap", scores, reals, ints,
                params=dict(gain=gain, bias=bias, eps=eps), mask=mask, causal=causal,
                window=window, empty=empty, out=out, axes=axes)


def _query_layout(scores, axes):
    """(lead, n) of the scores in the (query, key)-last layout."""
    shape = np.shape(scores)
    if len(shape) <= 1:
        return (), 1
    if axes is not None:
        try:
            qa, ka = axes[0]
            order = [i for i in range(len(shape)) if i not in
                     (qa % len(shape), ka % len(shape))]
            return tuple(shape[i] for i in order), shape[qa]
        except (TypeError, IndexError, ValueError):
            raise ValueError(f"axes must be [(q_axis, k_axis), (q_axis, k_axis)]; got {axes!r}") from None
    return tuple(shape[:-2]), shape[-2]


def affine_softmax(scores, *, a=1.0, b=0.0, mask=None, causal=False, window=None,
                   empty="zero", out=None, axes=None):
    """Affine-scaled softmax: ``a_i * softmax(s)_j + b_i`` (papers.md A2, #2).

    ``a`` and ``b`` are finite scalars or arrays broadcasting against
    ``(..., n)``: one value per query row, leading axes for per-head values
    (for scores ``(B, H, n, m)`` a per-head ``a`` has shape ``(H, 1)``).  With
    ``axes=``, ``(..., n)`` is the layout with the query axis last.  Masked keys
    stay exactly 0 (``b`` is added to visible keys only).  A row of ``-inf``
    scores is empty, as for softmax; ``a=1, b=0`` is exactly :func:`softmax`.
    """
    dt = real_dtype_of(scores)
    (a_arr, b_arr), ints = _affine_softmax_params(dt, a=a, b=b)
    lead, n = _query_layout(scores, axes)
    reals = (_rowparam_operand("a", a_arr, n, lead), _rowparam_operand("b", b_arr, n, lead))
    return _run(_core.affine_softmax, "affine_softmax", scores, reals, ints, mask=mask,
                causal=causal, window=window, empty=empty, out=out, axes=axes)


_H1_NORMALIZERS = [softmax_sink, ssmax, sigmoid, relu, polynomial, softpick, nap,
                   affine_softmax]
# ---- end section H1 ----


# ---- section: sparse, stochastic and Sinkhorn normalizers (H2) ----

def _run_extra(gufunc, name, scores, reals, ints, return_tau, *, out=None, axes=None, **opts):
    """_run for the gufuncs with the extra outputs (tau, support).

    ``out`` is the weights array (or, with ``return_tau=True``, optionally a
    tuple (weights, tau, support)); ``axes`` applies to scores and weights only."""
    ax_out = None
    if axes is not None:
        ax_in, ax_out = split_axes(axes)
        scores = move_axes(np.asarray(scores), ax_in, "scores")
    outs = None
    if out is not None:
        if isinstance(out, tuple):
            if len(out) != 3:
                raise ValueError(f"out for {name} must be an array or a tuple (weights, tau, support)")
            w_out, tau_out, sup_out = out
        else:
            w_out, tau_out, sup_out = out, None, None
        if ax_out is not None:
            w_out = move_axes(w_out, ax_out, "out")
        lead = np.shape(w_out)[:-1]
        if tau_out is None:
            tau_out = np.empty(lead, dtype=w_out.dtype)
        if sup_out is None:
            sup_out = np.empty(lead, dtype=np.int64)
        outs = (w_out, tau_out, sup_out)
    w, tau, sup = _run(gufunc, name, scores, reals, ints, out=outs, extra=True, **opts)
    if ax_out is not None:
        w = np.moveaxis(w, (-2, -1), ax_out)
    return (w, tau, sup) if return_tau else w


def _sparsemax_params(dt):
    return (), ()


PARAMS["sparsemax"] = _sparsemax_params


def sparsemax(scores, *, return_tau=False, mask=None, causal=False, window=None,
              empty="zero", out=None, axes=None):
    """Sparsemax: the Euclidean projection of each row onto the simplex.

    ``p_j = max(s_j - tau, 0)`` with the threshold ``tau`` chosen so that the
    visible weights sum to 1 (Martins & Astudillo 2016; alpha-entmax with
    alpha = 2, papers.md A6).  Exact: only the candidates ``s_j > max s - 1``
    can be in the support; the threshold is the sort-based closed form on
    them (sorted when few, support found without sorting when many).

    ``return_tau=True`` returns ``(weights, tau, support)``: ``tau (..., n)``
    and ``support (..., n)`` int64, the number of nonzero weights per row.
    Empty rows have tau NaN and support 0; NaN rows tau NaN; rows with ``+inf``
    scores share the mass equally among the ``+inf`` entries (tau = +inf).
    """
    reals, ints = _sparsemax_params(real_dtype_of(scores))
    return _run_extra(_core.sparsemax, "sparsemax", scores, reals, ints, return_tau,
                      mask=mask, causal=causal, window=window, empty=empty, out=out, axes=axes)


def _entmax_params(dt, alpha=1.5, n_iter=50):
    a = real_param("alpha", alpha, dtype=dt, allow_inf=False, minimum=1.0)
    return (a,), (int_param("n_iter", n_iter, minimum=1),)


PARAMS["entmax"] = _entmax_params


def entmax(scores, *, alpha=1.5, n_iter=50, return_tau=False, mask=None, causal=False,
           window=None, empty="zero", out=None, axes=None):
    """alpha-entmax over the last axis (Peters et al. 2019; ASEntmax, papers.md A6).

    ``p_j = [(alpha - 1) s_j - tau]_+ ** (1 / (alpha - 1))`` with ``tau`` such
    that the visible weights sum to 1 (the maximiser of ``p.s + H_alpha(p)``,
    Tsallis entropy).  ``alpha`` (>= 1, may be an array broadcasting against the
    leading axes):

    * ``alpha == 2``: sparsemax (same code, exact);
    * ``alpha == 1.5``: exact threshold, the sort-based closed form of
      ``entmax.entmax15`` (on the candidates ``s_j > max s - 2``);
    * other ``alpha > 1``: ``n_iter`` bisection steps on tau starting from the
      bracket given by the row maximum, then renormalised to sum to 1 (as
      ``entmax.entmax_bisect``).  The power is evaluated as
      ``exp(log1p(u) / (alpha - 1))`` so the result tends continuously to
      softmax as ``alpha -> 1``;
    * ``alpha == 1``: softmax; tau is then the row's log-sum-exp
      (``p = exp(s - tau)``), not the limit of the formula above.

    ``return_tau=True`` returns ``(weights, tau, support)`` as in
    :func:`sparsemax`.  ``alpha < 1`` or ``n_iter < 1`` raise ValueError.
    """
    reals, ints = _entmax_params(real_dtype_of(scores), alpha=alpha, n_iter=n_iter)
    return _run_extra(_core.entmax, "entmax", scores, reals, ints, return_tau,
                      params=dict(alpha=alpha, n_iter=n_iter), mask=mask, causal=causal,
                      window=window, empty=empty, out=out, axes=axes)


_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _stochastic_softmax_params(dt, trials=100, seed=0):
    """ints (trials, seed).  Callers append the ``stream`` operand (an int64
    array of the scores' leading shape numbering the matrices, see
    :func:`stochastic_softmax`) after these."""
    t = int_param("trials", trials, minimum=1)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        sd = np.asarray(seed)
        if sd.dtype.kind not in "iu":
            raise ValueError(f"seed must be an integer; got {seed!r}")
        sd = sd.astype(np.int64)
    else:
        if not _INT64_MIN <= int(seed) <= _INT64_MAX:
            raise ValueError(f"seed must fit in a signed 64-bit integer; got {seed!r}")
        sd = np.asarray(int(seed), dtype=np.int64)
    return (), (t, sd)


PARAMS["stochastic_softmax"] = _stochastic_softmax_params


def stochastic_streams(lead):
    """The ``stream`` operand of the stochastic_softmax gufunc for scores of
    leading shape ``lead``: ``arange(prod(lead)).reshape(lead)``, so every
    matrix of a batch draws from its own stream."""
    lead = tuple(lead)
    return np.arange(int(np.prod(lead, dtype=np.int64)), dtype=np.int64).reshape(lead)


def stochastic_softmax(scores, *, trials=100, seed=0, mask=None, causal=False, window=None,
                       empty="zero", out=None, axes=None):
    """Stochastic softmax (Stochastic Attention #10, papers.md A7).

    ``a~ = c / N`` with ``c ~ Multinomial(N, softmax(s))`` per row and
    ``N = trials``: unbiased (``E[a~] = softmax(s)``), ``Var[a~_j] =
    a_j (1 - a_j) / N``, and every weight a multiple of ``1 / N``.

    Reproducible: the draws come from a counter-based generator keyed by
    ``(seed, matrix index, row)``, so the result depends only on ``seed`` (any
    signed 64-bit integer, negative ones included) and on the position of the
    row in the batch, never on the thread count.  Matrix ``k`` of the
    flattened leading axes uses stream ``k`` (the gufunc takes the streams as
    an int64 operand after trials and seed; see :func:`stochastic_streams`).
    Up to ``2**20`` trials, sampled by inversion: each trial is one uniform
    placed on the row's CDF (a binary search over blocks of 8 keys), cost
    O(n_i + N log n_i) per row.  Above, the counts are drawn key by key as
    sequential binomials, ``c_j ~ Binomial(N - sum_{l<j} c_l, p_j / sum_{l>=j} p_l)``
    (the multinomial factorised exactly), each by the BTRS transformed
    rejection of [Hormann1993] (or geometric waiting times when its mean is
    below 10): cost O(n_i) per row whatever ``N`` (up to ``2**63 - 1``),
    still seeded and thread-count independent.  ``trials < 1`` raises
    ValueError.
    """
    reals, ints = _stochastic_softmax_params(real_dtype_of(scores), trials=trials, seed=seed)
    shape = np.shape(scores)
    if axes is not None:
        try:
            ax_in = axes[0]
            shape = np.moveaxis(np.broadcast_to(np.int8(0), shape), ax_in, (-2, -1)).shape
        except Exception:
            pass  # _run reports bad axes
    lead = shape[:-2] if len(shape) >= 2 else ()
    if mask is not None and np.ndim(mask) > 2:
        try:
            lead = np.broadcast_shapes(lead, np.shape(mask)[:-2])
        except ValueError:
            pass  # _run reports the mask that does not broadcast
    ints = ints + (stochastic_streams(lead),)
    return _run(_core.stochastic_softmax, "stochastic_softmax", scores, reals, ints,
                params=dict(trials=trials, seed=seed), mask=mask,
                causal=causal, window=window, empty=empty, out=out, axes=axes)


def _sinkhorn_params(dt, n_iter=5, eps=1.0):
    e = real_param("eps", eps, dtype=dt, positive=True, allow_inf=False)
    if np.any(e <= 0) or not np.all(np.isfinite(e)):
        raise ValueError(f"eps must be > 0 and finite in {np.dtype(dt).name}; got {eps!r}")
    return (e,), (int_param("n_iter", n_iter, minimum=1),)


PARAMS["sinkhorn"] = _sinkhorn_params


def sinkhorn(scores, *, n_iter=5, eps=1.0, mask=None, causal=False, window=None,
             empty="zero", out=None, axes=None):
    """Sinkhorn attention (Sinkformers #8, papers.md A5) on each whole (n, m) matrix.

    Log domain: ``K = s / eps``, ``pi = exp(K + f 1' + 1 g')`` from ``f = g = 0``,
    ``n_iter`` alternating steps starting with the row step
    ``f_i = log mu_i - LSE_j(K_ij + g_j)``, then the column step
    ``g_j = log nu_j - LSE_i(K_ij + f_i)``; returns ``A = n_r * pi``.  With
    uniform marginals ``mu = 1/n_r`` and ``nu = 1/m_c``, rows of A sum to 1
    after a row step and columns to ``n_r / m_c`` after a column step;
    ``n_iter=1`` is exactly ``softmax(s / eps)``.

    Masks exclude entries exactly.  ``n_r`` and ``m_c`` count the rows and
    columns with at least one visible entry: empty rows (fully masked or all
    ``-inf``) take no part and follow ``empty``.  (With ``causal=True`` this
    is a Sinkhorn iteration on the causal support with those marginals; it is
    well defined but, as the plan is forced towards the diagonal, converges
    slowly.)  A row with NaN among its visible scores is NaN there and is left
    out of the column step and of ``n_r``.  A row containing ``+inf`` keeps
    only its ``+inf`` entries with equal scores (the row step's limit).
    ``n_iter < 1`` or ``eps <= 0`` raise ValueError.  With ``empty="raise"``
    the error does not name the row.
    """
    reals, ints = _sinkhorn_params(real_dtype_of(scores), n_iter=n_iter, eps=eps)
    return _run(_core.sinkhorn, "sinkhorn", scores, reals, ints,
                params=dict(n_iter=n_iter, eps=eps), mask=mask, causal=causal,
                window=window, empty=empty, out=out, axes=axes)


_H2_NORMALIZERS = [sparsemax, entmax, stochastic_softmax, sinkhorn]
# ---- end section H2 ----


#: name -> function, for every normalizer of the DESIGN table
NORMALIZERS = {f.__name__: f for f in [softmax] + _H1_NORMALIZERS + _H2_NORMALIZERS}
__all__ = __all__ + [f.__name__ for f in _H1_NORMALIZERS + _H2_NORMALIZERS]
