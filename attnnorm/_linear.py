"""Linear-time attention family (DESIGN "Attention", linear-time family;
papers.md A8-A11).

Every function here costs O(n) in the sequence length (times d*e, or the
number of landmarks for SOFT) and never builds an n x m matrix, except the
inspection helpers ``zeros_weights`` and ``soft_kernel``, which return one on
purpose.  Shapes follow DESIGN: ``q (..., n, d)``, ``k (..., m, d)``,
``v (..., m, e)`` -> ``(..., n, e)``; leading axes broadcast.

``causal=True`` (or ``"bottom_right"``) is a prefix scan with DESIGN's
bottom-right alignment: query ``i`` of ``n`` sees keys ``j <= i + (m - n)``
(the usual lower triangle when ``n == m``); ``causal="top_left"`` (PyTorch's
``is_causal``) sees ``j <= i``; a query that sees no key gets a zero output
row.  A non-finite key or value reaches only the queries that see it.

All functions run in float32 when every array input is float32 or float16,
else in float64 (the one dtype rule of attnnorm), in C with OpenMP over the leading axes; when there are
fewer matrices than threads, linear_attention and cheap_linear_attention
split one matrix into fixed key and query blocks, SOFT into fixed row chunks,
the others into output columns.  Small calls run on one thread.  Results are
bit-identical for every thread count.
"""

import numpy as np

from . import _core
from ._common import causal_code, int_scalar, loop_dtype, real_param

__all__ = ["linear_attention", "log_attention", "cheap_linear_attention",
           "zeros_attention", "zeros_weights", "soft_attention", "soft_kernel"]

#: feature_map name -> code understood by the C kernel (csrc/linear.h)
FEATURE_MAPS = {"elu1": 0, "relu": 1, "exp": 2, "identity": 3}


def _shape(name, x, ndim):
    shape = np.shape(x)
    if len(shape) < ndim:
        raise ValueError(f"{name} must have at least {ndim} dimensions; got shape {shape}")
    return shape


def _check_qkv(q, k, v):
    """Validate the core shapes of q (..., n, d), k (..., m, d), v (..., m, e)."""
    qs, ks, vs = _shape("q", q, 2), _shape("k", k, 2), _shape("v", v, 2)
    if qs[-1] != ks[-1]:
        raise ValueError(f"q and k must have the same last dimension d; got q {qs}, k {ks}")
    if ks[-2] != vs[-2]:
        raise ValueError(f"k and v must have the same number of keys m; got k {ks}, v {vs}")
    try:
        np.broadcast_shapes(qs[:-2], ks[:-2], vs[:-2])
    except ValueError:
        raise ValueError(f"leading axes of q {qs}, k {ks}, v {vs} do not broadcast") from None
    return qs, ks, vs


def _kw(out, dt):
    """gufunc keywords: ``out`` if given, and the loop dtype of the one dtype
    rule (loop_dtype), so e.g. bool or int8 inputs compute in float64."""
    return {"dtype": dt} if out is None else {"out": out, "dtype": dt}


def linear_attention(q, k, v, feature_map="elu1", *, causal=False, eps=1e-6, out=None):
    """Kernel-form linear attention (Katharopoulos et al.; papers.md A10).

    ``o_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j) + eps)``
    over the keys query ``i`` sees (a prefix scan when ``causal``), in
    O(n d e) time and O(d e) state.

    feature_map:
      * ``"elu1"``: ``phi(x) = elu(x) + 1`` (Katharopoulos et al.);
      * ``"relu"``: ``phi(x) = max(x, 0)``;
      * ``"identity"``: ``phi(x) = x`` (the denominator may vanish or change
        sign; ``eps`` is added as given);
      * ``"exp"``: ``phi(x) = e^x``, i.e. ``phi(q).phi(k) = sum_c e^{q_c + k_c}``:
        Heinsen's exp-kernel attention (papers.md A8), equal to
        ``softmax_j(log sum_c exp(q_ic + k_jc)) @ v``.  Computed stably: keys
        are shifted by the running per-feature maximum and queries by their
        maximum, the shifts cancel exactly; ``eps`` is not used (the ratio is
        exact and the shifted denominator is >= 1).  Same result as
        ``log_attention`` for any values.

    eps: added to the denominator (default 1e-6), >= 0.
    """
    _check_qkv(q, k, v)
    if not isinstance(feature_map, str) or feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {sorted(FEATURE_MAPS)}; got {feature_map!r}")
    dt = loop_dtype(q=q, k=k, v=v)
    e = real_param("eps", eps, dtype=dt, nonneg=True, allow_inf=False)
    return _core.linear_attention(q, k, v, FEATURE_MAPS[feature_map], causal_code(causal), e,
                                  **_kw(out, dt))


def log_attention(q, k, v, *, causal=False, state=None, return_state=False, out=None):
    """Heinsen's log-space attention (papers.md A8), for values of any sign.

    ``out = softmax(log(exp(Q) exp(K)^T)) V = [exp(Q) exp(K)^T / rowsum] V``
    (no 1/sqrt(d) scale: the formula of the paper).  Computed in log space:
    ``log Z_i = LSE_c(q_ic + LSE_j k_jc)`` and, for the positive and negative
    parts of V separately, ``log S+-_ie = LSE_c(q_ic + LSE_j(k_jc + log|v_je|))``;
    ``out = exp(log S+ - log Z) - exp(log S- - log Z)``.  This lifts the
    original's restriction to positive values.  ``causal=True`` runs the LSEs
    over keys as a log-cumulative-sum-exp scan.  Equal to
    ``linear_attention(q, k, v, "exp")``.

    Streaming (the paper's constant cost per token): with
    ``return_state=True`` the call also returns the log-space state of all
    its keys, shape ``(..., d, 4 e + 2)`` (per feature: the log-sum-exp of
    k and of k + log|v| for each sign of v, as (max, scaled sum) pairs);
    passing it as ``state=`` to the next call on the following chunk of
    tokens makes every query of that call also see all earlier keys.  The
    causal form over chunks of any length then equals the causal form over
    the whole sequence, in O(d e) memory whatever its length.
    """
    qs, ks, vs = _check_qkv(q, k, v)
    d, e = qs[-1], vs[-1]
    dt = loop_dtype(q=q, k=k, v=v, state=state)
    if state is None:
        st, has = np.broadcast_to(np.zeros((), dt), (d, 4 * e + 2)), False
    else:
        ss = np.shape(state)
        if len(ss) < 2 or ss[-2:] != (d, 4 * e + 2):
            raise ValueError(f"state must have shape (..., d, 4 e + 2) = (..., {d}, {4 * e + 2}) "
                             f"as returned by log_attention(return_state=True); got {ss}")
        st, has = state, True
    res, new_state = _core.log_attention(q, k, v, st, causal_code(causal), has,
                                         **_kw(None if out is None else (out, None), dt))
    return (res, new_state) if return_state else res


def cheap_linear_attention(h, q, *, causal=False, out=None):
    """Brébisson & Vincent's cheap linear attention (papers.md A10).

    ``r = H^T H q = C q`` with ``C = sum_t h_t h_t^T`` (k x k), i.e. the
    softmax lookup ``H^T softmax(H q)`` without the softmax.  ``h (..., m, k)``
    are the hidden states, ``q (..., n, k)`` the lookups -> ``r (..., n, k)``.
    ``causal=True`` uses the incremental ``C_t = C_{t-1} + h_t h_t^T`` (query
    ``i`` sees ``h_j``, ``j <= i + (m - n)``), O(k^2) per token.  No
    normalisation (the paper's form).
    """
    hs, qs = _shape("h", h, 2), _shape("q", q, 2)
    if hs[-1] != qs[-1]:
        raise ValueError(f"h and q must have the same last dimension; got h {hs}, q {qs}")
    dt = loop_dtype(h=h, q=q)
    return _core.cheap_linear_attention(h, q, causal_code(causal), **_kw(out, dt))


def _gates(dt, gate_linear, gate_softmax):
    return (real_param("gate_linear", gate_linear, dtype=dt, allow_inf=False),
            real_param("gate_softmax", gate_softmax, dtype=dt, allow_inf=False))


def zeros_attention(q, k, v, s, gate_linear, gate_softmax, *, causal=True, out=None):
    """ZeroS, zero-sum linear attention (Lu et al.; papers.md A9).

    ``o_t = sum_{i<=t} r_{t,i} (q_t . k_i) v_i`` with the zero-sum weights
    ``r_{t,i} = s1 (s_i - sbar_t)/t + sh (p_{t,i} - 1/t - (s_i - sbar_t)/t)``,
    ``p_{t,i} = softmax_{i<=t}(s)_i``, ``sbar_t`` the mean of ``s`` over the
    ``t`` keys seen, ``s1 = gate_linear``, ``sh = gate_softmax``.  Computed in
    O(n d e) with the associative prefix-sum form of the authors' code
    (``o_t = q_t^T (alpha_t F_t + beta_t G_t + gamma_t H_t)``, see
    ``zeros_weights`` for the explicit weights).

    s: radial logits, one per key, shape ``(..., m)`` (e.g. the paper's
      deviation logits); finite values.
    gate_linear, gate_softmax: the gate values sigma_1 and sigma_h (the paper
      uses sigmoid outputs in (0, 1); any finite real is accepted); scalars or
      arrays broadcasting against the leading axes (one gate per head).
    q, k: used as given.  The paper's radial-angular decoupling uses
      L2-normalised q-hat, k-hat (after RoPE): normalising is the caller's job.
    causal: default True (ZeroS is a causal model); False uses all m keys
      for every query (t = m).  Bottom-right alignment when n != m.
    """
    qs, ks, vs = _check_qkv(q, k, v)
    ss = _shape("s", s, 1)
    if ss[-1] != ks[-2]:
        raise ValueError(f"s must have one logit per key (last axis m = {ks[-2]}); got shape {ss}")
    dt = loop_dtype(q=q, k=k, v=v, s=s)
    g1, gh = _gates(dt, gate_linear, gate_softmax)
    return _core.zeros_attention(q, k, v, s, g1, gh, causal_code(causal), **_kw(out, dt))


def zeros_weights(s, gate_linear, gate_softmax, *, causal=True, n=None, out=None):
    """The explicit ZeroS weights r_{t,i} (papers.md A9), for inspection.

    Returns ``(..., n, m)`` (``n`` defaults to ``m``, the self-attention
    case): row ``t`` holds
    ``r_{t,i} = s1 (s_i - sbar_t)/t' + sh (p_{t,i} - 1/t' - (s_i - sbar_t)/t')``
    for the ``t'`` keys query ``t`` sees (lower-triangular when causal and
    ``n == m``) and 0 elsewhere.  Every row sums to 0; with
    ``gate_linear = gate_softmax = 1`` it is softmax minus uniform.
    ``zeros_attention`` uses these weights times ``q_t . k_i``.
    """
    ss = _shape("s", s, 1)
    m = ss[-1]
    if n is None:
        n = m
    n = int_scalar("n", n, low=0, what="an integer >= 0 or None")
    dt = loop_dtype(s=s)
    g1, gh = _gates(dt, gate_linear, gate_softmax)
    rows = np.broadcast_to(np.zeros((), dt), (n,))
    return _core.zeros_weights(s, rows, g1, gh, causal_code(causal), **_kw(out, dt))


def soft_attention(q, v, landmarks=None, *, n_landmarks=None, newton_iters=20,
                   return_residuals=False, out=None):
    """SOFT, softmax-free attention with a Gaussian kernel (Lu et al.; papers.md A11).

    Exact form: ``X = S V`` with ``S_ij = exp(-||q_i - q_j||^2 / (2 sqrt d))``
    (keys tied to queries, no row normalisation; see ``soft_kernel``).
    Computed with the Nyström approximation ``S ~ A B^+ A^T`` in
    O(n L (d + e)): ``A_ia = exp(-||q_i - l_a||^2 / (2 sqrt d))`` against L
    landmarks ``l``, ``B`` the landmarks' own kernel matrix, and ``B^+`` by
    the Newton-Schulz iteration ``V_0 = alpha B``,
    ``alpha = 1 / (||B||_1 ||B||_inf)``, ``V_{k+1} = 2 V_k - V_k B V_k``
    (``newton_iters`` steps, default 20 as the paper's configs).
    ``X = A (B^+ (A^T V))``.  This ``alpha`` is below ``2 / sigma_max(B)^2``,
    so every singular value of ``B`` converges (the paper's
    ``2 / ||B||_1^2`` is on the boundary and stalls at 0 for one landmark or
    identical ones).

    q: ``(..., n, d)`` (SOFT scales its tied projection by d^{-1/4} before
      this; pass q as you want it used); v: ``(..., n, e)``.
    landmarks: ``(..., L, d)``, 1 <= L <= n, or None for the means of
      ``n_landmarks`` contiguous segments of q (segment sizes as
      ``numpy.array_split``; SOFT uses a strided convolution instead).
    n_landmarks: used when ``landmarks`` is None; default ``min(n, 64)``.
    return_residuals: also return ``||I - B V_k||_F`` for k = 1..newton_iters,
      shape ``(..., newton_iters)``: near 0 once converged for an invertible
      ``B``; a residual that stays large reports non-convergence (too few
      iterations for an ill-conditioned ``B``; ``sqrt(L - rank B)`` for a
      singular one, where ``V_k`` tends to ``B^+``).
    """
    qs, vs = _shape("q", q, 2), _shape("v", v, 2)
    n, d = qs[-2], qs[-1]
    if vs[-2] != n:
        raise ValueError(f"q and v must have the same length n; got q {qs}, v {vs}")
    iters = int_scalar("newton_iters", newton_iters, low=1)
    if landmarks is None:
        if n_landmarks is None:
            n_landmarks = min(n, 64)
        L = int_scalar("n_landmarks", n_landmarks, low=1, high=n,
                       what=f"an integer with 1 <= n_landmarks <= n = {n}")
        dt = loop_dtype(q=q, v=v)
        lm = np.broadcast_to(np.zeros((), dt), (L, d))
        mean = True
    else:
        ls = _shape("landmarks", landmarks, 2)
        L = ls[-2]
        if ls[-1] != d:
            raise ValueError(f"landmarks must have the last dimension d = {d} of q; got shape {ls}")
        if not 1 <= L <= n:
            raise ValueError(f"landmarks must number between 1 and n = {n}; got {L} (shape {ls})")
        if n_landmarks is not None and n_landmarks != L:
            raise ValueError(f"n_landmarks = {n_landmarks!r} disagrees with landmarks of shape {ls}")
        dt = loop_dtype(q=q, v=v, landmarks=landmarks)
        lm, mean = landmarks, False
    ks = np.broadcast_to(np.zeros((), dt), (iters,))
    res_out, res = _core.soft_attention(q, v, lm, ks, mean,
                                        **_kw(None if out is None else (out, None), dt))
    return (res_out, res) if return_residuals else res_out


def soft_kernel(q, *, out=None):
    """The exact SOFT kernel ``S_ij = exp(-||q_i - q_j||^2 / (2 sqrt d))``
    (papers.md A11), ``(..., n, n)``: symmetric, unit diagonal, entries in
    (0, 1].  O(n^2 d): for small n and for checking ``soft_attention``
    (``soft_kernel(q) @ v`` is the attention the Nyström form approximates).
    """
    _shape("q", q, 2)
    return _core.soft_kernel(q, **_kw(out, loop_dtype(q=q)))
