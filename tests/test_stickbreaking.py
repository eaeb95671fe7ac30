"""Stick-breaking attention: the normalizer, its reference twin, and every
entry point it gets from its descriptor (attention, attention_weights,
return_stats, diagnose, jacobian_norm)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import attnnorm as an
from attnnorm import _reference as ref

DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


def naive(row, include_current=True, current=None):
    """a_j = beta_j prod_{k > j} (1 - beta_k) by direct products (one row)."""
    z = np.asarray(row, dtype=np.float64)
    beta = 1.0 / (1.0 + np.exp(-z))
    if not include_current and current is not None:
        beta[current] = 0.0
    return np.array([beta[j] * np.prod(1.0 - beta[j + 1:]) for j in range(z.size)])


OPTS = [{}, {"causal": True}, {"window": (2, 1)}, {"causal": True, "window": (3, None)},
        {"mask": "random"}, {"mask": "random", "causal": True}]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("include_current", [True, False])
@pytest.mark.parametrize("opts", OPTS, ids=str)
def test_matches_reference(rng, dtype, include_current, opts):
    s = (rng.normal(size=(2, 3, 6, 9)) * 3).astype(dtype)
    opts = dict(opts)
    if opts.get("mask") == "random":
        opts["mask"] = rng.random((6, 9)) > 0.3
    got = an.stickbreaking(s, include_current=include_current, **opts)
    want = ref.stickbreaking(s, include_current=include_current, **opts)
    assert got.dtype == dtype
    assert_allclose(got, want, **tol(dtype))
    assert (got >= 0).all() and (got.sum(-1) <= 1 + 1e-6).all()


def test_reference_equals_direct_products(rng):
    s = rng.normal(size=(5, 7)) * 2
    w = ref.stickbreaking(s)
    for i in range(5):
        assert_allclose(w[i], naive(s[i]), 1e-13, 1e-15)
    wc = an.stickbreaking(s, causal=True, include_current=False)
    for i in range(5):
        vis = np.arange(7) <= i + 2
        expect = np.zeros(7)
        expect[vis] = naive(s[i, vis], include_current=False, current=i + 2)
        assert_allclose(wc[i], expect, 1e-13, 1e-15)


def test_include_current_false_is_masking_the_aligned_key(rng):
    """Leaving out the current key equals masking it out, except that the
    query still counts as seeing a key (no empty row)."""
    n, m = 5, 8
    s = rng.normal(size=(3, n, m))
    mask = ~ref._current_key(n, m)
    for opts in ({}, {"causal": True}, {"window": (2, 2)}):
        a = an.stickbreaking(s, include_current=False, **opts)
        b = an.stickbreaking(s, mask=mask, **opts)
        assert_array_equal(a, b)
    # causal, n = m: query 0 sees only itself, so its weights are all 0
    sq = rng.normal(size=(4, 4))
    w = an.stickbreaking(sq, causal=True, include_current=False, empty="raise")
    assert_array_equal(w[0], 0.0)
    assert_array_equal(np.diagonal(w), 0.0)


def test_order_is_nearest_first():
    # equal scores: the nearest visible key takes the largest share
    w = an.stickbreaking(np.zeros(4))
    assert_allclose(w, [0.0625, 0.125, 0.25, 0.5], 0, 1e-15)
    # with a window the stick starts at the window's last key
    w = an.stickbreaking(np.zeros((1, 6)), window=(2, 0))
    assert_allclose(w[0], [0, 0, 0, 0.125, 0.25, 0.5], 0, 1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_rows_in_log_space(dtype):
    # sigma(40) rounds to 1 in float64: a linear-space product would give the
    # second key 0; in log space it keeps sigma(40) (1 - sigma(40)) ~ e^-40
    w = an.stickbreaking(np.array([40.0, 40.0], dtype=dtype))
    assert w[1] == pytest.approx(1.0, rel=1e-6)
    assert w[0] == pytest.approx(np.exp(-np.logaddexp(0, 40.0)), rel=1e-5)
    assert w[0] > 0
    # a long row of small betas: a_j = beta (1 - beta)^(m-1-j), tiny but exact
    m = 200000
    z = np.full(m, -8.0)
    w = an.stickbreaking(z.astype(dtype)).astype(np.float64)
    lb = -np.logaddexp(0, 8.0)                   # log sigma(-8)
    l1 = -np.logaddexp(0, -8.0)                  # log(1 - sigma(-8))
    k = np.arange(m)[::-1]
    expect = np.exp(lb + k * l1)
    tiny = np.finfo(dtype).tiny
    ok = expect > 1e3 * tiny
    assert_allclose(w[ok], expect[ok], rtol=1e-9 if dtype == np.float64 else 2e-6)
    assert np.sum(w) == pytest.approx(1 - np.exp(m * l1), rel=1e-6)


def test_limits():
    inf = np.inf
    # +inf takes all that the nearer keys left; the farther keys get nothing
    sig2 = 1 / (1 + np.exp(-2.0))
    assert_allclose(an.stickbreaking(np.array([1.0, inf, 2.0])), [0.0, 1 - sig2, sig2], 0, 1e-15)
    w = an.stickbreaking(np.array([3.0, 0.5, inf]))
    assert_array_equal(w, [0.0, 0.0, 1.0])
    assert_array_equal(an.stickbreaking(np.full(4, -inf)), 0.0)
    w = an.stickbreaking(np.array([1.0, np.nan, 2.0]))
    assert np.isnan(w[:2]).all() and np.isfinite(w[2])
    # a fully masked row follows `empty`
    mask = np.array([[True, True], [False, False]])
    assert np.isnan(an.stickbreaking(np.ones((2, 2)), mask=mask, empty="nan")[1]).all()
    with pytest.raises(ValueError, match="empty"):
        an.stickbreaking(np.ones((2, 2)), mask=mask, empty="raise")


def test_bad_include_current():
    for bad in (2, -1, 0.5, "yes", None):
        with pytest.raises(ValueError, match="include_current"):
            an.stickbreaking(np.ones((2, 3)), include_current=bad)


def test_out_axes_and_noncontiguous(rng):
    s = rng.normal(size=(4, 9, 7))
    out = np.empty((4, 9, 7))
    r = an.stickbreaking(s, causal=True, out=out)
    assert r is out
    assert_array_equal(out, an.stickbreaking(np.ascontiguousarray(s), causal=True))
    st_ = np.swapaxes(s, -1, -2)
    assert_array_equal(an.stickbreaking(st_, axes=[(-1, -2), (-1, -2)]),
                       np.swapaxes(an.stickbreaking(s), -1, -2))
    assert_array_equal(an.stickbreaking(s[:, ::2, ::-1]),
                       an.stickbreaking(np.ascontiguousarray(s[:, ::2, ::-1])))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 10)),
                  elements=st.floats(-50, 50)),
       st.booleans(), st.booleans())
def test_property_sub_stochastic(s, causal, include_current):
    w = an.stickbreaking(s, causal=causal, include_current=include_current)
    assert (w >= 0).all()
    assert (w.sum(-1) <= 1 + 1e-12).all()
    assert_allclose(w, ref.stickbreaking(s, causal=causal, include_current=include_current),
                    1e-11, 1e-300)


# ---------------------------------------------------------------- attention


def _qkv(rng, dtype, n=11, m=13, d=8, e=5):
    return (rng.normal(size=(2, n, d)).astype(dtype), rng.normal(size=(2, m, d)).astype(dtype),
            rng.normal(size=(2, m, e)).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", [{}, {"causal": True}, {"window": (3, 2)},
                                  {"causal": True, "include_current": False}], ids=str)
def test_attention_and_weights(rng, dtype, opts):
    q, k, v = _qkv(rng, dtype)
    w = an.attention_weights(q, k, "stickbreaking", **opts)
    assert_allclose(w, ref.attention_weights(q, k, "stickbreaking", **opts), **tol(dtype))
    assert_allclose(w, an.stickbreaking(ref.attention_scores(q, k).astype(dtype), **opts),
                    **tol(dtype))
    o = an.attention(q, k, v, "stickbreaking", **opts)
    assert_allclose(o, ref.attention(q, k, v, "stickbreaking", **opts),
                    rtol=1e-4 if dtype == np.float32 else 1e-10,
                    atol=1e-5 if dtype == np.float32 else 1e-12)
    o2, stats = an.attention(q, k, v, "stickbreaking", return_stats=True, **opts)
    assert_array_equal(o2, o)
    want = ref.attention_stats(q, k, "stickbreaking", **opts)
    assert np.isnan(stats.lognorm).all()
    for key in ("entropy", "max_weight", "weight_sum"):
        assert_allclose(getattr(stats, key), want[key], rtol=2e-4 if dtype == np.float32
                        else 1e-9, atol=1e-6 if dtype == np.float32 else 1e-12, err_msg=key)
    assert_array_equal(stats.support, want["support"])
    # the unused mass is what the weights leave
    assert (stats.weight_sum <= 1 + 1e-6).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_diagnose(rng, dtype):
    q, k, _ = _qkv(rng, dtype)
    for opts in ({}, {"causal": True, "include_current": False}):
        d = an.diagnose(q, k, "stickbreaking", **opts)
        w = an.attention_weights(q, k, "stickbreaking", **opts)
        vis_opts = {key: val for key, val in opts.items() if key != "include_current"}
        assert_allclose(d.entropy, an.entropy(w, **vis_opts), rtol=1e-4, atol=1e-6)
        assert_allclose(d.max_weight, w.max(-1), rtol=1e-6)
        assert_allclose(d.sink_weight, w[..., 0], rtol=1e-6, atol=1e-30)
        assert_allclose(d.column_mass, an.column_mass(w, **vis_opts), rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------- Jacobian


@pytest.mark.parametrize("dtype", DTYPES)
def test_jacobian_norm_matches_the_explicit_matrix(rng, dtype):
    s = rng.normal(size=(6, 7)) * 1.5
    for include_current in (True, False):
        a = an.stickbreaking(s.astype(dtype), causal=True, include_current=include_current)
        spec = an.jacobian_norm(a, "stickbreaking", causal=True)
        fro = an.jacobian_norm(a, "stickbreaking", "fro", causal=True)
        assert spec.dtype == dtype
        for i in range(6):
            nv = i + 2
            J = ref.stickbreaking_jacobian(s[i, :nv], include_current=include_current,
                                           current=i + 1)
            rt = 1e-3 if dtype == np.float32 else 1e-8
            assert_allclose(spec[i], np.linalg.norm(J, 2), rt, 1e-12)
            assert_allclose(fro[i], np.linalg.norm(J), rt, 1e-12)


def test_jacobian_norm_vs_finite_differences(rng):
    s = rng.normal(size=(4, 6))
    a = an.stickbreaking(s)
    h = 1e-6
    for o in (2, "fro"):
        j = an.jacobian_norm(a, "stickbreaking", o)
        for i in range(4):
            J = np.array([(an.stickbreaking(s[i] + h * e) - an.stickbreaking(s[i] - h * e))
                          / (2 * h) for e in np.eye(6)]).T
            assert_allclose(j[i], np.linalg.norm(J, 2 if o == 2 else "fro"), 1e-6, 1e-9)


# ---------------------------------------------------------------- the walk


WALK_CODE = r"""
import sys, numpy as np, attnnorm as an
z = np.load(sys.argv[1])
np.savez(sys.argv[2], path=an.simd_path(),
         w32=an.stickbreaking(z["s"].astype(np.float32)),
         w32c=an.stickbreaking(z["s"].astype(np.float32), causal=True, include_current=False),
         w64=an.stickbreaking(z["s"]))
"""


def test_walk_rounded_once_on_every_path(tmp_path):
    """The weights are computed in double and rounded once: float32 results
    are within 1 ulp of the float64 reference on the float32 scores (normal
    range), float64 ones within 1e-12 relative (down to 1e-300, where the
    reference's log-space sums carry errors of that order), on every SIMD path (each in
    a subprocess: the path is chosen at import).  Rows of 300 keys cross
    several blocks of the walk; the scores span small and large sticks."""
    rng = np.random.default_rng(11)
    s = rng.normal(scale=4.0, size=(40, 300)) - rng.uniform(0, 6, size=(40, 1))
    s[::3] = rng.normal(-7.0, 1.0, size=s[::3].shape)   # long sticks: every key counts
    np.savez(tmp_path / "in.npz", s=s)
    from conftest import run_variants
    paths = [("default", {"ATTNNORM_CPU": "default"}), ("best", {"ATTNNORM_CPU": ""})]
    if an.simd_best() == "avx512":
        paths.append(("avx2", {"ATTNNORM_CPU": "avx2"}))
    outs = run_variants(tmp_path, WALK_CODE, paths)
    s32 = s.astype(np.float32).astype(np.float64)
    want32 = ref.stickbreaking(s32)
    want32c = ref.stickbreaking(s32, causal=True, include_current=False)
    want64 = ref.stickbreaking(s)
    tiny = np.finfo(np.float32).tiny
    for tag, out in outs.items():
        for got, want in ((out["w32"], want32), (out["w32c"], want32c)):
            ok = want >= tiny
            ulp = np.spacing(want[ok].astype(np.float32)).astype(np.float64)
            err = np.abs(got[ok].astype(np.float64) - want[ok]) / ulp
            assert err.max() <= 1.0, (tag, err.max())
            assert (np.abs(got[~ok]) <= 2 * tiny).all(), tag
        ok = want64 > 1e-300
        assert_allclose(out["w64"][ok], want64[ok], rtol=1e-12, err_msg=tag)


@pytest.mark.parametrize("dtype", DTYPES)
def test_walk_stops_when_the_stick_is_used_up(dtype):
    """Large scores use the stick up within a few keys; the keys farther away
    are 0 without being computed, but a NaN there still makes its key and
    every farther key NaN (and the whole row's gradient NaN), and +inf/-inf
    there change nothing."""
    m = 700
    s = np.full((4, m), 30.0)
    s[1, 10] = np.nan
    s[2, 10] = np.inf
    s[3, 10] = -np.inf
    w = an.stickbreaking(s.astype(dtype))
    want = ref.stickbreaking(np.where(np.isfinite(s), s, 30.0))
    assert_allclose(w[0], want[0], **tol(dtype))
    assert np.isnan(w[1, :11]).all()
    assert_array_equal(w[1, 11:], w[0, 11:])
    assert_array_equal(w[2], w[0])
    assert_array_equal(w[3], w[0])
    assert w[0, -1] > 0.99 and (w[0, :m - 40] == 0).all()
    g = np.ones((4, m), dtype)
    dz = an.normalizer_vjp(s.astype(dtype), g, "stickbreaking").scores
    assert np.isnan(dz[1]).all()
    want_dz, _ = ref.normalizer_vjp(np.where(np.isfinite(s), s, 30.0)[:1], g[:1].astype(float),
                                    "stickbreaking")
    assert_allclose(dz[0], want_dz[0], **tol(dtype))
    assert_array_equal(dz[2], dz[0])
    assert_array_equal(dz[3], dz[0])


def test_include_current_false_long_rows_is_masking(rng):
    """As test_include_current_false_is_masking_the_aligned_key, on rows that
    span several blocks of the walk (bit for bit, forward and gradient)."""
    n, m = 6, 300
    s = rng.normal(-3.0, 1.0, size=(2, n, m))
    g = rng.normal(size=(2, n, m))
    mask = ~ref._current_key(n, m)
    for dt in DTYPES:
        for opts in ({}, {"causal": True}, {"window": (150, 100)}):
            a = an.stickbreaking(s.astype(dt), include_current=False, **opts)
            b = an.stickbreaking(s.astype(dt), mask=mask, **opts)
            assert_array_equal(a, b)
            da = an.normalizer_vjp(s.astype(dt), g.astype(dt), "stickbreaking",
                                   include_current=False, **opts).scores
            db = an.normalizer_vjp(s.astype(dt), g.astype(dt), "stickbreaking", mask=mask,
                                   **opts).scores
            assert_array_equal(da, db)
