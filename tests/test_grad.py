"""Normalizer VJPs (attnnorm.normalizer_vjp) against central finite
differences of the forward normalizers, against the explicit-Jacobian float64
reference (attnnorm._reference.normalizer_vjp), and their edge cases."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import attnnorm as an
from attnnorm import _reference as ref
from conftest import run_variants

# (normalizer, parameters at which to differentiate); every real parameter
# of every normalizer appears in at least one entry
CASES = [
    ("softmax", dict(temperature=0.7)),
    ("softmax_sink", dict(sink=0.3)),
    ("ssmax", dict(c=0.6)),
    ("sigmoid", dict(bias=0.2)),
    ("sigmoid", dict()),
    ("relu", dict(power=1.5)),
    ("relu", dict(power=1)),
    ("polynomial", dict(power=3)),
    ("softpick", dict(eps=0.1)),
    ("nap", dict(gain=1.3, bias=0.2, eps=0.1)),
    ("affine_softmax", dict(a=1.3, b=0.2)),
    ("sparsemax", dict()),
    ("entmax", dict(alpha=1.5)),
    ("entmax", dict(alpha=1.3, n_iter=60)),
    ("entmax", dict(alpha=2.0)),
    ("stochastic_softmax", dict()),
    ("sinkhorn", dict(eps=0.8, n_iter=3)),
    ("sinkhorn", dict(eps=1.2, n_iter=4)),
    ("stickbreaking", dict()),
    ("stickbreaking", dict(include_current=False)),
]
IDS = [f"{nm}-{'-'.join(f'{k}={v}' for k, v in p.items())}" for nm, p in CASES]

N, M = 3, 5
_mask = np.ones((N, M), dtype=bool)
_mask[0, [1, 3]] = False
_mask[2, 0] = False
_full = np.ones((N, M), dtype=bool)
_full[1] = False
# {no mask, causal with n < m, window, boolean mask, a fully masked row}
MASKS = {
    "none": dict(),
    "causal": dict(causal=True),
    "window": dict(window=(1, 1)),
    "mask": dict(mask=_mask),
    "masked_row": dict(mask=_full),
}
H = 1e-6


def _forward(name, scores, kw, params):
    if name == "stochastic_softmax":      # straight-through: the softmax it samples from
        return an.softmax(scores, **kw)
    return an.NORMALIZERS[name](scores, **kw, **params)


def _loss(name, scores, g, kw, params):
    return float(np.sum(g * _forward(name, scores, kw, params)))


def _fd_scores(name, s, g, kw, params):
    d = np.zeros_like(s)
    for idx in np.ndindex(s.shape):
        sp, sm = s.copy(), s.copy()
        sp[idx] += H
        sm[idx] -= H
        d[idx] = (_loss(name, sp, g, kw, params) - _loss(name, sm, g, kw, params)) / (2 * H)
    return d


def _fd_param(name, s, g, kw, params, key):
    pp, pm = dict(params), dict(params)
    pp[key] = params[key] + H
    pm[key] = params[key] - H
    return (_loss(name, s, g, kw, pp) - _loss(name, s, g, kw, pm)) / (2 * H)


def _relerr(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def _data(name, seed):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(2, N, M))
    if name == "relu":
        s[np.abs(s) < 1e-3] = 0.5           # keep FD away from the kink at 0
    if name == "softpick":
        s += 0.5                             # rows with positive maxima
    g = rng.normal(size=(2, N, M))
    return s, g


@pytest.mark.parametrize("mode", list(MASKS))
@pytest.mark.parametrize("name,params", CASES, ids=IDS)
def test_vjp_matches_finite_differences(name, params, mode):
    """Central differences in float64, relative error <= 1e-6, for the scores
    and for every real parameter."""
    kw = MASKS[mode]
    s, g = _data(name, 7)
    r = an.normalizer_vjp(s, g, name, **kw, **params)
    fd = _fd_scores(name, s, g, kw, params)
    assert _relerr(r.scores, fd) <= 1e-6
    assert set(r.params) == set(an.REAL_PARAMS[name])
    for key in an.REAL_PARAMS[name]:
        if key not in params:
            assert name == "sigmoid" and r.params[key] is None
            continue
        if name == "polynomial":
            # the integer power: compare with d/dp of s**p / sqrt(n_i) in a real p
            vis = ref.visible(N, M, **kw)
            ni = np.maximum(vis.sum(-1, keepdims=True), 1)
            f = lambda p: np.sum(g * np.where(vis, np.sign(s) ** 3 * np.abs(s) ** p, 0) / np.sqrt(ni))
            want = (f(3 + H) - f(3 - H)) / (2 * H)
        else:
            want = _fd_param(name, s, g, kw, params, key)
        assert abs(r.params[key] - want) <= 1e-6 * max(abs(want), 1e-3), (key, r.params[key], want)
    if mode == "masked_row":
        assert np.all(r.scores[:, 1] == 0)
    vis = np.broadcast_to(ref.visible(N, M, **kw), s.shape)
    assert np.all(r.scores[~vis] == 0)


@pytest.mark.parametrize("mode", ["none", "causal", "mask", "masked_row"])
@pytest.mark.parametrize("name,params", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vjp_matches_reference(name, params, mode, dtype):
    """Against the explicit-Jacobian (forward-mode for Sinkhorn) reference."""
    kw = MASKS[mode]
    s, g = _data(name, 3)
    r = an.normalizer_vjp(s.astype(dtype), g.astype(dtype), name, **kw, **params)
    p = {k: v for k, v in params.items() if k != "n_iter" or name == "sinkhorn"}
    want, wp = ref.normalizer_vjp(s.astype(dtype), g.astype(dtype), name, **kw, **p)
    assert r.scores.dtype == dtype
    tl = 2e-4 if dtype == np.float32 else 1e-10
    assert _relerr(r.scores, want) <= tl
    for k, v in wp.items():
        assert abs(r.params[k] - v) <= tl * max(abs(v), 1.0), (k, r.params[k], v)


def test_entmax_alpha_one_is_softmax_limit():
    """alpha = 1 is softmax; its alpha-derivative is the limit from above,
    checked by a one-sided second-order difference."""
    s, g = _data("entmax", 11)
    r = an.normalizer_vjp(s, g, "entmax", alpha=1.0)
    sm = an.normalizer_vjp(s, g, "softmax")
    np.testing.assert_allclose(r.scores, sm.scores, rtol=1e-12, atol=1e-15)
    h = 1e-4
    f = lambda a: float(np.sum(g * an.entmax(s, alpha=a, n_iter=80)))
    want = (-3 * f(1.0) + 4 * f(1 + h) - f(1 + 2 * h)) / (2 * h)
    assert abs(r.params["alpha"] - want) <= 1e-6 * abs(want) + 1e-8


def test_ssmax_c_zero_right_derivative():
    s, g = _data("ssmax", 5)
    r = an.normalizer_vjp(s, g, "ssmax", c=0.0)
    assert np.all(r.scores == 0)
    h = 1e-6
    f = lambda c: float(np.sum(g * an.ssmax(s, c=c)))
    want = (-3 * f(0.0) + 4 * f(h) - f(2 * h)) / (2 * h)
    assert abs(r.params["c"] - want) <= 1e-5 * abs(want)


PER_HEAD = [
    ("softmax", "temperature", np.array([0.5, 1.0, 2.0])),
    ("softmax_sink", "sink", np.array([-1.0, 0.0, 1.0])),
    ("ssmax", "c", np.array([0.2, 0.4, 0.8])),
    ("nap", "eps", np.array([0.01, 0.1, 1.0])),
    ("entmax", "alpha", np.array([1.2, 1.5, 2.0])),
    ("sinkhorn", "eps", np.array([0.5, 1.0, 2.0])),
]


@pytest.mark.parametrize("name,key,vals", PER_HEAD)
def test_per_head_parameter_gradient_shape(name, key, vals, rng):
    """A per-head (H,) parameter gets an (H,) gradient: per head,
    the sum over batch and rows of the scalar-parameter gradient."""
    s = rng.normal(size=(2, 3, 4, 6))
    g = rng.normal(size=(2, 3, 4, 6))
    r = an.normalizer_vjp(s, g, name, causal=True, **{key: vals})
    assert r.params[key].shape == (3,)
    assert r.scores.shape == s.shape
    for h in range(3):
        one = an.normalizer_vjp(s[:, h], g[:, h], name, causal=True, **{key: vals[h]})
        np.testing.assert_allclose(r.scores[:, h], one.scores, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(r.params[key][h], one.params[key], rtol=1e-12)


def test_affine_row_parameter_gradients(rng):
    """Per-row a, b of affine_softmax: gradients of their own shapes."""
    s = rng.normal(size=(2, 3, 4, 5))
    g = rng.normal(size=(2, 3, 4, 5))
    a = rng.uniform(0.5, 2, size=(3, 1))    # per head
    b = rng.normal(size=(4,))               # per query row
    r = an.normalizer_vjp(s, g, "affine_softmax", a=a, b=b)
    assert r.params["a"].shape == (3, 1) and r.params["b"].shape == (4,)
    p = an.softmax(s)
    np.testing.assert_allclose(r.params["a"], np.sum(p * g, axis=(0, 3)).sum(-1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(r.params["b"], g.sum(axis=(0, 1, 3)), rtol=1e-12)


@pytest.mark.parametrize("name,params", CASES, ids=IDS)
def test_edge_rows_give_zero_never_nan(name, params):
    """Fully masked rows, rows of -inf scores, +inf scores: gradient 0 on
    them, never NaN; NaN scores give NaN only in their own row."""
    s = np.array([[0.3, -0.2, 0.5, 1.0],
                  [-np.inf, -np.inf, -np.inf, -np.inf],
                  [0.1, np.inf, 0.2, -0.4],
                  [0.7, 0.1, -0.3, 0.2],
                  [0.2, np.nan, 0.1, 0.3]])
    g = np.arange(20.0).reshape(5, 4) / 10 - 1
    mask = np.ones((5, 4), dtype=bool)
    mask[3] = False
    kw = {k: v for k, v in params.items()}
    r = an.normalizer_vjp(s, g, name, mask=mask, **kw)
    assert np.all(r.scores[3] == 0)
    assert not np.isnan(r.scores[:4]).any()
    if name != "sinkhorn":      # Sinkhorn couples the rows through its columns
        assert np.all(np.isfinite(r.scores[0]))
    if name not in ("relu", "polynomial", "sigmoid", "nap", "stickbreaking"):
        assert np.all(r.scores[1:3] == 0)   # no mass / a +inf limit: locally constant
    if name == "stickbreaking":
        assert np.all(r.scores[1] == 0)     # no mass
        if params.get("include_current", True):
            # the +inf key takes the rest of the stick: the keys nearer than
            # it still move its weight, the farther ones do not
            assert np.all(r.scores[2, :2] == 0) and np.all(r.scores[2, 2:] != 0)
        else:
            # that key is row 2's own aligned key, excluded: it gets 0
            assert r.scores[2, 1] == 0 and np.all(np.isfinite(r.scores[2]))
    assert np.isnan(r.scores[4]).any()


def test_empty_raise_and_weights_argument(rng):
    s = rng.normal(size=(3, 4))
    g = rng.normal(size=(3, 4))
    mask = np.ones((3, 4), dtype=bool)
    mask[1] = False
    with pytest.raises(ValueError, match="empty"):
        an.normalizer_vjp(s, g, "softmax", mask=mask, empty="raise")
    w = an.softmax(s, mask=mask, empty="nan")
    r = an.normalizer_vjp(s, g, "softmax", mask=mask, weights=w)
    assert np.all(r.scores[1] == 0)
    np.testing.assert_array_equal(r.scores, an.normalizer_vjp(s, g, "softmax", mask=mask).scores)
    # a row of -inf scores is empty too: NaN weights under empty="nan", gradient 0
    s[2] = -np.inf
    for nm in ("softmax", "ssmax", "sparsemax", "entmax", "affine_softmax", "stochastic_softmax"):
        r = an.normalizer_vjp(s, g, nm, mask=mask, empty="nan")
        assert np.all(r.scores[1:] == 0) and np.isfinite(r.scores).all()


def test_single_row_and_m_one(rng):
    x = rng.normal(size=6)
    g = rng.normal(size=6)
    r = an.normalizer_vjp(x, g, "softmax", temperature=2.0)
    assert r.scores.shape == (6,)
    r2 = an.normalizer_vjp(x[None], g[None], "softmax", temperature=2.0)
    np.testing.assert_array_equal(r.scores, r2.scores[0])
    r1 = an.normalizer_vjp(rng.normal(size=(4, 1)), rng.normal(size=(4, 1)), "softmax")
    assert np.all(r1.scores == 0)


def test_non_contiguous_and_broadcast_grad(rng):
    s = rng.normal(size=(4, 10))[:, ::2]
    g = rng.normal(size=(5,))
    r = an.normalizer_vjp(s, np.broadcast_to(g, (4, 5)), "entmax", alpha=1.5)
    want, _ = ref.normalizer_vjp(np.ascontiguousarray(s), np.broadcast_to(g, (4, 5)), "entmax", alpha=1.5)
    np.testing.assert_allclose(r.scores, want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name,params", CASES, ids=IDS)
def test_thread_count_bit_identical(name, params, rng):
    s = rng.normal(size=(3, 2, 64, 70))
    g = rng.normal(size=(3, 2, 64, 70))
    old = an.get_num_threads()
    try:
        an.set_num_threads(1)
        r1 = an.normalizer_vjp(s, g, name, causal=True, **params)
        an.set_num_threads(2)
        r2 = an.normalizer_vjp(s, g, name, causal=True, **params)
    finally:
        an.set_num_threads(old)
    np.testing.assert_array_equal(r1.scores, r2.scores)
    for k in r1.params:
        np.testing.assert_array_equal(r1.params[k], r2.params[k])


def test_portable_simd_path_agrees(tmp_path):
    """ATTNNORM_CPU=default (portable tables) gives the same gradients."""
    code = (
        "import numpy as np, attnnorm as an\n"
        "rng = np.random.default_rng(2)\n"
        "s = rng.normal(size=(2, 9, 33)); g = rng.normal(size=(2, 9, 33))\n"
        "out = {}\n"
        "for nm, p in [('softmax', {'temperature': .7}), ('entmax', {'alpha': 1.5}),\n"
        "              ('softpick', {'eps': .1}), ('nap', {}), ('sinkhorn', {}), ('sparsemax', {})]:\n"
        "    for dt in (np.float32, np.float64):\n"
        "        r = an.normalizer_vjp(s.astype(dt), g.astype(dt), nm, causal=True, **p)\n"
        "        out[nm + str(dt.__name__)] = [r.scores] + [v for v in r.params.values()]\n"
        "np.savez(__import__('sys').argv[2], path=an.simd_path(),\n"
        "         **{k: np.stack([np.ravel(x) for x in v[:1]]) for k, v in out.items()})\n")
    res = run_variants(tmp_path, code, (("default", {"ATTNNORM_CPU": "default"}), ("best", {})))
    assert str(res["default"]["path"]) == "default"
    for k in res["default"].files:
        if k != "path":
            v = res["default"][k]
            tl = 1e-5 if "float32" in k else 1e-12
            np.testing.assert_allclose(v, res["best"][k], rtol=tl, atol=tl)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 7), st.sampled_from([0, 1, 2]),
       st.sampled_from(["softmax", "sparsemax", "entmax", "nap", "softmax_sink", "ssmax"]),
       st.integers(0, 2 ** 31))
def test_vjp_property_against_reference(n, m, maskmode, name, seed):
    rng = np.random.default_rng(seed)
    s = rng.normal(scale=2, size=(n, m))
    g = rng.normal(size=(n, m))
    kw = [dict(), dict(causal=True), dict(mask=rng.random((n, m)) > 0.4)][maskmode]
    r = an.normalizer_vjp(s, g, name, **kw)
    want, wp = ref.normalizer_vjp(s, g, name, **kw)
    np.testing.assert_allclose(r.scores, want, rtol=1e-9, atol=1e-12)
    for k, v in wp.items():
        assert abs(r.params[k] - v) <= 1e-9 * max(1.0, abs(v))
    # shift invariance of the softmax family: the gradient sums to 0 per row
    if name in ("softmax", "sparsemax", "entmax", "ssmax"):
        np.testing.assert_allclose(r.scores.sum(-1), 0, atol=1e-12)


def test_bad_input_names_parameter(rng):
    s = rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match="normalizer"):
        an.normalizer_vjp(s, s, "nope")
    with pytest.raises(ValueError, match="grad_weights"):
        an.normalizer_vjp(s, s[:, :3], "softmax")
    with pytest.raises(ValueError, match="temperature"):
        an.normalizer_vjp(s, s, "softmax", temperature=-1.0)
    with pytest.raises(TypeError, match="temperature"):
        an.normalizer_vjp(s, s, "softmax", bogus=1.0)


@pytest.mark.parametrize("name,params", CASES, ids=IDS)
def test_param_grads_false_same_scores(name, params, rng):
    """param_grads=False (the row kernels get no parameter buffer) gives the
    same score gradient, bit for bit, and no parameter gradients."""
    s = rng.normal(size=(2, 5, 9))
    g = rng.normal(size=(2, 5, 9))
    full = an.normalizer_vjp(s, g, name, causal=True, **params)
    bare = an.normalizer_vjp(s, g, name, causal=True, param_grads=False, **params)
    np.testing.assert_array_equal(full.scores, bare.scores)
    assert bare.params == {}


def test_bad_empty_is_named(rng):
    s = rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match="empty"):
        an.normalizer_vjp(s, s, "sigmoid", empty="bogus")


def test_sinkhorn_single_matrix_threads_bit_identical(rng):
    """One large matrix: the VJP splits it over threads by fixed row blocks."""
    s = rng.normal(size=(300, 260))
    g = rng.normal(size=(300, 260))
    mask = rng.random((300, 260)) > 0.1
    old = an.get_num_threads()
    try:
        an.set_num_threads(1)
        r1 = an.normalizer_vjp(s, g, "sinkhorn", mask=mask, n_iter=4, eps=0.7)
        an.set_num_threads(2)
        r2 = an.normalizer_vjp(s, g, "sinkhorn", mask=mask, n_iter=4, eps=0.7)
    finally:
        an.set_num_threads(old)
    np.testing.assert_array_equal(r1.scores, r2.scores)
    assert r1.params["eps"] == r2.params["eps"]
    # and the gradient along a random direction matches a central difference
    dirn = rng.normal(size=s.shape)
    f = lambda x: float(np.sum(g * an.sinkhorn(x, mask=mask, n_iter=4, eps=0.7)))
    want = (f(s + 1e-6 * dirn) - f(s - 1e-6 * dirn)) / 2e-6
    assert abs(np.sum(r1.scores * dirn) - want) <= 1e-6 * abs(want)


@pytest.mark.parametrize("alpha", [1.0001, 1.01, 2.5])
def test_entmax_alpha_derivative_near_one_and_above_two(alpha, rng):
    """The alpha-derivative stays accurate where its formula's 1/(alpha-1)^2
    terms nearly cancel, and beyond sparsemax."""
    s = rng.normal(size=(4, 7))
    g = rng.normal(size=(4, 7))
    r = an.normalizer_vjp(s, g, "entmax", alpha=alpha, n_iter=100)
    f = lambda a: float(np.sum(g * an.entmax(s, alpha=a, n_iter=100)))
    h = 1e-5
    want = (f(alpha + h) - f(alpha - h)) / (2 * h)
    assert abs(r.params["alpha"] - want) <= 1e-6 * max(abs(want), 1e-3)


def test_scores_broadcast_against_grad(rng):
    """Scores shared by a batch of upstream gradients: their gradient is the
    sum over that batch."""
    s = rng.normal(size=(4, 6))
    g = rng.normal(size=(3, 4, 6))
    r = an.normalizer_vjp(s, g, "softmax", temperature=0.8)
    assert r.scores.shape == (4, 6)
    want = sum(an.normalizer_vjp(s, g[b], "softmax", temperature=0.8).scores for b in range(3))
    np.testing.assert_allclose(r.scores, want, rtol=1e-12, atol=1e-15)
    tot = sum(an.normalizer_vjp(s, g[b], "softmax", temperature=0.8).params["temperature"] for b in range(3))
    np.testing.assert_allclose(r.params["temperature"], tot, rtol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("include_current", [True, False])
def test_stickbreaking_long_rows(dtype, tol, include_current, rng):
    """Long rows: for g = 1 the loss is sum_j a_j = 1 - R with R the unused
    stick, exp(-sum_k softplus(z_k)) over the keys that break it, so
    dL/dz_l = sigma(z_l) R exactly (0 for an excluded current key); the
    row of 4096 keys keeps R near e^-1.4 and every weight far below 1."""
    m = 4096
    s = rng.normal(-8.0, 0.5, size=(2, m))
    g = np.ones((2, m))
    r = an.normalizer_vjp(s.astype(dtype), g.astype(dtype), "stickbreaking",
                          include_current=include_current)
    use = np.ones((2, m), dtype=bool)
    if not include_current:
        use[0, m - 2] = use[1, m - 1] = False     # aligned keys i + (m - n)
    R = np.exp(-np.sum(np.where(use, np.logaddexp(0.0, s), 0.0), axis=-1, keepdims=True))
    want = np.where(use, R / (1.0 + np.exp(-s)), 0.0)
    assert r.scores.dtype == dtype
    np.testing.assert_allclose(r.scores, want, rtol=tol, atol=0)
    # and the explicit-Jacobian reference on a shorter causal row set
    s2 = rng.normal(0.5, 2.0, size=(3, 300))
    g2 = rng.normal(size=(3, 300))
    got = an.normalizer_vjp(s2, g2, "stickbreaking", causal=True,
                            include_current=include_current).scores
    want2, _ = ref.normalizer_vjp(s2, g2, "stickbreaking", causal=True,
                                  include_current=include_current)
    np.testing.assert_allclose(got, want2, rtol=1e-9, atol=1e-13)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 7), st.sampled_from([0, 1, 2, 3]), st.booleans(),
       st.integers(0, 2 ** 31))
def test_stickbreaking_vjp_property(n, m, maskmode, include_current, seed):
    """Against the explicit-Jacobian reference for any shape and mask, and
    the identity sum_l dz_l = <g, d a / d shift>: shifting every score by t
    changes a_j by a_j (1 - beta_j) - a_j sum_{l > j} beta_l per unit t."""
    rng = np.random.default_rng(seed)
    s = rng.normal(scale=2, size=(n, m))
    g = rng.normal(size=(n, m))
    kw = [dict(), dict(causal=True), dict(mask=rng.random((n, m)) > 0.4),
          dict(window=(1, 0))][maskmode]
    r = an.normalizer_vjp(s, g, "stickbreaking", include_current=include_current, **kw)
    want, wp = ref.normalizer_vjp(s, g, "stickbreaking", include_current=include_current, **kw)
    assert wp == {} and r.params == {}
    np.testing.assert_allclose(r.scores, want, rtol=1e-9, atol=1e-12)
    h = 1e-6
    f = lambda t: float(np.sum(g * an.stickbreaking(s + t, include_current=include_current, **kw)))
    assert abs(r.scores.sum() - (f(h) - f(-h)) / (2 * h)) <= 1e-6 * max(1.0, abs(r.scores.sum()))
