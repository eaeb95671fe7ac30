"""Score -> weight normalizers (formulas and references in each docstring, attnnorm._docs).

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

The functions are generated from the normalizer descriptors of the C core
(``_core.normalizer_info()``): parameter names, defaults, domains and traits
are declared once, in C, and read here.  Their docstrings live in
``attnnorm._docs``.
"""
import inspect
import math
import numbers

import numpy as np

from . import _core
from ._common import (causal_code, check_param_broadcast, friendly_errors, split_axes, empty_code, int_param,
                      mask_operand, move_axes, real_dtype_of, real_param, window_bounds)
from ._docs import NORMALIZER_DOCS

#: name -> descriptor (dict) of every normalizer, in the C list's order
INFO = {d["name"]: d for d in _core.normalizer_info()}

_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def keyword_params(name):
    """The user-facing parameters of a normalizer (no internal stream)."""
    return [p for p in INFO[name]["params"] if not p["stream"]]


def _bound_text(x):
    return str(int(x)) if float(x).is_integer() and abs(x) < 2 ** 53 else repr(float(x))


def _check_real(p, value, dt, domain):
    """Validate one real parameter against its descriptor domain."""
    name = p["name"]
    lo, hi, lo_open = domain["lo"], domain["hi"], domain["lo_open"]
    kw = {}
    if lo == 0 and lo_open:
        kw["positive"] = True
    elif lo == 0:
        kw["nonneg"] = True
    elif math.isfinite(lo):
        kw["exclusive_min" if lo_open else "minimum"] = lo
    text = domain["text"]
    if text is not None and not p["integer"]:
        a = real_param(name, value, allow_inf=not p["finite"])
        bad = (a <= lo) if lo_open else (a < lo)
        if np.any(bad):
            raise ValueError(f"{name} must be {text}; got {value!r}")
        kw = {}
    if p["integer"]:
        a = real_param(name, value, allow_inf=not p["finite"], **kw)
        if np.any(a != np.round(a)):
            raise ValueError(f"{name} must be {text or 'an integer'}; got {value!r}")
        if math.isfinite(hi) and np.any(a > hi):
            raise ValueError(f"{name} must be <= {_bound_text(hi)}; got {value!r}")
        return a.astype(dt)
    a = real_param(name, value, dtype=dt, allow_inf=not p["finite"], **kw)
    if math.isfinite(hi) and np.any(np.asarray(a, dtype=np.float64) > hi):
        raise ValueError(f"{name} must be <= {_bound_text(hi)}; got {value!r}")
    return a


def _check_int(p, value):
    """Validate one integer parameter: int-like, within int64 and the domain
    (a flag: True/False or 0/1)."""
    name = p["name"]
    lo = p["domain"]["lo"]
    if p["bool"]:
        arr = np.asarray(value)
        if arr.dtype.kind not in "biu" or np.any((arr != 0) & (arr != 1)):
            raise ValueError(f"{name} must be True or False; got {value!r}")
        return arr.astype(np.int64)
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        if not _INT64_MIN <= int(value) <= _INT64_MAX:
            raise ValueError(f"{name} must fit in a signed 64-bit integer; got {value!r}")
    arr = int_param(name, value, minimum=int(lo) if math.isfinite(lo) else None)
    return arr


def validate(name, dt, params, jacobian=False):
    """Validate a normalizer's keyword parameters (missing ones take their
    defaults) and return ``{name: value}`` in the descriptor's order, reals
    as ``dt`` arrays (NaN for a ``None`` length-aware default), ints as int64.
    ``jacobian=True`` applies the stricter domains of ``jacobian_norm``."""
    info = INFO[name]
    known = [p["name"] for p in keyword_params(name)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise TypeError(f"normalizer {name!r} got unexpected parameter(s) {unknown}; "
                        f"it accepts {known}")
    out = {}
    for p in info["params"]:
        if p["stream"]:
            continue
        value = params.get(p["name"], p["default"])
        if p["kind"] == "int":
            out[p["name"]] = _check_int(p, value)
        elif value is None and p["none"]:
            out[p["name"]] = np.full((), np.nan, dtype=dt)
        else:
            dom = p["jacobian_domain"] if jacobian and p["jacobian_domain"] else p["domain"]
            out[p["name"]] = _check_real(p, value, dt, dom)
    return out


def stochastic_streams(lead):
    """The ``stream`` operand for scores of leading shape ``lead``:
    ``arange(prod(lead)).reshape(lead)``, so every matrix of a batch draws
    from its own stream."""
    lead = tuple(lead)
    return np.arange(int(np.prod(lead, dtype=np.int64)), dtype=np.int64).reshape(lead)


def _rowparam_operand(name, value, n, lead=()):
    """A per-query-row parameter as an ``(..., n)`` operand: scalars and
    arrays broadcasting against ``lead + (n,)`` (last axis 1 or n)."""
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


def _stack(vals, dt):
    """Parameters (scalars or broadcastable arrays) stacked along a new last axis."""
    if all(np.ndim(v) == 0 for v in vals):
        return np.array(vals, dtype=dt)   # the common case: one value of each, shape (k,)
    return np.stack(np.broadcast_arrays(*[np.asarray(v, dtype=dt) for v in vals]), axis=-1)


def param_operands(name, dt, values, n, lead, stream_lead=None):
    """The three parameter operands every gufunc of a normalizer takes:
    reals ``(..., r)`` [dt], ints ``(..., i)`` [int64] and per-row reals
    ``(..., n, w)`` [dt], from validated ``values`` (see :func:`validate`).
    ``stream_lead``: the leading shape that numbers the matrices (for a
    stream parameter; default ``lead``)."""
    real_names, int_names, row_names = _LAYOUT[name]
    reals = [values[k] for k in real_names]
    ints = [stochastic_streams(lead if stream_lead is None else stream_lead) if k is None
            else values[k] for k in int_names]
    rows = [_rowparam_operand(k, np.asarray(values[k], dtype=dt), n, lead) for k in row_names]
    rop = _stack(reals, dt)
    iop = _stack(ints, np.int64)
    rpop = np.stack(np.broadcast_arrays(*rows), axis=-1) if rows else np.empty((n, 0), dtype=dt)
    return rop, iop, rpop


#: name -> (per-matrix real, integer (None: the stream), per-row real) parameter
#: names, in the order of the gufunc's reals, ints and rowparams operands
_LAYOUT = {nm: (tuple(p["name"] for p in d["params"] if p["kind"] == "real" and not p["row"]),
                tuple(None if p["stream"] else p["name"] for p in d["params"]
                      if p["kind"] == "int"),
                tuple(p["name"] for p in d["params"] if p["row"]))
           for nm, d in INFO.items()}


def row_param_names(name):
    """The normalizer's per-query-row parameters."""
    return _LAYOUT[name][2]


def _query_layout(shape, axes):
    """(lead, n) of scores of this shape in the (query, key)-last layout."""
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


def _run(name, scores, params, *, mask=None, causal=False, window=None, empty="zero",
         out=None, axes=None, return_tau=False):
    """Validate everything, then call the normalizer's gufunc."""
    info = INFO[name]
    gufunc = getattr(_core, name)
    dt = real_dtype_of(scores)
    values = validate(name, dt, params)
    ecode = empty_code(empty)
    ccode = causal_code(causal)
    wl, wr = window_bounds(window)
    extra = info["tau_support"]
    ax_out = None
    if axes is not None:
        ax_in, ax_out = split_axes(axes)
        scores = move_axes(np.asarray(scores), ax_in, "scores")
    shape = np.shape(scores)
    if len(shape) == 0:
        raise ValueError("scores must have at least 1 dimension (a row of scores); got a scalar")
    outs = None
    if out is not None:
        if extra:
            if isinstance(out, tuple):
                if len(out) != 3:
                    raise ValueError(f"out for {name} must be an array or a tuple "
                                     "(weights, tau, support)")
                w_out, tau_out, sup_out = out
            else:
                w_out, tau_out, sup_out = out, None, None
            if ax_out is not None:
                w_out = move_axes(w_out, ax_out, "out")
            lead_o = np.shape(w_out)[:-1]
            if tau_out is None:
                tau_out = np.empty(lead_o, dtype=w_out.dtype)
            if sup_out is None:
                sup_out = np.empty(lead_o, dtype=np.int64)
            outs = (w_out, tau_out, sup_out)
        else:
            outs = move_axes(out, ax_out, "out") if ax_out is not None else out
    row = len(shape) == 1
    if row:
        scores = np.asarray(scores)[None, :]
        if outs is not None:
            outs = tuple(o[None] for o in outs) if isinstance(outs, tuple) else outs[None, :]
        shape = scores.shape
    lead, (n, m) = shape[:-2], shape[-2:]
    rows = row_param_names(name)
    check_param_broadcast(lead, "scores", {k: params[k] for k in params if k not in rows})
    stream_lead = lead
    if mask is not None and np.ndim(mask) > 2:
        try:
            stream_lead = np.broadcast_shapes(lead, np.shape(mask)[:-2])
        except ValueError:
            pass  # mask_operand reports it
    mk = mask_operand(mask, lead, n, m)
    ops = param_operands(name, dt, values, n, lead, stream_lead)
    kw = {}
    if outs is not None:
        kw["out"] = outs
    if dt == np.float64:
        # small integer/bool scores would pick the float32 loop when no float64
        # parameter operand forces float64 (README: ints -> float64)
        kw["signature"] = (np.float64,) + (None,) * (gufunc.nargs - 1)
    res = gufunc(scores, mk, ccode, wl, wr, ecode, *ops, **kw)
    if row:
        res = tuple(r[0] for r in res) if isinstance(res, tuple) else res[0]
    if extra:
        w, tau, sup = res
        if ax_out is not None:
            w = np.moveaxis(w, (-2, -1), ax_out)
        return (w, tau, sup) if return_tau else w
    if ax_out is not None:
        res = np.moveaxis(res, (-2, -1), ax_out)
    return res


_SHARED = [("mask", None), ("causal", False), ("window", None), ("empty", "zero"),
           ("out", None), ("axes", None)]


def _make(name):
    """The public function of normalizer ``name``: one keyword per parameter
    (with its default), ``return_tau`` where the kernel reports a threshold,
    and the shared masking keywords."""
    info = INFO[name]
    kws = [(p["name"], p["default"]) for p in keyword_params(name)]
    if info["tau_support"]:
        kws.append(("return_tau", False))
    kws += _SHARED
    names = [k for k, _ in kws]
    pnames = {p["name"] for p in keyword_params(name)}

    def normalizer(scores, **kwargs):
        bad = sorted(set(kwargs) - set(names))
        if bad:
            raise TypeError(f"{name}() got an unexpected keyword argument {bad[0]!r}")
        params = {k: v for k, v in kwargs.items() if k in pnames}
        opts = {k: v for k, v in kwargs.items() if k not in pnames}
        return _run(name, scores, params, **opts)

    P = inspect.Parameter
    normalizer.__signature__ = inspect.Signature(
        [P("scores", P.POSITIONAL_OR_KEYWORD)] + [P(k, P.KEYWORD_ONLY, default=v) for k, v in kws])
    normalizer.__name__ = normalizer.__qualname__ = name
    normalizer.__module__ = __name__
    normalizer.__doc__ = NORMALIZER_DOCS.get(name)
    # PyTorch/NumPy-habit keywords and complex/object dtypes get attnnorm's own TypeError
    return friendly_errors(normalizer)


#: name -> function, for every normalizer of the C list
NORMALIZERS = {name: _make(name) for name in INFO}
globals().update(NORMALIZERS)
__all__ = ["NORMALIZERS"] + list(NORMALIZERS)
