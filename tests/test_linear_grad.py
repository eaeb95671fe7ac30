"""VJPs of the linear-time attention family against central finite
differences of the forward functions (float64, relative error <= 1e-6)."""
import numpy as np
import pytest

import attnnorm as an
from conftest import run_variants

H = 1e-6


def _fd(f, x):
    d = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += H
        xm[idx] -= H
        d[idx] = (f(xp) - f(xm)) / (2 * H)
    return d


def _ok(got, want, tol=1e-6):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert np.max(np.abs(got - want)) <= tol * max(np.max(np.abs(want)), 1e-12)


def _qkv(rng, n=4, m=6, d=3, e=2, lead=()):
    return (rng.normal(size=lead + (n, d)), rng.normal(size=lead + (m, d)),
            rng.normal(size=lead + (m, e)), rng.normal(size=lead + (n, e)))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("fmap", ["elu1", "relu", "identity", "exp"])
def test_linear_attention_vjp(fmap, causal, rng):
    q, k, v, g = _qkv(rng)
    eps = 5.0 if fmap == "identity" else 0.1
    L = lambda q_, k_, v_, ep=eps: float(np.sum(g * an.linear_attention(q_, k_, v_, fmap, causal=causal, eps=ep)))
    r = an.linear_attention_vjp(q, k, v, g, fmap, causal=causal, eps=eps)
    _ok(r.q, _fd(lambda x: L(x, k, v), q))
    _ok(r.k, _fd(lambda x: L(q, x, v), k))
    _ok(r.v, _fd(lambda x: L(q, k, x), v))
    want = (L(q, k, v, eps + H) - L(q, k, v, eps - H)) / (2 * H)
    assert abs(r.eps - want) <= 1e-6 * max(abs(want), 1e-9)


def test_linear_attention_vjp_batch_broadcast_and_float32(rng):
    q, _, _, g = _qkv(rng, lead=(2, 3))
    k = rng.normal(size=(3, 6, 3))          # broadcast over the batch
    v = rng.normal(size=(6, 2))
    r = an.linear_attention_vjp(q, k, v, g, causal=True)
    assert r.q.shape == q.shape and r.k.shape == k.shape and r.v.shape == v.shape
    one = [an.linear_attention_vjp(q[b, h], k[h], v, g[b, h], causal=True) for b in range(2) for h in range(3)]
    np.testing.assert_allclose(r.v, sum(o.v for o in one), rtol=1e-12)
    np.testing.assert_allclose(r.k, np.stack([sum(one[b * 3 + h].k for b in range(2)) for h in range(3)]), rtol=1e-12)
    r32 = an.linear_attention_vjp(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32),
                                  g.astype(np.float32), causal=True)
    assert r32.q.dtype == np.float32
    np.testing.assert_allclose(r32.q, r.q, rtol=2e-5, atol=2e-6)


def test_linear_attention_vjp_rows_without_keys(rng):
    q, k, v, g = _qkv(rng, n=6, m=3)        # causal, n > m: the first 3 queries see nothing
    r = an.linear_attention_vjp(q, k, v, g, causal=True)
    assert np.all(r.q[:3] == 0) and np.isfinite(r.k).all()


@pytest.mark.parametrize("causal", [False, True])
def test_log_attention_vjp_matches_fd_and_large_values(causal, rng):
    q, k, v, g = _qkv(rng)
    v[1, 0] = 0.0
    L = lambda q_, k_, v_: float(np.sum(g * an.log_attention(q_, k_, v_, causal=causal)))
    r = an.log_attention_vjp(q, k, v, g, causal=causal)
    _ok(r.q, _fd(lambda x: L(x, k, v), q))
    _ok(r.k, _fd(lambda x: L(q, x, v), k))
    _ok(r.v, _fd(lambda x: L(q, k, x), v))
    assert r.state is None
    # equal to the exp feature map's; finite where exp(q), exp(k) overflow
    ex = an.linear_attention_vjp(q, k, v, g, "exp", causal=causal)
    np.testing.assert_allclose(r.q, ex.q, rtol=1e-12, atol=1e-15)
    big = an.log_attention_vjp(300 * q, 300 * k, v, g, causal=causal)
    assert all(np.isfinite(x).all() for x in big[:3])


def test_log_attention_vjp_carried_state(rng):
    """Chunks differentiated last first, the state's gradient carried back,
    equal the whole-sequence gradient and finite differences of the chunked loss."""
    q, k, v, g = _qkv(rng, n=7, m=7)
    cuts = [(0, 2, True), (2, 5, False), (5, 7, True)]

    def loss(q_, k_, v_):
        st, tot = None, 0.0
        for a, b, c in cuts:
            o, st = an.log_attention(q_[a:b], k_[a:b], v_[a:b], causal=c, state=st, return_state=True)
            tot += float(np.sum(g[a:b] * o))
        return tot

    states = [None]
    for a, b, c in cuts[:-1]:
        states.append(an.log_attention(q[a:b], k[a:b], v[a:b], causal=c, state=states[-1],
                                       return_state=True)[1])
    grads, gst = [], None
    for (a, b, c), st in reversed(list(zip(cuts, states))):
        r = an.log_attention_vjp(q[a:b], k[a:b], v[a:b], g[a:b], causal=c, state=st, grad_state=gst)
        grads.insert(0, r)
        gst = r.state
    assert gst is None
    dq = np.concatenate([r.q for r in grads])
    dk = np.concatenate([r.k for r in grads])
    dv = np.concatenate([r.v for r in grads])
    _ok(dq, _fd(lambda x: loss(x, k, v), q))
    _ok(dk, _fd(lambda x: loss(q, x, v), k))
    _ok(dv, _fd(lambda x: loss(q, k, x), v))
    # two causal chunks == the causal whole
    _, s1 = an.log_attention(q[:3], k[:3], v[:3], causal=True, return_state=True)
    r2 = an.log_attention_vjp(q[3:], k[3:], v[3:], g[3:], causal=True, state=s1)
    r1 = an.log_attention_vjp(q[:3], k[:3], v[:3], g[:3], causal=True, grad_state=r2.state)
    whole = an.log_attention_vjp(q, k, v, g, causal=True)
    np.testing.assert_allclose(np.concatenate([r1.k, r2.k]), whole.k, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("causal", [False, True])
def test_cheap_linear_attention_vjp(causal, rng):
    h = rng.normal(size=(6, 3))
    q = rng.normal(size=(4, 3))
    g = rng.normal(size=(4, 3))
    L = lambda h_, q_: float(np.sum(g * an.cheap_linear_attention(h_, q_, causal=causal)))
    r = an.cheap_linear_attention_vjp(h, q, g, causal=causal)
    _ok(r.h, _fd(lambda x: L(x, q), h))
    _ok(r.q, _fd(lambda x: L(h, x), q))


def _zeros_vjp_against_fd(q, k, v, s, g, causal):
    """zeros_attention_vjp (gates 0.3, 0.7) against central differences of
    every input and both gates; returns the VJP."""
    L = lambda q_, k_, v_, s_, a=0.3, b=0.7: float(
        np.sum(g * an.zeros_attention(q_, k_, v_, s_, a, b, causal=causal)))
    r = an.zeros_attention_vjp(q, k, v, s, 0.3, 0.7, g, causal=causal)
    _ok(r.q, _fd(lambda x: L(x, k, v, s), q))
    _ok(r.k, _fd(lambda x: L(q, x, v, s), k))
    _ok(r.v, _fd(lambda x: L(q, k, x, s), v))
    _ok(r.s, _fd(lambda x: L(q, k, v, x), s))
    _ok(r.gate_linear, (L(q, k, v, s, 0.3 + H) - L(q, k, v, s, 0.3 - H)) / (2 * H))
    _ok(r.gate_softmax, (L(q, k, v, s, 0.3, 0.7 + H) - L(q, k, v, s, 0.3, 0.7 - H)) / (2 * H))
    return r


@pytest.mark.parametrize("causal", [False, True])
def test_zeros_attention_vjp(causal, rng):
    q, k, v, g = _qkv(rng, n=5, m=6)
    s = rng.normal(size=6)
    _zeros_vjp_against_fd(q, k, v, s, g, causal)


def test_zeros_attention_vjp_per_head_gates(rng):
    q, k, v, g = _qkv(rng, n=5, m=5, lead=(3,))
    s = rng.normal(size=(3, 5))
    g1, gh = np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.4, 0.6])
    r = an.zeros_attention_vjp(q, k, v, s, g1, gh, g)
    assert r.gate_linear.shape == (3,) and r.gate_softmax.shape == (3,)
    for h in range(3):
        one = an.zeros_attention_vjp(q[h], k[h], v[h], s[h], g1[h], gh[h], g[h])
        np.testing.assert_allclose(r.gate_softmax[h], one.gate_softmax, rtol=1e-12)
        np.testing.assert_allclose(r.s[h], one.s, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("given", [False, True])
def test_soft_attention_vjp(given, rng):
    q = rng.normal(size=(8, 3))
    v = rng.normal(size=(8, 2))
    g = rng.normal(size=(8, 2))
    lm = rng.normal(size=(3, 3)) if given else None
    kw = dict(newton_iters=6) if given else dict(n_landmarks=3, newton_iters=6)
    L = lambda q_, v_, l_=lm: float(np.sum(g * an.soft_attention(q_, v_, l_, **kw)))
    r = an.soft_attention_vjp(q, v, g, lm, **kw)
    _ok(r.q, _fd(lambda x: L(x, v), q))
    _ok(r.v, _fd(lambda x: L(q, x), v))
    if given:
        _ok(r.landmarks, _fd(lambda x: L(q, v, x), lm))
    else:
        assert r.landmarks is None


def test_linear_vjp_bad_input(rng):
    q, k, v, g = _qkv(rng)
    with pytest.raises(ValueError, match="grad_out"):
        an.linear_attention_vjp(q, k, v, g[:, :1])
    with pytest.raises(ValueError, match="feature_map"):
        an.linear_attention_vjp(q, k, v, g, "nope")
    with pytest.raises(ValueError, match="grad_state"):
        an.log_attention_vjp(q, k, v, g, grad_state=np.zeros((3, 5)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("fmap", ["elu1", "relu", "identity"])
def test_linear_attention_vjp_c_matches_reference(fmap, causal, dtype, rng):
    """The C kernel against the float64 prefix/suffix-sum reference, with
    n != m, non-contiguous inputs and a batch."""
    from attnnorm import _reference as ref
    q = rng.normal(size=(2, 5, 8))[:, :, ::2]
    k = rng.normal(size=(2, 7, 4))
    v = rng.normal(size=(2, 3, 7)).transpose(0, 2, 1)
    g = rng.normal(size=(2, 5, 3))
    eps = 3.0 if fmap == "identity" else 1e-3
    r = an.linear_attention_vjp(*(x.astype(dtype) for x in (q, k, v, g)), fmap, causal=causal, eps=eps)
    tl = 3e-5 if dtype == np.float32 else 1e-11
    for b in range(2):
        want = ref.linear_attention_vjp(*(x[b].astype(dtype) for x in (q, k, v, g)), fmap,
                                        causal=causal, eps=eps)
        for got, w in zip((r.q[b], r.k[b], r.v[b]), want[:3]):
            assert got.dtype == dtype
            np.testing.assert_allclose(got, w, rtol=tl, atol=tl * np.max(np.abs(w)))


def test_linear_vjp_thread_count_bit_identical(rng):
    q, k, v, g = _qkv(rng, n=40, m=50, d=8, e=5, lead=(6,))
    old = an.get_num_threads()
    try:
        an.set_num_threads(1)
        r1 = an.linear_attention_vjp(q, k, v, g, causal=True)
        c1 = an.cheap_linear_attention_vjp(k, q, g[..., :1].repeat(8, -1), causal=True)
        an.set_num_threads(2)
        r2 = an.linear_attention_vjp(q, k, v, g, causal=True)
        c2 = an.cheap_linear_attention_vjp(k, q, g[..., :1].repeat(8, -1), causal=True)
    finally:
        an.set_num_threads(old)
    for a, b in zip(r1 + c1, r2 + c2):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
def test_log_attention_vjp_c_matches_reference(causal, dtype, rng):
    """C kernel (pairs (M, s), one scan each way) against the NumPy
    logaddexp-scan reference, with a prior state, a state gradient, zero
    values, n != m, strided inputs and scores far beyond exp's range."""
    from attnnorm import _reference as ref
    n, m, d, e = 5, 7, 3, 4
    q = 40 * rng.normal(size=(n, 2 * d))[:, ::2]
    k = 40 * rng.normal(size=(m, d))
    v = rng.normal(size=(e, m)).T
    v[2, 1] = 0.0
    g = rng.normal(size=(n, e))
    _, st = an.log_attention(rng.normal(size=(2, d)), 30 * rng.normal(size=(3, d)),
                             rng.normal(size=(3, e)), return_state=True)
    gst = an.log_attention_vjp(q[:2], k[:2], v[:2], g[:2], state=st).state   # a valid state gradient
    args = [x.astype(dtype) for x in (q, k, v, g)]
    r = an.log_attention_vjp(*args, causal=causal, state=st.astype(dtype), grad_state=gst.astype(dtype))
    want = ref.log_attention_vjp(*args, causal=causal, state=st.astype(dtype), grad_state=gst.astype(dtype))
    tl = 1e-4 if dtype == np.float32 else 1e-10
    for got, w in zip(r, want):
        assert got.dtype == dtype and np.isfinite(got).all()
        np.testing.assert_allclose(got, w, rtol=tl, atol=tl * np.max(np.abs(w)))


def test_log_zeros_soft_vjp_thread_count_bit_identical(rng):
    q, k, v, g = _qkv(rng, n=30, m=30, d=6, e=4, lead=(5,))
    old = an.get_num_threads()
    try:
        an.set_num_threads(1)
        r1 = an.log_attention_vjp(q, k, v, g, causal=True)[:3] \
            + an.zeros_attention_vjp(q, k, v, k[..., 0], 0.3, 0.6, g) \
            + an.soft_attention_vjp(q, g, g, n_landmarks=7, newton_iters=5)[:2]
        an.set_num_threads(2)
        r2 = an.log_attention_vjp(q, k, v, g, causal=True)[:3] \
            + an.zeros_attention_vjp(q, k, v, k[..., 0], 0.3, 0.6, g) \
            + an.soft_attention_vjp(q, g, g, n_landmarks=7, newton_iters=5)[:2]
    finally:
        an.set_num_threads(old)
    assert len(r1) == 11
    for a, b in zip(r1, r2):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
def test_zeros_attention_vjp_c_matches_reference(causal, dtype, rng):
    from attnnorm import _reference as ref
    q = rng.normal(size=(2, 5, 6))[..., ::2]
    k = rng.normal(size=(2, 7, 3))
    v = rng.normal(size=(2, 7, 4))
    s = rng.normal(size=(2, 7))
    g = rng.normal(size=(2, 5, 4))
    r = an.zeros_attention_vjp(*(x.astype(dtype) for x in (q, k, v, s)), 0.4, 0.8, g.astype(dtype),
                               causal=causal)
    tl = 1e-4 if dtype == np.float32 else 1e-10
    for b in range(2):
        want = ref.zeros_attention_vjp(*(x[b].astype(dtype) for x in (q, k, v, s)), 0.4, 0.8,
                                       g[b].astype(dtype), causal=causal)
        for got, w in zip((r.q[b], r.k[b], r.v[b], r.s[b]), want[:4]):
            assert got.dtype == dtype
            np.testing.assert_allclose(got, w, rtol=tl, atol=tl * np.max(np.abs(w)))
    want = [ref.zeros_attention_vjp(q[b], k[b], v[b], s[b], 0.4, 0.8, g[b], causal=causal) for b in range(2)]
    np.testing.assert_allclose(r.gate_linear, sum(w[4] for w in want), rtol=tl)
    np.testing.assert_allclose(r.gate_softmax, sum(w[5] for w in want), rtol=tl)


def test_zeros_attention_vjp_wide_logits(rng):
    """Logits spanning hundreds: the running references keep every
    exponential in range (finite differences of the forward agree)."""
    q, k, v, g = _qkv(rng, n=5, m=5)
    s = np.array([-300.0, 250.0, -10.0, 400.0, 0.5])
    L = lambda s_: float(np.sum(g * an.zeros_attention(q, k, v, s_, 0.3, 0.7)))
    r = an.zeros_attention_vjp(q, k, v, s, 0.3, 0.7, g)
    assert all(np.isfinite(x).all() for x in r[:4])
    _ok(r.s, _fd(L, s), 1e-5)
    _ok(r.k, _fd(lambda x: float(np.sum(g * an.zeros_attention(q, x, v, s, 0.3, 0.7))), k))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("given", [False, True])
def test_soft_attention_vjp_c_matches_reference(given, dtype, rng):
    from attnnorm import _reference as ref
    q = rng.normal(size=(2, 11, 4))
    v = rng.normal(size=(2, 11, 3))
    g = rng.normal(size=(2, 11, 3))
    lm = rng.normal(size=(2, 4, 4)) if given else None
    kw = dict(newton_iters=7) if given else dict(n_landmarks=4, newton_iters=7)
    r = an.soft_attention_vjp(q.astype(dtype), v.astype(dtype), g.astype(dtype),
                              None if lm is None else lm.astype(dtype), **kw)
    tl = 1e-3 if dtype == np.float32 else 1e-9
    for b in range(2):
        seg = None if given else np.array_split(np.arange(11), 4)
        want = ref.soft_attention_vjp_one(q[b].astype(dtype).astype(np.float64),
                                          v[b].astype(dtype).astype(np.float64),
                                          None if lm is None else lm[b].astype(dtype).astype(np.float64),
                                          seg, 7, g[b].astype(dtype).astype(np.float64))
        outs = (r.q[b], r.v[b]) + ((r.landmarks[b],) if given else ())
        for got, w in zip(outs, want):
            assert got.dtype == dtype
            np.testing.assert_allclose(got, w, rtol=tl, atol=tl * np.max(np.abs(w)))


def test_linear_vjps_portable_simd_path_agrees(tmp_path):
    """ATTNNORM_CPU=default (portable tables for the products and the
    exponentials) gives the same gradients up to rounding."""
    code = (
        "import numpy as np, attnnorm as an, sys\n"
        "rng = np.random.default_rng(4)\n"
        "q, k, v, g = (rng.normal(size=(2, 9, 5)) for _ in range(4))\n"
        "s = rng.normal(size=(2, 9))\n"
        "out = list(an.linear_attention_vjp(q, k, v, g, causal=True)[:3])\n"
        "out += list(an.log_attention_vjp(q, k, v, g, causal=True)[:3])\n"
        "out += list(an.zeros_attention_vjp(q, k, v, s, .3, .6, g)[:4])\n"
        "out += list(an.soft_attention_vjp(q, v, g, n_landmarks=3)[:2])\n"
        "np.savez(sys.argv[2], *out, path=an.simd_path())\n")
    res = run_variants(tmp_path, code, (("default", {"ATTNNORM_CPU": "default"}), ("best", {})))
    assert str(res["default"]["path"]) == "default"
    keys = [key for key in res["default"].files if key != "path"]
    assert len(keys) == 12
    for key in keys:
        np.testing.assert_allclose(res["default"][key], res["best"][key], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,m", [(150, 150), (150, 200), (200, 137)])
def test_chunked_vjps_many_chunks(n, m, causal, rng):
    """Several query chunks (and n != m both ways): the chunked C kernels of
    linear and ZeroS attention against their float64 references."""
    from attnnorm import _reference as ref
    d, e = 5, 3
    q = rng.normal(size=(n, d))
    k = rng.normal(size=(m, d))
    v = rng.normal(size=(m, e))
    g = rng.normal(size=(n, e))
    s = 3 * rng.normal(size=m)
    for fmap in ("elu1", "identity"):
        eps = 1e-3 if fmap == "elu1" else 500.0
        r = an.linear_attention_vjp(q, k, v, g, fmap, causal=causal, eps=eps)
        want = ref.linear_attention_vjp(q, k, v, g, fmap, causal=causal, eps=eps)
        for got, w in zip(r, want):
            np.testing.assert_allclose(got, w, rtol=1e-9, atol=1e-9 * np.max(np.abs(w)))
    r = an.zeros_attention_vjp(q, k, v, s, 0.3, 0.8, g, causal=causal)
    want = ref.zeros_attention_vjp(q, k, v, s, 0.3, 0.8, g, causal=causal)
    for got, w in zip(r, want):
        np.testing.assert_allclose(got, w, rtol=1e-9, atol=1e-9 * np.max(np.abs(w)))
    h = rng.normal(size=(m, d))
    gq = rng.normal(size=(n, d))
    r = an.cheap_linear_attention_vjp(h, q, gq, causal=causal)
    dq, dk, dv, _ = ref.kernel_linear_vjp(q, h, h, gq, ref_t(n, m, causal), 0.0, normalize=False)
    np.testing.assert_allclose(r.q, dq, rtol=1e-9, atol=1e-9 * np.max(np.abs(dq)))
    np.testing.assert_allclose(r.h, dk + dv, rtol=1e-9, atol=1e-9 * np.max(np.abs(dk + dv)))


def ref_t(n, m, causal):
    from attnnorm import _reference as ref
    return ref.n_visible(ref.visible(n, m, causal=causal))


def test_zeros_vjp_wide_logits_many_chunks(rng):
    """Logits spread over hundreds, several chunks: directional central
    differences of the forward for s, k and the softmax gate."""
    n, d, e = 150, 4, 3
    q = rng.normal(size=(n, d))
    k = rng.normal(size=(n, d))
    v = rng.normal(size=(n, e))
    g = rng.normal(size=(n, e))
    s = 200 * rng.normal(size=n)
    r = an.zeros_attention_vjp(q, k, v, s, 0.3, 0.7, g)
    assert all(np.isfinite(x).all() for x in r[:4])
    L = lambda k_, s_, gs=0.7: float(np.sum(g * an.zeros_attention(q, k_, v, s_, 0.3, gs)))
    for grad, base, f in ((r.s, s, lambda x: L(k, x)), (r.k, k, lambda x: L(x, s))):
        dirn = rng.normal(size=base.shape)
        want = (f(base + H * dirn) - f(base - H * dirn)) / (2 * H)
        assert abs(np.sum(grad * dirn) - want) <= 1e-6 * max(abs(want), 1e-6)
    want = (L(k, s, 0.7 + H) - L(k, s, 0.7 - H)) / (2 * H)
    assert abs(r.gate_softmax - want) <= 1e-6 * abs(want)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,m", [(150, 150), (150, 200), (200, 137)])
def test_exp_vjp_chunked_and_log_scan_agree(n, m, causal, rng):
    """Without a state and with scores within exp's range, the exp-kernel VJP
    takes the chunked linear form with shifted exponentials; with a (here
    empty) state it takes the log-space scan.  Both match the NumPy
    log-space reference over several chunks."""
    from attnnorm import _reference as ref
    d, e = 4, 3
    q, k = 3 * rng.normal(size=(n, d)), 3 * rng.normal(size=(m, d))
    v, g = rng.normal(size=(m, e)), rng.normal(size=(n, e))
    _, empty = an.log_attention(q[:1], k[:0], v[:0], return_state=True)
    chunked = an.log_attention_vjp(q, k, v, g, causal=causal)
    scan = an.log_attention_vjp(q, k, v, g, causal=causal, state=empty)
    lin = an.linear_attention_vjp(q, k, v, g, "exp", causal=causal)
    want = ref.log_attention_vjp(q, k, v, g, causal=causal)
    for a, b, c, w in zip(chunked[:3], scan[:3], lin[:3], want[:3]):
        for got in (a, b, c):
            np.testing.assert_allclose(got, w, rtol=1e-9, atol=1e-9 * np.max(np.abs(w)))
    assert np.all(scan.state == 0)


@pytest.mark.parametrize("n,m,d,e", [(0, 3, 2, 2), (3, 0, 2, 2), (3, 3, 0, 2), (3, 3, 2, 0),
                                     (1, 1, 1, 1), (5, 2, 3, 1)])
def test_linear_family_vjps_degenerate_shapes(n, m, d, e, rng):
    """Empty and one-element core dimensions: finite gradients of the right shapes."""
    q, k, v, g = (rng.normal(size=sh) for sh in ((n, d), (m, d), (m, e), (n, e)))
    s = rng.normal(size=m)
    outs = [an.linear_attention_vjp(q, k, v, g, causal=True),
            an.linear_attention_vjp(q, k, v, g, "exp", causal=True),
            an.log_attention_vjp(q, k, v, g, causal=True),
            an.zeros_attention_vjp(q, k, v, s, 0.3, 0.5, g),
            an.cheap_linear_attention_vjp(k, q, rng.normal(size=(n, d)), causal=True)]
    for r in outs:
        for x in r:
            if x is not None:
                assert np.isfinite(np.asarray(x)).all()
    assert outs[0].q.shape == q.shape and outs[3].s.shape == s.shape


TOP_LEFT_SHAPES = [(3, 6), (6, 3), (5, 5)]


@pytest.mark.parametrize("n,m", TOP_LEFT_SHAPES)
@pytest.mark.parametrize("fmap", ["elu1", "relu", "identity", "exp"])
def test_linear_attention_vjp_top_left(fmap, n, m, rng):
    """causal="top_left" (query i sees keys j <= i) against central differences;
    with n == m it is causal=True exactly."""
    q, k, v, g = _qkv(rng, n=n, m=m)
    eps = 5.0 if fmap == "identity" else 0.1
    L = lambda q_, k_, v_: float(np.sum(g * an.linear_attention(q_, k_, v_, fmap, causal="top_left", eps=eps)))
    r = an.linear_attention_vjp(q, k, v, g, fmap, causal="top_left", eps=eps)
    _ok(r.q, _fd(lambda x: L(x, k, v), q))
    _ok(r.k, _fd(lambda x: L(q, x, v), k))
    _ok(r.v, _fd(lambda x: L(q, k, x), v))
    br = an.linear_attention_vjp(q, k, v, g, fmap, causal=True, eps=eps)
    for a, b in zip(r[:3], br[:3]):
        if n == m:
            np.testing.assert_array_equal(a, b)
        else:
            assert not np.allclose(a, b)


@pytest.mark.parametrize("n,m", TOP_LEFT_SHAPES)
def test_log_attention_vjp_top_left(n, m, rng):
    """Without a state (chunked C path) and with a carried state (log-space
    scan: the queries see the state's keys plus keys j <= i of this call)."""
    q, k, v, g = _qkv(rng, n=n, m=m)
    q0, k0, v0, _ = _qkv(rng, n=2, m=4)
    _, st = an.log_attention(q0, k0, v0, causal=True, return_state=True)
    for state in (None, st):
        L = lambda q_, k_, v_, s_=state: float(np.sum(g * an.log_attention(q_, k_, v_, causal="top_left", state=s_)))
        r = an.log_attention_vjp(q, k, v, g, causal="top_left", state=state)
        _ok(r.q, _fd(lambda x: L(x, k, v), q))
        _ok(r.k, _fd(lambda x: L(q, x, v), k))
        _ok(r.v, _fd(lambda x: L(q, k, x), v))
        if state is not None:
            _ok(r.state, _fd(lambda x: L(q, k, v, x), st))
        br = an.log_attention_vjp(q, k, v, g, causal=True, state=state)
        if n == m:
            np.testing.assert_array_equal(r.q, br.q)
        else:
            assert not np.allclose(r.q, br.q)


def test_log_attention_vjp_top_left_carried_state_chunks(rng):
    """Square chunks with causal="top_left", the state's gradient carried back,
    equal the top-left gradient of the whole sequence."""
    q, k, v, g = _qkv(rng, n=7, m=7)
    _, s1 = an.log_attention(q[:3], k[:3], v[:3], causal="top_left", return_state=True)
    r2 = an.log_attention_vjp(q[3:], k[3:], v[3:], g[3:], causal="top_left", state=s1)
    r1 = an.log_attention_vjp(q[:3], k[:3], v[:3], g[:3], causal="top_left", grad_state=r2.state)
    whole = an.log_attention_vjp(q, k, v, g, causal="top_left")
    for a, b, w in zip(r1[:3], r2[:3], whole[:3]):
        np.testing.assert_allclose(np.concatenate([a, b]), w, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("n,m", TOP_LEFT_SHAPES)
def test_cheap_linear_attention_vjp_top_left(n, m, rng):
    h, q, g = rng.normal(size=(m, 3)), rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    L = lambda h_, q_: float(np.sum(g * an.cheap_linear_attention(h_, q_, causal="top_left")))
    r = an.cheap_linear_attention_vjp(h, q, g, causal="top_left")
    _ok(r.h, _fd(lambda x: L(x, q), h))
    _ok(r.q, _fd(lambda x: L(h, x), q))
    if n == m:
        br = an.cheap_linear_attention_vjp(h, q, g, causal=True)
        np.testing.assert_array_equal(r.h, br.h)
        np.testing.assert_array_equal(r.q, br.q)


@pytest.mark.parametrize("n,m", TOP_LEFT_SHAPES)
def test_zeros_attention_vjp_top_left(n, m, rng):
    q, k, v, g = _qkv(rng, n=n, m=m)
    s = rng.normal(size=m)
    r = _zeros_vjp_against_fd(q, k, v, s, g, "top_left")
    if n == m:
        br = an.zeros_attention_vjp(q, k, v, s, 0.3, 0.7, g, causal=True)
        for a, b in zip(r, br):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n,m", [(150, 200), (200, 137)])
def test_top_left_vjps_many_chunks_match_reference(n, m, rng):
    """Several 64-query chunks with causal="top_left": C against the float64 references."""
    from attnnorm import _reference as ref
    d, e = 4, 3
    q, k = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    v, g, s = rng.normal(size=(m, e)), rng.normal(size=(n, e)), 3 * rng.normal(size=m)
    pairs = [(an.linear_attention_vjp(q, k, v, g, "elu1", causal="top_left", eps=1e-3)[:3],
              ref.linear_attention_vjp(q, k, v, g, "elu1", causal="top_left", eps=1e-3)[:3]),
             (an.log_attention_vjp(q, k, v, g, causal="top_left")[:3],
              ref.log_attention_vjp(q, k, v, g, causal="top_left")[:3]),
             (an.zeros_attention_vjp(q, k, v, s, 0.3, 0.8, g, causal="top_left")[:4],
              ref.zeros_attention_vjp(q, k, v, s, 0.3, 0.8, g, causal="top_left")[:4])]
    for got, want in pairs:
        for a, w in zip(got, want):
            np.testing.assert_allclose(a, w, rtol=1e-9, atol=1e-9 * np.max(np.abs(w)))
