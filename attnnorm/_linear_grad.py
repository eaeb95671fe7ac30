"""Gradients (vector-Jacobian products) of the linear-time attention family.

Each ``<function>_vjp`` takes the forward function's arguments plus the
upstream gradient of its output and returns the gradients of every array
input (and of the real parameters), reduced to the shapes they were given
in, in O(n d e) time: the forward's prefix scans become suffix scans over
the queries.  All run in C (linear_vjp.c), in double inside, one matrix per
thread, so the results do not depend on the thread count: linear, cheap
linear and ZeroS attention as one forward and one backward pass over chunks
of 64 queries (small GEMMs, O(d e) running sums); log-space attention (with
its carried state) as one forward and one backward scan over the keys in
log space with O(d e) state; SOFT through its Newton-Schulz iterations with
O(n L + K L^2) memory.
"""
from typing import NamedTuple

import numpy as np

from . import _core
from ._common import int_scalar, real_param, sum_to
from ._linear import FEATURE_MAPS, _check_qkv, _loop_dtype, _shape

__all__ = ["linear_attention_vjp", "log_attention_vjp", "cheap_linear_attention_vjp",
           "zeros_attention_vjp", "soft_attention_vjp",
           "LinearAttentionGrad", "LogAttentionGrad", "CheapLinearGrad", "ZerosAttentionGrad",
           "SoftAttentionGrad"]


class LinearAttentionGrad(NamedTuple):
    """Gradients of :func:`attnnorm.linear_attention`."""
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    eps: object


class LogAttentionGrad(NamedTuple):
    """Gradients of :func:`attnnorm.log_attention`; ``state`` is the gradient
    with respect to the ``state=`` argument (None when none was given)."""
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    state: object


class CheapLinearGrad(NamedTuple):
    """Gradients of :func:`attnnorm.cheap_linear_attention`."""
    h: np.ndarray
    q: np.ndarray


class ZerosAttentionGrad(NamedTuple):
    """Gradients of :func:`attnnorm.zeros_attention`."""
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    s: np.ndarray
    gate_linear: object
    gate_softmax: object


class SoftAttentionGrad(NamedTuple):
    """Gradients of :func:`attnnorm.soft_attention`; ``landmarks`` is None
    when the landmarks were the segment means of q (their gradient then
    flows into ``q``)."""
    q: np.ndarray
    v: np.ndarray
    landmarks: object


# ---------------------------------------------------------------------------
# public VJPs
# ---------------------------------------------------------------------------

def _lead(*shapes):
    return np.broadcast_shapes(*[tuple(s[:-2]) for s in shapes])


def _bcast(x, lead, core):
    return np.broadcast_to(np.asarray(x, dtype=np.float64), tuple(lead) + tuple(core))


def _grad_out(grad_out, lead, n, e, what):
    gs = np.shape(grad_out)
    if len(gs) < 2 or gs[-2:] != (n, e):
        raise ValueError(f"grad_out must have the output's last two dimensions {(n, e)} "
                         f"({what}); got shape {gs}")
    try:
        lead = np.broadcast_shapes(lead, gs[:-2])
    except ValueError:
        raise ValueError(f"grad_out of shape {gs} does not broadcast against the output's "
                         f"leading axes {tuple(lead)}") from None
    return lead


def linear_attention_vjp(q, k, v, grad_out, feature_map="elu1", *, causal=False, eps=1e-6):
    """Gradient of ``sum(grad_out * linear_attention(q, k, v, feature_map, causal=, eps=))``.

    Returns ``LinearAttentionGrad(q, k, v, eps)``, each of the shape (and
    dtype) its input was given in.  With ``phi`` the feature map,
    ``o_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps)``; the gradient flows
    through ``phi`` (its derivative: 1 or ``e^x`` for elu1, the step for
    relu, 1 for identity) and through the prefix sums ``S_i``, ``z_i`` as
    suffix sums over the queries.  ``"exp"`` is differentiated in log space
    like :func:`log_attention_vjp` (its ``eps`` is unused: gradient 0).
    Queries that see no key have a constant zero output: no gradient.
    """
    qs, ks, vs = _check_qkv(q, k, v)
    if not isinstance(feature_map, str) or feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {sorted(FEATURE_MAPS)}; got {feature_map!r}")
    dt = _loop_dtype(q, k, v, grad_out)
    ep = real_param("eps", eps, dtype=dt, nonneg=True, allow_inf=False)
    n, m, d, e = qs[-2], ks[-2], qs[-1], vs[-1]
    lead = _grad_out(grad_out, _lead(qs, ks, vs), n, e, "(n, e)")
    lead = np.broadcast_shapes(lead, np.shape(ep))
    Q, K, V = _bcast(q, lead, (n, d)), _bcast(k, lead, (m, d)), _bcast(v, lead, (m, e))
    if feature_map == "exp":
        dq, dk, dv, _ = _log_vjp_call(q, k, v, grad_out, dt, d, e, causal, None, None)
        deps = np.zeros(np.shape(ep))
    else:
        dq, dk, dv, deps = _core.linear_attention_vjp(
            np.asarray(q, dt), np.asarray(k, dt), np.asarray(v, dt), np.asarray(grad_out, dt),
            FEATURE_MAPS[feature_map], bool(causal), ep, 1)
    return LinearAttentionGrad(sum_to(dq, qs, dt), sum_to(dk, ks, dt), sum_to(dv, vs, dt),
                               sum_to(deps, np.shape(ep), dt))


def _log_vjp_call(q, k, v, g, dt, d, e, causal, state, grad_state):
    """The log_attention_vjp gufunc (C, linear_vjp.c) with absent states as
    zero-stride placeholders."""
    w = 4 * e + 2
    none = np.broadcast_to(np.zeros((), dt), (d, w))
    st = none if state is None else np.asarray(state, dt)
    gs = none if grad_state is None else np.asarray(grad_state, dt)
    return _core.log_attention_vjp(np.asarray(q, dt), np.asarray(k, dt), np.asarray(v, dt),
                                   np.asarray(g, dt), st, gs, bool(causal), state is not None,
                                   grad_state is not None)


def log_attention_vjp(q, k, v, grad_out, *, causal=False, state=None, grad_state=None):
    """Gradient of :func:`attnnorm.log_attention`, including its carried state.

    ``L = sum(grad_out * out) + L_later(new_state)``: ``grad_state`` (optional,
    the layout of the returned state, ``(..., d, 4 e + 2)``) is the gradient
    of what later chunks computed from the state this call returns, as given
    by ``log_attention_vjp`` of the next chunk.  Returns
    ``LogAttentionGrad(q, k, v, state)``; ``state`` is the gradient with
    respect to the ``state=`` argument (None if no state was passed), ready
    to be passed as ``grad_state`` to the VJP of the previous chunk, so a
    sequence processed in chunks is differentiated chunk by chunk, last first.

    The state stores each log-space number as a pair ``(M, s)`` meaning
    ``e^M s``; its gradient holds ``dL/dM = X dL/dX`` and ``dL/ds = e^M dL/dX``
    for ``X = e^M s`` (a loss depends on the state only through ``X``, as
    every later call does; ``grad_state`` is read from its ``M`` entries).
    Computed in log space with the values split by sign: no exponential
    overflows (see :func:`linear_attention_vjp` for the formulas).
    """
    qs, ks, vs = _check_qkv(q, k, v)
    n, m, d, e = qs[-2], ks[-2], qs[-1], vs[-1]
    dts = [q, k, v, grad_out] + ([state] if state is not None else [])
    dt = _loop_dtype(*dts)
    lead = _grad_out(grad_out, _lead(qs, ks, vs), n, e, "(n, e)")
    w = 4 * e + 2
    for nm, x in (("state", state), ("grad_state", grad_state)):
        if x is not None:
            xs = np.shape(x)
            if len(xs) < 2 or xs[-2:] != (d, w):
                raise ValueError(f"{nm} must have shape (..., d, 4 e + 2) = (..., {d}, {w}); got {xs}")
            lead = np.broadcast_shapes(lead, xs[:-2])
    dq, dk, dv, dst = _log_vjp_call(q, k, v, grad_out, dt, d, e, causal, state, grad_state)
    dstate = None if state is None else sum_to(dst, np.shape(state), dt)
    return LogAttentionGrad(sum_to(dq, qs, dt), sum_to(dk, ks, dt), sum_to(dv, vs, dt), dstate)


def cheap_linear_attention_vjp(h, q, grad_out, *, causal=False):
    """Gradient of :func:`attnnorm.cheap_linear_attention` (``r_i = C_i q_i``,
    ``C_i = sum_{j seen} h_j h_j^T``): ``dq_i = C_i g_i`` and
    ``dh_j = (P_j + P_j^T) h_j`` with ``P_j = sum_{i sees j} g_i q_i^T``.
    Returns ``CheapLinearGrad(h, q)``."""
    hs, qs = _shape("h", h, 2), _shape("q", q, 2)
    if hs[-1] != qs[-1]:
        raise ValueError(f"h and q must have the same last dimension; got h {hs}, q {qs}")
    dt = _loop_dtype(h, q, grad_out)
    n, m, kk = qs[-2], hs[-2], hs[-1]
    lead = _grad_out(grad_out, _lead(hs, qs), n, kk, "(n, k)")
    hh = np.asarray(h, dt)
    dQ, dK, dV, _ = _core.linear_attention_vjp(np.asarray(q, dt), hh, hh, np.asarray(grad_out, dt),
                                               FEATURE_MAPS["identity"], bool(causal), dt.type(0), 0)
    return CheapLinearGrad(sum_to(dK + dV, hs, dt), sum_to(dQ, qs, dt))


def zeros_attention_vjp(q, k, v, s, gate_linear, gate_softmax, grad_out, *, causal=True):
    """Gradient of :func:`attnnorm.zeros_attention`.

    With ``T_t`` the keys query t sees, the weights are
    ``r_{t,i} = alpha_t + beta_t s_i + gamma_t e^{s_i}``, ``beta_t = (s1 - sh)/T_t``,
    ``alpha_t = -(s1 - sh) sbar_t / T_t - sh / T_t``, ``gamma_t = sh / Z_t``
    (``Z_t = sum_i e^{s_i}``), so ``o_t = U_t^T q_t`` with
    ``U_t = alpha_t F_t + beta_t G_t + gamma_t H_t`` (prefix sums of
    ``k v^T``, ``s k v^T``, ``e^s k v^T``).  The gradient runs back through
    ``U_t`` (suffix sums over the queries), ``sbar_t``, ``Z_t`` and the
    gates.  Returns ``ZerosAttentionGrad(q, k, v, s, gate_linear, gate_softmax)``.
    """
    qs, ks, vs = _check_qkv(q, k, v)
    ss = _shape("s", s, 1)
    if ss[-1] != ks[-2]:
        raise ValueError(f"s must have one logit per key (last axis m = {ks[-2]}); got shape {ss}")
    dt = _loop_dtype(q, k, v, s, grad_out)
    g1 = real_param("gate_linear", gate_linear, dtype=dt, allow_inf=False)
    gh = real_param("gate_softmax", gate_softmax, dtype=dt, allow_inf=False)
    n, m, d, e = qs[-2], ks[-2], qs[-1], vs[-1]
    lead = _grad_out(grad_out, _lead(qs, ks, vs, tuple(ss[:-1]) + (0, 0)), n, e, "(n, e)")
    lead = np.broadcast_shapes(lead, np.shape(g1), np.shape(gh))
    dq, dk, dv, ds, dg1, dgh = _core.zeros_attention_vjp(
        *(np.asarray(x, dt) for x in (q, k, v, s)), g1, gh, bool(causal), np.asarray(grad_out, dt))
    return ZerosAttentionGrad(sum_to(dq, qs, dt), sum_to(dk, ks, dt), sum_to(dv, vs, dt),
                              sum_to(ds, ss, dt), sum_to(dg1, np.shape(g1), dt),
                              sum_to(dgh, np.shape(gh), dt))


def soft_attention_vjp(q, v, grad_out, landmarks=None, *, n_landmarks=None, newton_iters=20):
    """Gradient of :func:`attnnorm.soft_attention` (its output ``A B^+ A^T V``
    with the Newton-Schulz ``B^+``), differentiated through the
    ``newton_iters`` Newton-Schulz steps and the initial scaling
    ``2 / ||B||_1^2`` (the column of the maximum takes the gradient of the
    norm), the Gaussian kernels, and the landmarks (the segment means of q
    when none are given: their gradient then flows into q).  Returns
    ``SoftAttentionGrad(q, v, landmarks)``."""
    qs, vs = _shape("q", q, 2), _shape("v", v, 2)
    n, d = qs[-2], qs[-1]
    e = vs[-1]
    if vs[-2] != n:
        raise ValueError(f"q and v must have the same length n; got q {qs}, v {vs}")
    iters = int_scalar("newton_iters", newton_iters, low=1)
    shapes = [qs, vs]
    if landmarks is None:
        if n_landmarks is None:
            n_landmarks = min(n, 64)
        L = int_scalar("n_landmarks", n_landmarks, low=1, high=n,
                       what=f"an integer with 1 <= n_landmarks <= n = {n}")
        dt = _loop_dtype(q, v, grad_out)
    else:
        ls = _shape("landmarks", landmarks, 2)
        L = ls[-2]
        if ls[-1] != d or not 1 <= L <= n:
            raise ValueError(f"landmarks must have shape (..., L, d) with 1 <= L <= n = {n} "
                             f"and d = {d}; got {ls}")
        shapes.append(ls)
        dt = _loop_dtype(q, v, landmarks, grad_out)
    _grad_out(grad_out, _lead(*shapes), n, e, "(n, e)")
    if landmarks is None:
        lm = np.broadcast_to(np.zeros((), dt), (L, d))
    else:
        lm = np.asarray(landmarks, dt)
    dq, dv, dl = _core.soft_attention_vjp(np.asarray(q, dt), np.asarray(v, dt), lm,
                                          np.broadcast_to(np.zeros((), dt), (iters,)),
                                          landmarks is None, np.asarray(grad_out, dt))
    dl = None if landmarks is None else dl
    return SoftAttentionGrad(sum_to(dq, qs, dt), sum_to(dv, vs, dt),
                             None if dl is None else sum_to(dl, np.shape(landmarks), dt))
