"""Linear-time attention family ([Katharopoulos2020], [Heinsen2024],
[Brebisson2016], [Lu2026], [Lu2021]; keys as in docs/references.md).

Every function here costs O(n) in the sequence length (times d*e, or the
number of landmarks for SOFT) and never builds an n x m matrix, except the
inspection helpers ``zeros_weights`` and ``soft_kernel``, which return one on
purpose.  Shapes: ``q (..., n, d)``, ``k (..., m, d)``,
``v (..., m, e)`` -> ``(..., n, e)``; leading axes broadcast.

``causal=True`` is a prefix scan with bottom-right alignment: query
``i`` of ``n`` sees keys ``j <= i + (m - n)`` (the usual lower triangle when
``n == m``); ``causal="top_left"`` aligns the first query with the first
key instead (query ``i`` sees ``j <= i``, PyTorch's ``is_causal``), and
``"bottom_right"`` is the same as ``True``.  A query that sees no key gets a
zero output row.

All functions run in float32 or float64 (the dtype NumPy's promotion picks
for the inputs), in C with OpenMP over the leading axes; when there are
fewer matrices than threads, linear_attention and cheap_linear_attention
split one matrix into fixed key and query blocks, SOFT into fixed row chunks,
the others into output columns.  Small calls run on one thread.  Results are
bit-identical for every thread count.
"""

import numpy as np

from . import _core
from ._docs import fill_doc
from ._common import causal_code, friendly_errors, int_scalar, lead_mismatch, loop_dtype, real_param

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
        raise lead_mismatch(["q", "k", "v"], [qs[:-2], ks[:-2], vs[:-2]]) from None
    return qs, ks, vs


def _kw(out, dt):
    """gufunc keywords: ``out`` if given, and the loop dtype of the one dtype
    rule (loop_dtype), so e.g. bool or int8 inputs compute in float64."""
    return {"dtype": dt} if out is None else {"out": out, "dtype": dt}


@friendly_errors
@fill_doc
def linear_attention(q, k, v, feature_map="elu1", *, causal=False, eps=1e-6, out=None):
    """Kernel (feature-map) linear attention in O(n d e) time and O(d e) state.

    Each query reads a running sum of ``phi(k_j) v_j^T`` over the keys it sees,
    a prefix scan when ``causal`` [Katharopoulos2020].  With ``feature_map="exp"``
    it is Heinsen's exp-kernel attention [Heinsen2024], equal to
    ``softmax_j(log sum_c exp(q_ic + k_jc)) @ v`` and to :func:`log_attention`.

    Parameters
    ----------
    q : array_like, shape ``(..., n, d)``
        Queries.
    k : array_like, shape ``(..., m, d)``
        Keys.
    v : array_like, shape ``(..., m, e)``
        Values.  Leading axes of q, k and v broadcast.
    feature_map : {"elu1", "relu", "exp", "identity"}, default "elu1"
        ``phi``: ``elu(x) + 1`` [Katharopoulos2020], ``max(x, 0)``, ``e^x``
        (computed stably: keys shifted by the running per-feature maximum and
        queries by their maximum, the shifts cancel; ``eps`` is not used) or
        ``x`` (the denominator may vanish or change sign; ``eps`` is added as
        given).
    causal : bool or {"bottom_right", "top_left"}, default False
        Prefix scan: query ``i`` of ``n`` sees keys ``j <= i + (m - n)``
        (bottom-right aligned); a query that sees no key gets a zero row.
    eps : float, default 1e-6
        ``>= 0``, finite, added to the denominator.
    out : ndarray, optional
        ``(..., n, e)`` array to write into.

    Returns
    -------
    out : ndarray, shape ``(..., n, e)``
        float32 when every input is float32 (or float16), else float64.

    Raises
    ------
    {raises_qkv}

    Notes
    -----
    ``o_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j) + eps)``
    over the keys query ``i`` sees.  Bit-identical for every thread count.

    References
    ----------
    [Katharopoulos2020]; [Heinsen2024] (``feature_map="exp"``).

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> q, k, v = np.random.default_rng(0).standard_normal((3, 2, 16, 8))
    >>> o = an.linear_attention(q, k, v, "elu1", causal=True)
    >>> o.shape
    (2, 16, 8)
    >>> bool(np.allclose(an.linear_attention(q, k, v, "exp"), an.log_attention(q, k, v)))
    True
    """
    _check_qkv(q, k, v)
    if not isinstance(feature_map, str) or feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {sorted(FEATURE_MAPS)}; got {feature_map!r}")
    dt = loop_dtype(q=q, k=k, v=v)
    e = real_param("eps", eps, dtype=dt, nonneg=True, allow_inf=False)
    return _core.linear_attention(q, k, v, FEATURE_MAPS[feature_map], causal_code(causal), e,
                                  **_kw(out, dt))


@friendly_errors
@fill_doc
def log_attention(q, k, v, *, causal=False, state=None, return_state=False, out=None):
    """Heinsen's log-space attention, for values of any sign, streamable in chunks.

    ``softmax(log(exp(Q) exp(K)^T)) V`` computed entirely in log space with a
    constant-size state per token [Heinsen2024].  The positive and negative parts
    of V are handled separately, which lifts the original's restriction to
    positive values.  No ``1/sqrt(d)`` scale (the formula of the paper).

    Parameters
    ----------
    q : array_like, shape ``(..., n, d)``
    k : array_like, shape ``(..., m, d)``
    v : array_like, shape ``(..., m, e)``
        Leading axes broadcast.
    causal : bool or {"bottom_right", "top_left"}, default False
        Run the log-sum-exps over keys as a log-cumulative-sum-exp scan (query
        ``i`` sees keys ``j <= i + (m - n)``).
    state : ndarray, shape ``(..., d, 4 e + 2)``, optional
        The state returned by a previous call with ``return_state=True``: every
        query of this call also sees all keys of the earlier calls.
    return_state : bool, default False
        Also return the log-space state of all keys seen so far.
    out : ndarray, optional
        ``(..., n, e)`` array to write the output into.

    Returns
    -------
    out : ndarray, shape ``(..., n, e)``
    state : ndarray, shape ``(..., d, 4 e + 2)``
        Only with ``return_state=True``: per feature, the log-sum-exp of ``k``
        and of ``k + log|v|`` for each sign of ``v``, as (max, scaled sum) pairs.

    Raises
    ------
    ValueError
        Core shapes that do not match (``d`` of q and k, ``m`` of k and v),
        leading axes that do not broadcast (with the grouped-query reshape when
        the head counts divide), or a ``state`` of the wrong shape.
    TypeError
        Complex, object or string input, or an unknown keyword (PyTorch's
        ``is_causal=``, ``attn_mask=``, ... get a message naming attnnorm's
        equivalent).

    Notes
    -----
    ``log Z_i = LSE_c(q_ic + LSE_j k_jc)`` and, for each sign of V,
    ``log S_ie = LSE_c(q_ic + LSE_j(k_jc + log|v_je|))``;
    ``out = exp(log S+ - log Z) - exp(log S- - log Z)``.  Equal to
    ``linear_attention(q, k, v, "exp")``.  The causal form over chunks of any
    length equals the causal form over the whole sequence, in O(d e) memory.

    References
    ----------
    [Heinsen2024].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> q, k, v = np.random.default_rng(0).standard_normal((3, 20, 4))
    >>> full = an.log_attention(q, k, v, causal=True)
    >>> a, st = an.log_attention(q[:12], k[:12], v[:12], causal=True, return_state=True)
    >>> b = an.log_attention(q[12:], k[12:], v[12:], causal=True, state=st)
    >>> bool(np.allclose(np.concatenate([a, b]), full))
    True
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


@friendly_errors
@fill_doc
def cheap_linear_attention(h, q, *, causal=False, out=None):
    """Cheap linear attention: the softmax lookup ``H^T softmax(H q)`` without the softmax.

    ``r = H^T H q = C q`` with the ``k x k`` matrix ``C = sum_t h_t h_t^T``
    [Brebisson2016]: each lookup costs O(k^2), independent of the length.

    Parameters
    ----------
    h : array_like, shape ``(..., m, k)``
        Hidden states (the keys and values of the lookup).
    q : array_like, shape ``(..., n, k)``
        Lookups.  Leading axes broadcast.
    causal : bool or {"bottom_right", "top_left"}, default False
        Incremental ``C_t = C_{t-1} + h_t h_t^T``: query ``i`` sees ``h_j`` for
        ``j <= i + (m - n)``.
    out : ndarray, optional
        ``(..., n, k)`` array to write into.

    Returns
    -------
    r : ndarray, shape ``(..., n, k)``

    Raises
    ------
    ValueError
        ``h`` and ``q`` with different last dimensions.
    TypeError
        Complex, object or string input, or an unknown keyword.

    Notes
    -----
    ``r_i = (sum_{j visible} h_j h_j^T) q_i``.  No normalisation (the paper's
    form).

    References
    ----------
    [Brebisson2016].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> h, q = np.random.default_rng(0).standard_normal((2, 10, 4))
    >>> bool(np.allclose(an.cheap_linear_attention(h, q), q @ (h.T @ h)))
    True
    """
    _check_cheap(h, q)
    dt = loop_dtype(h=h, q=q)
    return _core.cheap_linear_attention(h, q, causal_code(causal), **_kw(out, dt))


def _check_cheap(h, q):
    """Core shapes of cheap linear attention's h and q."""
    hs, qs = _shape("h", h, 2), _shape("q", q, 2)
    if hs[-1] != qs[-1]:
        raise ValueError(f"h and q must have the same last dimension; got h {hs}, q {qs}")
    return hs, qs


def _check_zeros(q, k, v, s):
    """Core shapes of ZeroS's q, k, v and per-key logits s."""
    qs, ks, vs = _check_qkv(q, k, v)
    ss = _shape("s", s, 1)
    if ss[-1] != ks[-2]:
        raise ValueError(f"s must have one logit per key (last axis m = {ks[-2]}); got shape {ss}")
    return qs, ks, vs, ss


def _gates(dt, gate_linear, gate_softmax):
    return (real_param("gate_linear", gate_linear, dtype=dt, allow_inf=False),
            real_param("gate_softmax", gate_softmax, dtype=dt, allow_inf=False))


@friendly_errors
@fill_doc
def zeros_attention(q, k, v, s, gate_linear, gate_softmax, *, causal=True, out=None):
    """ZeroS: zero-sum linear attention, computed in O(n d e) with prefix sums.

    The weights ``r_{t,i}`` of each query sum to exactly 0: the zeroth-order
    ``1/t`` term of softmax is removed [Lu2026].  Computed with the associative
    prefix-sum form of the authors' code
    (``o_t = q_t^T (alpha_t F_t + beta_t G_t + gamma_t H_t)``); see
    :func:`zeros_weights` for the explicit weights.

    Parameters
    ----------
    q : array_like, shape ``(..., n, d)``
    k : array_like, shape ``(..., m, d)``
    v : array_like, shape ``(..., m, e)``
        Used as given.  The paper's radial-angular decoupling uses L2-normalised
        ``q`` and ``k`` (after RoPE): normalising is the caller's job.
    s : array_like, shape ``(..., m)``
        Radial logits, one per key (e.g. the paper's deviation logits); finite.
    gate_linear : float or array_like
        ``sigma_1``, the gate of the first-order term (the paper uses sigmoid
        outputs in (0, 1); any finite real is accepted); an array broadcasts
        against the leading axes (one gate per head).
    gate_softmax : float or array_like
        ``sigma_h``, the gate of the softmax term; as ``gate_linear``.
    causal : bool or {"bottom_right", "top_left"}, default True
        ZeroS is a causal model, so unlike the rest of attnnorm the default is
        causal: query ``t`` sees the keys ``i <= t + (m - n)`` (bottom-right
        aligned) and its weights are defined by how many it sees.  ``False``
        uses all ``m`` keys for every query (``t = m``), which gives every query
        the same weights.
    out : ndarray, optional
        ``(..., n, e)`` array to write into.

    Returns
    -------
    out : ndarray, shape ``(..., n, e)``

    Raises
    ------
    ValueError
        Core shapes that do not match (``d`` of q and k, ``m`` of k, v and s),
        leading axes that do not broadcast (with the grouped-query reshape when
        the head counts divide), or a parameter outside its domain.
    TypeError
        Complex, object or string input, or an unknown keyword (PyTorch's
        ``is_causal=``, ``attn_mask=``, ... get a message naming attnnorm's
        equivalent).

    Notes
    -----
    ``o_t = sum_{i<=t} r_{t,i} (q_t . k_i) v_i`` with
    ``r_{t,i} = s1 (s_i - sbar_t)/t + sh (p_{t,i} - 1/t - (s_i - sbar_t)/t)``,
    ``p_{t,i} = softmax_{i<=t}(s)_i``, ``sbar_t`` the mean of ``s`` over the
    ``t`` keys seen, ``s1 = gate_linear``, ``sh = gate_softmax``.

    References
    ----------
    [Lu2026].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = rng.standard_normal((3, 8, 4))
    >>> s = rng.standard_normal(8)
    >>> o = an.zeros_attention(q, k, v, s, 0.5, 1.0)
    >>> r = an.zeros_weights(s, 0.5, 1.0)
    >>> bool(np.allclose(o, (r * (q @ k.T)) @ v)) and bool(np.allclose(r.sum(-1), 0))
    True
    """
    _check_zeros(q, k, v, s)
    dt = loop_dtype(q=q, k=k, v=v, s=s)
    g1, gh = _gates(dt, gate_linear, gate_softmax)
    return _core.zeros_attention(q, k, v, s, g1, gh, causal_code(causal), **_kw(out, dt))


@friendly_errors
@fill_doc
def zeros_weights(s, gate_linear, gate_softmax, *, causal=True, n=None, out=None):
    """The explicit ZeroS weights ``r_{t,i}``, an ``(n, m)`` matrix for inspection.

    Row ``t`` holds the zero-sum weights of query ``t`` over the keys it sees
    [Lu2026] and 0 elsewhere; :func:`zeros_attention` multiplies them by
    ``q_t . k_i``.

    Parameters
    ----------
    s : array_like, shape ``(..., m)``
        Radial logits, one per key.
    gate_linear, gate_softmax : float or array_like
        ``sigma_1`` and ``sigma_h``, as in :func:`zeros_attention`.
    causal : bool or {"bottom_right", "top_left"}, default True
        As in :func:`zeros_attention` (lower-triangular when ``n == m``).
    n : int, optional
        Number of queries, ``>= 0``; default ``m`` (self-attention).
    out : ndarray, optional
        ``(..., n, m)`` array to write into.

    Returns
    -------
    r : ndarray, shape ``(..., n, m)``
        Every row sums to 0; with ``gate_linear = gate_softmax = 1`` it is
        softmax minus uniform over the visible keys.

    Raises
    ------
    ValueError
        A negative ``n`` or a non-finite gate.
    TypeError
        Complex, object or string input, or an unknown keyword.

    Notes
    -----
    ``r_{t,i} = s1 (s_i - sbar_t)/t' + sh (p_{t,i} - 1/t' - (s_i - sbar_t)/t')``
    for the ``t'`` keys query ``t`` sees.

    References
    ----------
    [Lu2026].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> s = np.random.default_rng(0).standard_normal(5)
    >>> r = an.zeros_weights(s, 1.0, 1.0)
    >>> tri = np.tril(np.ones((5, 5), bool))
    >>> bool(np.allclose(r, an.softmax(np.broadcast_to(s, (5, 5)), causal=True) - tri / tri.sum(1, keepdims=True)))
    True
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


def _soft_inputs(q, v, landmarks, n_landmarks, newton_iters, **more):
    """SOFT's inputs checked: the core shapes of q, v (and landmarks, or None),
    the loop dtype (``more`` are further arrays that take part in it), the
    landmarks operand (placeholder when they are the segment means), the mean
    flag and the Newton-iteration count operand."""
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
        ls = None
        dt = loop_dtype(q=q, v=v, **more)
        lm = np.broadcast_to(np.zeros((), dt), (L, d))
    else:
        ls = _shape("landmarks", landmarks, 2)
        L = ls[-2]
        if ls[-1] != d:
            raise ValueError(f"landmarks must have the last dimension d = {d} of q; got shape {ls}")
        if not 1 <= L <= n:
            raise ValueError(f"landmarks must number between 1 and n = {n}; got {L} (shape {ls})")
        if n_landmarks is not None and n_landmarks != L:
            raise ValueError(f"n_landmarks = {n_landmarks!r} disagrees with landmarks of shape {ls}")
        dt = loop_dtype(q=q, v=v, landmarks=landmarks, **more)
        lm = landmarks
    return qs, vs, ls, dt, lm, landmarks is None, np.broadcast_to(np.zeros((), dt), (iters,))


@friendly_errors
@fill_doc
def soft_attention(q, v, landmarks=None, *, n_landmarks=None, newton_iters=20,
                   return_residuals=False, out=None):
    """SOFT: softmax-free attention with a Gaussian kernel, via Nystrom landmarks.

    The exact form ``X = S V`` with ``S_ij = exp(-||q_i - q_j||^2 / (2 sqrt d))``
    (keys tied to queries, no row normalisation) is approximated by
    ``S ~ A B^+ A^T`` in O(n L (d + e)), with ``B^+`` from a Newton-Schulz
    iteration [Lu2021].

    Parameters
    ----------
    q : array_like, shape ``(..., n, d)``
        Queries, also used as keys (SOFT scales its tied projection by
        ``d^(-1/4)`` before this; pass q as you want it used).
    v : array_like, shape ``(..., n, e)``
        Values.
    landmarks : array_like, shape ``(..., L, d)``, optional
        ``1 <= L <= n``; default: the means of ``n_landmarks`` contiguous
        segments of q (sizes as ``numpy.array_split``; SOFT uses a strided
        convolution instead).
    n_landmarks : int, optional
        Used when ``landmarks`` is None; default ``min(n, 64)``.
    newton_iters : int, default 20
        ``>= 1`` Newton-Schulz steps (20 as the paper's configs).
    return_residuals : bool, default False
        Also return ``||I - B V_k||_F`` for ``k = 1..newton_iters``: near 0
        once converged for an invertible ``B``; a residual that stays large
        reports non-convergence (too few iterations for an ill-conditioned
        ``B``; ``sqrt(L - rank B)`` for a singular one, where ``V_k`` tends to
        ``B^+``).
    out : ndarray, optional
        ``(..., n, e)`` array to write into.

    Returns
    -------
    out : ndarray, shape ``(..., n, e)``
    residuals : ndarray, shape ``(..., newton_iters)``
        Only with ``return_residuals=True``.

    Raises
    ------
    ValueError
        Mismatched shapes, ``n_landmarks`` outside ``[1, n]`` or disagreeing
        with ``landmarks``, ``newton_iters < 1``.
    TypeError
        Complex, object or string input, or an unknown keyword.

    Notes
    -----
    ``A_ia = exp(-||q_i - l_a||^2 / (2 sqrt d))`` against the landmarks ``l``,
    ``B`` the landmarks' own kernel matrix, ``V_0 = alpha B`` with
    ``alpha = 1 / (||B||_1 ||B||_inf)`` and ``V_{k+1} = 2 V_k - V_k B V_k``;
    ``X = A (B^+ (A^T V))``.  This ``alpha`` is below ``2 / sigma_max(B)^2``,
    so every singular value of ``B`` converges ([Lu2021]'s ``2 / ||B||_1^2``
    is on the boundary and stalls at 0 for one landmark or identical ones).

    References
    ----------
    [Lu2021].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> q, v = np.random.default_rng(0).standard_normal((2, 8, 4))
    >>> x, res = an.soft_attention(q, v, n_landmarks=8, return_residuals=True)
    >>> bool(res[-1] < 1e-9)     # every token a landmark: B^+ converged, the Nystrom form is exact
    True
    >>> bool(np.allclose(x, an.soft_kernel(q) @ v))
    True
    """
    _, _, _, dt, lm, mean, ks = _soft_inputs(q, v, landmarks, n_landmarks, newton_iters)
    res_out, res = _core.soft_attention(q, v, lm, ks, mean,
                                        **_kw(None if out is None else (out, None), dt))
    return (res_out, res) if return_residuals else res_out


@friendly_errors
@fill_doc
def soft_kernel(q, *, out=None):
    """The exact SOFT kernel ``S_ij = exp(-||q_i - q_j||^2 / (2 sqrt d))``, ``(..., n, n)``.

    Symmetric, unit diagonal, entries in (0, 1] [Lu2021].  O(n^2 d): for small
    n and for checking :func:`soft_attention` (``soft_kernel(q) @ v`` is the
    attention the Nystrom form approximates).

    Parameters
    ----------
    q : array_like, shape ``(..., n, d)``
    out : ndarray, optional
        ``(..., n, n)`` array to write into.

    Returns
    -------
    S : ndarray, shape ``(..., n, n)``

    Raises
    ------
    ValueError
        ``q`` with fewer than 2 dimensions.
    TypeError
        Complex, object or string input, or an unknown keyword.

    Notes
    -----
    The Gaussian kernel with bandwidth ``2 sqrt d`` of the SOFT paper.

    References
    ----------
    [Lu2021].

    Examples
    --------
    >>> import numpy as np
    >>> import attnnorm as an
    >>> S = an.soft_kernel(np.random.default_rng(0).standard_normal((6, 4)))
    >>> bool(np.allclose(np.diag(S), 1)) and bool(np.allclose(S, S.T))
    True
    """
    _shape("q", q, 2)
    return _core.soft_kernel(q, **_kw(out, loop_dtype(q=q)))
