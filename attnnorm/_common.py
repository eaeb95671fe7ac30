"""Argument handling shared by every public wrapper.

The wrappers turn keyword arguments into the positional ``()`` operands of the
C gufuncs (attnnorm._core).  They validate parameters *before* any work starts
and raise ``ValueError`` naming the parameter and its value.  Score/query
arrays are handed to the gufunc untouched, so array-likes that implement
``__array_ufunc__`` (dask) can dispatch.
"""
import functools
import math
import numbers
import operator

import numpy as np

EMPTY_CODES = {"zero": 0, "nan": 1, "raise": 2}


def empty_code(empty):
    """'zero' | 'nan' | 'raise' -> the integer the kernels understand."""
    try:
        return EMPTY_CODES[empty]
    except (KeyError, TypeError):
        raise ValueError(f"empty must be one of 'zero', 'nan', 'raise'; got {empty!r}") from None


def int_scalar(name, value, *, low=None, high=None, what=None):
    """Validate a scalar integer parameter: an int-like (operator.index) with
    low <= value <= high (either bound optional).  ValueError names the
    parameter, the allowed range (or `what`) and the value."""
    rng = what or ("an integer" + (f" >= {low}" if low is not None and high is None else "")
                   + (f" in [{low}, {high}]" if low is not None and high is not None else "")
                   + (f" <= {high}" if high is not None and low is None else ""))
    try:
        iv = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be {rng}; got {value!r}") from None
    if (low is not None and iv < low) or (high is not None and iv > high):
        raise ValueError(f"{name} must be {rng}; got {value!r}")
    return iv


_INT64_MAX = 2 ** 63 - 1

#: accepted values of ``causal`` -> the code of the gufuncs' causal operand
#: (csrc/an_common.h: 0 none, 1 bottom-right, 2 top-left)
CAUSAL_CODES = {"bottom_right": 1, "top_left": 2}


def causal_code(causal):
    """causal=False | True | "bottom_right" | "top_left" -> 0, 1, 1, 2.

    ``True`` and ``"bottom_right"``: query ``i`` of ``n`` sees key ``j`` iff
    ``j <= i + (m - n)`` (FlashAttention's alignment); ``"top_left"``: iff
    ``j <= i`` (PyTorch's ``is_causal``).  The window is measured from the
    same diagonal."""
    if isinstance(causal, str):
        if causal in CAUSAL_CODES:
            return CAUSAL_CODES[causal]
    elif isinstance(causal, (bool, np.bool_)):
        return int(bool(causal))
    else:
        try:
            c = operator.index(causal)
        except TypeError:
            c = None
        if c in (0, 1):
            return c
    raise ValueError(f"causal must be False, True, 'bottom_right' or 'top_left'; got {causal!r}")


def window_bounds(window):
    """window=(left, right) -> (left, right) as int64 values, -1 meaning
    unbounded.  Bounds beyond 2**63 - 1 saturate there (they exclude nothing)."""
    if window is None:
        return -1, -1
    try:
        left, right = window
    except (TypeError, ValueError):
        raise ValueError(f"window must be None or a pair (left, right); got {window!r}") from None
    out = []
    for side, v in (("left", left), ("right", right)):
        if v is None:
            out.append(-1)
            continue
        iv = int_scalar(f"window {side}", v, low=0, what="an integer >= 0 or None")
        out.append(min(iv, _INT64_MAX))
    return out[0], out[1]


def visible_bounds(n, m, causal=False, window=None):
    """Per query row, the half-open range ``[lo, hi)`` of keys that causal and
    window leave visible (the mask applies on top): int64 arrays of shape
    ``(n,)``, as the kernels compute them (an_visible_range).  Exact for
    window bounds up to 2**63 - 1."""
    code = causal_code(causal)
    wl, wr = window_bounds(window)
    i = np.arange(n, dtype=np.int64)
    diag = i if code == 2 else i + (m - n)
    lo = np.zeros(n, dtype=np.int64)
    hi = np.full(n, m, dtype=np.int64)
    if code:
        hi = np.minimum(hi, diag + 1)
    # bounds beyond n + m exclude nothing: saturate so diag -/+ bound cannot overflow
    if wl >= 0:
        lo = np.maximum(lo, diag - min(wl, n + m))
    if wr >= 0:
        hi = np.minimum(hi, diag + min(wr, n + m) + 1)
    lo = np.clip(lo, 0, m)
    hi = np.clip(hi, lo, m)
    return lo, hi


def loop_dtype(**arrays):
    """The one dtype rule of every function: the computation (and the result)
    is float32 if every array operand is float32 or float16, else float64
    (integers and booleans compute in float64).  Complex, object, string and
    other non-real dtypes raise TypeError naming the operand."""
    f32 = True
    for name, x in arrays.items():
        if x is None:
            continue
        dt = getattr(x, "dtype", None)
        dt = np.asarray(x).dtype if dt is None else np.dtype(dt)
        if dt.kind not in "biuf":
            raise TypeError(f"{name} must be a real (boolean, integer or floating) array; "
                            f"got dtype {dt}")
        if dt not in (np.float16, np.float32):
            f32 = False
    return np.dtype(np.float32) if f32 else np.dtype(np.float64)


def real_dtype_of(x):
    """float32 or float64: the loop dtype for a single operand x (loop_dtype)."""
    return loop_dtype(x=x)


def scale_param(scale, d, dtype):
    """scale=None -> 1/sqrt(d) (1 for d = 0); else a finite nonzero real
    (scalar or array), returned as ``dtype``."""
    if scale is None:
        scale = 1.0 / np.sqrt(d) if d > 0 else 1.0
    sc = real_param("scale", scale, dtype=dtype, allow_inf=False)
    if np.any(sc == 0):
        raise ValueError(f"scale must be finite and nonzero; got {scale!r}")
    return sc


_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).smallest_subnormal)


def _real_checks(positive, nonneg, allow_inf, minimum, exclusive_min):
    """real_param's checks in order, as (what the value must be, test of the
    offending values); each test takes a float or an array alike."""
    checks = [("a number, not NaN", lambda a: a != a)]
    if not allow_inf:
        checks.append(("finite", lambda a: abs(a) == math.inf))
    if positive:
        checks.append(("> 0", lambda a: a <= 0))
    if nonneg:
        checks.append((">= 0", lambda a: a < 0))
    if minimum is not None:
        checks.append((f">= {minimum}", lambda a: a < minimum))
    if exclusive_min is not None:
        checks.append((f"> {exclusive_min}", lambda a: a <= exclusive_min))
    return checks


def _real_scalar(name, value, dtype, checks):
    """real_param for a Python float or int, with the same checks and result
    in plain float arithmetic (NumPy's per-call cost on a 0-d array is most of
    a small call's time); None for an int beyond the float range, which takes
    the general path."""
    try:
        v = float(value)
    except OverflowError:
        return None
    for what, test in checks:
        if test(v):
            raise ValueError(f"{name} must be {what}; got {value!r}")
    if dtype is not None and np.dtype(dtype) == np.float32:
        if math.isfinite(v):
            v = min(max(v, -_F32_MAX), _F32_MAX)
        if v != 0 and abs(v) < _F32_TINY:
            v = math.copysign(_F32_TINY, v)
        return np.array(v, dtype=np.float32)
    return np.array(v, dtype=dtype if dtype is not None else np.float64)


def real_param(name, value, *, dtype=None, positive=False, nonneg=False,
               allow_inf=True, minimum=None, exclusive_min=None):
    """Validate a real parameter (scalar or broadcastable array).

    NaN is always rejected; the other checks are opt-in.  Returns the value as
    an array of ``dtype`` (so a per-head float64 array does not drag a float32
    call into the float64 loop).  Rounding to float32 keeps the checked domain:
    finite values beyond float32's range become its largest finite value
    (not inf: 1e300 * 0 must stay 0) and nonzero values below its smallest
    subnormal keep their sign (not 0: a positive eps stays positive)."""
    checks = _real_checks(positive, nonneg, allow_inf, minimum, exclusive_min)
    if type(value) is float or type(value) is int:
        got = _real_scalar(name, value, dtype, checks)
        if got is not None:
            return got
    if isinstance(value, (str, bytes)) or value is None:
        raise ValueError(f"{name} must be a real number or array of them; got {value!r}")
    try:
        arr = np.asarray(value)
    except Exception:
        raise ValueError(f"{name} must be a real number or array of them; got {value!r}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be real; got {value!r} (dtype {arr.dtype})")
    a = arr.astype(np.float64, copy=False)
    shown = value if arr.ndim == 0 else f"array with values such as {a.ravel()[:3]}"

    def bad(cond, what):
        if np.any(cond):
            if arr.ndim == 0:
                raise ValueError(f"{name} must be {what}; got {value!r}")
            raise ValueError(f"{name} must be {what}; got {shown} (offending: {a[cond].ravel()[:3]})")

    for what, test in checks:
        bad(test(a), what)
    if dtype is not None and np.dtype(dtype) == np.float32:
        fi = np.finfo(np.float32)
        with np.errstate(invalid="ignore"):
            a = np.where(np.isfinite(a), np.clip(a, -float(fi.max), float(fi.max)), a)
            a = np.where((a != 0) & (np.abs(a) < float(fi.smallest_subnormal)),
                         np.copysign(float(fi.smallest_subnormal), a), a)
        return a.astype(np.float32)
    return arr.astype(dtype if dtype is not None else np.float64, copy=False)


def int_param(name, value, *, minimum=None):
    """Validate an integer parameter (scalar or array of integers)."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, numbers.Integral):
        arr = np.asarray(int(value), dtype=np.int64)
    else:
        arr = np.asarray(value)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{name} must be an integer; got {value!r}")
        arr = arr.astype(np.int64)
    if minimum is not None and np.any(arr < minimum):
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    return arr


def check_param_broadcast(lead, where, params, skip=()):
    """Raise ValueError naming the parameter when an array parameter (one per
    head, say) does not broadcast against the leading axes ``lead`` of
    ``where``; NumPy's own message would not say which operand it was.
    ``skip``: names of per-row ``(..., n)`` parameters, checked elsewhere."""
    lead = tuple(lead)
    for pname, value in params.items():
        if pname in skip:
            continue
        shp = np.shape(value)
        if len(shp) == 0:
            continue
        try:
            np.broadcast_shapes(shp, lead)
        except ValueError:
            raise ValueError(f"{pname} has shape {shp}, which does not broadcast against the "
                             f"leading axes {lead} of {where}") from None


def core_shape(name, x, ndim):
    """Shape of x (works for dask arrays), checking it has >= ndim axes."""
    shape = np.shape(x)
    if len(shape) < ndim:
        raise ValueError(f"{name} must have at least {ndim} dimensions; got shape {shape}")
    return shape


def mask_operand(mask, lead, n, m):
    """A boolean (..., n, m) operand for the gufunc (True = keep).

    None gives a zero-stride all-True view (the kernels recognise it and skip
    the mask entirely); anything else must broadcast to (..., n, m).  Integer
    masks are accepted when they hold only 0 and 1 (1 = keep); a float mask is
    rejected with a pointer to PyTorch's additive masks."""
    if mask is None:
        return np.broadcast_to(np.True_, (n, m))
    mk = np.asarray(mask)
    if mk.dtype != np.bool_:
        if mk.dtype.kind == "f":
            raise ValueError(
                f"mask must be boolean (True = keep, as PyTorch's boolean attn_mask); got dtype "
                f"{mk.dtype}. A float mask looks like PyTorch's additive mask (0 = keep, -inf = "
                "drop): pass mask=(attn_mask == 0), or add a finite bias to the scores yourself")
        if mk.dtype.kind not in "biu":
            raise ValueError(f"mask must be boolean (True = keep); got dtype {mk.dtype}")
        if mk.size and not np.all((mk == 0) | (mk == 1)):
            raise ValueError(f"an integer mask must hold only 0 (drop) and 1 (keep); got values "
                             f"such as {np.unique(mk)[:4]}. Pass a boolean mask (True = keep)")
        mk = mk != 0
    if mk.ndim < 2:
        mk = mk.reshape((1,) * (2 - mk.ndim) + mk.shape)
    try:
        core = np.broadcast_shapes(mk.shape[-2:], (n, m))
        if core != (n, m):
            raise ValueError
        np.broadcast_shapes(mk.shape[:-2], tuple(lead))
    except ValueError:
        raise ValueError(
            f"mask of shape {np.shape(mask)} does not broadcast to the scores' shape "
            f"{tuple(lead) + (n, m)}") from None
    return np.broadcast_to(mk, mk.shape[:-2] + (n, m))


def split_axes(axes):
    """axes=[(q_axis, k_axis), (q_axis, k_axis)] -> (input pair, output pair)."""
    try:
        ax_in, ax_out = axes
    except (TypeError, ValueError):
        raise ValueError(f"axes must be [(q_axis, k_axis), (q_axis, k_axis)]; got {axes!r}") from None
    return ax_in, ax_out


def move_axes(x, axes, name):
    """Apply a gufunc-style axes=(a, b) to x: a view with those axes last."""
    if axes is None:
        return x
    try:
        a, b = axes
        return np.moveaxis(x, (a, b), (-2, -1))
    except Exception as exc:
        raise ValueError(f"axes for {name} must be a pair of axis indices; got {axes!r} ({exc})") from None


# --------------------------------------------------------------------------
# Errors for habits brought from PyTorch and NumPy
# --------------------------------------------------------------------------

#: keyword -> what to use instead in attnnorm
HABITS = {
    "is_causal": "use causal=True (bottom-right aligned as FlashAttention: query i sees key "
                 "j <= i + (m - n)); PyTorch's is_causal is top-left aligned, "
                 "causal=\"top_left\"; the two agree when n == m",
    "attn_mask": "use mask= (boolean, broadcastable to (..., n, m), True = keep, as PyTorch's "
                 "boolean attn_mask); for a float additive mask pass mask=(attn_mask == 0)",
    "key_padding_mask": "use mask= (boolean, True = keep; note: the opposite of "
                        "nn.MultiheadAttention's key_padding_mask, where True = drop): "
                        "mask=~key_padding_mask[..., None, :]",
    "dropout_p": "attnnorm has no dropout (it computes the exact weights); drop weights "
                 "yourself from attention_weights(...), or sample them with "
                 "normalizer=\"stochastic_softmax\"",
    "dropout": "attnnorm has no dropout (it computes the exact weights); drop weights "
               "yourself from attention_weights(...)",
    "enable_gqa": "grouped-query attention is plain broadcasting: q (B, Hkv, G, n, d) with "
                  "k, v (B, Hkv, 1, m, d)",
    "dim": "attnnorm works on the last axis (keys) and the one before it (queries); pass "
           "axes=[(q_axis, k_axis), (q_axis, k_axis)] to a normalizer, or np.moveaxis the "
           "array",
    "axis": "attnnorm works on the last axis (keys) and the one before it (queries); pass "
            "axes=[(q_axis, k_axis), (q_axis, k_axis)] to a normalizer, or np.moveaxis the "
            "array",
}
HABITS["attention_mask"] = HABITS["attn_mask"]


def habit_error(func, kwargs):
    """A TypeError naming attnnorm's equivalent of a PyTorch/NumPy keyword in
    ``kwargs`` that ``func`` does not accept, or None."""
    import inspect
    try:
        accepted = inspect.signature(func).parameters
    except (TypeError, ValueError):
        accepted = {}
    for key in kwargs:
        if key in HABITS and key not in accepted:
            return TypeError(f"{func.__name__}() got an unexpected keyword argument "
                             f"{key!r}: {HABITS[key]}")
    return None


def dtype_error(func, args, kwargs):
    """A TypeError for a complex, object, string or datetime array argument,
    or None.  attnnorm computes in float32 and float64 only."""
    import inspect
    try:
        items = list(inspect.signature(func).bind_partial(*args, **kwargs).arguments.items())
    except (TypeError, ValueError):
        items = [(f"argument {i}", a) for i, a in enumerate(args)] + list(kwargs.items())
    for name, x in items:
        if isinstance(x, (str, bytes, type(None), numbers.Number)) and not isinstance(x, complex):
            continue
        dt = getattr(x, "dtype", None)
        if dt is None:
            if not isinstance(x, (list, tuple, complex)):
                continue
            try:
                dt = np.asarray(x).dtype
            except Exception:
                continue
        try:
            kind = np.dtype(dt).kind
        except TypeError:
            continue
        if kind in "biuf":
            continue
        what = {"c": "complex", "O": "object", "U": "string", "S": "bytes",
                "M": "datetime", "m": "timedelta", "V": "structured"}.get(kind, str(dt))
        hint = (" (take x.real, np.abs(x) or np.angle(x) first)" if kind == "c" else
                " (convert with np.asarray(x, dtype=float))" if kind == "O" else "")
        return TypeError(f"{func.__name__}(): {name} has {what} dtype {np.dtype(dt)}; attnnorm "
                         f"computes on real numbers (float32 or float64; float16 and integers "
                         f"are promoted){hint}")
    return None


def friendly_errors(func):
    """Decorate a public function so that a keyword brought from PyTorch/NumPy
    (``is_causal``, ``attn_mask``, ``dropout_p``, ``dim``, ``axis``, ...) or a
    complex/object dtype gets attnnorm's own TypeError.  Functions taking
    ``**params`` check those keywords first; the others, and the dtype check,
    only after a call has failed with TypeError, so successful calls pay
    nothing but the wrapper call."""
    import inspect
    params = inspect.signature(func).parameters
    varkw = any(p.kind is p.VAR_KEYWORD for p in params.values())

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if varkw and kwargs and not HABITS.keys().isdisjoint(kwargs):
            better = habit_error(func, kwargs)
            if better is not None:
                raise better
        try:
            return func(*args, **kwargs)
        except TypeError as exc:
            better = habit_error(func, kwargs) or dtype_error(func, args, kwargs)
            if better is None:
                raise
            raise better from exc
    return wrapper


def lead_mismatch(names, shapes):
    """ValueError for leading axes of q/k/v that do not broadcast, showing the
    grouped-query reshape when the shapes look like PyTorch's
    ``q (B, H, n, d)``, ``k (B, Hkv, m, d)`` with ``H % Hkv == 0``."""
    shapes = [tuple(s) for s in shapes]
    msg = (f"the leading axes of {', '.join(names)} do not broadcast: "
           + ", ".join(f"{nm} {s}" for nm, s in zip(names, shapes)))
    q, k = shapes[0], shapes[1]
    if len(q) == len(k) and len(q) >= 1:
        diff = [i for i in range(len(q)) if q[i] != k[i] and 1 not in (q[i], k[i])]
        if len(diff) == 1:
            i = diff[0]
            h, hkv = q[i], k[i]
            if hkv < h and h % hkv == 0:
                g = h // hkv
                qn = "(" + ", ".join([str(x) for x in q[:i]] + [str(hkv), str(g)]
                                     + [str(x) for x in q[i + 1:]] + ["n", "d"]) + ")"
                kn = "(" + ", ".join([str(x) for x in k[:i]] + [str(hkv), "1"]
                                     + [str(x) for x in k[i + 1:]] + ["m", "d"]) + ")"
                ax = i - len(q) - 2
                qs = ", ".join(str(x) for x in q)
                ks = ", ".join(str(x) for x in k)
                msg += (f". For grouped-query attention ({h} query heads sharing {hkv} key/value "
                        f"heads; query head h uses key head h // {g}, as PyTorch's enable_gqa) "
                        f"split the query head axis: q ({qs}, n, d) -> {qn} with "
                        f"q.reshape(*q.shape[:{ax}], {hkv}, {g}, *q.shape[{ax + 1}:]), and "
                        f"k, v ({ks}, m, d) -> {kn} with np.expand_dims(k, {ax})")
    return ValueError(msg)


def sum_to(x, shape, dt=None):
    """A gradient x of a broadcast result, summed (in float64) over the axes
    along which an input of ``shape`` was broadcast, so it has the input's
    shape; cast to dt if given; 0-d results as scalars."""
    shape = tuple(shape)
    x = np.asarray(x, dtype=np.float64)
    extra = x.ndim - len(shape)
    if extra > 0:
        x = x.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, (a, b) in enumerate(zip(shape, x.shape)) if a == 1 and b != 1)
    if axes:
        x = x.sum(axis=axes, keepdims=True)
    x = x.reshape(shape)
    if dt is not None:
        x = x.astype(dt)
    return x[()] if x.ndim == 0 else x
