"""PyTorch adapters: attnnorm's normalizers and fused attention as autograd
functions (PyTorch is an optional dependency; ``import attnnorm`` does not
import it).

* :func:`scaled_dot_product_attention` is a drop-in for
  ``torch.nn.functional.scaled_dot_product_attention`` with PyTorch's own
  semantics (top-left ``is_causal``, boolean or additive ``attn_mask``,
  ``enable_gqa``) plus ``normalizer=`` and the normalizer's parameters.
* :func:`normalize` applies a normalizer to a score tensor along ``dim``.

Both are ``torch.library`` custom operators (``attnnorm::attention``,
``attnnorm::normalize`` and their backward operators) with fake
implementations, so they run under ``torch.compile(fullgraph=True)``
without graph breaks, and with autograd for every floating-point tensor
input -- hyperparameters included when they are tensors with
``requires_grad``.  CPU float32 and float64 tensors are handed to the C
kernels as NumPy views (no copies); CUDA tensors, other dtypes and
``dropout_p > 0`` raise.
"""
from typing import List, Optional, Tuple

import numpy as np
import torch

from ._common import CAUSAL_CODES, causal_code
from ._attention_grad import _OWN_LSE, FUSED_BACKWARD, attention_forward, attention_vjp
from ._grad import normalizer_vjp
from ._normalizers import NORMALIZERS

__all__ = ["scaled_dot_product_attention", "normalize"]

Tensor = torch.Tensor


# ---------------------------------------------------------------- helpers
def _check_tensor(name, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"attnnorm runs on the CPU; {name} is on {t.device} "
                         f"(move it with .cpu() or use PyTorch's own kernels there)")
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64; got {t.dtype}")


def _np(t):
    """A NumPy view of a CPU tensor (no copy)."""
    return t.detach().numpy()


def _param_arrays(pnames, values):
    """Parameter names (comma-separated) and tensors -> NumPy keyword arguments."""
    out = {}
    for nm, val in zip(_names(pnames), values):
        a = _np(val)
        out[nm] = a[()] if a.ndim == 0 else a
    return out


def _names(pnames):
    return pnames.split(",") if pnames else []


def _split_params(params, device_check=True):
    """Keyword parameters -> (comma-separated names, tensors): numbers become 0-d tensors
    (float64 for reals, int64 for integers); tensors are kept as they are, so
    their gradients flow."""
    names, values = [], []
    for nm in sorted(params):
        val = params[nm]
        if val is None:
            continue
        if isinstance(val, torch.Tensor):
            if device_check and val.device.type != "cpu":
                raise ValueError(f"attnnorm runs on the CPU; parameter {nm} is on {val.device}")
            t = val
        elif isinstance(val, (bool, int, np.integer)):
            t = torch.tensor(int(val), dtype=torch.int64)
        elif isinstance(val, (float, np.floating)):
            t = torch.tensor(float(val), dtype=torch.float64)
        else:
            t = torch.as_tensor(np.asarray(val, dtype=np.float64))
        names.append(nm)
        values.append(t)
    return ",".join(names), values


def _param_grads(grads, pnames, pvalues):
    """The gradient of each parameter tensor (zeros where there is none:
    integer parameters, sigmoid's default bias), in its dtype and shape."""
    res = []
    for nm, val in zip(_names(pnames), pvalues):
        gp = grads.get(nm)
        if gp is None or not val.is_floating_point():
            res.append(torch.zeros_like(val))
        else:
            res.append(torch.as_tensor(np.asarray(gp)).to(val.dtype).reshape(val.shape).clone())
    return res


# causal operand code (0, 1, 2) -> the causal argument of the NumPy functions
_CAUSAL_ARG = {0: False, **{c: nm for nm, c in CAUSAL_CODES.items()}}


def _check_normalizer(normalizer):
    if not isinstance(normalizer, str) or normalizer not in NORMALIZERS:
        raise ValueError(f"normalizer must be one of {sorted(NORMALIZERS)}; got {normalizer!r}")


def _lead(*shapes):
    return tuple(torch.broadcast_shapes(*[torch.Size(s[:-2]) for s in shapes]))


# ------------------------------------------------------- attention operator
@torch.library.custom_op("attnnorm::attention", mutates_args=())
def _attention_op(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor], causal: int,
                  wleft: int, wright: int, scale: Optional[float], normalizer: str,
                  pnames: str, pvalues: List[Tensor]) -> Tuple[Tensor, Tensor]:
    window = None if wleft < 0 and wright < 0 else (None if wleft < 0 else wleft,
                                                     None if wright < 0 else wright)
    params = _param_arrays(pnames, pvalues)
    qa, ka, va = _np(q), _np(k), _np(v)
    mk = None if mask is None else mask.numpy()
    out, lse = attention_forward(qa, ka, va, normalizer, scale=scale,
                                 causal=_CAUSAL_ARG[causal],
                                 window=window, mask=mk, **params)
    if normalizer not in FUSED_BACKWARD:
        lse = np.zeros_like(lse)   # no log-normaliser (NaN); the backward does not read it
    return torch.from_numpy(out), torch.from_numpy(np.ascontiguousarray(lse))


@_attention_op.register_fake
def _(q, k, v, mask, causal, wleft, wright, scale, normalizer, pnames, pvalues):
    lead = _lead(q.shape, k.shape, v.shape, *(() if mask is None else (mask.shape,)))
    n, e = q.shape[-2], v.shape[-1]
    dt = torch.float32 if all(t.dtype == torch.float32 for t in (q, k, v)) else torch.float64
    return q.new_empty(lead + (n, e), dtype=dt), q.new_empty(lead + (n,), dtype=dt)


@torch.library.custom_op("attnnorm::attention_backward", mutates_args=())
def _attention_backward_op(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                           lognorm: Tensor, mask: Optional[Tensor], causal: int, wleft: int,
                           wright: int, scale: Optional[float], normalizer: str,
                           pnames: str, pvalues: List[Tensor], param_grads: bool) -> List[Tensor]:
    window = None if wleft < 0 and wright < 0 else (None if wleft < 0 else wleft,
                                                     None if wright < 0 else wright)
    params = _param_arrays(pnames, pvalues)
    mk = None if mask is None else mask.numpy()
    fused_stats = normalizer in _OWN_LSE
    g = attention_vjp(_np(q), _np(k), _np(v), _np(grad_out), normalizer,
                      out=_np(out) if fused_stats else None,
                      stats=_np(lognorm) if fused_stats else None,
                      scale=scale, causal=_CAUSAL_ARG[causal], window=window, mask=mk,
                      param_grads=param_grads, **params)
    return [torch.from_numpy(np.ascontiguousarray(x)).to(t.dtype)
            for x, t in zip(g[:3], (q, k, v))] + _param_grads(g.params, pnames, pvalues)


@_attention_backward_op.register_fake
def _(grad_out, q, k, v, out, lognorm, mask, causal, wleft, wright, scale, normalizer, pnames,
      pvalues, param_grads):
    return [torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)] + \
           [torch.empty_like(p) for p in pvalues]


def _attention_setup(ctx, inputs, output):
    q, k, v, mask, causal, wleft, wright, scale, normalizer, pnames, pvalues = inputs
    out, lognorm = output
    ctx.save_for_backward(q, k, v, out, lognorm, *pvalues)
    ctx.mask = mask
    ctx.args = (causal, wleft, wright, scale, normalizer, pnames)
    ctx.param_grads = any(p.requires_grad for p in pvalues)


def _attention_bwd(ctx, grad_out, grad_lognorm):
    q, k, v, out, lognorm, *pvalues = ctx.saved_tensors
    causal, wleft, wright, scale, normalizer, pnames = ctx.args
    gs = _attention_backward_op(grad_out.contiguous(), q, k, v, out, lognorm, ctx.mask, causal,
                                wleft, wright, scale, normalizer, pnames, list(pvalues),
                                ctx.param_grads)
    need = ctx.needs_input_grad
    dparams = [gp if p.is_floating_point() else None for gp, p in zip(gs[3:], pvalues)]
    return (gs[0] if need[0] else None, gs[1] if need[1] else None, gs[2] if need[2] else None,
            None, None, None, None, None, None, None, dparams)


_attention_op.register_autograd(_attention_bwd, setup_context=_attention_setup)


# ------------------------------------------------------ normalize operator
@torch.library.custom_op("attnnorm::normalize", mutates_args=())
def _normalize_op(scores: Tensor, mask: Optional[Tensor], causal: int, wleft: int, wright: int,
                  normalizer: str, pnames: str, pvalues: List[Tensor]) -> Tensor:
    window = None if wleft < 0 and wright < 0 else (None if wleft < 0 else wleft,
                                                     None if wright < 0 else wright)
    params = _param_arrays(pnames, pvalues)
    mk = None if mask is None else mask.numpy()
    w = NORMALIZERS[normalizer](_np(scores), mask=mk, causal=_CAUSAL_ARG[causal], window=window,
                                **params)
    w = w[0] if isinstance(w, tuple) else w
    return torch.from_numpy(np.ascontiguousarray(w))


@_normalize_op.register_fake
def _(scores, mask, causal, wleft, wright, normalizer, pnames, pvalues):
    shape = scores.shape if mask is None else torch.broadcast_shapes(scores.shape, mask.shape)
    return scores.new_empty(shape)


@torch.library.custom_op("attnnorm::normalize_backward", mutates_args=())
def _normalize_backward_op(grad: Tensor, scores: Tensor, weights: Tensor, mask: Optional[Tensor],
                           causal: int, wleft: int, wright: int, normalizer: str,
                           pnames: str, pvalues: List[Tensor], param_grads: bool) -> List[Tensor]:
    window = None if wleft < 0 and wright < 0 else (None if wleft < 0 else wleft,
                                                     None if wright < 0 else wright)
    params = _param_arrays(pnames, pvalues)
    mk = None if mask is None else mask.numpy()
    g = normalizer_vjp(_np(scores), _np(grad), normalizer, weights=_np(weights), mask=mk,
                       causal=_CAUSAL_ARG[causal], window=window, param_grads=param_grads,
                       **params)
    ds = np.asarray(g.scores)
    if ds.shape != tuple(scores.shape):   # broadcast by a mask with more leading axes
        ds = ds.reshape((-1,) + tuple(scores.shape)).sum(0) if ds.size else ds
    return ([torch.from_numpy(np.ascontiguousarray(ds)).to(scores.dtype)]
            + _param_grads(g.params, pnames, pvalues))


@_normalize_backward_op.register_fake
def _(grad, scores, weights, mask, causal, wleft, wright, normalizer, pnames, pvalues,
      param_grads):
    return [torch.empty_like(scores)] + [torch.empty_like(p) for p in pvalues]


def _normalize_setup(ctx, inputs, output):
    scores, mask, causal, wleft, wright, normalizer, pnames, pvalues = inputs
    ctx.save_for_backward(scores, output, *pvalues)
    ctx.mask = mask
    ctx.args = (causal, wleft, wright, normalizer, pnames)
    ctx.param_grads = any(p.requires_grad for p in pvalues)


def _normalize_bwd(ctx, grad):
    scores, weights, *pvalues = ctx.saved_tensors
    causal, wleft, wright, normalizer, pnames = ctx.args
    gs = _normalize_backward_op(grad.contiguous(), scores, weights, ctx.mask, causal, wleft,
                                wright, normalizer, pnames, list(pvalues), ctx.param_grads)
    dparams = [gp if p.is_floating_point() else None for gp, p in zip(gs[1:], pvalues)]
    return (gs[0] if ctx.needs_input_grad[0] else None, None, None, None, None, None, None,
            dparams)


_normalize_op.register_autograd(_normalize_bwd, setup_context=_normalize_setup)


# ------------------------------------------------------------ public API
def _window_ints(window):
    from ._common import window_bounds
    return window_bounds(window)


def _bool_mask(mask, name="mask"):
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        mask = torch.as_tensor(np.asarray(mask))
    if mask.device.type != "cpu":
        raise ValueError(f"attnnorm runs on the CPU; {name} is on {mask.device}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a boolean tensor (True = keep); got {mask.dtype}")
    return mask


def normalize(scores, normalizer="softmax", *, dim=-1, mask=None, causal=False, window=None,
              **params):
    """``attnnorm.<normalizer>(scores, ...)`` on a CPU tensor, along ``dim``,
    with autograd (:func:`attnnorm.normalizer_vjp`) for the scores and for
    every parameter passed as a tensor with ``requires_grad``.

    ``mask`` (boolean, True = keep), ``causal`` (False, True or
    ``"bottom_right"``, ``"top_left"``), ``window`` and the parameters are
    those of the NumPy function; the
    normalised axis ``dim`` plays the role of the key axis ``m`` and the one
    before it (after moving ``dim`` last) the query axis ``n``.  Returns the
    weights (for sparsemax/entmax without ``tau``/``support``)."""
    _check_tensor("scores", scores)
    _check_normalizer(normalizer)
    mask = _bool_mask(mask)
    wl, wr = _window_ints(window)
    names, values = _split_params(params)
    s = scores.movedim(dim, -1) if dim not in (-1, scores.ndim - 1) else scores
    w = _normalize_op(s, mask, causal_code(causal), wl, wr, normalizer, names, values)
    return w.movedim(-1, dim) if s is not scores else w


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False, *,
                                 normalizer="softmax", **params):
    """Drop-in for ``torch.nn.functional.scaled_dot_product_attention`` on the
    CPU whose attention normalizer is chosen by name.

    Same arguments and semantics as PyTorch's: ``query (..., L, E)``, ``key
    (..., S, E)``, ``value (..., S, Ev)``; ``attn_mask`` boolean (True = take
    part) or additive (added to the scores; ``-inf`` entries exclude a key);
    ``is_causal`` aligned top-left (query ``i`` sees keys ``j <= i``), not
    combined with ``attn_mask``; ``scale`` default ``1/sqrt(E)``;
    ``enable_gqa`` lets ``key``/``value`` have fewer heads (dimension -3)
    than ``query``, each shared by consecutive query heads.
    ``normalizer="softmax"`` reproduces PyTorch's result (to rounding);
    any key of ``attnnorm.NORMALIZERS`` can be used, with its parameters as
    keywords (numbers, or tensors broadcasting against the leading axes --
    one per head: shape ``(H,)`` against ``(B, H)`` -- that receive gradients
    when they require them).

    Differences: a query that sees no key gets a zero output row (PyTorch
    gives NaN); ``dropout_p`` must be 0.  An additive mask with finite
    nonzero entries is applied to materialised scores (through
    :func:`normalize`); otherwise nothing of size ``L x S`` is formed and the
    backward of the softmax family is the fused kernel of
    :func:`attnnorm.attention_vjp`.
    """
    for nm, t in (("query", query), ("key", key), ("value", value)):
        _check_tensor(nm, t)
    _check_normalizer(normalizer)
    if dropout_p != 0.0:
        raise ValueError(f"dropout_p must be 0 (attnnorm has no attention dropout); "
                         f"got {dropout_p!r}")
    if is_causal and attn_mask is not None:
        raise ValueError("is_causal and attn_mask cannot both be set (as in PyTorch)")
    q, k, v = query, key, value
    names, values = _split_params(params)
    gqa = None
    if enable_gqa and q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
        hq, hk = q.shape[-3], k.shape[-3]
        if hk == 0 or hq % hk or v.shape[-3] != hk:
            raise ValueError(f"enable_gqa: the query heads ({hq}) must be a multiple of the "
                             f"key/value heads (key {hk}, value {v.shape[-3]})")
        gqa = (hk, hq // hk)
        q = q.unflatten(-3, gqa)
        k, v = k.unsqueeze(-3), v.unsqueeze(-3)
        values = [p.unflatten(-1, gqa) if p.ndim >= 1 and p.shape[-1] == hq else p
                  for p in values]
    bias = None
    mask = None
    if attn_mask is not None:
        if not isinstance(attn_mask, torch.Tensor):
            raise TypeError(f"attn_mask must be a torch.Tensor; got {type(attn_mask).__name__}")
        if attn_mask.device.type != "cpu":
            raise ValueError(f"attnnorm runs on the CPU; attn_mask is on {attn_mask.device}")
        am = attn_mask
        if gqa is not None and am.ndim >= 3 and am.shape[-3] == gqa[0] * gqa[1]:
            am = am.unflatten(-3, gqa)
        elif gqa is not None and am.ndim >= 3:
            am = am.unsqueeze(-3)
        if am.dtype == torch.bool:
            mask = am
        elif am.is_floating_point():
            # -inf entries exclude keys; other entries are added to the scores.
            # Eager calls check whether any entry is finite and nonzero (else
            # the mask is boolean and nothing L x S is formed); a compiled
            # graph cannot branch on data and always adds the bias.
            mask = am != float("-inf")
            bias = torch.where(mask, am, torch.zeros((), dtype=am.dtype))
            if not torch.compiler.is_compiling() and not am.requires_grad:
                if not bool(bias.ne(0).any()):
                    bias = None
                if bool(mask.all()):
                    mask = None
        else:
            raise TypeError(f"attn_mask must be boolean or floating point; got {attn_mask.dtype}")
    # PyTorch's is_causal is top-left aligned: query i sees keys j <= i
    causal, wl, wr = causal_code("top_left" if is_causal else False), -1, -1
    if bias is not None:
        return _materialised(q, k, v, mask, bias, causal, wl, wr, scale, normalizer, names,
                             values, gqa)
    out, _ = _attention_op(q, k, v, mask, causal, wl, wr, scale, normalizer, names, values)
    if gqa is not None:
        out = out.flatten(-4, -3)
    return out


def _materialised(q, k, v, mask, bias, causal, wl, wr, scale, normalizer, names, values, gqa):
    """Scores with an additive bias: softmax-style attention on materialised
    (L, S) scores through the normalize operator."""
    sc = 1.0 / float(np.sqrt(q.shape[-1])) if scale is None else scale
    s = (q @ k.transpose(-1, -2)) * sc + bias
    w = _normalize_op(s, mask, causal, wl, wr, normalizer, names, values)
    out = w @ v
    if gqa is not None:
        out = out.flatten(-4, -3)
    return out
