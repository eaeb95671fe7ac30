"""Argument handling shared by every public wrapper.

The wrappers turn keyword arguments into the positional ``()`` operands of the
C gufuncs (attnnorm._core).  They validate parameters *before* any work starts
and raise ``ValueError`` naming the parameter and its value.  Score/query
arrays are handed to the gufunc untouched, so array-likes that implement
``__array_ufunc__`` (dask) can dispatch.
"""
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


def real_param(name, value, *, dtype=None, positive=False, nonneg=False,
               allow_inf=True, minimum=None, exclusive_min=None):
    """Validate a real parameter (scalar or broadcastable array).

    NaN is always rejected; the other checks are opt-in.  Returns the value as
    an array of ``dtype`` (so a per-head float64 array does not drag a float32
    call into the float64 loop).  Rounding to float32 keeps the checked domain:
    finite values beyond float32's range become its largest finite value
    (not inf: 1e300 * 0 must stay 0) and nonzero values below its smallest
    subnormal keep their sign (not 0: a positive eps stays positive)."""
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

    bad(np.isnan(a), "a number, not NaN")
    if not allow_inf:
        bad(np.isinf(a), "finite")
    if positive:
        bad(a <= 0, "> 0")
    if nonneg:
        bad(a < 0, ">= 0")
    if minimum is not None:
        bad(a < minimum, f">= {minimum}")
    if exclusive_min is not None:
        bad(a <= exclusive_min, f"> {exclusive_min}")
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
    the mask entirely); anything else must broadcast to (..., n, m)."""
    if mask is None:
        return np.broadcast_to(np.True_, (n, m))
    mk = np.asarray(mask)
    if mk.dtype != np.bool_:
        if mk.dtype.kind not in "biu":
            raise ValueError(f"mask must be boolean (True = keep); got dtype {mk.dtype}")
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
