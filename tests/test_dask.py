"""Dask arrays through the public API: blockwise leading axes, exact
key-sharded attention / attention_weights / diagnose, xarray, and a real
distributed.LocalCluster of two worker processes."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_allclose, assert_array_equal

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import attnnorm as an  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _pythonpath():
    """PYTHONPATH for subprocesses and worker processes: the repository root
    first only if it holds an in-place build, so a clean clone uses the
    installed package."""
    old = os.environ.get("PYTHONPATH")
    built = list((ROOT / "attnnorm").glob("_core*.so")) + list((ROOT / "attnnorm").glob("_core*.pyd"))
    parts = ([str(ROOT)] if built else []) + ([old] if old else [])
    return os.pathsep.join(parts)
NORMALIZERS = sorted(an.NORMALIZERS)
RANDOM = ("stochastic_softmax",)
SYNC = {"scheduler": "sync"}


def compute(*xs, **kw):
    return dask.compute(*xs, **(kw or SYNC))


def close(a, b, dtype=np.float64):
    rtol, atol = (2e-5, 2e-6) if np.dtype(dtype) == np.float32 else (1e-10, 1e-12)
    assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol,
                    equal_nan=True)


def test_import_does_not_import_dask():
    code = ("import sys, numpy as np, attnnorm as an; an.softmax(np.ones((2, 3))); "
            "an.attention(np.ones((2, 3)), np.ones((4, 3)), np.ones((4, 2))); "
            "bad = [m for m in ('dask', 'distributed', 'xarray') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    env = dict(os.environ, PYTHONPATH=_pythonpath())
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------
# inputs: leading axes (2, 3), queries and keys cut across chunk boundaries
# --------------------------------------------------------------------------

N, M, D, E = 9, 11, 4, 3


def qkv(rng, dtype=np.float64, lead=(2, 3), kv_lead=(1, 1)):
    q = (rng.normal(size=lead + (N, D)) * 1.5).astype(dtype)
    k = rng.normal(size=kv_lead + (M, D)).astype(dtype)
    v = rng.normal(size=kv_lead + (M, E)).astype(dtype)
    return q, k, v


def chunked(q, k, v, qc=4, kc=4):
    """q split into query blocks of qc, k and v into key shards of kc (the
    leading axes in one block: the blockwise tests split those)."""
    return (da.from_array(q, chunks=(-1,) * (q.ndim - 2) + (qc, -1)),
            da.from_array(k, chunks=(-1,) * (k.ndim - 2) + (kc, -1)),
            da.from_array(v, chunks=(-1,) * (v.ndim - 2) + (kc, -1)))


def masks(rng):
    """Boolean masks with every key of the shard 4..7 hidden and one query
    that sees nothing."""
    mk = rng.random((N, M)) > 0.3
    mk[:, 4:8] = False
    mk[3] = False
    return mk


OPTIONS = {
    "plain": lambda rng: {},
    "causal": lambda rng: {"causal": True},
    "window": lambda rng: {"window": (2, 1)},
    "mask+causal": lambda rng: {"mask": masks(rng), "causal": True},
}


def _compare_all(normalizer, opts, q, k, v, dq, dk, dv, dtype, diag_opts=None, **sched):
    """attention, attention(return_stats), attention_weights and diagnose
    on dask inputs against the NumPy calls (diagnose with ``diag_opts`` if
    given)."""
    res = an.attention(dq, dk, dv, normalizer, **opts)
    res_st = an.attention(dq, dk, dv, normalizer, return_stats=True, **opts)
    w = an.attention_weights(dq, dk, normalizer, **opts)
    assert isinstance(res, da.Array) and isinstance(w, da.Array)
    assert res.dtype == np.dtype(dtype) and w.dtype == np.dtype(dtype)
    diag = None
    if normalizer != "sinkhorn":
        diag = an.diagnose(dq, dk, normalizer, **opts)
    out = compute(res, res_st, w, diag, **sched)
    if normalizer in RANDOM:
        r, (r2, st2), ww, dd = out
        assert r.shape == q.shape[:-1] + (E,) and ww.shape == q.shape[:-1] + (M,)
        assert_allclose(np.where(ww.sum(-1) > 0, ww.sum(-1), 1.0), 1.0, rtol=1e-5)
        # the same draws in every call of one chunking: output = weights @ v
        close(r, ww @ v.astype(np.float64), dtype)
        close(r2, r, dtype)
        p = an.attention_weights(q, k, "softmax", **{o: x for o, x in opts.items()
                                                     if o not in ("trials", "seed")})
        assert_array_equal(ww[p == 0], 0)
        return
    close(out[0], an.attention(q, k, v, normalizer, **opts), dtype)
    o2, st2 = an.attention(q, k, v, normalizer, return_stats=True, **opts)
    close(out[1][0], o2, dtype)
    for f, a, b in zip(st2._fields, out[1][1], st2):
        if f == "argmax" or f == "support":
            assert_array_equal(a, b, err_msg=f)
        else:
            close(a, b, dtype)
    close(out[2], an.attention_weights(q, k, normalizer, **opts), dtype)
    if diag is not None:
        dref = an.diagnose(q, k, normalizer, **(opts if diag_opts is None else diag_opts))
        for f, a, b in zip(dref._fields, out[3], dref):
            if f == "support":
                assert_array_equal(a, b, err_msg=f)
            else:
                close(a, b, dtype)


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("normalizer", NORMALIZERS)
def test_sharded_matches_numpy(rng, normalizer, option):
    q, k, v = qkv(rng, lead=(2,), kv_lead=(1,))
    opts = OPTIONS[option](rng)
    _compare_all(normalizer, opts, q, k, v, *chunked(q, k, v), np.float64)


@pytest.mark.parametrize("normalizer", ["softmax", "ssmax", "sigmoid", "entmax", "nap", "relu",
                                        "sinkhorn", "stickbreaking"])
def test_sharded_float32(rng, normalizer):
    q, k, v = qkv(rng, np.float32, lead=(2,), kv_lead=(1,))
    _compare_all(normalizer, {"causal": True}, q, k, v, *chunked(q, k, v), np.float32)


@pytest.mark.parametrize("normalizer,params", [
    ("softmax", {"temperature": np.array([0.5, 1.0, 2.0])}),
    ("softmax", {"scale": np.array([0.1, 0.3, -0.2])}),
    ("ssmax", {"c": np.array([0.2, 0.43, 1.0])}),
    ("softmax_sink", {"sink": np.array([0.0, 1.0, -2.0])}),
    ("affine_softmax", {"a": np.linspace(0.5, 2, N), "b": np.array([[0.1], [0.0], [-0.1]])}),
    ("sigmoid", {"bias": np.array([0.0, 1.0, -2.0])}),
    ("relu", {"power": 2.5}),
    ("polynomial", {"power": 2}),
    ("entmax", {"alpha": np.array([1.2, 1.5, 2.0])}),
    ("entmax", {"alpha": 1.0}),
    ("nap", {"gain": np.array([1.0, 2.0, 0.5]), "bias": 0.25, "eps": 0.1}),
])
def test_sharded_per_head_parameters(rng, normalizer, params):
    q, k, v = qkv(rng, lead=(1, 3))
    _compare_all(normalizer, dict(params, window=(3, None)), q, k, v, *chunked(q, k, v, 3, 5),
                 np.float64)


def test_sharded_empty_policy(rng):
    q, k, v = qkv(rng)
    mk = masks(rng)
    dq, dk, dv = chunked(q, k, v)
    r = an.attention(dq, dk, dv, "entmax", mask=mk, empty="nan").compute(**SYNC)
    close(r, an.attention(q, k, v, "entmax", mask=mk, empty="nan"))
    assert np.isnan(r[..., 3, :]).all() and not np.isnan(np.delete(r, 3, axis=-2)).any()
    lazy = an.attention(dq, dk, dv, mask=mk, empty="raise")
    with pytest.raises(ValueError):
        lazy.compute(**SYNC)


@settings(max_examples=8, deadline=None)
@given(qc=st.integers(1, N), kc=st.integers(1, M),
       normalizer=st.sampled_from(["softmax", "sparsemax", "entmax", "relu", "nap",
                                   "sinkhorn", "stickbreaking"]),
       causal=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_any_chunking_is_exact(qc, kc, normalizer, causal, seed):
    rng = np.random.default_rng(seed)
    q, k, v = qkv(rng, lead=(2,), kv_lead=(1,))
    dq, dk, dv = chunked(q, k, v, qc, kc)
    close(an.attention(dq, dk, dv, normalizer, causal=causal).compute(**SYNC),
          an.attention(q, k, v, normalizer, causal=causal))


@pytest.mark.parametrize("normalizer,params", [
    ("sinkhorn", {"n_iter": 4, "eps": 0.5}), ("sinkhorn", {"n_iter": 3}),
    ("sinkhorn", {"eps": np.array([0.5, 1.0, 2.0])}),
    ("stickbreaking", {"include_current": False}),
    ("stochastic_softmax", {"trials": 7, "seed": 11}),
])
def test_merged_over_key_shards(rng, normalizer, params):
    """Sinkhorn, stick-breaking and stochastic_softmax merge key shards (the
    keys are never rechunked to one block) and equal the in-memory call."""
    q, k, v = qkv(rng, lead=(1, 3))
    opts = dict(params, mask=masks(rng), causal=True)
    dq, dk, dv = chunked(q, k, v, 3, 4)
    lazy = an.attention(dq, dk, dv, normalizer, **opts)
    step = {"sinkhorn": "skinit", "stickbreaking": "sbmass", "stochastic_softmax": "lognorm"}
    keys = [str(key) for key in lazy.__dask_graph__()]
    # one reduction task per visible (query block, key shard): shards of 4 of
    # the 11 keys; causal query blocks of 3 see keys up to 4, 7, 10, so 2, 2
    # and 3 shards (Sinkhorn: one query block, 3 shards)
    want = 3 if normalizer == "sinkhorn" else 7
    assert sum(f"attnnorm-{step[normalizer]}-" in key for key in keys) == want
    _compare_all(normalizer, opts, q, k, v, dq, dk, dv, np.float64)


def test_stochastic_sharded_exact_in_distribution(rng):
    """Each weight of a key-sharded draw is Binomial(trials, p_ij) / trials with
    p the in-memory softmax; a fixed seed and chunking repeat the draws, another
    chunking or seed changes them."""
    q, k, _ = qkv(rng, lead=(2,), kv_lead=(1,))
    mk = masks(rng)
    trials = 40000
    dq, dk, _ = chunked(q, k, k, 4, 3)
    w = an.attention_weights(dq, dk, "stochastic_softmax", trials=trials, seed=7, mask=mk)
    a, b = compute(w, w)
    assert_array_equal(a, b)
    p = an.attention_weights(q, k, "softmax", mask=mk)
    assert_allclose(a * trials, np.round(a * trials), atol=1e-6)
    assert np.all(np.abs(a - p) <= 6 * np.sqrt(p * (1 - p) / trials) + 1e-12)
    assert_array_equal(a[..., 3, :], 0)          # the query that sees nothing
    other = an.attention_weights(*chunked(q, k, k, 4, 5)[:2], "stochastic_softmax",
                                 trials=trials, seed=7, mask=mk).compute(**SYNC)
    seed8 = an.attention_weights(dq, dk, "stochastic_softmax", trials=trials, seed=8,
                                 mask=mk).compute(**SYNC)
    assert not np.array_equal(a, other) and not np.array_equal(a, seed8)


def test_skips_invisible_shards(rng):
    """With causal masking, the first query block gets no task for the last
    key shard."""
    q, k, v = qkv(rng)
    dq, dk, dv = chunked(q, k, v, 3, 3)
    full = len(an.attention(dq, dk, dv).__dask_graph__())
    causal = an.attention(dq, dk, dv, causal=True)
    assert len(causal.__dask_graph__()) < full
    close(causal.compute(**SYNC), an.attention(q, k, v, causal=True))


def test_scores_with_wide_range(rng):
    """Rows whose scores span more than float32's exponent range."""
    q, k, v = qkv(rng, np.float32)
    q *= 40
    dq, dk, dv = chunked(q, k, v)
    close(an.attention(dq, dk, dv).compute(**SYNC), an.attention(q, k, v), np.float32)


# --------------------------------------------------------------------------
# infinite and NaN entries in one key shard (or one query block)
# --------------------------------------------------------------------------

def _nonfinite(rng, case, dtype=np.float64):
    """q, k, v with +inf, -inf or NaN entries: in the query blocks of rows 1,
    5 and 6 ("q"), in the key shard 4..7 ("k+inf": two +inf keys, which
    share the weight of rows that score +inf on both), or in the value shard
    4..7 ("v")."""
    q, k, v = qkv(rng, dtype, lead=(2,), kv_lead=(1,))
    if case == "q":
        q[0, 1, 0], q[1, 5, 2], q[0, 6, 1] = np.inf, -np.inf, np.nan
    elif case == "k+inf":
        k[..., 5, 1] = k[..., 6, 1] = np.inf
    elif case == "k-inf":
        k[..., 5, 1] = -np.inf
    elif case == "k-nan":
        k[..., 6, 2] = np.nan
    else:
        v[..., 5, 0], v[..., 6, 1], v[..., 7, 2] = np.inf, -np.inf, np.nan
    return q, k, v


NONFINITE = ("q", "k+inf", "k-inf", "k-nan", "v")


def _visible(q, k, opts):
    """The visibility of causal / window / mask as one boolean mask (the
    sigmoid weights of finite scores are positive on every visible key)."""
    z = np.zeros(q.shape[-2:]), np.zeros(k.shape[-2:])
    return an.attention_weights(*z, "sigmoid", **opts) > 0


def _diag_opts(q, k, opts):
    """The in-memory diagnose given the visibility as a boolean mask: its
    entropy of a row with a -inf score then agrees with the weights
    (``entropy(attention_weights)``) and with ``return_stats``."""
    return {"mask": _visible(q, k, opts)}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", NONFINITE)
@pytest.mark.parametrize("normalizer", [x for x in NORMALIZERS if x not in RANDOM])
def test_sharded_nonfinite_matches_numpy(rng, normalizer, case):
    """attention (with and without statistics), attention_weights and
    diagnose with infinite and NaN entries equal the in-memory calls,
    NaN positions included."""
    q, k, v = _nonfinite(rng, case)
    _compare_all(normalizer, {}, q, k, v, *chunked(q, k, v), np.float64,
                 diag_opts=_diag_opts(q, k, {}))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", ["q", "k+inf"])
@pytest.mark.parametrize("normalizer", ["softmax_sink", "ssmax", "entmax", "stickbreaking"])
def test_sharded_nonfinite_masked(rng, normalizer, case):
    q, k, v = _nonfinite(rng, case)
    opts = {"mask": masks(rng), "causal": True}
    _compare_all(normalizer, opts, q, k, v, *chunked(q, k, v, 3, 4), np.float64,
                 diag_opts=_diag_opts(q, k, opts))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("normalizer", ["softmax", "sparsemax"])
def test_sharded_nonfinite_float32(rng, normalizer):
    for case in ("q", "k+inf", "v"):
        q, k, v = _nonfinite(rng, case, np.float32)
        opts = {"window": (3, 2)}
        _compare_all(normalizer, opts, q, k, v, *chunked(q, k, v), np.float32,
                     diag_opts=_diag_opts(q, k, opts))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_sharded_softmax_plus_inf_key(rng):
    """A row scoring +inf on the two +inf keys puts weight 1/2 on each; a
    NaN score makes the whole row NaN, as in memory."""
    q, k, v = _nonfinite(rng, "k+inf")
    dq, dk, dv = chunked(q, k, v)
    w = an.attention_weights(dq, dk).compute(**SYNC)
    up = q[..., 1] > 0
    assert up.any() and (~up).any()
    assert_array_equal(w[up][:, 5:7], 0.5)
    assert_array_equal(np.delete(w[up], [5, 6], axis=-1), 0)
    q, k, v = _nonfinite(rng, "k-nan")
    w = an.attention_weights(*chunked(q, k, v)[:2]).compute(**SYNC)
    assert np.isnan(w).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("normalizer", ["softmax", "nap", "sparsemax", "sigmoid"])
def test_sharded_overflowing_scores(rng, normalizer, dtype):
    """Finite keys near the overflow threshold make infinite scores; the
    result equals the in-memory one."""
    q, k, v = qkv(rng, dtype, lead=(2,), kv_lead=(1,))
    k[..., 5, :] *= np.finfo(dtype).max / 4
    _compare_all(normalizer, {}, q, k, v, *chunked(q, k, v), dtype,
                 diag_opts=_diag_opts(q, k, {}))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", NONFINITE)
def test_sharded_nonfinite_stochastic(rng, case):
    """stochastic_softmax: NaN weights wherever the in-memory draws have NaN,
    a single +inf key takes every trial, output = weights @ v."""
    q, k, v = _nonfinite(rng, case)
    dq, dk, dv = chunked(q, k, v)
    prm = {"trials": 64, "seed": 3}
    r, w = compute(an.attention(dq, dk, dv, "stochastic_softmax", **prm),
                   an.attention_weights(dq, dk, "stochastic_softmax", **prm))
    wref = an.attention_weights(q, k, "stochastic_softmax", **prm)
    assert_array_equal(np.isnan(w), np.isnan(wref))
    if case != "v":     # (with infinite values, NaN outputs depend on the draws)
        assert_array_equal(np.isnan(r), np.isnan(an.attention(q, k, v, "stochastic_softmax",
                                                              **prm)))
    p = an.attention_weights(q, k, "softmax")
    assert_array_equal(w[p == 0], 0)
    one = (p == 1).any(-1)
    close(w[one], p[one])
    close(r, w @ v)


# --------------------------------------------------------------------------
# laziness, meta, validation
# --------------------------------------------------------------------------

def test_graph_building_computes_nothing(rng):
    calls = []

    def tracked(x):
        calls.append(1)
        return x
    q, k, v = qkv(rng)
    dq, dk, dv = [x.map_blocks(tracked) for x in chunked(q, k, v)]
    calls.clear()       # map_blocks itself calls it on a small array to infer the dtype
    outs = [an.attention(dq, dk, dv, "entmax", causal=True), an.softmax(dq),
            an.diagnose(dq, dk, "nap"), an.attention(dq, dk, dv, "softmax", return_stats=True)[1],
            an.entropy(an.softmax(dq))]
    assert not calls
    assert all(isinstance(o, (da.Array, tuple)) for o in outs)
    compute(*outs)
    assert calls


def test_validation_before_any_work(rng):
    q, k, v = chunked(*qkv(rng))
    with pytest.raises(ValueError, match="alpha"):
        an.attention(q, k, v, "entmax", alpha=0.5)
    with pytest.raises(ValueError, match="temperature"):
        an.softmax(q, temperature=-1.0)
    with pytest.raises(ValueError, match="normalizer"):
        an.attention(q, k, v, "nope")
    with pytest.raises(ValueError, match="mask"):
        an.attention(q, k, v, mask=np.ones((3, 2), bool))
    with pytest.raises(TypeError, match="out="):
        an.softmax(q, out=np.empty(q.shape))


# --------------------------------------------------------------------------
# blockwise: every public function
# --------------------------------------------------------------------------

def _w(rng, shape=(2, 3, N, M)):
    return an.softmax(rng.normal(size=shape))


CALLS = {
    "entropy": lambda r: ((_w(r),), {"normalized": True}),
    "effective_support": lambda r: ((_w(r),), {"causal": True}),
    "participation_ratio": lambda r: ((_w(r),), {}),
    "negative_mass": lambda r: ((an.nap(r.normal(size=(2, 3, N, M))),), {}),
    "support_size": lambda r: ((an.entmax(r.normal(size=(2, 3, N, M))),), {}),
    "separation_margin": lambda r: ((r.normal(size=(2, 3, N, M)),), {"mask": masks(r)}),
    "column_mass": lambda r: ((_w(r),), {"causal": True}),
    "sink_mass": lambda r: ((_w(r),), {}),
    "row_residual": lambda r: ((an.sinkhorn(r.normal(size=(2, 3, N, M))),), {}),
    "column_residual": lambda r: ((an.sinkhorn(r.normal(size=(2, 3, N, M))),), {}),
    "frobenius_norm": lambda r: ((_w(r),), {}),
    "rank_collapse": lambda r: ((r.normal(size=(2, 3, N, D)),), {}),
    "jacobian_norm": lambda r: ((_w(r),), {"normalizer": "softmax"}),
    "vanishing_bounds": lambda r: ((r.normal(size=(2, 3, N, D)), r.normal(size=(2, 3, M, D))), {}),
    "selectivity_distance": lambda r: ((_w(r), r.normal(size=(2, 3, M, E)), 2), {}),
    "geometric_separability": lambda r: ((_w(r), r.normal(size=(2, 3, M, E)), 2), {}),
    "attention_norms": lambda r: ((_w(r), r.normal(size=(2, 3, M, E))), {}),
    "mixing_ratios": lambda r: ((_w(r, (2, 3, N, N)), r.normal(size=(2, 3, N, E)),
                                 r.normal(size=(2, N, E))), {}),
    "linear_attention": lambda r: (qkv(r), {"causal": True}),
    "log_attention": lambda r: (qkv(r), {"causal": True, "return_state": True}),
    "cheap_linear_attention": lambda r: ((r.normal(size=(2, 3, M, D)), r.normal(size=(2, 3, N, D))),
                                         {"causal": True}),
    "zeros_attention": lambda r: (qkv(r) + (r.normal(size=(2, 1, M)), 0.3, 0.7), {}),
    "zeros_weights": lambda r: ((r.normal(size=(2, 3, M)), 0.3, 0.7), {"n": N}),
    "soft_attention": lambda r: ((r.normal(size=(2, 3, N, D)), r.normal(size=(2, 3, N, E))),
                                 {"n_landmarks": 3, "return_residuals": True}),
    "soft_kernel": lambda r: ((r.normal(size=(2, 3, N, D)),), {}),
    "attention": lambda r: (qkv(r), {"normalizer": "sinkhorn", "causal": True}),
    "attention_weights": lambda r: (qkv(r)[:2], {"normalizer": "softpick"}),
    "diagnose": lambda r: (qkv(r)[:2], {"normalizer": "sigmoid", "window": (1, 2)}),
}
CALLS.update({nm: (lambda r, nm=nm: ((r.normal(size=(2, 3, N, M)),),
                                     {"causal": True, "mask": masks(r)}))
              for nm in NORMALIZERS})


def _daskify(x, i):
    if isinstance(x, np.ndarray) and x.ndim >= 1:
        return da.from_array(x, chunks=(1,) + (-1,) * (x.ndim - 1) if i % 2 == 0 and x.ndim > 2
                             else (-1,) * (x.ndim - 1) + (max(1, x.shape[-1] // 2),))
    return x


def _flat(x):
    if isinstance(x, tuple):
        return [y for z in x for y in _flat(z)]
    return [] if x is None else [x]


def test_every_public_function_is_covered():
    public = [nm for nm in an.__all__ if callable(getattr(an, nm))
              and hasattr(getattr(an, nm), "__wrapped_numpy__")]
    assert sorted(set(public) - set(CALLS)) == []


@pytest.mark.parametrize("name", sorted(CALLS))
def test_blockwise_matches_numpy(rng, name):
    args, kw = CALLS[name](rng)
    f = getattr(an, name)
    expect = f(*args, **kw)
    lazy = f(*[_daskify(a, i) for i, a in enumerate(args)], **kw)
    got, want = _flat(lazy), _flat(expect)
    assert len(got) == len(want)
    assert all(isinstance(g, da.Array) for g in got)
    got = compute(*got)
    for g, w in zip(got, want):
        assert g.shape == np.shape(w) and g.dtype == np.asarray(w).dtype, name
        if name != "stochastic_softmax":
            close(g, w)


def test_stochastic_softmax_seeded_per_block(rng):
    s = rng.normal(size=(4, N, M))
    ds = da.from_array(s, chunks=(1, N, M))
    a = an.stochastic_softmax(ds, trials=64, seed=5).compute(**SYNC)
    b = an.stochastic_softmax(ds, trials=64, seed=5).compute(**SYNC)
    assert_array_equal(a, b)
    assert_array_equal(a[0], an.stochastic_softmax(s[:1], trials=64, seed=5)[0])
    assert not np.array_equal(a[1], a[0] if np.array_equal(s[1], s[0]) else a[1] * 0)
    assert_allclose(a.sum(-1), 1.0)
    assert_allclose(a * 64, np.round(a * 64), atol=1e-9)
    # identical matrices in different blocks draw differently
    same = da.from_array(np.broadcast_to(s[:1], (4, N, M)).copy(), chunks=(1, N, M))
    c = an.stochastic_softmax(same, trials=64, seed=5).compute(**SYNC)
    assert not all(np.array_equal(c[0], c[i]) for i in range(1, 4))


def test_one_dimensional_and_axes(rng):
    s = rng.normal(size=(M,))
    close(an.softmax(da.from_array(s)).compute(**SYNC), an.softmax(s))
    s2 = rng.normal(size=(M, 2, N))
    close(an.softmax(da.from_array(s2, chunks=(3, 1, N)), axes=[(2, 0), (2, 0)]).compute(**SYNC),
          an.softmax(s2, axes=[(2, 0), (2, 0)]))


def test_xarray(rng):
    xr = pytest.importorskip("xarray")
    s = rng.normal(size=(3, N, M))
    xs = xr.DataArray(s, dims=("head", "query", "key"), coords={"head": ["a", "b", "c"]})
    w = an.softmax(xs, causal=True)
    assert isinstance(w, xr.DataArray) and w.dims == xs.dims
    close(w.values, an.softmax(s, causal=True))
    lazy = an.entropy(an.softmax(xs.chunk({"head": 1})))
    assert isinstance(lazy.data, da.Array) and lazy.dims == ("head", "query")
    close(lazy.compute().values, an.entropy(an.softmax(s)))
    assert list(lazy.coords["head"].values) == ["a", "b", "c"]
    q, k, v = qkv(rng, lead=(3,), kv_lead=(3,))
    dims = ("head", "tok", "feat")
    xq = xr.DataArray(q, dims=dims).chunk({"tok": 4})
    xk = xr.DataArray(k, dims=("head", "key", "feat")).chunk({"key": 4})
    xv = xr.DataArray(v, dims=("head", "key", "val")).chunk({"key": 4})
    o = an.attention(xq, xk, xv, "entmax", causal=True)
    assert o.dims == ("head", "tok", "val")
    close(o.values, an.attention(q, k, v, "entmax", causal=True))
    dg = an.diagnose(xq, xk, causal=True)
    close(dg.entropy.values, an.diagnose(q, k, causal=True).entropy)


# --------------------------------------------------------------------------
# a real cluster: two worker processes on localhost
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = _pythonpath()
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as cluster:
            with distributed.Client(cluster) as c:
                yield c
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def test_cluster_matches_numpy(client, rng):
    """Every normalizer on the cluster, in one compute: causal + window + a
    boolean mask that hides a whole key shard and one query."""
    q, k, v = qkv(rng, lead=(2,), kv_lead=(1,))
    opts = {"mask": masks(rng), "causal": True, "window": (6, None)}
    dq, dk, dv = chunked(q, k, v, 5, 4)
    lazy = {nm: (an.attention(dq, dk, dv, nm, **opts),
                 None if nm == "sinkhorn" else an.diagnose(dq, dk, nm, **opts))
            for nm in NORMALIZERS}
    got = client.compute(lazy, sync=True)
    for nm in NORMALIZERS:
        out, diag = got[nm]
        if nm in RANDOM:
            # seeded per (block, shard): the workers draw what this process draws
            assert out.shape == (2, N, E)
            assert_array_equal(out, lazy[nm][0].compute(**SYNC))
            continue
        close(out, an.attention(q, k, v, nm, **opts))
        if diag is not None:
            for f, a, b in zip(diag._fields, diag, an.diagnose(q, k, nm, **opts)):
                close(a, b)


def test_cluster_blockwise_and_stochastic(client, rng):
    s = rng.normal(size=(4, N, M))
    ds = da.from_array(s, chunks=(1, N, 4))
    got = client.compute([an.entmax(ds, causal=True), an.entropy(an.softmax(ds))], sync=True)
    close(got[0], an.entmax(s, causal=True))
    close(got[1], an.entropy(an.softmax(s)))
    a = client.compute(an.stochastic_softmax(ds, seed=3), sync=True)
    assert_array_equal(a, an.stochastic_softmax(ds, seed=3).compute(**SYNC))


# --------------------------------------------------------------------------
# the candidates of key-sharded sparsemax / entmax: per-row top-K scores,
# the exactness check and the recheck of the rows it sends back
# --------------------------------------------------------------------------

def _topk_reference(q, k, mask, scale, K):
    s = np.where(mask, (scale * q) @ np.swapaxes(k, -1, -2), -np.inf)
    order = np.argsort(-s, axis=-1, kind="stable")[..., :K]
    val = np.take_along_axis(s, order, -1)
    pad = [(0, 0)] * (val.ndim - 1) + [(0, K - val.shape[-1])]
    val = np.pad(val, pad, constant_values=-np.inf)
    order = np.pad(order, pad)
    return val, np.where(np.isfinite(val), order, -1)


@pytest.mark.parametrize("K", [1, 3, 7, 40, 75])
def test_topk_scores_matches_numpy(rng, K):
    from attnnorm import _core
    q = rng.normal(size=(2, 1, 37, 5))
    k = rng.normal(size=(3, 70, 5))
    k[:, 50:60] = k[:, 10:20]                     # tied scores: the lower key first
    mask = rng.random((2, 3, 37, 70)) < 0.6
    mask[0, 0, 4] = False                         # a row that sees nothing
    mask[1, 2, 5] = False
    mask[1, 2, 5, :2] = True                      # fewer visible keys than K
    scale = np.array([0.7, 1.3])[:, None]
    val, idx = _core.topk_scores(q, k, mask, scale, np.empty(K))
    rv, ri = _topk_reference(q, k, mask, scale[..., None, None], K)
    assert val.shape == idx.shape == (2, 3, 37, K)
    assert_array_equal(idx, ri)
    # the kernel's GEMM and NumPy's may round differently (FMA or not): scores
    # to a few ulp, -inf (padding) exactly
    assert_array_equal(np.isinf(val), np.isinf(rv))
    np.testing.assert_allclose(np.where(np.isinf(val), 0, val), np.where(np.isinf(rv), 0, rv),
                               rtol=1e-13, atol=1e-13)
    # float32: the same keys up to scores within rounding of each other
    v32, i32 = _core.topk_scores(q.astype(np.float32), k.astype(np.float32), mask,
                                 scale.astype(np.float32), np.empty(K, np.float32))
    assert v32.dtype == np.float32 and i32.dtype == np.int64
    assert_array_equal(i32 < 0, ri < 0)
    close(np.where(i32 < 0, 0, v32), np.where(ri < 0, 0, rv), np.float32)


@pytest.mark.parametrize("K", [1, 32, 600, 1400])
def test_topk_scores_many_key_chunks(rng, K):
    """Keys over several packed chunks (the group maxima of each chunk bound
    the K-th score): ties across chunks, masked runs, a row with fewer
    visible keys than K, and K from one key to more than all of them."""
    from attnnorm import _core
    m = 1300
    q = rng.normal(size=(23, 6))
    k = rng.normal(size=(m, 6))
    k[700:760] = k[100:160]                       # tied scores in another chunk
    mask = rng.random((23, m)) < 0.7
    mask[2, 500:1200] = False                     # a long masked run
    mask[3] = False
    mask[3, [5, 900]] = True                      # two visible keys
    val, idx = _core.topk_scores(q, k, mask, np.array(0.8), np.empty(K))
    rv, ri = _topk_reference(q, k, mask, 0.8, K)
    assert_array_equal(idx, ri)
    # scores of the kernel's GEMM: NumPy's up to rounding
    assert_array_equal(np.isfinite(val), np.isfinite(rv))
    close(np.where(np.isfinite(val), val, 0), np.where(np.isfinite(rv), rv, 0))


@pytest.mark.parametrize("K", [1, 5, 16, 300])
def test_topk_scores_candidate_lists(rng, K):
    """Rows whose candidate list starts without a bound or with a poor one:
    a first key chunk masked but for a few keys (group maxima -inf), equal
    scores over whole chunks (the bound ties with many keys), the best keys
    in the last chunk only (the bound rises late), NaN scores (never
    candidates) and +inf scores (always)."""
    from attnnorm import _core
    m, d = 1100, 4
    q = rng.normal(size=(9, d))
    k = rng.normal(size=(m, d))
    mask = np.ones((9, m), bool)
    mask[0, :512] = False
    mask[0, [3, 200, 511]] = True                 # three keys in the first chunk
    q[1] = 0.0                                    # every score 0: ties throughout
    k[1000:] *= 1.0 + np.arange(100)[:, None] / 10   # large scores late (row 2 on)
    q[3, 0] = np.nan                              # NaN scores: no candidate
    mask[4, 600:] = False                         # visible keys in the first two chunks
    val, idx = _core.topk_scores(q, k, mask, np.array(1.0), np.empty(K))
    rv, ri = _topk_reference(np.where(np.isnan(q), 0, q), k, mask, 1.0, K)
    rv[3], ri[3] = -np.inf, -1
    assert_array_equal(idx, ri)
    assert_array_equal(np.isfinite(val), np.isfinite(rv))
    close(np.where(np.isfinite(val), val, 0), np.where(np.isfinite(rv), rv, 0))
    # +inf scores come first, in key order
    kinf = k.copy()
    kinf[[7, 900]] = np.inf
    q5 = np.abs(q[5:6]) + 0.1
    v5, i5 = _core.topk_scores(q5, kinf, np.ones((1, m), bool), np.array(1.0), np.empty(K))
    assert_array_equal(i5[0, :min(K, 2)], [7, 900][:min(K, 2)])
    assert np.all(np.isinf(v5[0, :min(K, 2)]))


def test_topk_scores_threads_and_paths(rng, tmp_path):
    from conftest import run_variants
    q = rng.normal(size=(300, 16)).astype(np.float32)
    k = rng.normal(size=(1500, 16)).astype(np.float32)
    np.savez(tmp_path / "in.npz", q=q, k=k)
    code = ("import sys, numpy as np, attnnorm as an; from attnnorm import _core; "
            "d = np.load(sys.argv[1]); q, k = d['q'], d['k']; "
            "mk = np.broadcast_to(np.True_, (q.shape[0], k.shape[0])); "
            "outs = {}\n"
            "for t in (1, 2):\n"
            "    an.set_num_threads(t)\n"
            "    outs[f'v{t}'], outs[f'i{t}'] = _core.topk_scores(q, k, mk, np.float32(0.25), "
            "np.empty(24, np.float32))\n"
            "np.savez(sys.argv[2], **outs)")
    outs = run_variants(tmp_path, code, [("default", {"ATTNNORM_CPU": "default"}), ("best", {})])
    for o in outs.values():
        assert_array_equal(o["v1"], o["v2"])
        assert_array_equal(o["i1"], o["i2"])
    rv, ri = _topk_reference(q.astype(np.float64), k.astype(np.float64),
                             np.ones((300, 1500), bool), 0.25, 24)
    for o in outs.values():
        close(o["v1"], rv, np.float32)
        # the keys agree wherever the float64 scores are not within rounding
        gap = np.abs(np.diff(rv, axis=-1)).min(-1) > 1e-5
        assert gap.mean() > 0.5
        assert_array_equal(o["i1"][gap], ri[gap])


def test_topk_scores_validation():
    from attnnorm import _core
    with pytest.raises(ValueError):
        _core.topk_scores(np.ones((3, 2)), np.ones((4, 3)), np.ones((3, 4), bool), 1.0,
                          np.empty(2))


@pytest.fixture
def small_topk(monkeypatch):
    """Two candidates per row and shard: most rows of the sparse merges fail
    the first check and go through the recheck; counts the rows rechecked."""
    import attnnorm._shard as shard
    monkeypatch.setattr(shard, "_TOPK", 2)
    seen = []
    orig = shard._sp_recheck

    def recheck(ctx, b, info):
        r = orig(ctx, b, info)
        if r is not None:
            seen.append(r["flat"].size)
        return r
    monkeypatch.setitem(shard._STEPS, "recheck", recheck)
    return seen


def _sparse_options(rng, option):
    """The keyword arguments of an OPTIONS entry, or "shard_hidden": every key
    of the shard 4..7 hidden by the mask."""
    if option == "shard_hidden":
        return {"mask": np.broadcast_to((np.arange(M) < 4) | (np.arange(M) >= 8), (N, M))}
    return OPTIONS[option](rng)


@pytest.mark.parametrize("option", sorted(OPTIONS) + ["shard_hidden"])
@pytest.mark.parametrize("normalizer,params", [("sparsemax", {}), ("entmax", {}),
                                               ("entmax", {"alpha": 1.25}),
                                               ("entmax", {"alpha": 2.0})])
def test_sparse_recheck_matches_numpy(rng, small_topk, normalizer, params, option):
    # flat scores (small scale): wide supports, beyond two keys per shard
    q, k, v = qkv(rng, lead=(2,), kv_lead=(1,))
    q = q * 0.2
    opts = _sparse_options(rng, option)
    opts.update(params)
    dq, dk, dv = chunked(q, k, v, qc=4, kc=4)
    _compare_all(normalizer, opts, q, k, v, dq, dk, dv, np.float64)
    assert sum(small_topk) > 0, "the recheck never ran"


def test_sparse_recheck_float32_and_alpha_per_head(rng, small_topk):
    q, k, v = qkv(rng, np.float32, lead=(2,), kv_lead=(1,))
    q = q * np.float32(0.3)
    alpha = np.array([1.5, 2.0])
    dq, dk, dv = chunked(q, k, v, qc=5, kc=3)
    res = an.attention(dq, dk, dv, "entmax", alpha=alpha, causal=True)
    close(compute(res)[0], an.attention(q, k, v, "entmax", alpha=alpha, causal=True),
          np.float32)
    assert sum(small_topk) > 0


def test_sparse_first_candidates_suffice(rng):
    """With the default number of candidates, peaked rows pass the check:
    no row is listed again, and the result equals the in-memory call."""
    import attnnorm._shard as shard
    q, k, v = qkv(rng, lead=(2,), kv_lead=(1,))
    q = q * 4.0
    dq, dk, dv = chunked(q, k, v, qc=4, kc=4)
    parts = [shard._sp_candidates(
        {"dtype": "<f8", "n": N, "m": M, "causal": 0, "window": (-1, -1), "params": {},
         "scale": None, "fam": "sparse", "normalizer": "entmax"},
        {"q": q, "k": k[..., j:j + 4, :], "q0": 0, "k0": j, "nb": N, "ms": min(4, M - j),
         "params": {"scale": 0.5}}, None) for j in range(0, M, 4)]
    assert all(not p["more"].any() for p in parts)     # 4 keys per shard < _TOPK
    close(compute(an.attention(dq, dk, dv, "entmax"))[0], an.attention(q, k, v, "entmax"))


@pytest.fixture
def sub_blocks(monkeypatch):
    """Query sub-blocks of 2 rows (at most 4 per query chunk) for the sparse
    family, so the small arrays of these tests take that graph shape."""
    import attnnorm._shard as shard
    monkeypatch.setattr(shard, "_SP_ROWS", 2)
    monkeypatch.setattr(shard, "_SP_PARTS", 4)


def _steps(x, step):
    """The tasks of one step of the sharded graph of a dask collection."""
    return [key for key in dict(x.__dask_graph__())
            if (key[0] if isinstance(key, tuple) else key).startswith(f"attnnorm-{step}-")]


def test_sub_blocks_split_query_chunks():
    import attnnorm._shard as shard
    assert shard._sub_blocks((9,)) == (9,)
    assert shard._sub_blocks((70000, 3)) == (17500,) * 4 + (3,)
    assert shard._sub_blocks((40000,)) == (20000, 20000)
    assert shard._sub_blocks((16383, 16384)) == (16383, 16384)
    assert sum(shard._sub_blocks((65537,))) == 65537


@pytest.mark.parametrize("option", sorted(OPTIONS) + ["shard_hidden"])
@pytest.mark.parametrize("normalizer", ["sparsemax", "entmax"])
def test_sparse_query_sub_blocks(rng, sub_blocks, small_topk, normalizer, option):
    """One query chunk merged in sub-blocks: the caller's chunks come back,
    the values equal the in-memory call (with the recheck of the rows whose
    two candidates per shard do not cover the support)."""
    q, k, v = qkv(rng, lead=(2,), kv_lead=(1,))
    q = q * 0.3
    opts = _sparse_options(rng, option)
    dq, dk, dv = chunked(q, k, v, qc=N, kc=4)
    res = an.attention(dq, dk, dv, normalizer, **opts)
    assert res.chunks[-2] == (N,)
    # 4 sub-blocks of the 9 queries, each against the visible key shards
    assert len(_steps(res, "merge_candidates")) == 4
    assert len(_steps(res, "candidates")) > 4
    diag = an.diagnose(dq, dk, normalizer, **opts)
    assert all(x.chunks[-1] == (N,) for x in diag[:-1]) and diag[-1].chunks[-1] == (4, 4, 3)
    _compare_all(normalizer, opts, q, k, v, dq, dk, dv, np.float64)
    assert sum(small_topk) > 0


def test_cluster_sparse_query_sub_blocks(client, rng, sub_blocks):
    """The sub-block graph on the cluster: the same values as this process
    and as the in-memory call, with masks across shard boundaries."""
    q, k, v = qkv(rng, np.float32, lead=(2,), kv_lead=(1,))
    opts = {"mask": masks(rng), "causal": True, "window": (6, None)}
    dq, dk, dv = chunked(q, k, v, qc=N, kc=4)
    lazy = {nm: an.attention(dq, dk, dv, nm, **opts) for nm in ("sparsemax", "entmax")}
    got = client.compute(lazy, sync=True)
    for nm, out in got.items():
        assert_array_equal(out, lazy[nm].compute(**SYNC))
        close(out, an.attention(q, k, v, nm, **opts), np.float32)
