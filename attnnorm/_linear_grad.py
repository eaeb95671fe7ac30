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
from ._common import causal_code, friendly_errors, loop_dtype, real_param, sum_to
from ._docs import fill_doc
from ._linear import (FEATURE_MAPS, _check_cheap, _check_qkv, _check_zeros, _gates,
                      _soft_inputs)


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


@friendly_errors
@fill_doc
def linear_attention_vjp(q, k, v, grad_out, feature_map="elu1", *, causal=False, eps=1e-6):
    """Gradient of ``sum(grad_out * linear_attention(q, k, v, feature_map, ...))``.

    The exact vector-Jacobian product of :func:`linear_attention` with
    respect to ``q``, ``k``, ``v`` and ``eps``, in O(n d e) time (C, chunks of
    64 queries as small GEMMs).

    Parameters
    ----------
    q, k, v : array_like
        As in the forward call: ``(..., n, d)``, ``(..., m, d)``, ``(..., m, e)``.
    grad_out : array_like, shape ``(..., n, e)``
        The upstream gradient ``dL/dout``.
    feature_map : {"elu1", "relu", "exp", "identity"}, default "elu1"
        As in the forward call.
    causal : bool or {"bottom_right", "top_left"}, default False
        As in the forward call.
    eps : float or array_like, default 1e-6
        As in the forward call.

    Returns
    -------
    grad : LinearAttentionGrad
        ``(q, k, v, eps)``: the gradients, each of the shape (and float dtype)
        its input was given in; ``eps``'s is 0 for ``"exp"`` (unused there).

    Raises
    ------
    {raises_vjp}

    Notes
    -----
    With ``o_i = phi(q_i)^T S_i / den_i``, ``den_i = phi(q_i)^T z_i + eps``:
    ``dnum_i = g_i / den_i``, ``dden_i = -<g_i, o_i> / den_i``,
    ``dq_i = phi'(q_i) (S_i dnum_i + z_i dden_i)``, and for key ``j`` the sums
    over the queries that see it, ``dS_j = sum phi(q_i) dnum_i^T``,
    ``dz_j = sum dden_i phi(q_i)``: ``dk_j = phi'(k_j) (dS_j v_j + dz_j)``,
    ``dv_j = dS_j^T phi(k_j)``.  ``"exp"`` is :func:`log_attention_vjp`'s
    computation.  Queries that see no key have a constant output: no
    gradient.  Bit-identical for every thread count.

    References
    ----------
    [Katharopoulos2020]; [Heinsen2024] (``feature_map="exp"``).

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> q, k, v, g = np.random.default_rng(0).standard_normal((4, 2, 16, 8))
    >>> grad = an.linear_attention_vjp(q, k, v, g, causal=True)
    >>> grad.q.shape, grad.k.shape, grad.v.shape
    ((2, 16, 8), (2, 16, 8), (2, 16, 8))
    """
    qs, ks, vs = _check_qkv(q, k, v)
    if not isinstance(feature_map, str) or feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {sorted(FEATURE_MAPS)}; got {feature_map!r}")
    dt = loop_dtype(q=q, k=k, v=v, grad_out=grad_out)
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
            FEATURE_MAPS[feature_map], causal_code(causal), ep, 1)
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
                                   np.asarray(g, dt), st, gs, causal_code(causal),
                                   state is not None,
                                   grad_state is not None)


@friendly_errors
@fill_doc
def log_attention_vjp(q, k, v, grad_out, *, causal=False, state=None, grad_state=None):
    """Gradient of :func:`log_attention`, including its carried state.

    The exact vector-Jacobian product of ``sum(grad_out * out)`` plus, through
    ``grad_state``, of whatever later chunks computed from the returned state.

    Parameters
    ----------
    q, k, v : array_like
        As in the forward call: ``(..., n, d)``, ``(..., m, d)``, ``(..., m, e)``.
    grad_out : array_like, shape ``(..., n, e)``
        The upstream gradient ``dL/dout``.
    causal : bool or {"bottom_right", "top_left"}, default False
        As in the forward call.
    state : array_like, shape ``(..., d, 4 e + 2)``, optional
        The ``state=`` of the forward call.
    grad_state : array_like, shape ``(..., d, 4 e + 2)``, optional
        The gradient with respect to the state this call returned, as given
        by ``log_attention_vjp(...).state`` of the next chunk.

    Returns
    -------
    grad : LogAttentionGrad
        ``(q, k, v, state)``: the gradients of ``q``, ``k``, ``v`` (their
        shapes) and of the ``state=`` argument (None when none was given),
        ready to be passed as ``grad_state`` to the VJP of the previous chunk:
        a sequence processed in chunks is differentiated chunk by chunk, last
        first.

    Raises
    ------
    {raises_vjp}

    Notes
    -----
    The state keeps each log-space number as a pair ``(M, s)`` meaning
    ``X = e^M s``; its gradient holds ``dL/dM = X dL/dX`` and
    ``dL/ds = e^M dL/dX`` (a loss depends on the state only through ``X``,
    as every later call does; ``grad_state`` is read from its ``M`` entries).
    Without a state and with finite scores whose keys lie within 600 of their
    per-feature maximum, the computation is the chunked linear form with
    shifted exponentials; otherwise a scan in log space with the values split
    by sign, so no exponential overflows whatever the scores.  Bit-identical
    for every thread count.

    References
    ----------
    [Heinsen2024].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> q, k, v, g = np.random.default_rng(0).standard_normal((4, 8, 3))
    >>> o1, st = an.log_attention(q[:4], k[:4], v[:4], causal=True, return_state=True)
    >>> g2 = an.log_attention_vjp(q[4:], k[4:], v[4:], g[4:], causal=True, state=st)
    >>> g1 = an.log_attention_vjp(q[:4], k[:4], v[:4], g[:4], causal=True, grad_state=g2.state)
    >>> whole = an.log_attention_vjp(q, k, v, g, causal=True)
    >>> bool(np.allclose(np.concatenate([g1.k, g2.k]), whole.k))
    True
    """
    qs, ks, vs = _check_qkv(q, k, v)
    n, m, d, e = qs[-2], ks[-2], qs[-1], vs[-1]
    dt = loop_dtype(q=q, k=k, v=v, grad_out=grad_out, state=state)
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


@friendly_errors
@fill_doc
def cheap_linear_attention_vjp(h, q, grad_out, *, causal=False):
    """Gradient of ``sum(grad_out * cheap_linear_attention(h, q, causal=))``.

    The exact vector-Jacobian product of :func:`cheap_linear_attention`
    (``r_i = C_i q_i``, ``C_i = sum_{j seen} h_j h_j^T``) in O(n k^2).

    Parameters
    ----------
    h : array_like, shape ``(..., m, k)``
        The hidden states of the forward call.
    q : array_like, shape ``(..., n, k)``
        The lookups of the forward call.
    grad_out : array_like, shape ``(..., n, k)``
        The upstream gradient ``dL/dr``.
    causal : bool or {"bottom_right", "top_left"}, default False
        As in the forward call.

    Returns
    -------
    grad : CheapLinearGrad
        ``(h, q)``: ``dq_i = C_i g_i`` and ``dh_j = (P_j + P_j^T) h_j`` with
        ``P_j = sum_{i sees j} g_i q_i^T``, of the inputs' shapes.

    Raises
    ------
    {raises_vjp}

    Notes
    -----
    Computed as :func:`linear_attention_vjp` with the identity map, keys and
    values ``h`` and no denominator.  Bit-identical for every thread count.

    References
    ----------
    [Brebisson2016].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> h, q, g = np.random.default_rng(0).standard_normal((3, 10, 4))
    >>> grad = an.cheap_linear_attention_vjp(h, q, g)
    >>> C = h.T @ h
    >>> bool(np.allclose(grad.q, g @ C))
    True
    """
    hs, qs = _check_cheap(h, q)
    dt = loop_dtype(h=h, q=q, grad_out=grad_out)
    n, m, kk = qs[-2], hs[-2], hs[-1]
    lead = _grad_out(grad_out, _lead(hs, qs), n, kk, "(n, k)")
    hh = np.asarray(h, dt)
    dQ, dK, dV, _ = _core.linear_attention_vjp(np.asarray(q, dt), hh, hh, np.asarray(grad_out, dt),
                                               FEATURE_MAPS["identity"],
                                               causal_code(causal),
                                               dt.type(0), 0)
    return CheapLinearGrad(sum_to(dK + dV, hs, dt), sum_to(dQ, qs, dt))


@friendly_errors
@fill_doc
def zeros_attention_vjp(q, k, v, s, gate_linear, gate_softmax, grad_out, *, causal=True):
    """Gradient of ``sum(grad_out * zeros_attention(q, k, v, s, gate_linear, gate_softmax))``.

    The exact vector-Jacobian product of :func:`zeros_attention` with
    respect to ``q``, ``k``, ``v``, the logits ``s`` and both gates, in
    O(n d e) (C, chunks of 64 queries as small GEMMs).

    Parameters
    ----------
    q, k, v : array_like
        As in the forward call: ``(..., n, d)``, ``(..., m, d)``, ``(..., m, e)``.
    s : array_like, shape ``(..., m)``
        The radial logits of the forward call.
    gate_linear, gate_softmax : float or array_like
        The gates of the forward call (one per head as arrays).
    grad_out : array_like, shape ``(..., n, e)``
        The upstream gradient ``dL/dout``.
    causal : bool or {"bottom_right", "top_left"}, default True
        As in :func:`zeros_attention`, whose default it keeps.

    Returns
    -------
    grad : ZerosAttentionGrad
        ``(q, k, v, s, gate_linear, gate_softmax)``: the gradients, each of
        the shape its input was given in.

    Raises
    ------
    {raises_vjp}

    Notes
    -----
    With ``T_t`` the keys query ``t`` sees, the weights are
    ``r_{t,i} = alpha_t + beta_t s_i + gamma_t e^{s_i}`` with
    ``beta_t = (s1 - sh) / T_t``, ``alpha_t = -(s1 - sh) sbar_t / T_t - sh / T_t``
    and ``gamma_t = sh / Z_t`` (``Z_t = sum_i e^{s_i}``), so the output is
    ``q_t^T (alpha_t F_t + beta_t G_t + gamma_t H_t)`` with prefix sums of
    ``k v^T``, ``s k v^T`` and ``e^s k v^T``; the gradient runs back through
    them (suffix sums over the queries), through ``sbar_t``, ``Z_t`` and the
    gates.  The exponentials are kept relative to running maxima, so logits
    of any range are safe.  Bit-identical for every thread count.

    References
    ----------
    [Lu2026].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> rng = np.random.default_rng(0)
    >>> q, k, v, g = rng.standard_normal((4, 12, 4))
    >>> s = rng.standard_normal(12)
    >>> grad = an.zeros_attention_vjp(q, k, v, s, 0.5, 0.5, g)
    >>> grad.s.shape, float(grad.gate_linear) != 0.0
    ((12,), True)
    """
    qs, ks, vs, ss = _check_zeros(q, k, v, s)
    dt = loop_dtype(q=q, k=k, v=v, s=s, grad_out=grad_out)
    g1, gh = _gates(dt, gate_linear, gate_softmax)
    n, m, d, e = qs[-2], ks[-2], qs[-1], vs[-1]
    lead = _grad_out(grad_out, _lead(qs, ks, vs, tuple(ss[:-1]) + (0, 0)), n, e, "(n, e)")
    lead = np.broadcast_shapes(lead, np.shape(g1), np.shape(gh))
    dq, dk, dv, ds, dg1, dgh = _core.zeros_attention_vjp(
        *(np.asarray(x, dt) for x in (q, k, v, s)), g1, gh,
        causal_code(causal), np.asarray(grad_out, dt))
    return ZerosAttentionGrad(sum_to(dq, qs, dt), sum_to(dk, ks, dt), sum_to(dv, vs, dt),
                              sum_to(ds, ss, dt), sum_to(dg1, np.shape(g1), dt),
                              sum_to(dgh, np.shape(gh), dt))


@friendly_errors
@fill_doc
def soft_attention_vjp(q, v, grad_out, landmarks=None, *, n_landmarks=None, newton_iters=20):
    """Gradient of ``sum(grad_out * soft_attention(q, v, landmarks, ...))``.

    The exact vector-Jacobian product of :func:`soft_attention` (its Nystrom
    output ``A B^+ A^T V`` with the Newton-Schulz ``B^+``) with respect to
    ``q``, ``v`` and the landmarks.

    Parameters
    ----------
    q : array_like, shape ``(..., n, d)``
        As in the forward call.
    v : array_like, shape ``(..., n, e)``
        As in the forward call.
    grad_out : array_like, shape ``(..., n, e)``
        The upstream gradient ``dL/dout``.
    landmarks : array_like, shape ``(..., L, d)``, optional
        As in the forward call; None for the segment means of ``q``.
    n_landmarks : int, optional
        As in the forward call (with ``landmarks=None``).
    newton_iters : int, default 20
        As in the forward call.

    Returns
    -------
    grad : SoftAttentionGrad
        ``(q, v, landmarks)``: the gradients of the inputs' shapes;
        ``landmarks`` is None when they were the segment means of ``q`` (their
        gradient then flows into ``q``).

    Raises
    ------
    {raises_vjp}

    Notes
    -----
    Differentiated through the ``newton_iters`` Newton-Schulz steps
    ``V_{k+1} = 2 V_k - V_k B V_k``, the initial scaling ``2 / ||B||_1^2``
    (the column of the maximum takes the norm's gradient), the Gaussian
    kernels and the landmarks.  In double inside, O(n L (d + e) + K L^3).
    Bit-identical for every thread count.

    References
    ----------
    [Lu2021].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> q, v, g = np.random.default_rng(0).standard_normal((3, 32, 4))
    >>> grad = an.soft_attention_vjp(q, v, g, n_landmarks=8)
    >>> grad.q.shape, grad.landmarks is None
    ((32, 4), True)
    """
    qs, vs, ls, dt, lm, mean, ks = _soft_inputs(q, v, landmarks, n_landmarks, newton_iters,
                                                grad_out=grad_out)
    _grad_out(grad_out, _lead(*[x for x in (qs, vs, ls) if x is not None]), qs[-2], vs[-1],
              "(n, e)")
    lm = np.asarray(lm, dt)
    dq, dv, dl = _core.soft_attention_vjp(np.asarray(q, dt), np.asarray(v, dt), lm, ks, mean,
                                          np.asarray(grad_out, dt))
    dl = None if landmarks is None else dl
    return SoftAttentionGrad(sum_to(dq, qs, dt), sum_to(dv, vs, dt),
                             None if dl is None else sum_to(dl, np.shape(landmarks), dt))
