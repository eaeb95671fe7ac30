import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import attnnorm as an
from attnnorm import _reference as ref
from conftest import tol

DTYPES = [np.float32, np.float64]
OPTS = [{}, {"causal": True}, {"window": (2, 1)}, {"causal": True, "window": (3, None)}]


def _weights(rng, shape, dtype):
    return an.softmax(rng.normal(size=shape) * 2).astype(dtype)


# ---------------------------------------------------------------- row diagnostics

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", OPTS)
def test_row_diagnostics_match_reference(rng, dtype, opts):
    s = rng.normal(size=(2, 3, 6, 9))
    w = an.softmax(s, **opts).astype(dtype)
    w[0, 0, 1, 2] = 0.0          # an exact zero (0 log 0)
    rt, at = tol(dtype)
    H = an.entropy(w, **opts)
    assert H.dtype == dtype and H.shape == (2, 3, 6)
    assert_allclose(H, ref.entropy(w, **opts), rt * 10, at * 10)
    assert_allclose(an.entropy(w, base=2, **opts), ref.entropy(w, base=2, **opts), rt * 10, at * 10)
    assert_allclose(an.entropy(w, normalized=True, **opts),
                    ref.entropy(w, normalized=True, **opts), rt * 10, at * 10)
    assert_allclose(an.effective_support(w, **opts), np.exp(ref.entropy(w, **opts)), rt * 10, at * 10)
    assert_allclose(an.participation_ratio(w, **opts), ref.participation_ratio(w, **opts), rt * 10)
    assert_array_equal(an.support_size(w, threshold=0.05, **opts),
                       ref.support_size(w, threshold=0.05, **opts))
    assert an.support_size(w).dtype == np.int64
    assert_allclose(an.separation_margin(s.astype(dtype), **opts),
                    ref.separation_margin(s.astype(dtype), **opts), rt, at * 10)
    neg = (w - 0.1).astype(dtype)
    assert_allclose(an.negative_mass(neg, **opts), ref.negative_mass(neg, **opts), rt, at * 10)


def test_hand_values_uniform_and_onehot():
    m = 8
    uni = np.full((4, m), 1 / m)
    assert_allclose(an.entropy(uni), np.log(m), 1e-14)
    assert_allclose(an.entropy(uni, base=2), 3.0, 1e-14)
    assert_allclose(an.entropy(uni, normalized=True), 1.0, 1e-14)
    assert_allclose(an.effective_support(uni), m, 1e-13)
    assert_allclose(an.participation_ratio(uni), m, 1e-13)
    assert_allclose(an.frobenius_norm(uni), np.sqrt(4 / m), 1e-14)     # lower bound sqrt(n/m)
    onehot = np.eye(4, m)
    assert_array_equal(an.entropy(onehot), 0.0)
    assert_array_equal(an.participation_ratio(onehot), 1.0)
    assert_array_equal(an.support_size(onehot), 1)
    assert_allclose(an.frobenius_norm(onehot), 2.0, 1e-15)             # upper bound sqrt(n)
    assert_array_equal(an.jacobian_norm(onehot, "softmax"), 0.0)
    assert_array_equal(an.row_residual(onehot), 0.0)


def test_doubly_stochastic_and_negative_entries():
    ds = np.array([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]])
    for o in (1, 2, np.inf):
        assert_allclose(an.row_residual(ds, ord=o), 0.0, atol=1e-15)
        assert_allclose(an.column_residual(ds, ord=o), 0.0, atol=1e-15)
    rect = np.full((2, 4), 0.25)                        # columns sum to n/m = 1/2
    assert_allclose(an.column_residual(rect), 0.0, atol=1e-15)
    neg = np.array([[0.7, -0.2, 0.5], [-1.0, 2.0, 0.0]])
    assert_allclose(an.negative_mass(neg), [-0.2, -1.0], 1e-15)
    assert_allclose(an.row_residual(neg, ord=1), 0.0, atol=1e-15)
    # column sums (-0.3, 1.8, 0.5) against n/m = 2/3
    assert_allclose(an.column_residual(neg, ord=np.inf), 1.8 - 2 / 3, 1e-15)
    assert_allclose(an.column_residual(neg, ord=1), (0.3 + 2 / 3) + (1.8 - 2 / 3) + (2 / 3 - 0.5), 1e-15)
    # entropy ignores the negative weights (no a log a for a < 0)
    assert_allclose(an.entropy(neg[:1]), -(0.7 * np.log(0.7) + 0.5 * np.log(0.5)), 1e-15)


def test_empty_rows_nan_and_nan_isolation():
    w = np.array([[0.2, 0.8, 0.0], [0.0, 0.0, 0.0], [np.nan, 0.5, 0.5], [1.0, 0.0, 0.0]])
    mask = np.ones((4, 3), bool)
    mask[3] = False
    H = an.entropy(w, mask=mask)
    assert np.isnan(H[1]) and np.isnan(H[2]) and np.isnan(H[3])
    assert_allclose(H[0], -(0.2 * np.log(0.2) + 0.8 * np.log(0.8)), 1e-15)
    pr = an.participation_ratio(w, mask=mask)
    assert np.isnan(pr[1:]).all() and np.isfinite(pr[0])
    assert_array_equal(an.support_size(w, mask=mask), [2, 0, 2, 0])
    assert_array_equal(an.negative_mass(w, mask=mask)[[0, 1, 3]], 0.0)
    # n_i = 1: normalised entropy is 0/0
    assert np.isnan(an.entropy(np.ones((2, 1)), normalized=True)).all()
    assert_array_equal(an.entropy(np.ones((2, 1))), 0.0)


def test_margin_limits():
    s = np.array([[3.0, 1.0, 3.0], [2.0, -np.inf, -np.inf], [np.inf, np.inf, 0],
                  [1.0, np.nan, 0.0], [5.0, 9.0, -1.0]])
    mask = np.ones_like(s, bool)
    mask[4, 1] = False                               # masked top is ignored
    mg = an.separation_margin(s, mask=mask)
    assert mg[0] == 0.0 and mg[1] == np.inf and np.isnan(mg[2]) and np.isnan(mg[3])
    assert mg[4] == 6.0
    assert np.isnan(an.separation_margin(np.ones((3, 1)))).all()


def test_strided_views_out_and_one_row(rng):
    base = an.softmax(rng.normal(size=(7, 10)))
    for view in (base.T, base[::-1, ::-2], np.broadcast_to(base[:1], (4, 10))):
        assert_allclose(an.entropy(view), ref.entropy(view), 1e-12, 1e-13)
        assert_allclose(an.column_mass(view), ref.column_mass(view), 1e-12, 1e-13)
        assert_allclose(an.frobenius_norm(view), ref.frobenius_norm(view), 1e-12)
    out = np.empty(7)
    r = an.entropy(base, out=out)
    assert r is out
    assert_allclose(out, ref.entropy(base), 1e-12, 1e-13)
    out2 = np.empty(10)
    assert an.column_mass(base, out=out2) is out2
    assert_allclose(an.entropy(base[0]), ref.entropy(base[:1])[0], 1e-12)


# ---------------------------------------------------------------- column / sink mass

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", OPTS + [{"mask": "random"}])
def test_column_and_sink_mass(rng, dtype, opts):
    opts = dict(opts)
    if opts.get("mask") == "random":
        opts["mask"] = rng.random((6, 9)) > 0.3
        opts["mask"][:, 4] = False                      # a key nobody sees
    w = an.softmax(rng.normal(size=(2, 6, 9)), **opts).astype(dtype)
    cm = an.column_mass(w, **opts)
    rcm = ref.column_mass(w, **opts)
    assert cm.shape == (2, 9) and cm.dtype == dtype
    assert_allclose(cm, rcm, *tol(dtype))
    for sink in (0, 4, -1):
        assert_allclose(an.sink_mass(w, sink=sink, **opts), rcm[..., sink], *tol(dtype))


def test_causal_uniform_column_mass_by_hand():
    n = 5
    vis = ref.visible(n, n, causal=True)
    w = vis / vis.sum(-1, keepdims=True)
    expect = [np.mean([1 / (i + 1) for i in range(j, n)]) for j in range(n)]
    assert_allclose(an.column_mass(w, causal=True), expect, 1e-15)
    assert_allclose(an.sink_mass(w, causal=True), expect[0], 1e-15)
    # without causal every query counts (zeros included)
    assert_allclose(an.column_mass(w), w.mean(0), 1e-15)
    # bottom-right alignment with m > n: window (0, 0) -> key j seen only by i = j - (m - n)
    w2 = np.arange(12.0).reshape(3, 4)
    cm = an.column_mass(w2, window=(0, 0))
    assert np.isnan(cm[0])
    assert_allclose(cm[1:], [w2[0, 1], w2[1, 2], w2[2, 3]], 1e-15)


def test_bad_parameters():
    w = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="sink"):
        an.sink_mass(w, sink=3)
    with pytest.raises(ValueError, match="ord"):
        an.row_residual(w, ord=3)
    with pytest.raises(ValueError, match="base"):
        an.entropy(w, base=1.0)
    with pytest.raises(ValueError, match="window"):
        an.entropy(w, window=(-1, 0))
    with pytest.raises(ValueError, match="mask"):
        an.entropy(w, mask=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="threshold"):
        an.support_size(w, threshold=np.nan)
    with pytest.raises(ValueError, match="normalizer"):
        an.jacobian_norm(w, "nope")
    with pytest.raises(ValueError, match="temperature"):
        an.jacobian_norm(w, "softmax", temperature=0)
    with pytest.raises(ValueError, match="alpha"):
        an.jacobian_norm(w, "entmax", alpha=0.5)
    with pytest.raises(ValueError, match="top"):
        an.selectivity_distance(w, np.ones((3, 2)), 4)


# ---------------------------------------------------------------- matrix diagnostics

@pytest.mark.parametrize("dtype", DTYPES)
def test_matrix_diagnostics_match_reference(rng, dtype):
    a = rng.normal(size=(3, 5, 7)).astype(dtype)
    rt = 1e-5 if dtype == np.float32 else 1e-12
    for o in (1, 2, np.inf):
        assert_allclose(an.row_residual(a, ord=o), ref.row_residual(a, ord=o), rt)
        assert_allclose(an.column_residual(a, ord=o), ref.column_residual(a, ord=o), rt)
    assert_allclose(an.frobenius_norm(a), ref.frobenius_norm(a), rt)
    assert_allclose(an.rank_collapse(a), ref.rank_collapse(a), rt)
    assert an.frobenius_norm(a).shape == (3,)


def test_rank_collapse_limits():
    x = np.tile(np.arange(4.0), (6, 1))
    assert_allclose(an.rank_collapse(x), 0.0, atol=1e-15)
    assert np.isnan(an.rank_collapse(np.zeros((3, 2))))


def test_c4_frobenius_facts(rng):
    # row-stochastic N x N: 1 <= ||A||_F <= sqrt(N)
    for N in (4, 32):
        A = an.softmax(rng.normal(size=(5, N, N)) * 3)
        f = an.frobenius_norm(A)
        assert np.all(f >= 1 - 1e-12) and np.all(f <= np.sqrt(N) + 1e-12)
    # polynomial x^3 / sqrt(N) grows like sqrt(N), x^3 like N (#3)
    fro_scaled, fro_raw = [], []
    for N in (128, 512):
        q, k = rng.normal(size=(N, 64)), rng.normal(size=(N, 64))
        s = q @ k.T / 8
        fro_raw.append(an.frobenius_norm(s ** 3))
        fro_scaled.append(an.frobenius_norm(s ** 3 / np.sqrt(N)))
    assert 1.6 < fro_scaled[1] / fro_scaled[0] < 2.5
    assert 3.2 < fro_raw[1] / fro_raw[0] < 5.0


# ---------------------------------------------------------------- Jacobian norms

JAC_CASES = [("softmax", {"temperature": 0.7}), ("softmax", {}), ("sparsemax", {}),
             ("entmax", {"alpha": 1.5}), ("entmax", {"alpha": 1.25}), ("sigmoid", {}),
             ("relu", {"power": 1.0}), ("relu", {"power": 2.0}), ("polynomial", {"power": 3.0}),
             ("polynomial", {"power": 1.0}), ("ssmax", {"c": 0.8}), ("softmax_sink", {})]


def _jac_weights(rng, name, p, shape):
    s = rng.normal(size=shape)
    if name == "softmax":
        return an.softmax(s, temperature=p.get("temperature", 1.0))
    if name == "ssmax":
        return an.softmax(s * p["c"] * np.log(shape[-1]))
    if name == "softmax_sink":
        e = np.exp(s)
        return e / (1 + e.sum(-1, keepdims=True))
    if name in ("sparsemax", "entmax"):
        alpha = 2.0 if name == "sparsemax" else p["alpha"]
        if "entmax" in an.NORMALIZERS:
            return an.entmax(s * 2, alpha=alpha, n_iter=100)
        from entmax import entmax_bisect
        import torch
        return entmax_bisect(torch.tensor(s * 2), alpha=alpha, dim=-1, n_iter=100).numpy()
    m = shape[-1]
    if name == "sigmoid":
        return 1 / (1 + np.exp(-(s - np.log(m))))
    pw = p["power"]
    if name == "relu":
        return np.maximum(s, 0) ** pw / m
    return s ** pw / np.sqrt(m)


@pytest.mark.parametrize("name,p", JAC_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_jacobian_norm_vs_explicit_matrix(rng, name, p, dtype):
    a = _jac_weights(rng, name, p, (6, 7)).astype(dtype)
    spec = an.jacobian_norm(a, name, **p)
    fro = an.jacobian_norm(a, name, "fro", **p)
    assert spec.dtype == dtype
    for i, row in enumerate(a.astype(np.float64)):
        J = ref.jacobian_matrix(row, name, **p)
        rt = 2e-4 if dtype == np.float32 else 1e-9
        assert_allclose(spec[i], np.linalg.norm(J, 2), rt, 1e-12)
        assert_allclose(fro[i], np.linalg.norm(J), rt, 1e-12)


def test_jacobian_with_mask_uses_n_i(rng):
    s = rng.normal(size=(5, 6))
    w = np.maximum(s, 0) * np.tril(np.ones((5, 6)), 1)
    ni = np.tril(np.ones((5, 6)), 1).sum(-1)
    w = w / ni[:, None]
    j = an.jacobian_norm(w, "relu", causal=True)
    expect = np.where((w > 0).any(-1), 1 / ni, 0.0)
    assert_allclose(j, expect, 1e-15)


def test_softpick_jacobian_vs_finite_differences(rng):
    s = rng.normal(size=(3, 5))
    s[0, :2] = -0.5                                 # some non-positive scores

    def softpick(x):
        u = np.exp(x) - 1
        return np.maximum(u, 0) / (np.abs(u).sum() + 1e-8)
    a = np.array([softpick(r) for r in s])
    for o in (2, "fro"):
        got = an.jacobian_norm(a, "softpick", o, scores=s)
        for i, r in enumerate(s):
            h = 1e-6
            J = np.array([(softpick(r + h * e) - softpick(r - h * e)) / (2 * h)
                          for e in np.eye(5)]).T
            assert_allclose(got[i], np.linalg.norm(J, 2 if o == 2 else "fro"), 1e-6)
    with pytest.raises(ValueError, match="scores"):
        an.jacobian_norm(a, "softpick")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-30, 30), min_size=1, max_size=12),
       st.sampled_from([1.0, 0.1, 0.01]))
def test_c5_softmax_jacobian_bounds(scores, T):
    a = an.softmax(np.array(scores), temperature=T)
    j = an.jacobian_norm(a, "softmax", temperature=T)
    # exact supremum 1/(2T); lambda_max >= the largest diagonal entry a_i(1 - a_i)/T
    assert j <= 1 / (2 * T) * (1 + 1e-12)
    assert j >= np.max(a * (1 - a)) / T * (1 - 1e-9) - 1e-300
    J = (np.diag(a) - np.outer(a, a)) / T
    assert_allclose(j, np.linalg.eigvalsh(J).max(), 1e-9, 1e-12 / T)


def test_c5_supremum_attained_and_large_m(rng):
    for T in (1.0, 0.1, 0.01):
        assert_allclose(an.jacobian_norm(np.array([0.5, 0.5]), "softmax", temperature=T),
                        1 / (2 * T), 1e-14)
    a = an.softmax(rng.normal(size=(2, 300)) * 4)
    j = an.jacobian_norm(a, "softmax")
    for i in range(2):
        assert_allclose(j[i], np.linalg.eigvalsh(np.diag(a[i]) - np.outer(a[i], a[i])).max(), 1e-9)
    # large m (no m x m matrix is formed): lambda solves 1 = sum a_i^2 / (a_i - lambda)
    a = an.softmax(rng.normal(size=(2, 20000)) * 3)
    j = an.jacobian_norm(a, "softmax")
    for i in range(2):
        assert np.max(a[i] * (1 - a[i])) <= j[i] <= 0.5
        assert_allclose(np.sum(a[i] ** 2 / (a[i] - j[i])), 1.0, 1e-6)


# ---------------------------------------------------------------- bounds and geometry

@pytest.mark.parametrize("T", [1.0, 0.5])
def test_c5_vanishing_bounds_hold(rng, T):
    q = rng.normal(size=(2, 6, 4)) * 0.5
    k = rng.normal(size=(2, 9, 4)) * 0.5
    for opts in ({}, {"causal": True}):
        lo, hi = an.vanishing_bounds(q, k, temperature=T, **opts)
        a = an.softmax(q @ np.swapaxes(k, -1, -2), temperature=T, **opts)
        vis = ref.visible(6, 9, **opts)
        assert np.all(np.where(vis, a >= lo[..., None] * (1 - 1e-12), True))
        assert np.all(np.where(vis, a <= hi[..., None] * (1 + 1e-12), True))
        L = vis.sum(-1)
        assert_allclose(lo * hi, np.broadcast_to(1 / L ** 2, lo.shape), 1e-12)


def test_selectivity_distance_and_separability(rng):
    a = an.softmax(rng.normal(size=(4, 8)) * 2)
    x = rng.normal(size=(8, 3))
    top = 3
    d = an.selectivity_distance(a, x, top)
    for i in range(4):
        order = np.argsort(-a[i], kind="stable")
        ti, ri = order[:top], order[top:]
        expect = np.linalg.norm(a[i, ri] @ x[ri] - a[i, ti] @ x[ti])
        assert_allclose(d[i], expect, 1e-12)
    # top = m: the rest is empty -> distance = ||context||
    assert_allclose(an.selectivity_distance(a, x, 8), np.linalg.norm(a @ x, axis=-1), 1e-12)
    # separability: orthogonal one-hot tokens, top token on the context direction
    xe = np.eye(3)
    w = np.array([[0.8, 0.1, 0.1]])
    assert_allclose(an.geometric_separability(w, xe, 1), [1.0])
    g = an.geometric_separability(a, x, top)
    assert g.shape == (4,) and np.all((g >= 0) & (g <= 1))


def test_c8_kobayashi_identities(rng):
    H, n, e = 3, 5, 4
    a = an.softmax(rng.normal(size=(H, n, n)))
    x = rng.normal(size=(n, e))
    Wv = rng.normal(size=(H, e, e)) * 0.5
    fx = np.einsum("je,hef->hjf", x, Wv)
    gamma, beta = rng.normal(size=e), rng.normal(size=e)
    r = an.mixing_ratios(a, fx, x, gamma=gamma, beta=beta, eps=1e-12, return_vectors=True)
    y = np.einsum("hij,hje->ie", a, fx)
    v = r.vectors
    assert_allclose(v["attn_res"].sum(1), y + x, 1e-12, 1e-12)
    pre = y + x
    ln = gamma * (pre - pre.mean(-1, keepdims=True)) / np.sqrt(pre.var(-1, keepdims=True) + 1e-12) + beta
    assert_allclose(v["attn_res_ln"].sum(1) + beta, ln, 1e-12, 1e-12)
    assert_allclose(v["ln_out"], ln, 1e-12, 1e-12)
    for ratio, key in ((r.attn, "attn"), (r.attn_res, "attn_res"), (r.attn_res_ln, "attn_res_ln")):
        assert np.all((ratio >= 0) & (ratio <= 1))
        w = v[key]
        own = np.linalg.norm(w[np.arange(n), np.arange(n)], axis=-1)
        mix = np.linalg.norm(w.sum(1) - w[np.arange(n), np.arange(n)], axis=-1)
        assert_allclose(ratio, mix / (mix + own), 1e-12)
    nrm = an.attention_norms(a, fx)
    assert_allclose(nrm, np.linalg.norm(a[..., None] * fx[:, None, :, :], axis=-1), 1e-12)


# ---------------------------------------------------------------- streamed diagnose

def _normalizer_names():
    return [nm for nm in an.NORMALIZERS if nm != "sinkhorn" and hasattr(an._core, "diagnose_" + nm)]


DIAG_OPTS = [{}, {"causal": True}, {"window": (3, 2)}, {"mask": "random"}]


@pytest.mark.parametrize("name", _normalizer_names())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", DIAG_OPTS)
def test_diagnose_equals_materialised(rng, name, dtype, opts):
    opts = dict(opts)
    n, m, d = 23, 31, 5
    if opts.get("mask") == "random":
        opts["mask"] = rng.random((n, m)) > 0.4
        opts["mask"][3] = False
    q = rng.normal(size=(2, n, d)).astype(dtype)
    k = rng.normal(size=(2, m, d)).astype(dtype)
    D = an.diagnose(q, k, name, **opts)
    scale = 1 / np.sqrt(d)
    s = (scale * (q.astype(np.float64) @ np.swapaxes(k, -1, -2).astype(np.float64))).astype(dtype)
    norm = an.NORMALIZERS[name]
    R = ref.diagnose(q, k, lambda sc: norm(sc.astype(dtype), **opts), **opts)
    rt, at = (2e-4, 2e-5) if dtype == np.float32 else (1e-9, 1e-11)
    for key in ("entropy", "max_weight", "sink_weight", "margin", "column_mass"):
        got = getattr(D, key)
        assert got.dtype == dtype and got.shape == R[key].shape, key
        assert_allclose(got, R[key], rt, at, err_msg=key)
    if dtype == np.float64:
        assert_array_equal(D.support, R["support"])
    else:   # float32 weights at the threshold 0 may differ for tiny values only
        assert np.mean(D.support == R["support"]) > 0.9
    assert D.support.dtype == np.int64
    del s


@pytest.mark.parametrize("dtype,m", [(np.float32, 1024), (np.float64, 512)])
@pytest.mark.parametrize("causal", [False, True])
def test_diagnose_score_rows_a_multiple_of_4kib(rng, dtype, m, causal):
    """Rows of scores 4 KiB long are stored one panel further apart in
    diagnose's block (as in fused attention): the statistics still equal
    those of the materialised weights."""
    q = rng.normal(size=(1, 40, 8)).astype(dtype)
    k = rng.normal(size=(1, m, 8)).astype(dtype)
    D = an.diagnose(q, k, "entmax", causal=causal)
    R = ref.diagnose(q, k, lambda sc: an.NORMALIZERS["entmax"](sc.astype(dtype), causal=causal),
                     causal=causal)
    rt, at = (2e-4, 2e-5) if dtype == np.float32 else (1e-9, 1e-11)
    for key in ("entropy", "max_weight", "sink_weight", "margin", "column_mass"):
        assert_allclose(getattr(D, key), R[key], rt, at, err_msg=key)


def test_diagnose_threads_bit_identical(rng):
    q = rng.normal(size=(3, 130, 16))
    k = rng.normal(size=(3, 150, 16))
    old = an.get_num_threads()
    try:
        an.set_num_threads(1)
        a = an.diagnose(q, k, causal=True)
        an.set_num_threads(2)
        b = an.diagnose(q, k, causal=True)
    finally:
        an.set_num_threads(old)
    for x, y in zip(a, b):
        assert_array_equal(x, y)


def test_diagnose_empty_rows_and_broadcast(rng):
    q = rng.normal(size=(2, 1, 4, 3))           # grouped queries broadcast against k
    k = rng.normal(size=(1, 3, 6, 3))
    mask = np.ones((4, 6), bool)
    mask[1] = False
    D = an.diagnose(q, k, mask=mask, temperature=0.5)
    assert D.entropy.shape == (2, 3, 4) and D.column_mass.shape == (2, 3, 6)
    assert np.isnan(D.entropy[..., 1]).all() and np.isnan(D.margin[..., 1]).all()
    assert_array_equal(D.max_weight[..., 1], 0)
    assert_array_equal(D.support[..., 1], 0)
    w = an.softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(3), temperature=0.5, mask=mask)
    assert_allclose(D.column_mass, an.column_mass(w, mask=mask), 1e-12)
    # -inf visible scores only through the mask of the normalizer: all keys masked for m = 0
    D0 = an.diagnose(np.ones((2, 3)), np.ones((0, 3)))
    assert np.isnan(D0.entropy).all() and D0.column_mass.shape == (0,)


def test_diagnose_nan_row_isolated(rng):
    q = rng.normal(size=(5, 4))
    k = rng.normal(size=(7, 4))
    q[2, 0] = np.nan
    D = an.diagnose(q, k)
    assert np.isnan(D.entropy[2]) and np.isfinite(np.delete(D.entropy, 2)).all()


def test_diagnose_bad_parameters(rng):
    q = rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match="sinkhorn"):
        an.diagnose(q, q, "sinkhorn")
    with pytest.raises(ValueError, match="normalizer"):
        an.diagnose(q, q, "nope")
    with pytest.raises(ValueError, match="temperature"):
        an.diagnose(q, q, temperature=-1)
    with pytest.raises(ValueError, match="feature size"):
        an.diagnose(q, rng.normal(size=(3, 5)))
    with pytest.raises(ValueError, match="scale"):
        an.diagnose(q, q, scale=np.nan)


def test_diagnose_special_scores_match_materialised():
    # +inf, -inf and NaN scores: the fused softmax path must hand these rows
    # to the generic kernel and agree with the materialised diagnostics
    q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [np.nan, 0.0]])
    k = np.array([[np.inf, 0.0], [1.0, 0.0], [np.inf, 1.0], [-np.inf, 2.0]])
    with np.errstate(invalid="ignore"):
        D = an.diagnose(q, k, scale=1.0)
        s = q @ k.T
    R = ref.diagnose(q, k, an.softmax, scale=1.0)
    for key in ("entropy", "max_weight", "sink_weight", "margin", "column_mass"):
        assert_allclose(getattr(D, key), R[key], 1e-12, 1e-14, err_msg=key)
    assert_array_equal(D.support, R["support"])
    # row 0 has two +inf scores (mass 1/2 each); 0 * inf = NaN poisons row 1
    assert_allclose(D.entropy[0], np.log(2), 1e-15)
    assert np.isnan(D.entropy[1]) and np.isnan(D.entropy[3])
    del s


def test_diagnose_out_and_portable_path(rng, tmp_path):
    import subprocess
    import sys
    q = rng.normal(size=(40, 8))
    k = rng.normal(size=(50, 8))
    outs = (np.empty(40), np.empty(40), np.empty(40), np.empty(40),
            np.empty(40, np.int64), np.empty(50))
    D = an.diagnose(q, k, causal=True, out=outs)
    assert all(a is b for a, b in zip(D, outs))
    # the portable (non-AVX2) helpers give the same answers
    np.save(tmp_path / "q.npy", q)
    np.save(tmp_path / "k.npy", k)
    code = ("import numpy as np, attnnorm as an;"
            f"q=np.load(r'{tmp_path / 'q.npy'}'); k=np.load(r'{tmp_path / 'k.npy'}');"
            "D=an.diagnose(q,k,causal=True); w=an.softmax(q@k.T/np.sqrt(8),causal=True);"
            f"np.savez(r'{tmp_path / 'r.npz'}', *D, ent=an.entropy(w,causal=True),"
            "j=an.jacobian_norm(w,'softmax'), m=an.separation_margin(w))")
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(an.__file__)))
    env = dict(os.environ, ATTNNORM_CPU="default", PYTHONPATH=root)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=str(tmp_path))
    r = np.load(tmp_path / "r.npz")
    for i, x in enumerate(D):
        assert_allclose(r[f"arr_{i}"], x, 1e-12, 1e-14)
    w = an.softmax(q @ k.T / np.sqrt(8), causal=True)
    assert_allclose(r["ent"], an.entropy(w, causal=True), 1e-13)
    assert_allclose(r["j"], an.jacobian_norm(w, "softmax"), 1e-12)
    assert_allclose(r["m"], an.separation_margin(w), 1e-14)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 9), st.integers(0, 2 ** 31 - 1), st.booleans())
def test_row_diagnostic_bounds_property(m, seed, causal):
    r = np.random.default_rng(seed)
    s = r.normal(size=(4, m)) * r.uniform(0.1, 10)
    w = an.softmax(s, causal=causal)
    ni = ref.visible(4, m, causal=causal).sum(-1)
    H = an.entropy(w, causal=causal)
    ok = ni > 0
    assert np.all(H[ok] >= -1e-12) and np.all(H[ok] <= np.log(ni[ok]) + 1e-12)
    pr = an.participation_ratio(w, causal=causal)
    assert np.all(pr[ok] >= 1 - 1e-12) and np.all(pr[ok] <= ni[ok] * (1 + 1e-12))
    es = an.effective_support(w, causal=causal)
    # 1 <= exp(H) and 1/sum a^2 <= exp(H) (Renyi entropies decrease in the order)
    assert np.all(es[ok] >= 1 - 1e-12) and np.all(pr[ok] <= es[ok] * (1 + 1e-12))
    if ok.all():     # row-stochastic: sqrt(n/m) <= ||A||_F <= sqrt(n)
        f = an.frobenius_norm(w)
        assert np.sqrt(4 / m) - 1e-12 <= f <= 2 + 1e-12


def test_diagnose_memory_is_linear(tmp_path):
    # n = m = 8192: the weights alone would be 512 MiB in float64
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(an.__file__)))
    # VmHWM (this process's peak RSS): ru_maxrss would include the parent's
    code = ("import numpy as np, os, attnnorm as an\n"
            "hwm = lambda: [int(l.split()[1]) * 1024 for l in open('/proc/self/status')"
            " if l.startswith('VmHWM')][0]\n"
            "r = np.random.default_rng(0); q = r.normal(size=(8192, 16)); k = r.normal(size=(8192, 16))\n"
            "base = int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')\n"
            "D = an.diagnose(q, k, causal=True)\n"
            "peak = hwm()\n"
            "print((peak - base) / 2 ** 20, float(np.nansum(D.column_mass)))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=root), cwd=str(tmp_path))
    mib, colsum = map(float, out.stdout.split())
    assert mib < 64
    assert colsum > 0


def test_per_head_parameters_and_materialised_threads(rng):
    q = rng.normal(size=(3, 20, 4))
    k = rng.normal(size=(3, 25, 4))
    t = np.array([0.3, 1.0, 3.0])
    D = an.diagnose(q, k, temperature=t, causal=True)
    for h in range(3):
        w = an.softmax(q[h] @ k[h].T / 2, temperature=t[h], causal=True)
        assert_allclose(D.entropy[h], an.entropy(w, causal=True), 1e-12)
        assert_allclose(an.jacobian_norm(w, "softmax", temperature=t[h]),
                        an.jacobian_norm(w[None], "softmax", temperature=t[h:h + 1])[0], 1e-15)
    # materialised kernels: bit-identical for 1 and 2 threads on a multi-block problem
    a = an.softmax(rng.normal(size=(2, 300, 700)), causal=True)
    old = an.get_num_threads()
    res = []
    try:
        for th in (1, 2):
            an.set_num_threads(th)
            res.append((an.entropy(a), an.column_mass(a, causal=True), an.jacobian_norm(a),
                        an.rank_collapse(a), an.separation_margin(a)))
    finally:
        an.set_num_threads(old)
    for x, y in zip(*res):
        assert_array_equal(x, y)


FD_CASES = [("softmax", {"temperature": 0.5}), ("ssmax", {"c": 0.8}), ("softmax_sink", {}),
            ("sigmoid", {}), ("relu", {"power": 2.0}), ("polynomial", {"power": 3.0}),
            ("sparsemax", {}), ("entmax", {"alpha": 1.5}), ("softpick", {})]


@pytest.mark.parametrize("name,p", FD_CASES)
def test_jacobian_norm_vs_finite_differences_of_the_normalizer(rng, name, p):
    if name not in an.NORMALIZERS:
        pytest.skip(f"{name} not built in this tree")
    f = an.NORMALIZERS[name]
    s = rng.normal(size=(5, 7)) * 1.5
    a = f(s, **p)
    extra = {"scores": s} if name == "softpick" else {}
    for o in (2, "fro"):
        j = an.jacobian_norm(a, name, o, **p, **extra)
        for i in range(5):
            h = 1e-6
            J = np.array([(f(s[i] + h * e, **p) - f(s[i] - h * e, **p)) / (2 * h)
                          for e in np.eye(7)]).T
            assert_allclose(j[i], np.linalg.norm(J, 2 if o == 2 else "fro"), 1e-5, 1e-8)
