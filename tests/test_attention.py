"""Fused attention (README "Attention"): attention, attention_weights, stats.

Every test is parametrized over attnnorm.NORMALIZERS, so normalizers merged
later are covered automatically.  References: attnnorm._reference (float64)."""
import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import attnnorm as an
from attnnorm import _reference as ref
from conftest import run_variants

NAMES = sorted(an.NORMALIZERS)

# parameters a normalizer needs in the tests (beyond its defaults)
EXTRA = {"stochastic_softmax": {"seed": 7}}
# normalizers whose weights are random: compared with the C normalizer on
# the same scores instead of an independent reference
RANDOM = {"stochastic_softmax"}


def params(name):
    return dict(EXTRA.get(name, {}))


def atol(dtype):
    return 3e-5 if np.dtype(dtype) == np.float32 else 1e-11


def rtol(dtype):
    return 1e-4 if np.dtype(dtype) == np.float32 else 1e-10


def qkv(rng, dtype, lead_q=(2, 3), lead_kv=(2, 1), n=13, m=13, d=8, e=5):
    q = rng.normal(size=lead_q + (n, d)).astype(dtype)
    k = rng.normal(size=lead_kv + (m, d)).astype(dtype)
    v = rng.normal(size=lead_kv + (m, e)).astype(dtype)
    return q, k, v


def qkv_saved(tmp_path, rng, dtype, **shape):
    """qkv(...) saved as tmp_path/in.npz, the input of run_variants' code."""
    q, k, v = qkv(rng, dtype, **shape)
    np.savez(tmp_path / "in.npz", q=q, k=k, v=v)
    return q, k, v


CASES = {
    "none": (13, 13, {}),
    "causal": (13, 13, {"causal": True}),
    "causal_n_lt_m": (7, 13, {"causal": True}),
    "window": (13, 13, {"window": (3, 2)}),
    "causal_window": (9, 13, {"causal": True, "window": (4, None)}),
    "mask": (13, 13, "mask"),
    "masked_row": (13, 13, "masked_row"),
}


def case_opts(rng, case):
    n, m, opts = CASES[case]
    if opts == "mask":
        opts = {"mask": rng.random((n, m)) > 0.35}
    elif opts == "masked_row":
        mk = rng.random((n, m)) > 0.3
        mk[4] = False
        opts = {"mask": mk}
    return n, m, opts


def reference_weights(name, q, k, dtype, **opts):
    """Independent float64 reference, or (random normalizers) the C
    normalizer on scores rounded to the kernel's dtype."""
    if name in RANDOM:
        s = ref.attention_scores(q, k).astype(dtype)
        return an.NORMALIZERS[name](s, **opts, **params(name)).astype(np.float64)
    return ref.attention_weights(q, k, name, **opts, **params(name))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(rng, name, dtype, case):
    n, m, opts = case_opts(rng, case)
    q, k, v = qkv(rng, dtype, n=n, m=m)
    out = an.attention(q, k, v, name, **opts, **params(name))
    w = an.attention_weights(q, k, name, **opts, **params(name))
    assert out.dtype == dtype and out.shape == (2, 3, n, 5)
    assert w.dtype == dtype and w.shape == (2, 3, n, m)
    # attention == attention_weights @ v (masked keys hold weight exactly 0)
    assert_allclose(out, w.astype(np.float64) @ v.astype(np.float64), rtol(dtype), atol(dtype))
    if name in RANDOM and dtype == np.float32:
        return   # a float32 score rounding can move a multinomial draw
    wr = reference_weights(name, q, k, dtype, **opts)
    assert_allclose(w, wr, rtol(dtype), atol(dtype))
    if name not in RANDOM:
        assert_allclose(out, ref.attention(q, k, v, name, **opts, **params(name)),
                        rtol(dtype), atol(dtype))
    if case == "masked_row":
        assert_array_equal(out[..., 4, :], 0.0)
        assert_array_equal(w[..., 4, :], 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_noncontiguous_and_broadcast_views(rng, name):
    base_q = rng.normal(size=(3, 8, 11))
    base_k = rng.normal(size=(6, 9, 8))[::-2]          # (3, 9, 8), negative stride
    base_v = rng.normal(size=(4, 9, 3))
    q = np.swapaxes(base_q, -1, -2)                     # (3, 11, 8) transposed
    k = base_k[:, ::-1, :]                              # reversed keys
    v = np.broadcast_to(base_v[:1, :, ::-1], (3, 9, 3))  # zero-stride lead axis
    opts = {"causal": True}
    out = an.attention(q, k, v, name, **opts, **params(name))
    cont = an.attention(np.ascontiguousarray(q), np.ascontiguousarray(k),
                        np.ascontiguousarray(v), name, **opts, **params(name))
    assert_array_equal(out, cont)
    w = an.attention_weights(q, k, name, **opts, **params(name))
    assert_allclose(out, w @ v, 1e-10, 1e-11)
    if name not in RANDOM:
        assert_allclose(out, ref.attention(q, k, v, name, **opts, **params(name)), 1e-10, 1e-11)


@pytest.mark.parametrize("name", NAMES)
def test_threads_bit_identical(rng, name):
    q, k, v = qkv(rng, np.float32, lead_q=(4,), lead_kv=(1,), n=100, m=90, d=16, e=16)
    old = an.get_num_threads()
    try:
        an.set_num_threads(1)
        o1, s1 = an.attention(q, k, v, name, causal=True, return_stats=True, **params(name))
        p1 = an.attention(q, k, v, name, causal=True, **params(name))   # online path
        w1 = an.attention_weights(q, k, name, causal=True, **params(name))
        an.set_num_threads(2)
        o2, s2 = an.attention(q, k, v, name, causal=True, return_stats=True, **params(name))
        p2 = an.attention(q, k, v, name, causal=True, **params(name))
        w2 = an.attention_weights(q, k, name, causal=True, **params(name))
    finally:
        an.set_num_threads(old)
    assert_array_equal(o1, o2)
    assert_array_equal(p1, p2)
    assert_array_equal(w1, w2)
    for a, b in zip(s1, s2):
        assert_array_equal(a, b)


def test_portable_simd_and_generic_paths_agree(tmp_path):
    """The same problem with ATTNNORM_CPU=default (portable kernels), the best
    SIMD path, and ATTNNORM_ATTENTION_GENERIC=1 (no online fast path), each in
    a subprocess (the SIMD path is chosen at import)."""
    rng = np.random.default_rng(3)
    qkv_saved(tmp_path, rng, np.float32, lead_q=(2,), lead_kv=(2,), n=70, m=300, d=24, e=20)
    code = (
        "import sys, numpy as np, attnnorm as an\n"
        "z = np.load(sys.argv[1]); res = {}\n"
        "for nm in sorted(an.NORMALIZERS):\n"
        "    kw = {'seed': 7} if nm == 'stochastic_softmax' else {}\n"
        "    for dt in (np.float32, np.float64):\n"
        "        res[nm + dt.__name__] = an.attention(z['q'].astype(dt), z['k'].astype(dt),"
        " z['v'].astype(dt), nm, causal=True, **kw)\n"
        "np.savez(sys.argv[2], path=an.simd_path(), **res)\n")
    outs = run_variants(tmp_path, code, (
        ("default", {"ATTNNORM_CPU": "default"}), ("best", {"ATTNNORM_CPU": ""}),
        ("generic", {"ATTNNORM_CPU": "", "ATTNNORM_ATTENTION_GENERIC": "1"})))
    assert str(outs["default"]["path"]) == "default"
    assert str(outs["best"]["path"]) == an.simd_best()
    for other in ("default", "generic"):
        for key in outs["best"].files:
            if key == "path":
                continue
            dt = np.float32 if key.endswith("float32") else np.float64
            a, b = outs[other][key], outs["best"][key]
            if key.startswith("stochastic_softmax") and dt == np.float32:
                continue   # float32 score rounding can move a multinomial draw
            assert_allclose(a, b, rtol(dt), atol(dt), err_msg=f"{other} {key}")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stats_equal_diagnostics_of_weights(rng, name, dtype):
    q, k, v = qkv(rng, dtype, lead_q=(2,), lead_kv=(2,), n=11, m=12)
    mk = rng.random((11, 12)) > 0.3
    mk[3] = False           # empty row
    mk[5, 0] = True         # key 0 visible in some rows
    mk[6] = False
    mk[6, 2] = True         # a single visible key: margin NaN
    opts = {"mask": mk, "causal": True}
    out, st = an.attention(q, k, v, name, return_stats=True, **opts, **params(name))
    # (the output without stats may come from the online path: equal to rounding)
    assert_allclose(out, an.attention(q, k, v, name, **opts, **params(name)), rtol(dtype),
                    atol(dtype))
    w = an.attention_weights(q, k, name, **opts, **params(name))
    # the stats equal the diagnostics of the weights attention_weights returns,
    # with the scores rounded as the kernel rounds them
    s = ref.attention_scores(q, k)
    expect = _stats_from(w.astype(np.float64), s, name, opts)
    tol = (rtol(dtype), 10 * atol(dtype))
    for field in st._fields:
        got = getattr(st, field)
        assert got.shape == (2, 11), field
        if field in ("argmax", "support"):
            assert got.dtype == np.int64
            assert_array_equal(got, expect[field], err_msg=field)
        else:
            assert got.dtype == dtype
            assert_allclose(got, expect[field], *tol, err_msg=field)
    assert np.isnan(st.entropy[:, 3]).all() and (st.argmax[:, 3] == -1).all()
    assert np.isnan(st.margin[:, 6]).all()
    assert (st.support[:, 3] == 0).all()
    if name not in RANDOM:
        r = ref.attention_stats(q, k, name, **opts, **params(name))
        for field in st._fields:
            if field in ("argmax", "support"):
                continue   # ties between equal float weights may resolve differently
            assert_allclose(getattr(st, field), r[field], *tol, err_msg=field)


def _stats_from(w, s, name, opts):
    """The stats from explicit weights w (the kernel's) and float64 scores s."""
    n, m = w.shape[-2:]
    vis = np.broadcast_to(ref.visible(n, m, causal=opts.get("causal", False),
                                      window=opts.get("window"), mask=opts.get("mask")), w.shape)
    nv = vis.sum(-1)
    with np.errstate(all="ignore"):
        empty = (nv == 0) | np.all(np.where(vis, np.isneginf(s), True), axis=-1)
        anynan = np.isnan(np.where(vis, w, 0)).any(-1)
        bad = empty | anynan
        ent = -np.where(vis & (w > 0), w * np.log(np.where(w > 0, w, 1)), 0).sum(-1)
        nomass = ~(vis & (w != 0)).any(-1)
        wm = np.where(vis, w, -np.inf)
        top = np.sort(np.where(vis, s, -np.inf), -1)
        margin = np.where(nv >= 2, top[..., -1] - top[..., -2], np.nan)
        lognorm = np.where(empty, np.nan, ref._attention_lognorm(s, vis, name, params(name)))
    return {
        "lognorm": lognorm,
        "entropy": np.where(bad | nomass, np.nan, ent),
        "max_weight": np.where(bad, np.nan, wm.max(-1)),
        "argmax": np.where(bad, -1, wm.argmax(-1)),
        "sink_weight": w[..., 0],
        "margin": margin,
        "support": (vis & (w > 0)).sum(-1),
        "weight_sum": np.where(nv == 0, w[..., 0], np.where(vis, w, 0).sum(-1)),
    }


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_policies(rng, name, dtype):
    q, k, v = qkv(rng, dtype, lead_q=(), lead_kv=(), n=5, m=6)
    mk = np.ones((5, 6), bool)
    mk[2] = False
    out = an.attention(q, k, v, name, mask=mk, **params(name))
    assert_array_equal(out[2], 0.0)
    assert np.isfinite(out).all()
    out = an.attention(q, k, v, name, mask=mk, empty="nan", **params(name))
    assert np.isnan(out[2]).all() and np.isfinite(np.delete(out, 2, 0)).all()
    assert np.isnan(an.attention_weights(q, k, name, mask=mk, empty="nan", **params(name))[2]).all()
    with pytest.raises(ValueError, match="empty='raise'"):
        an.attention(q, k, v, name, mask=mk, empty="raise", **params(name))
    with pytest.raises(ValueError, match="empty='raise'"):
        an.attention_weights(q, k, name, mask=mk, empty="raise", **params(name))


@pytest.mark.parametrize("name", NAMES)
def test_nan_stays_in_its_row_and_masked_values_never_leak(rng, name):
    q, k, v = qkv(rng, np.float64, lead_q=(), lead_kv=(), n=60, m=60, d=4, e=3)
    q[7, 1] = np.nan
    v[50, 0] = np.inf     # key 50: only queries >= 50 see it causally
    out = an.attention(q, k, v, name, causal=True, **params(name))
    assert np.isnan(out[7]).all()
    assert np.isfinite(np.delete(out, [7] + list(range(50, 60)), 0)).all()
    w = an.attention_weights(q, k, name, causal=True, **params(name))
    if name != "sinkhorn":   # Sinkhorn couples rows through its column step
        assert np.isnan(w[7, :8]).all() and (w[7, 8:] == 0).all()
        assert np.isfinite(np.delete(w, 7, 0)).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_shapes(rng, name, dtype):
    for n, m, d, e in [(1, 1, 1, 1), (1, 5, 3, 2), (4, 1, 2, 7), (50, 3, 1, 1)]:
        q, k, v = qkv(rng, dtype, lead_q=(), lead_kv=(), n=n, m=m, d=d, e=e)
        out = an.attention(q, k, v, name, **params(name))
        w = an.attention_weights(q, k, name, **params(name))
        assert out.shape == (n, e) and w.shape == (n, m)
        assert_allclose(out, w.astype(np.float64) @ v, rtol(dtype), atol(dtype))


def test_zero_sizes():
    q = np.zeros((2, 0, 4)); k = np.zeros((2, 5, 4)); v = np.zeros((2, 5, 3))
    assert an.attention(q, k, v).shape == (2, 0, 3)
    out = an.attention(np.ones((2, 3, 4)), np.zeros((2, 0, 4)), np.zeros((2, 0, 3)))
    assert_array_equal(out, 0.0)
    assert an.attention(np.ones((0, 3, 4)), k[:1], v[:1]).shape == (0, 3, 3)


def test_scale_and_temperature_broadcast_per_head(rng):
    q, k, v = qkv(rng, np.float64, lead_q=(2, 3), lead_kv=(2, 3), n=6, m=7)
    scale = np.array([[0.1, 0.5, 2.0]])           # (1, 3)
    temp = np.array([0.5, 1.0, 3.0])
    out = an.attention(q, k, v, scale=scale, temperature=temp)
    for h in range(3):
        r = ref.attention(q[:, h], k[:, h], v[:, h], scale=scale[0, h], temperature=temp[h])
        assert_allclose(out[:, h], r, 1e-12, 1e-13)
    assert_allclose(an.attention(q, k, v, scale=None),
                    ref.attention(q, k, v, scale=1 / np.sqrt(8)), 1e-12, 1e-13)


def test_grouped_query_attention(rng):
    q = rng.normal(size=(2, 4, 3, 10, 8))     # (B, Hkv, G, n, d)
    k = rng.normal(size=(2, 4, 1, 12, 8))
    v = rng.normal(size=(2, 4, 1, 12, 6))
    out = an.attention(q, k, v, causal=True)
    assert out.shape == (2, 4, 3, 10, 6)
    for g in range(3):
        assert_allclose(out[:, :, g], an.attention(q[:, :, g], k[:, :, 0], v[:, :, 0], causal=True),
                        1e-13, 1e-14)


def test_mixed_dtypes_promote():
    q = np.ones((3, 4), np.float32)
    k = np.ones((5, 4), np.float64)
    v = np.ones((5, 2), np.float32)
    assert an.attention(q, k, v).dtype == np.float64
    assert an.attention(q, k.astype(np.float32), v).dtype == np.float32


@pytest.mark.parametrize("kwargs, match", [
    ({"normalizer": "nope"}, "normalizer must be one of"),
    ({"scale": 0.0}, "scale"),
    ({"scale": np.nan}, "scale"),
    ({"scale": np.inf}, "scale"),
    ({"window": (-1, 2)}, "window"),
    ({"empty": "skip"}, "empty"),
    ({"mask": np.ones((3, 3), bool)}, "mask"),
    ({"temperature": 0.0}, "temperature"),
])
def test_bad_arguments(kwargs, match):
    q, k, v = np.ones((4, 2)), np.ones((5, 2)), np.ones((5, 3))
    with pytest.raises(ValueError, match=match):
        an.attention(q, k, v, **kwargs)
    kwargs.pop("v", None)
    with pytest.raises(ValueError, match=match):
        an.attention_weights(q, k, **kwargs)


def test_bad_shapes():
    with pytest.raises(ValueError, match="same last dimension"):
        an.attention(np.ones((4, 2)), np.ones((5, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="number of keys"):
        an.attention(np.ones((4, 2)), np.ones((5, 2)), np.ones((6, 3)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        an.attention(np.ones(4), np.ones((5, 4)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="do not broadcast"):
        an.attention(np.ones((2, 4, 2)), np.ones((3, 5, 2)), np.ones((3, 5, 3)))
    with pytest.raises(TypeError, match="unexpected"):
        an.attention(np.ones((4, 2)), np.ones((5, 2)), np.ones((5, 3)), bogus=1)


def test_limits_softmax():
    # a huge score takes all the mass; -inf scores are excluded
    q = np.array([[1.0, 0.0], [1.0, 0.0]])
    k = np.array([[1e300, 0.0], [0.0, 0.0], [-np.inf, 0.0]])
    v = np.array([[1.0], [2.0], [3.0]])
    out = an.attention(q, k, v, scale=1.0)
    assert_array_equal(out, [[1.0], [1.0]])
    out = an.attention(q, k[1:], v[1:], scale=1.0)
    assert_array_equal(out, [[2.0], [2.0]])


try:
    from hypothesis import given, settings, strategies as st
    from hypothesis.extra.numpy import arrays
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    @settings(max_examples=40, deadline=None)
    @given(n=st.integers(1, 9), m=st.integers(1, 9), d=st.integers(1, 5),
           causal=st.booleans(), seed=st.integers(0, 2**32 - 1),
           scale=st.floats(0.01, 10.0))
    def test_softmax_output_is_convex_combination(n, m, d, causal, seed, scale):
        rng = np.random.default_rng(seed)
        q = rng.normal(size=(n, d)) * 3
        k = rng.normal(size=(m, d)) * 3
        v = rng.normal(size=(m, 2))
        out = an.attention(q, k, v, scale=scale, causal=causal)
        w = an.attention_weights(q, k, scale=scale, causal=causal)
        vis = ref.visible(n, m, causal=causal)
        rows = vis.any(-1)
        assert_allclose(w[rows].sum(-1), 1.0, 1e-12)
        for i in np.nonzero(rows)[0]:
            vv = v[vis[i]]
            assert np.all(out[i] >= vv.min(0) - 1e-12) and np.all(out[i] <= vv.max(0) + 1e-12)
        assert_array_equal(out[~rows], 0.0)


def test_affine_softmax_per_row_and_per_head_parameters(rng):
    if "affine_softmax" not in an.NORMALIZERS:
        pytest.skip("affine_softmax not built")
    q, k, v = qkv(rng, np.float64, lead_q=(2, 3), lead_kv=(2, 3), n=6, m=7)
    a = rng.normal(size=(3, 6))          # per head and row
    b = np.array([[0.1], [0.2], [-0.3]])  # per head
    out = an.attention(q, k, v, "affine_softmax", a=a, b=b, causal=True)
    w = an.attention_weights(q, k, "affine_softmax", a=a, b=b, causal=True)
    assert_allclose(out, w @ v, 1e-12, 1e-13)
    s = ref.attention_scores(q, k)
    assert_allclose(w, an.affine_softmax(s, a=a, b=b, causal=True), 1e-12, 1e-13)
    # b = 0: the online path (a folded into the final division)
    out0 = an.attention(q, k, v, "affine_softmax", a=a, causal=True)
    w0 = an.attention_weights(q, k, "affine_softmax", a=a, causal=True)
    assert_allclose(out0, w0 @ v, 1e-12, 1e-13)
    with pytest.raises(ValueError, match="a"):
        an.attention(q, k, v, "affine_softmax", a=np.ones(5))


def test_softmax_lognorm_identity(rng):
    """lognorm_i = s_ij / T - log a_ij for every visible key with a_ij > 0."""
    q, k, v = qkv(rng, np.float64, lead_q=(), lead_kv=(), n=9, m=11)
    out, st = an.attention(q, k, v, temperature=0.7, causal=True, return_stats=True)
    w = an.attention_weights(q, k, temperature=0.7, causal=True)
    s = ref.attention_scores(q, k)
    j = st.argmax
    i = np.arange(9)
    assert_allclose(st.lognorm, s[i, j] / 0.7 - np.log(w[i, j]), 1e-12, 1e-12)
    assert_allclose(st.weight_sum, 1.0, 1e-13)
    assert_array_equal(st.support, (w > 0).sum(-1))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("opts", [{"window": (100, 40)}, {"causal": True}, "mask",
                                  {"causal": True, "window": (300, None)}])
def test_several_blocks_and_key_chunks(rng, name, opts):
    """n and m larger than the query block (48) and the key chunk (512), so
    chunk skipping and offsets are exercised; float64 against the reference."""
    n, m = 60, 1100
    if opts == "mask":
        mk = rng.random((n, m)) > 0.5
        mk[:, 512:1024] = False      # a whole key chunk masked
        mk[50] = False
        mk[:, 0] = True              # ... but every other row sees key 0
        mk[50] = False
        opts = {"mask": mk}
    q, k, v = qkv(rng, np.float64, lead_q=(), lead_kv=(), n=n, m=m, d=6, e=3)
    out = an.attention(q, k, v, name, **opts, **params(name))
    w = an.attention_weights(q, k, name, **opts, **params(name))
    assert_allclose(out, w @ v, 1e-10, 1e-11)
    assert_allclose(w, reference_weights(name, q, k, np.float64, **opts), 1e-10, 1e-11)
    _, st = an.attention(q, k, v, name, return_stats=True, **opts, **params(name))
    assert_allclose(st.weight_sum, np.where(np.isnan(w).all(-1), np.nan, w.sum(-1)), 1e-10, 1e-11)


@pytest.mark.parametrize("name", ["softmax", "softmax_sink", "ssmax", "affine_softmax",
                                  "softpick"])
@pytest.mark.parametrize("empty", ["zero", "nan"])
def test_online_path_limits_match_weights(name, empty):
    """Rows whose visible scores are all -inf, all <= 0, huge, or with one
    +inf / NaN: the online pass (or its fallback) equals weights @ v."""
    if name not in an.NORMALIZERS:
        pytest.skip(f"{name} not built")
    v = np.arange(8.0).reshape(4, 2)
    cases = [
        # every score -inf (no NaN: q's second component is 0)
        (np.array([[1.0, 0.0], [2.0, 0.0]]), np.array([[-np.inf, 0.0], [-np.inf, 5.0]] * 2)),
        # every score <= 0 (softpick: zeros), and mixed signs
        (np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([[-1.0, 0.0], [-2.0, 0.0], [-3.0, 1.0],
                                                        [-0.5, 0.0]])),
        # huge scores
        (np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[700.0, 0.0], [0.0, 1e3], [1.0, 2.0],
                                                       [-800.0, 0.0]])),
    ]
    for q, k in cases:
        out = an.attention(q, k, v, name, scale=1.0, empty=empty)
        w = an.attention_weights(q, k, name, scale=1.0, empty=empty)
        assert_allclose(out, w @ v, 1e-12, 1e-12)
    # a +inf and a NaN score in other rows: generic limits, other rows untouched
    k2 = np.array([[np.inf, 0.0], [1.0, 0.0], [0.0, np.nan], [2.0, 1.0]])
    q2 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.0]])
    out2 = an.attention(q2, k2, v, name, scale=1.0, empty=empty)
    w2 = an.attention_weights(q2, k2, name, scale=1.0, empty=empty)
    assert_allclose(out2, w2 @ v, 1e-12, 1e-12)


def _lazy_rescaling_problem(dtype):
    """Seven problems with d = 1, q = 1 and scale 1 (the scores are k
    exactly), each a pattern for the online softmax's lazy rescaling: the
    first key chunk's maximum is 2; later scores below the cap (2 + 8),
    exactly at it, above it in the middle of a block of 16 or at a chunk's
    start, twice; -inf entries; a NaN after the first chunk (problem 6)."""
    rng = np.random.default_rng(11)
    m, npb = 1200, 7                          # key chunks of 512: [0, 512), [512, 1024), ...
    k = rng.uniform(-3, 1.5, size=(npb, m, 1))
    k[:, 10] = 2.0
    k[1, 556] = 7.0                           # below the cap
    k[2, 589] = 11.0                          # above it, mid-block
    k[3, 512] = 14.0                          # above it at a chunk's start ...
    k[3, 856] = 800.0                         # ... and again (e^798 overflows)
    k[4, 656] = k[4, 657] = 10.0              # exactly at the cap
    k[5, ::3] = -np.inf
    k[6, 756] = np.nan
    q = np.ones((npb, 2, 1))
    v = rng.normal(size=(npb, m, 3))
    return q.astype(dtype), k.astype(dtype), v.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["softmax", "softmax_sink", "ssmax"])
def test_online_lazy_rescaling(name, dtype):
    """The online path takes a row's terms against its running maximum M
    while no score exceeds M + 8 and takes the maximum anew from the first
    block that does: against the weights (generic path) and the reference,
    non-causal and causal (the diagonal panels)."""
    q, k, v = _lazy_rescaling_problem(dtype)
    for causal in (False, True):
        out = an.attention(q, k, v, name, scale=1.0, causal=causal, **params(name))
        w = an.attention_weights(q, k, name, scale=1.0, causal=causal, **params(name))
        ref_w = reference_weights(name, q, k, np.float64, scale=1.0, causal=causal)
        assert np.isnan(out[6]).all() and np.isfinite(out[:6]).all()
        assert_allclose(out, w.astype(np.float64) @ v, rtol(dtype), atol(dtype))
        assert_allclose(out[:6], (ref_w @ v.astype(np.float64))[:6], rtol(dtype), atol(dtype))


def test_online_lazy_rescaling_portable_and_best_paths(tmp_path):
    """The same problems on the portable kernels and on the best SIMD path."""
    for dt in (np.float32, np.float64):
        q, k, v = _lazy_rescaling_problem(dt)
        np.savez(tmp_path / f"in_{dt.__name__}.npz", q=q, k=k, v=v)
    np.savez(tmp_path / "in.npz")
    code = (
        "import sys, os, numpy as np, attnnorm as an\n"
        "res = {'path': an.simd_path()}\n"
        "for dt in ('float32', 'float64'):\n"
        "    z = np.load(os.path.join(os.path.dirname(sys.argv[1]), f'in_{dt}.npz'))\n"
        "    for c in (False, True):\n"
        "        res[f'{dt}{c}'] = an.attention(z['q'], z['k'], z['v'], scale=1.0, causal=c)\n"
        "np.savez(sys.argv[2], **res)\n")
    outs = run_variants(tmp_path, code, (("default", {"ATTNNORM_CPU": "default"}),
                                         ("best", {"ATTNNORM_CPU": ""})))
    assert str(outs["default"]["path"]) == "default"
    for key in outs["best"].files:
        if key != "path":
            dt = np.float32 if key.startswith("float32") else np.float64
            assert_allclose(outs["default"][key], outs["best"][key], rtol(dt), atol(dt),
                            err_msg=key)


@pytest.mark.skipif("sinkhorn" not in an.NORMALIZERS, reason="sinkhorn not built")
@pytest.mark.parametrize("opts", [{}, {"causal": True}, "mask"])
def test_sinkhorn_one_large_problem_team_mode(rng, opts):
    """One problem with n m > 65536: the threads share the Sinkhorn passes
    (barriers between row and column steps); 1 and 2 threads bit-identical
    and equal to the reference."""
    n, m = 300, 260
    if opts == "mask":
        mk = rng.random((n, m)) > 0.3
        mk[7] = False
        opts = {"mask": mk}
    q, k, v = qkv(rng, np.float64, lead_q=(), lead_kv=(), n=n, m=m, d=8, e=4)
    old = an.get_num_threads()
    try:
        an.set_num_threads(1)
        o1 = an.attention(q, k, v, "sinkhorn", n_iter=4, **opts)
        an.set_num_threads(2)
        o2 = an.attention(q, k, v, "sinkhorn", n_iter=4, **opts)
        w2 = an.attention_weights(q, k, "sinkhorn", n_iter=4, **opts)
    finally:
        an.set_num_threads(old)
    assert_array_equal(o1, o2)
    assert_allclose(o2, w2 @ v, 1e-10, 1e-11)
    assert_allclose(w2, ref.attention_weights(q, k, "sinkhorn", n_iter=4, **opts), 1e-9, 1e-11)


@pytest.mark.parametrize("name", NAMES)
def test_stats_equal_the_diagnostics_module(rng, name):
    """entropy, support size and margin of return_stats equal attnnorm's
    diagnostics (entropy, support_size, separation_margin) applied to
    attention_weights and the scores."""
    if not hasattr(an, "entropy"):
        pytest.skip("diagnostics not built")
    q, k, v = qkv(rng, np.float64, lead_q=(2,), lead_kv=(2,), n=11, m=12)
    mk = rng.random((11, 12)) > 0.3
    mk[3] = False
    mk[6] = False
    mk[6, 2] = True
    opts = {"mask": mk, "causal": True}
    _, st = an.attention(q, k, v, name, return_stats=True, **opts, **params(name))
    w = an.attention_weights(q, k, name, **opts, **params(name))
    s = ref.attention_scores(q, k)
    with np.errstate(all="ignore"):
        assert_allclose(st.entropy, an.entropy(w, **opts), 1e-10, 1e-12)
        assert_array_equal(st.support, an.support_size(w, **opts))
        assert_allclose(st.margin, an.separation_margin(s, **opts), 1e-10, 1e-12)


@pytest.mark.parametrize("name", ["sparsemax", "entmax", "stochastic_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_weights_path_matches_weights_at_v(name, dtype):
    """Long rows give sparse weights: attention then accumulates only the
    nonzero weights; it must still equal attention_weights @ v, also with a
    non-finite value row (which switches the block back to the dense path)."""
    rng = np.random.default_rng(11)
    q = rng.normal(size=(2, 50, 16)).astype(dtype)
    k = rng.normal(size=(2, 300, 16)).astype(dtype)
    v = rng.normal(size=(2, 300, 8)).astype(dtype)
    kw = {"seed": 3, "trials": 8} if name == "stochastic_softmax" else {}
    for causal in (False, True):
        w = an.attention_weights(q, k, name, causal=causal, **kw)
        assert (w != 0).mean() < 1 / 8
        o = an.attention(q, k, v, name, causal=causal, **kw)
        np.testing.assert_allclose(o, w.astype(np.float64) @ v, rtol=1e-4 if dtype == np.float32 else 1e-12,
                                   atol=1e-5 if dtype == np.float32 else 1e-13)
    v2 = v.copy()
    v2[0, 5] = np.inf
    w = an.attention_weights(q, k, name, **kw)
    with np.errstate(invalid="ignore"):
        expect = w.astype(np.float64) @ v2
    o = an.attention(q, k, v2, name, **kw)
    assert_array_equal(np.isnan(o), np.isnan(expect))


@pytest.mark.parametrize("name, kw", [("entmax", {"alpha": 1.2}),
                                      ("stochastic_softmax", {"seed": 5, "trials": 64})])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_lists_of_nonzero_weights(name, kw, dtype):
    """Rows with dozens of listed nonzero weights (accumulated in several
    partial sums) still give attention_weights @ v, the same bits for 1 and
    2 threads."""
    rng = np.random.default_rng(12)
    q = rng.normal(size=(2, 60, 16)).astype(dtype)
    k = rng.normal(size=(2, 400, 16)).astype(dtype)
    v = rng.normal(size=(2, 400, 8)).astype(dtype)
    old = an.get_num_threads()
    try:
        for causal in (False, True):
            w = an.attention_weights(q, k, name, causal=causal, scale=0.3, **kw)
            nnz = (w != 0).sum(-1)
            assert nnz.max() >= 40 and nnz.min() < 400
            outs = []
            for t in (1, 2):
                an.set_num_threads(t)
                outs.append(an.attention(q, k, v, name, causal=causal, scale=0.3, **kw))
            assert_array_equal(outs[0], outs[1])
            assert_allclose(outs[0], w.astype(np.float64) @ v,
                            rtol=1e-4 if dtype == np.float32 else 1e-12,
                            atol=1e-5 if dtype == np.float32 else 1e-13)
    finally:
        an.set_num_threads(old)


@pytest.mark.skipif("sinkhorn" not in an.NORMALIZERS, reason="sinkhorn not built")
def test_sinkhorn_cached_and_recomputed_log_kernel_agree(tmp_path):
    """Sinkhorn keeps its n x m log kernel when it fits the cache budget and
    recomputes the scores in every pass otherwise (forced here by
    ATTNNORM_SINKHORN_RECOMPUTE=1 in a subprocess): both agree with each other
    and with the reference, batched (one problem per thread) and single (the
    threads share the passes), with a mask, causal, and in float32."""
    rng = np.random.default_rng(11)
    q, k, v = qkv(rng, np.float64, lead_q=(3,), lead_kv=(3,), n=90, m=170, d=8, e=5)
    mk = rng.random((90, 170)) > 0.25
    mk[4] = False
    np.savez(tmp_path / "in.npz", q=q, k=k, v=v, mk=mk)
    code = (
        "import sys, numpy as np, attnnorm as an\n"
        "z = np.load(sys.argv[1]); q, k, v, mk = z['q'], z['k'], z['v'], z['mk']\n"
        "an.set_num_threads(2); res = {}\n"
        "for dt in (np.float32, np.float64):\n"
        "    a, b, c = q.astype(dt), k.astype(dt), v.astype(dt)\n"
        "    res['b' + dt.__name__] = an.attention(a, b, c, 'sinkhorn', n_iter=5, mask=mk)\n"
        "    res['c' + dt.__name__] = an.attention(a, b, c, 'sinkhorn', n_iter=4, causal=True)\n"
        "    res['s' + dt.__name__] = an.attention(a[0], b[0], c[0], 'sinkhorn', n_iter=5, eps=0.5)\n"
        "np.savez(sys.argv[2], **res)\n")
    outs = run_variants(tmp_path, code, (("cached", {}),
                                         ("recomputed", {"ATTNNORM_SINKHORN_RECOMPUTE": "1"})))
    want = {
        "b": ref.attention_weights(q, k, "sinkhorn", n_iter=5, mask=mk) @ v,
        "c": ref.attention_weights(q, k, "sinkhorn", n_iter=4, causal=True) @ v,
        "s": ref.attention_weights(q[0], k[0], "sinkhorn", n_iter=5, eps=0.5) @ v[0],
    }
    for key in outs["cached"].files:
        dt = np.float32 if key.endswith("float32") else np.float64
        a, b = outs["cached"][key], outs["recomputed"][key]
        assert_allclose(a, b, rtol(dt), atol(dt), err_msg=key)
        assert_allclose(a, want[key[0]], rtol(dt), atol(dt), err_msg=key)


@pytest.mark.skipif("sinkhorn" not in an.NORMALIZERS, reason="sinkhorn not built")
def test_kept_scratch_gives_the_same_bits(tmp_path):
    """A call's scratch of 4 MiB or more is kept for the next call: Sinkhorn
    with a 40 MB cache budget on a problem too large for it (float64,
    n = m = 2300: the exp domain keeps E for the first rows), run before and
    after another problem that leaves its own numbers in that block, and in
    a process that returns every block (ATTNNORM_KEEP_SCRATCH=0): the same
    bits every time."""
    rng = np.random.default_rng(8)
    qkv_saved(tmp_path, rng, np.float64, lead_q=(1,), lead_kv=(1,), n=2300, m=2300, d=4, e=3)
    code = (
        "import sys, numpy as np, attnnorm as an\n"
        "z = np.load(sys.argv[1]); q, k, v = z['q'], z['k'], z['v']\n"
        "first = an.attention(q, k, v, 'sinkhorn')\n"
        "other = an.attention(2 * q, k[::-1], v, 'sinkhorn', causal=True, n_iter=3)\n"
        "again = an.attention(q, k, v, 'sinkhorn')\n"
        "np.savez(sys.argv[2], first=first, other=other, again=again)\n")
    budget = {"ATTNNORM_SINKHORN_CACHE_BYTES": "40000000"}
    outs = run_variants(tmp_path, code, (("kept", budget),
                                         ("returned", dict(budget, ATTNNORM_KEEP_SCRATCH="0"))))
    assert np.isfinite(outs["kept"]["first"]).all()
    assert not np.array_equal(outs["kept"]["first"], outs["kept"]["other"])
    for tag in ("kept", "returned"):
        assert_array_equal(outs[tag]["again"], outs["kept"]["first"], err_msg=tag)
        assert_array_equal(outs[tag]["first"], outs["kept"]["first"], err_msg=tag)
        assert_array_equal(outs[tag]["other"], outs["kept"]["other"], err_msg=tag)


@pytest.mark.skipif("sinkhorn" not in an.NORMALIZERS, reason="sinkhorn not built")
def test_kept_scratch_blocks_under_concurrent_calls_of_two_sizes():
    """Up to two scratch blocks of 4 MiB or more are kept from call to call
    (csrc/common/scratch.c), each handed to one call at a time: Sinkhorn
    attention on problems of two sizes (their caches 4 and 9 MiB, so one
    block cannot serve both) called in turn from four Python threads at once
    gives every time the bits of the same call made alone."""
    import threading
    rng = np.random.default_rng(3)
    probs = [tuple(rng.standard_normal((1, n, 8)).astype(np.float32) for _ in range(3))
             for n in (1024, 1536)]
    want = [an.attention(q, k, v, "sinkhorn", n_iter=2) for q, k, v in probs]
    bad = []

    def work(t):
        for it in range(6):
            j = (t + it) % 2
            got = an.attention(*probs[j], "sinkhorn", n_iter=2)
            if not np.array_equal(got, want[j]):
                bad.append((t, it, j))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not bad


def test_sinkhorn_exp_domain_log_domain_and_partial_cache_agree(tmp_path):
    """Sinkhorn attention takes its steps in the exp domain (E = exp(K) once,
    sums of products, E kept for the rows that fit the cache budget) and
    redoes a problem in the log domain when a sum leaves its exact range
    (tiny eps).  The exp domain, the log domain (ATTNNORM_SINKHORN_LOGDOMAIN),
    a budget that keeps E for the first rows only
    (ATTNNORM_SINKHORN_CACHE_BYTES) and no cache at all agree with the
    reference, 1 and 2 threads give the same bits (batched: one problem per
    thread against the team sharing each problem), and tiny eps gives
    exactly the log domain's result."""
    rng = np.random.default_rng(5)
    q, k, v = qkv(rng, np.float64, lead_q=(3,), lead_kv=(3,), n=300, m=260, d=8, e=5)
    mk = rng.random((300, 260)) > 0.25
    mk[4] = False
    np.savez(tmp_path / "in.npz", q=q, k=k, v=v, mk=mk)
    cases = {"plain": {}, "causal": {"causal": True, "n_iter": 4},
             "mask": {"mask": mk, "n_iter": 3}, "eps": {"eps": 0.3, "n_iter": 2},
             "one": {"n_iter": 1, "causal": True}, "tiny": {"eps": 0.0005, "n_iter": 5}}
    code = (
        "import sys, numpy as np, attnnorm as an\n"
        "z = np.load(sys.argv[1]); q, k, v, mk = z['q'], z['k'], z['v'], z['mk']\n"
        "cases = {'plain': {}, 'causal': {'causal': True, 'n_iter': 4},\n"
        "         'mask': {'mask': mk, 'n_iter': 3}, 'eps': {'eps': 0.3, 'n_iter': 2},\n"
        "         'one': {'n_iter': 1, 'causal': True}, 'tiny': {'eps': 0.0005, 'n_iter': 5}}\n"
        "res = {}\n"
        "for dt in (np.float32, np.float64):\n"
        "    a, b, c = q.astype(dt), k.astype(dt), v.astype(dt)\n"
        "    for name, kw in cases.items():\n"
        "        for t in (1, 2):\n"
        "            an.set_num_threads(t)\n"
        "            res[f'{name}_{dt.__name__}_b{t}'] = an.attention(a, b, c, 'sinkhorn', **kw)\n"
        "            res[f'{name}_{dt.__name__}_s{t}'] = an.attention(a[1], b[1], c[1], 'sinkhorn', **kw)\n"
        "np.savez(sys.argv[2], **res)\n")
    outs = run_variants(tmp_path, code, (
        ("exp", {}), ("log", {"ATTNNORM_SINKHORN_LOGDOMAIN": "1"}),
        ("partial", {"ATTNNORM_SINKHORN_CACHE_BYTES": "200000"}),
        ("recomputed", {"ATTNNORM_SINKHORN_RECOMPUTE": "1"})))
    for name, kw in cases.items():
        want = ref.attention_weights(q, k, "sinkhorn", **kw) @ v
        for dt in (np.float32, np.float64):
            for tag, out in outs.items():
                for how, w in (("b", want), ("s", want[1])):
                    key = f"{name}_{dt.__name__}_{how}"
                    assert_array_equal(out[key + "1"], out[key + "2"], err_msg=tag + " " + key)
                    if name == "tiny" and dt == np.float32:
                        continue   # float32 log domain at this eps: test_fuzz's known limitation
                    assert_allclose(out[key + "2"], w, rtol(dt), atol(dt), err_msg=tag + " " + key)
            key = f"{name}_{dt.__name__}_b2"
            if name == "tiny":     # the exp domain is not exact: the log domain's bits
                assert_array_equal(outs["exp"][key], outs["log"][key])
            else:                  # the exp domain, with other roundings
                assert not np.array_equal(outs["exp"][key], outs["log"][key]), key


@pytest.mark.parametrize("alpha", [1.05, 1.3, 1.7])
@pytest.mark.parametrize("causal", [False, True])
def test_entmax_attention_guess_from_the_previous_row(alpha, causal):
    """Fused entmax attention (1 < alpha < 2, float) guesses each row's
    threshold from its lower bound and the previous rows of the block (their
    distance from bound to threshold, an_rowctx.carry): exact whatever that
    guess is worth.  Rows like their neighbours and rows
    scaled by 10^-1, 1, 10 in turn (a poor guess, or one outside the
    bracket), against the float64 reference on the same scores."""
    rng = np.random.default_rng(8)
    n, d = 400, 32
    q = rng.standard_normal((2, n, d)).astype(np.float32)
    k = rng.standard_normal((2, n, d)).astype(np.float32)
    unlike = q * (10.0 ** (np.arange(n) % 3 - 1))[None, :, None].astype(np.float32)
    for qq in (q, unlike):
        w = an.attention_weights(qq, k, "entmax", alpha=alpha, causal=causal)
        s = np.einsum("bnd,bmd->bnm", qq.astype(np.float64), k.astype(np.float64)) / np.sqrt(d)
        if causal:
            s = np.where(np.tril(np.ones((n, n), bool)), s, -np.inf)
        want = ref.entmax(s, alpha=alpha)
        # the float32 scores differ from these by their rounding: weights within 1e-5
        assert np.abs(w - want).max() <= 1e-5
        assert_allclose(w.sum(-1), 1.0, atol=1e-5)
        o = an.attention(qq, k, k, "entmax", alpha=alpha, causal=causal)
        assert np.abs(o - np.einsum("bnm,bme->bne", want, k.astype(np.float64))).max() <= 1e-4


@pytest.mark.parametrize("name", ["sigmoid", "relu", "polynomial"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opts", [{}, {"causal": True}, {"window": (100, 30)},
                                  {"causal": True, "window": (300, None)}])
def test_elementwise_maps_tile_by_tile(name, dtype, opts):
    """The elementwise maps run tile by tile in fused attention: each key
    chunk's weights take the row's whole n_i (sigmoid's default bias
    -log n_i, relu's 1 / n_i, polynomial's 1 / sqrt(n_i)), over key chunks
    of 512 and rows that see part of one; scores shifted so that relu
    zeroes some; against the float64 reference."""
    rng = np.random.default_rng(11)
    q, k, v = qkv(rng, dtype, lead_q=(2,), lead_kv=(2,), n=90, m=700, d=16, e=12)
    q[..., 0] += dtype(0.5)
    out = an.attention(q, k, v, name, **opts)
    want = ref.attention(q, k, v, name, **opts)
    assert_allclose(out, want, rtol(dtype), atol(dtype))
    # the same through the generic path (a mask that hides nothing)
    full = np.ones((90, 700), bool)
    assert_allclose(an.attention(q, k, v, name, mask=full, **opts), out, rtol(dtype),
                    atol(dtype))


@pytest.mark.parametrize("dtype,m", [(np.float32, 1024), (np.float64, 512)])
@pytest.mark.parametrize("name", ["nap", "sparsemax", "entmax", "stickbreaking"])
def test_score_rows_a_multiple_of_4kib_apart(dtype, m, name):
    """Rows of m keys of 4 KiB (or a multiple) are stored one column block
    further apart in the block of scores (against cache-set conflicts): the
    generic path with such m, causal and not, against the reference."""
    rng = np.random.default_rng(12)
    q, k, v = qkv(rng, dtype, lead_q=(2,), lead_kv=(2,), n=60, m=m, d=16, e=8)
    for causal in (False, True):
        out = an.attention(q, k, v, name, causal=causal)
        assert_allclose(out, ref.attention(q, k, v, name, causal=causal), rtol(dtype),
                        atol(dtype))


@pytest.mark.parametrize("name", ["softmax", "softmax_sink", "ssmax", "relu", "sigmoid",
                                  "softpick"])
def test_online_blocks_of_96_rows(name):
    """Calls with at least 32 blocks of 96 query rows take the online path in
    blocks of 96 (48 otherwise): against the reference, the generic path
    (a mask that hides nothing), and bit-identical on 1 and 2 threads;
    causal, a window, and rows that see part of a key chunk."""
    rng = np.random.default_rng(13)
    q, k, v = qkv(rng, np.float32, lead_q=(16,), lead_kv=(16,), n=300, m=300, d=16, e=8)
    full = np.ones((300, 300), bool)
    for opts in ({"causal": True}, {"window": (120, 7)}):
        old = an.get_num_threads()
        try:
            an.set_num_threads(1)
            o1 = an.attention(q, k, v, name, **opts)
            an.set_num_threads(2)
            o2 = an.attention(q, k, v, name, **opts)
        finally:
            an.set_num_threads(old)
        assert_array_equal(o1, o2)
        assert_allclose(o1, ref.attention(q, k, v, name, **opts), 1e-4, 3e-5)
        assert_allclose(o1, an.attention(q, k, v, name, mask=full, **opts), 1e-4, 3e-5)
