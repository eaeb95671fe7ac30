"""sparsemax, entmax, stochastic_softmax and sinkhorn against the float64
references, their identities, edge cases and properties."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import attnnorm as an
from attnnorm import _reference as ref
from conftest import run_portable_and_best, tol

DTYPES = [np.float32, np.float64]
MASKINGS = [{}, {"causal": True}, {"window": (2, 1)}, {"causal": True, "window": (3, None)}]


def _sums_one(w, dtype, opts):
    """Rows that see a key sum to 1 (causal n > m leaves the first rows empty)."""
    seen = ref.visible(*w.shape[-2:], **opts).any(-1)
    assert_allclose(w.sum(-1)[..., seen], 1.0, *_tol32(dtype, 4))
    assert_array_equal(w[..., ~seen, :], 0.0)


def _tol32(dtype, scale=1.0):
    rt, at = tol(dtype)
    return rt * scale, at * scale


# --------------------------------------------------------------------------
# vs reference, float32 and float64, masks
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", MASKINGS)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (6, 4)])
def test_sparsemax_matches_reference(rng, dtype, opts, shape):
    s = (2 * rng.normal(size=shape)).astype(dtype)
    w, tau, sup = an.sparsemax(s, return_tau=True, **opts)
    assert w.dtype == dtype and w.shape == s.shape
    assert tau.dtype == dtype and tau.shape == s.shape[:-1] and sup.dtype == np.int64
    rw, rtau, rsup = ref.sparsemax(s, return_tau=True, **opts)
    assert_allclose(w, rw, *_tol32(dtype, 4))
    assert_allclose(tau, rtau, *_tol32(dtype, 4))
    assert_array_equal(sup, np.count_nonzero(w, axis=-1))
    _sums_one(w, dtype, opts)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [1.0, 1.001, 1.25, 1.5, 1.75, 2.0, 3.0])
@pytest.mark.parametrize("opts", MASKINGS[:2])
def test_entmax_matches_reference(rng, dtype, alpha, opts):
    s = (2 * rng.normal(size=(2, 5, 9))).astype(dtype)
    w, tau, sup = an.entmax(s, alpha=alpha, return_tau=True, **opts)
    assert w.dtype == dtype and w.shape == s.shape
    rw, rtau, rsup = ref.entmax(s, alpha=alpha, return_tau=True, **opts)
    assert_allclose(w, rw, *_tol32(dtype, 50 if alpha == 1.001 else 4))
    assert_allclose(tau, rtau, *_tol32(dtype, 50 if alpha == 1.001 else 4))
    assert_array_equal(sup, np.count_nonzero(w, axis=-1))
    _sums_one(w, dtype, opts)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [1.05, 1.3, 1.7, 2.5, 4.0])
def test_entmax_bisection_long_rows(rng, dtype, alpha):
    """Rows long enough for the bisection path's bounds, candidate removals
    and vector loops (supports from a few keys to most of the row), with
    ties, a single huge score and a masked half, against the reference."""
    s = np.concatenate([rng.normal(size=(3, 1500)) * sc for sc in (0.3, 1.0, 4.0)])
    s[0, :700] = s[0, 800]                         # many ties below the maximum
    s[1, 5] = 50.0                                 # one key takes (nearly) all
    s = s.astype(dtype)
    for opts in ({}, {"causal": True}):
        w, tau, sup = an.entmax(s, alpha=alpha, return_tau=True, **opts)
        rw, rtau, _ = ref.entmax(s, alpha=alpha, return_tau=True, **opts)
        assert_allclose(w, rw, *_tol32(dtype, 4))
        assert_allclose(tau, rtau, *_tol32(dtype, 4))
        assert_array_equal(sup, np.count_nonzero(w, axis=-1))
        _sums_one(w, dtype, opts)


def _entmax_hard_rows(rng, n):
    """Rows that stress the bisection path's bounds, Newton steps and their
    last first-order step: ties, one huge score, tiny and large-offset
    scores, -inf keys (never all), a flat row (every key in the support);
    the first n keys of rows of max(n, 3)."""
    m, n = n, max(n, 3)
    rows = [rng.normal(size=n),
            np.full(n, 0.7),                                   # all tied
            np.where(np.arange(n) % 3 == 0, 2.0, rng.normal(size=n) - 3.0),  # tied top third
            np.r_[50.0, rng.normal(size=n - 1)],               # one key takes nearly all
            np.r_[1.0, 1.0, np.full(n - 2, -40.0)],            # two tied, the rest far below
            rng.normal(size=n) * 1e-30,                        # tiny scores
            1e4 + rng.normal(size=n),                          # large offset
            rng.normal(size=n) * 0.01,                         # flat: all in the support
            np.r_[0.5, np.where(rng.random(n - 1) < 0.5, -np.inf, rng.normal(size=n - 1) * 4.0)]]
    return np.stack(rows)[:, :m]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [1.01, 1.1, 1.3, 1.7, 1.99, 2.5])
@pytest.mark.parametrize("n", [1, 2, 37, 1100])
def test_entmax_bisection_hard_rows(rng, dtype, alpha, n):
    """The bisection path on hard rows, short and long, alpha near 1 and 2:
    weights and tau against the reference, the support listed, sums of 1."""
    s = _entmax_hard_rows(rng, n).astype(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        w, tau, sup = an.entmax(s, alpha=alpha, return_tau=True)
        rw, rtau, _ = ref.entmax(s.astype(np.float64), alpha=alpha, return_tau=True)
    assert np.isfinite(w).all()
    assert_allclose(w, rw, *_tol32(dtype, 4))
    assert_allclose(tau, rtau, *_tol32(dtype, 4))
    assert_array_equal(sup, np.count_nonzero(w, axis=-1))
    assert_allclose(w.sum(-1), 1.0, *_tol32(dtype, 4))


@pytest.mark.parametrize("alpha", [1.01, 1.3, 1.6, 1.99])
def test_entmax_bisection_float_rows_as_accurate_as_the_exact_root(alpha):
    """Float rows with alpha <= 2 take their last steps in the evaluation of
    the weights (from a Halley estimate of theta*, a correction of second
    order in s accepted only when the first-order weights' error bound is
    small): on long rows (hundreds of candidates: the sampled start) and
    the short causal ones, every weight within 3e-7 of the float64
    reference (what float powers at the exact root give) and tau within
    2e-6."""
    rng = np.random.default_rng(21)
    for sc in (0.5, 1.0, 3.0):
        s = (rng.normal(size=(40, 2048)) * sc).astype(np.float32)
        for opts in ({}, {"causal": True}):
            w, tau, sup = an.entmax(s, alpha=alpha, return_tau=True, **opts)
            rw, rtau, _ = ref.entmax(s.astype(np.float64), alpha=alpha, return_tau=True, **opts)
            assert np.abs(w - rw).max() <= 3e-7, (sc, opts)
            assert np.abs(tau - rtau).max() <= 2e-6 * max(1.0, np.abs(rtau).max()), (sc, opts)
            assert_array_equal(sup, np.count_nonzero(w, axis=-1))


def test_entmax_float_candidates_as_scores_on_every_path(tmp_path):
    """Float rows with 1 < alpha < 2 keep their candidates as the scores
    (float values, the start's sums in float lanes, d = z - max z formed in
    the power sums): on rows shifted far from 0 (where a float z - max z
    would round, were it not exact), rows of a few candidates and rows with
    hundreds, every weight within 3e-7 of the float64 reference and the
    support between the reference's weights above 1e-9 and its nonzeros, on
    the portable, AVX2 and best paths."""
    from conftest import run_variants
    import attnnorm as an
    rng = np.random.default_rng(5)
    base = rng.normal(size=(24, 1500))
    rows = [base[:8] * 0.5, base[8:16] + 1000.0, base[16:] * 2.0 - 3.0e4]
    s = np.concatenate(rows).astype(np.float32)
    s[0, 70:] = -np.inf          # a short row: no sampled start
    np.savez(tmp_path / "in.npz", s=s)
    code = ("import sys, numpy as np, attnnorm as an\n"
            "s = np.load(sys.argv[1])['s']\n"
            "np.savez(sys.argv[2], path=an.simd_path(), **{f'a{a}': an.entmax(s, alpha=a)"
            " for a in (1.05, 1.3, 1.8)})\n")
    variants = [("default", {"ATTNNORM_CPU": "default"}), ("best", {})]
    if an.simd_best() == "avx512":
        variants.append(("avx2", {"ATTNNORM_CPU": "avx2"}))
    outs = run_variants(tmp_path, code, variants)
    for a in (1.05, 1.3, 1.8):
        want = ref.entmax(s.astype(np.float64), alpha=a)
        for tag, out in outs.items():
            w = out[f"a{a}"]
            assert np.abs(w - want).max() <= 3e-7, (tag, a)
            nz = np.count_nonzero(w, -1)
            assert (nz >= np.count_nonzero(want > 1e-9, -1)).all(), (tag, a)
            assert (nz <= np.count_nonzero(want, -1)).all(), (tag, a)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_iter", [1, 4, 12, 30, 50, 80])
def test_entmax_bisection_n_iter_grid(rng, dtype, n_iter):
    """theta is the midpoint of the cell, among 2^n_iter of [0, top], that
    holds the root theta* (what n_iter halvings give), the weights
    [1 + am1 (z - max z - theta)]_+^(1/am1) renormalised; emulated here
    from the reference's root."""
    alpha, n = 1.3, 500
    am1 = alpha - 1.0
    s = np.concatenate([rng.normal(size=(3, n)) * sc for sc in (0.5, 1.0, 3.0)]).astype(dtype)
    w, tau, _ = an.entmax(s, alpha=alpha, n_iter=n_iter, return_tau=True)
    z = s.astype(np.float64)
    mx = z.max(-1, keepdims=True)
    _, rtau, _ = ref.entmax(z, alpha=alpha, return_tau=True)
    root = (rtau[:, None] - am1 * mx + 1.0) / am1               # theta*
    top = -np.expm1(-am1 * np.log(n)) / am1
    cells = 2.0 ** n_iter
    j = np.clip(np.floor(root / top * cells), 0, cells - 1)
    theta = top * (j + 0.5) / cells
    p = np.maximum(1.0 + am1 * (z - mx - theta), 0.0) ** (1.0 / am1)
    expect = p / p.sum(-1, keepdims=True)
    assert_allclose(w, expect, *_tol32(dtype, 4))
    assert_allclose(tau, (am1 * (theta + mx) - 1.0)[:, 0], *_tol32(dtype, 4))


def test_entmax_bisection_portable_and_simd_agree(tmp_path, rng):
    """The float power sums, masked sums and compaction of the portable path
    and the best SIMD path give the same weights (to the float tolerance)."""
    from conftest import run_variants
    s = np.concatenate([rng.normal(size=(4, 777)) * sc for sc in (0.5, 2.0)])
    np.savez(tmp_path / "in.npz", s=s)
    code = ("import sys, numpy as np, attnnorm as an\n"
            "s = np.load(sys.argv[1])['s']\n"
            "np.savez(sys.argv[2], **{f'{a}{dt.__name__}': an.entmax(s.astype(dt), alpha=a)"
            " for a in (1.2, 1.7, 3.0) for dt in (np.float32, np.float64)})\n")
    outs = run_variants(tmp_path, code, (("default", {"ATTNNORM_CPU": "default"}),
                                         ("best", {})))
    for key in outs["best"].files:
        dt = np.float32 if key.endswith("float32") else np.float64
        assert_allclose(outs["default"][key], outs["best"][key], *_tol32(dt, 4), err_msg=key)


def test_entmax_against_entmax_package(rng):
    torch = pytest.importorskip("torch")
    em = pytest.importorskip("entmax")
    s = rng.normal(size=(7, 33)) * 3
    ts = torch.from_numpy(s)
    assert_allclose(an.entmax(s), em.entmax15(ts, dim=-1).numpy(), 1e-12, 1e-13)
    assert_allclose(an.sparsemax(s), em.sparsemax(ts, dim=-1).numpy(), 1e-12, 1e-13)
    assert_allclose(an.entmax(s, alpha=1.3), em.entmax_bisect(ts, alpha=1.3, dim=-1, n_iter=50).numpy(),
                    1e-9, 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", MASKINGS)
def test_sinkhorn_matches_reference(rng, dtype, opts):
    s = rng.normal(size=(2, 6, 9)).astype(dtype)
    for n_iter, eps in [(1, 1.0), (2, 0.5), (5, 1.0), (8, 2.0)]:
        w = an.sinkhorn(s, n_iter=n_iter, eps=eps, **opts)
        assert w.dtype == dtype and w.shape == s.shape
        assert_allclose(w, ref.sinkhorn(s, n_iter=n_iter, eps=eps, **opts), *_tol32(dtype, 10))


@pytest.mark.parametrize("nm", [(4, 9), (9, 4), (7, 7)])
def test_sinkhorn_rectangular_causal(rng, nm):
    s = rng.normal(size=nm)
    for causal in (False, True):
        w = an.sinkhorn(s, n_iter=6, causal=causal)
        assert_allclose(w, ref.sinkhorn(s, n_iter=6, causal=causal), 1e-11, 1e-13)
        if causal:
            assert_array_equal(w[~ref.visible(*nm, causal=True)], 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_boolean_masks(rng, dtype):
    s = rng.normal(size=(3, 5, 8)).astype(dtype)
    mask = rng.random((3, 1, 5, 8)) > 0.3
    s4 = np.broadcast_to(s, (3, 3, 5, 8))
    for f, kw in [("sparsemax", {}), ("entmax", {}), ("entmax", {"alpha": 1.2}),
                  ("sinkhorn", {"n_iter": 3})]:
        w = getattr(an, f)(s4, mask=mask, **kw)
        assert w.shape == (3, 3, 5, 8)
        assert_array_equal(w[~np.broadcast_to(mask, w.shape)], 0)
        assert_allclose(w, getattr(ref, f)(s4, mask=mask, **kw), *_tol32(dtype, 10))


# --------------------------------------------------------------------------
# edge cases: empty rows, -inf, NaN, +-inf, huge values, m = 1
# --------------------------------------------------------------------------

ALL = [("sparsemax", {}), ("entmax", {}), ("entmax", {"alpha": 1.3}), ("entmax", {"alpha": 1.0}),
       ("stochastic_softmax", {"trials": 50}), ("sinkhorn", {}), ("sinkhorn", {"n_iter": 1})]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", ALL)
def test_empty_rows_all_policies(rng, dtype, name, kw):
    f = getattr(an, name)
    s = rng.normal(size=(5, 6)).astype(dtype)
    s[3] = -np.inf                     # a row of -inf
    mask = np.ones((5, 6), bool)
    mask[1] = False                    # a fully masked row
    w = f(s, mask=mask, **kw)
    assert_array_equal(w[[1, 3]], 0.0)
    ok = [0, 2, 4]
    assert np.all(np.isfinite(w[ok])) and np.all(w[ok] >= 0)
    assert_allclose(w[ok].sum(-1), 1.0, *_tol32(dtype, 4))
    wn = f(s, mask=mask, empty="nan", **kw)
    assert np.isnan(wn[1]).all()
    assert np.isnan(wn[3]).all()
    assert_array_equal(wn[ok], w[ok])
    with pytest.raises(ValueError, match="empty='raise'"):
        f(s, mask=mask, empty="raise", **kw)
    if name != "stochastic_softmax":
        r = getattr(ref, name)(s, mask=mask, **kw)
        assert_allclose(w, r, *_tol32(dtype, 10))


@pytest.mark.parametrize("name", ["sparsemax", "entmax"])
def test_tau_support_of_empty_and_nan_rows(name):
    s = np.array([[0.0, 1.0, 2.0], [-np.inf] * 3, [np.nan, 1.0, 0.0], [np.inf, 1.0, np.inf]])
    mask = np.ones((4, 3), bool)
    w, tau, sup = getattr(an, name)(s, mask=mask, return_tau=True)
    assert np.isnan(tau[1]) and sup[1] == 0
    assert np.isnan(tau[2]) and np.isnan(w[2]).all()
    assert tau[3] == np.inf and sup[3] == 2
    assert_array_equal(w[3], [0.5, 0, 0.5])
    w2, tau2, sup2 = getattr(an, name)(s, mask=np.array([[False] * 3] * 4), return_tau=True)
    assert np.isnan(tau2).all() and (sup2 == 0).all() and (w2 == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", ALL)
def test_nan_only_affects_its_row(rng, dtype, name, kw):
    s = rng.normal(size=(4, 7)).astype(dtype)
    s[2, 3] = np.nan
    w = getattr(an, name)(s, **kw)
    assert np.isnan(w[2]).all()
    assert np.isfinite(w[[0, 1, 3]]).all()
    assert_allclose(w[[0, 1, 3]].sum(-1), 1.0, *_tol32(dtype, 4))
    if name != "sinkhorn" or kw.get("n_iter") == 1:
        # row-local normalizers (and one Sinkhorn step): other rows unchanged
        s2 = s.copy()
        s2[2] = 0
        w2 = getattr(an, name)(s2, **kw)
        assert_array_equal(w[[0, 1, 3]], w2[[0, 1, 3]])
    else:
        assert_allclose(w, ref.sinkhorn(s, **kw), *_tol32(dtype, 10))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", ALL)
def test_infinities_and_huge_values(dtype, name, kw):
    s = np.array([[np.inf, 1.0, np.inf, -np.inf],
                  [1e30, -1e30, 0.0, 5.0],
                  [-1e30, -1e30, -1e30, -1e30],
                  [3.0, -np.inf, 3.0, 1e-30]], dtype=dtype)
    w = getattr(an, name)(s, **kw)
    assert np.all(np.isfinite(w)) and np.all(w >= 0)
    assert_allclose(w.sum(-1), 1.0, *_tol32(dtype, 4))
    if name == "stochastic_softmax":
        assert_array_equal(w[1], [1, 0, 0, 0])
        assert_array_equal(w[0, [1, 3]], 0)
        return
    if name == "sinkhorn" and kw.get("n_iter", 5) > 1:
        assert_allclose(w, ref.sinkhorn(s, **kw), *_tol32(dtype, 10))
        return
    assert_array_equal(w[0], [0.5, 0, 0.5, 0])
    assert_array_equal(w[1], [1, 0, 0, 0])
    assert_allclose(w[2], 0.25, *_tol32(dtype))
    assert w[3, 1] == 0 and w[3, 0] == w[3, 2]
    r = getattr(ref, name)(s, **kw)
    assert_allclose(w, r, *_tol32(dtype, 4))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", ALL)
def test_single_key(rng, dtype, name, kw):
    s = rng.normal(size=(3, 4, 1)).astype(dtype)
    w = getattr(an, name)(s, **kw)
    assert_array_equal(w, 1.0)
    w1 = getattr(an, name)(s[0, 0], **kw)      # a 1-D row
    assert w1.shape == (1,) and w1[0] == 1.0


# --------------------------------------------------------------------------
# identities between variants
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_entmax_identities(rng, dtype):
    s = (3 * rng.normal(size=(3, 6, 11))).astype(dtype)
    assert_array_equal(an.entmax(s, alpha=2.0), an.sparsemax(s))
    assert_array_equal(an.entmax(s, alpha=1.0), an.softmax(s))
    # continuity into softmax
    assert_allclose(an.entmax(s, alpha=1 + 1e-3), an.softmax(s), 0, 0.03)
    assert_allclose(an.entmax(s, alpha=1 + 1e-7), an.softmax(s), 0, 1e-5)
    # exact alpha = 1.5 against bisection just next to it
    assert_allclose(an.entmax(s, alpha=1.5 + 1e-12), an.entmax(s, alpha=1.5), 0, 1e-6)
    assert_allclose(an.entmax(s, alpha=2.0 - 1e-12), an.sparsemax(s), 0, 1e-6)
    # alpha as a per-head array
    alphas = np.array([1.0, 1.5, 2.0])
    w = an.entmax(s, alpha=alphas)
    for h, a in enumerate(alphas):
        assert_allclose(w[h], an.entmax(s[h], alpha=a), *_tol32(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [0.0, 1e-3, 1e-2, 0.1, 0.5])
def test_sparse_many_candidates(rng, dtype, scale):
    # > 64 candidates per row: the threshold is found without sorting
    s = scale * rng.normal(size=(3, 4, 300))
    s[0, 0] = np.round(s[0, 0] * 7 / max(scale, 1e-9)) * max(scale, 1e-9) / 7   # many ties
    s[0, 1, :150] = s[0, 1, 150:]                                               # pairs of equal scores
    s = s.astype(dtype)
    for alpha in (1.5, 2.0):
        w, tau, sup = an.entmax(s, alpha=alpha, return_tau=True)
        rw, rtau, rsup = ref.entmax(s, alpha=alpha, return_tau=True)
        assert_allclose(w, rw, *_tol32(dtype, 4))
        assert_allclose(tau, rtau, *_tol32(dtype, 4))
        assert_array_equal(sup, np.count_nonzero(w, axis=-1))
        assert_allclose(w.sum(-1), 1.0, *_tol32(dtype, 4))
    assert_array_equal(an.sparsemax(s), an.entmax(s, alpha=2.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparsemax_tau_formula(rng, dtype):
    s = (2 * rng.normal(size=(4, 13))).astype(dtype)
    w, tau, sup = an.sparsemax(s, return_tau=True)
    assert_allclose(w, np.maximum(s - tau[:, None], 0), *_tol32(dtype, 4))
    w, tau, sup = an.entmax(s, return_tau=True)        # alpha = 1.5
    assert_allclose(w, np.maximum(0.5 * s - tau[:, None], 0) ** 2, *_tol32(dtype, 4))
    w, tau, sup = an.entmax(s, alpha=1.0, return_tau=True)  # log-sum-exp
    assert_allclose(w, np.exp(s.astype(float) - tau[:, None]), *_tol32(dtype, 4))
    assert (sup >= 1).all() and (sup <= 13).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_sinkhorn_one_step_is_softmax(rng, dtype):
    s = rng.normal(size=(2, 7, 5)).astype(dtype)
    assert_array_equal(an.sinkhorn(s, n_iter=1), an.softmax(s))   # computed as softmax is
    assert_allclose(an.sinkhorn(s, n_iter=1, eps=0.3), an.softmax(s, temperature=0.3), *_tol32(dtype))
    assert_allclose(an.sinkhorn(s, n_iter=1, causal=True), an.softmax(s, causal=True), *_tol32(dtype))


def test_sinkhorn_residuals_decrease(rng):
    s = 2 * rng.normal(size=(12, 12))
    n, m = s.shape

    def col_res(w):
        return np.linalg.norm(w.sum(0) - n / m)

    def row_res(w):
        return np.linalg.norm(w.sum(1) - 1)

    cr = [col_res(an.sinkhorn(s, n_iter=k)) for k in (1, 3, 5, 7, 9)]   # end on a row step
    assert all(a > b for a, b in zip(cr, cr[1:])), cr
    assert all(row_res(an.sinkhorn(s, n_iter=k)) < 1e-12 for k in (1, 3, 5))
    rr = [row_res(an.sinkhorn(s, n_iter=k)) for k in (2, 4, 6, 8)]      # end on a column step
    assert all(a > b for a, b in zip(rr, rr[1:])), rr
    assert all(col_res(an.sinkhorn(s, n_iter=k)) < 1e-12 for k in (2, 4))
    assert col_res(an.sinkhorn(s, n_iter=301)) < 1e-6


def test_sinkhorn_rectangular_marginals(rng):
    s = rng.normal(size=(4, 10))
    w = an.sinkhorn(s, n_iter=60)
    assert_allclose(w.sum(1), 1, 1e-12)
    assert_allclose(w.sum(0), 0.4, 1e-9)


# --------------------------------------------------------------------------
# stochastic softmax
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_stochastic_counts_and_determinism(rng, dtype):
    s = rng.normal(size=(2, 3, 6, 9)).astype(dtype)
    N = 37
    w = an.stochastic_softmax(s, trials=N, seed=5)
    assert w.dtype == dtype
    c = w.astype(np.float64) * N
    assert_allclose(c, np.round(c), 0, 1e-4)
    assert_array_equal(np.round(c).sum(-1), N)
    assert_array_equal(w, an.stochastic_softmax(s, trials=N, seed=5))
    assert not np.array_equal(w, an.stochastic_softmax(s, trials=N, seed=6))
    assert not np.array_equal(w, an.stochastic_softmax(s, trials=N, seed=-6))
    # each matrix of the batch has its own stream
    assert not np.array_equal(w[0, 0], w[0, 1])
    # same row of a batch = same draws whatever the batch layout
    assert_array_equal(an.stochastic_softmax(s[0], trials=N, seed=5), w[0])
    # a cast (buffered) call draws the same numbers
    assert_array_equal(an.stochastic_softmax(s.astype(np.float16), trials=N, seed=5),
                       an.stochastic_softmax(s.astype(np.float16).astype(np.float32), trials=N, seed=5))
    # masked / -inf keys never get a count
    mask = rng.random((6, 9)) > 0.4
    mask[:, 0] = True
    wm = an.stochastic_softmax(s, trials=N, seed=1, mask=mask)
    assert_array_equal(wm[..., ~mask], 0)


def test_stochastic_mean_is_softmax(rng):
    s = rng.normal(size=(3, 8))
    acc = np.zeros_like(s)
    K = 400
    for seed in range(K):
        acc += an.stochastic_softmax(s, trials=20, seed=seed)
    p = an.softmax(s)
    sd = np.sqrt(p * (1 - p) / (20 * K))
    assert np.all(np.abs(acc / K - p) < 5 * sd + 1e-12)
    # large N concentrates on softmax
    w = an.stochastic_softmax(s, trials=200000, seed=3)
    assert_allclose(w, p, 0, 0.01)
    # the reference has the same distribution
    r = np.mean([ref.stochastic_softmax(s, trials=20, seed=k) for k in range(K)], axis=0)
    assert np.all(np.abs(r - p) < 5 * sd + 1e-12)


def test_stochastic_long_rows_and_zero_keys(rng):
    # rows of more than 256 blocks of 8 keys keep the block CDF in the
    # workspace; -inf scores (each block's last key, and a tail after the
    # last finite key) never get a count, and the mean over seeds is softmax
    m, N, K = 3000, 5000, 40
    s = rng.normal(size=(4, m))
    s[:, 7::8] = -np.inf
    s[:, 2990:] = -np.inf
    w = an.stochastic_softmax(s, trials=N, seed=11)
    assert_array_equal(w[np.isneginf(s)], 0)
    assert_array_equal(np.round(w * N).sum(-1), N)
    p = an.softmax(s)
    acc = sum(an.stochastic_softmax(s, trials=N, seed=k) for k in range(K)) / K
    sd = np.sqrt(p * (1 - p) / (N * K))
    assert np.all(np.abs(acc - p) < 6 * sd + 1e-12)
    # the same row in attention: the listed support gives weights @ v
    q = rng.normal(size=(3, 4)); k = rng.normal(size=(m, 4)); v = rng.normal(size=(m, 5))
    kw = dict(trials=N, seed=2)
    o = an.attention(q, k, v, "stochastic_softmax", **kw)
    assert_allclose(o, an.attention_weights(q, k, "stochastic_softmax", **kw) @ v, 1e-12, 1e-12)


def test_stochastic_portable_and_vector_paths_draw_the_same_bits(tmp_path):
    """The trials' keys are the same numbers through ATTNNORM_CPU=default (the
    binary search over the block CDF) and the best path of this CPU (block
    sums, uniforms and the search by levels of 8 in vector registers): row
    lengths across one, two and three levels above the block CDF and partial
    last blocks, -inf keys (zero probabilities, also each block's last key),
    more trials than the workspace holds keys for, float32 and float64."""
    rng = np.random.default_rng(21)
    arrays = {}
    for m in (5, 8, 61, 300, 2049, 5003):
        s = 3 * rng.normal(size=(4, m))
        s[1, 7::8] = -np.inf
        s[2, m // 2:] = -np.inf
        arrays[f"s{m}"] = s
    np.savez(tmp_path / "in.npz", **arrays)
    code = (
        "import sys, numpy as np, attnnorm as an\n"
        "d = np.load(sys.argv[1]); res = {}\n"
        "for key in d.files:\n"
        "    for dt in (np.float32, np.float64):\n"
        "        for N in (1, 100, 3000):\n"
        "            res[f'{key}{np.dtype(dt).name}_{N}'] = an.stochastic_softmax(\n"
        "                d[key].astype(dt), trials=N, seed=4)\n"
        "np.savez(sys.argv[2], path=an.simd_path(), **res)\n")
    outs, keys = run_portable_and_best(tmp_path, code)
    assert len(keys) == 6 * 2 * 3
    for k in keys:
        a, b = outs["default"][k], outs["best"][k]
        assert_array_equal(a, b, err_msg=k)
        n = int(k.rsplit("_", 1)[1])
        assert_array_equal(np.round(a.astype(np.float64) * n).sum(-1), n)


@pytest.mark.parametrize("e", [16, 64, 70, 130])
def test_stochastic_attention_sums_the_listed_keys(rng, e):
    """attention sums the listed weights times the value rows (in float32, 64
    columns at a time on the vector path): the same as the weights @ v."""
    q, k, v = (rng.normal(size=(2, 150, e)).astype(np.float32) for _ in range(3))
    for causal in (False, True):
        kw = dict(normalizer="stochastic_softmax", causal=causal, seed=3)
        o = an.attention(q, k, v, **kw)
        w = an.attention_weights(q, k, **kw)
        assert np.count_nonzero(w[0, -1]) > 16   # more than one accumulator's worth
        assert_allclose(o, (w.astype(np.float64) @ v).astype(np.float32), 2e-5, 2e-6)


def test_stochastic_peaked_row():
    # one key holds nearly all the mass: it takes (nearly) every trial
    s = np.full((1, 50), -40.0)
    s[0, 17] = 0.0
    w = an.stochastic_softmax(s, trials=1000, seed=0)
    assert w[0, 17] >= 0.999 and w.sum() == 1.0


def test_stochastic_variance(rng):
    s = np.array([[0.0, 1.0, -1.0, 0.5]])
    N = 10
    draws = np.array([an.stochastic_softmax(s, trials=N, seed=k)[0] for k in range(3000)])
    p = an.softmax(s)[0]
    assert_allclose(draws.var(0), p * (1 - p) / N, rtol=0.15)


# --------------------------------------------------------------------------
# broadcasting, out=, axes=, strided views, threads
# --------------------------------------------------------------------------

DET = [("sparsemax", {}), ("entmax", {}), ("entmax", {"alpha": 1.3}), ("sinkhorn", {}),
       ("stochastic_softmax", {"trials": 30, "seed": 2})]


@pytest.mark.parametrize("name,kw", DET)
def test_strided_views_out_axes(rng, name, kw):
    f = getattr(an, name)
    base = rng.normal(size=(9, 12))
    for view in (base.T, base[::-1, ::-2], np.broadcast_to(base[:1], (4, 12))):
        expect = f(np.ascontiguousarray(view), **kw)
        assert_array_equal(f(view, **kw), expect)
    s = rng.normal(size=(2, 5, 6))
    expect = f(s, **kw)
    out = np.full(s.shape, -7.0)
    res = f(s, out=out, **kw)
    assert_array_equal(out, expect)
    assert np.shares_memory(res, out)
    out_t = np.empty((2, 6, 5))
    f(s, out=out_t, axes=[(1, 2), (2, 1)], **kw)
    assert_array_equal(out_t, expect.transpose(0, 2, 1))
    st_ = np.ascontiguousarray(s.transpose(1, 0, 2))          # (5, 2, 6): queries first
    got = f(st_, axes=[(0, 2), (0, 2)], **kw)
    if name == "stochastic_softmax":
        assert got.shape == st_.shape     # streams follow the moved batch axes
    else:
        assert_array_equal(got, expect.transpose(1, 0, 2))
    w32 = f(s.astype(np.float32), out=np.empty(s.shape, np.float32), **kw)
    assert w32.dtype == np.float32


@pytest.mark.parametrize("name", ["sparsemax", "entmax"])
def test_return_tau_with_out(rng, name):
    s = rng.normal(size=(3, 7))
    w, tau, sup = getattr(an, name)(s, return_tau=True)
    outs = (np.empty_like(s), np.empty(3), np.empty(3, np.int64))
    r = getattr(an, name)(s, return_tau=True, out=outs)
    assert_array_equal(outs[0], w)
    assert_array_equal(outs[1], tau)
    assert_array_equal(outs[2], sup)
    assert r[0] is outs[0] or np.shares_memory(r[0], outs[0])
    w1, tau1, sup1 = getattr(an, name)(s[1], return_tau=True)
    assert w1.shape == (7,) and tau1.shape == () and sup1 == sup[1]


@pytest.mark.parametrize("name,kw", DET)
@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_bit_identical(rng, name, kw, dtype):
    s = rng.normal(size=(3, 64, 256)).astype(dtype)   # above the parallel threshold
    s[0, 5, :100] = -np.inf
    mask = rng.random((64, 256)) > 0.1
    old = an.get_num_threads()
    try:
        an.set_num_threads(1)
        w1 = getattr(an, name)(s, mask=mask, causal=True, **kw)
        an.set_num_threads(2)
        w2 = getattr(an, name)(s, mask=mask, causal=True, **kw)
    finally:
        an.set_num_threads(old)
    assert_array_equal(w1, w2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sinkhorn_threads_bit_identical_large_matrix(rng, dtype):
    # n * m above the threshold: rows / columns split across threads inside one matrix
    s = rng.normal(size=(2, 130, 300)).astype(dtype)
    mask = rng.random((130, 300)) > 0.2
    old = an.get_num_threads()
    try:
        res = []
        for k in (1, 2):
            an.set_num_threads(k)
            res.append(an.sinkhorn(s, n_iter=4, mask=mask, window=(200, 40)))
    finally:
        an.set_num_threads(old)
    assert_array_equal(res[0], res[1])
    assert_allclose(res[0], ref.sinkhorn(s, n_iter=4, mask=mask, window=(200, 40)), *_tol32(dtype, 10))


# --------------------------------------------------------------------------
# parameter validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("call,match", [
    (lambda s: an.entmax(s, alpha=0.5), "alpha"),
    (lambda s: an.entmax(s, alpha=np.nan), "alpha"),
    (lambda s: an.entmax(s, n_iter=0), "n_iter"),
    (lambda s: an.stochastic_softmax(s, trials=0), "trials"),
    (lambda s: an.stochastic_softmax(s, trials=-3), "trials"),
    (lambda s: an.stochastic_softmax(s, seed=1.5), "seed"),
    (lambda s: an.stochastic_softmax(s, seed=2 ** 64), "seed"),
    (lambda s: an.sinkhorn(s, n_iter=0), "n_iter"),
    (lambda s: an.sinkhorn(s, eps=0.0), "eps"),
    (lambda s: an.sinkhorn(s, eps=-1.0), "eps"),
    (lambda s: an.sparsemax(s, empty="bogus"), "empty"),
])
def test_bad_parameters(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.ones((3, 4)))


def test_registered():
    for name in ("sparsemax", "entmax", "stochastic_softmax", "sinkhorn"):
        assert an.NORMALIZERS[name] is getattr(an, name)
        assert name in an.__all__
    from attnnorm._normalizers import param_operands, validate
    v = validate("entmax", np.dtype(np.float32), {"alpha": 1.2})
    assert v["alpha"].dtype == np.float32 and int(v["n_iter"]) == 50
    with pytest.raises(ValueError, match="alpha"):
        validate("entmax", np.dtype(np.float64), {"alpha": 0.9})
    # trials, seed and the per-matrix stream
    v = validate("stochastic_softmax", np.dtype(np.float64), {})
    assert param_operands("stochastic_softmax", np.dtype(np.float64), v, 3, (2,))[1].shape == (2, 3)


# --------------------------------------------------------------------------
# hypothesis properties
# --------------------------------------------------------------------------

rows = hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 12)),
                  elements=st.floats(-50, 50, allow_nan=False))


@settings(max_examples=40, deadline=None)
@given(s=rows, alpha=st.sampled_from([1.0, 1.2, 1.5, 2.0, 2.7]), seed=st.integers(0, 2 ** 31))
def test_property_simplex_and_equivariance(s, alpha, seed):
    perm = np.random.default_rng(seed).permutation(s.shape[-1])
    for f in (lambda x: an.entmax(x, alpha=alpha), an.sparsemax, lambda x: an.sinkhorn(x, n_iter=3),
              lambda x: an.stochastic_softmax(x, trials=7, seed=seed)):
        w = f(s)
        assert np.all(w >= 0)
        assert_allclose(w.sum(-1), 1.0, 1e-9)
    for f in (lambda x: an.entmax(x, alpha=alpha), an.sparsemax, lambda x: an.sinkhorn(x, n_iter=3)):
        assert_allclose(f(s[:, perm]), f(s)[:, perm], 1e-9, 1e-12)
    # sparse maps: monotone in the score (higher score, no lower weight)
    w = an.entmax(s, alpha=alpha)
    i = np.argsort(s, axis=-1, kind="stable")
    assert np.all(np.diff(np.take_along_axis(w, i, -1), axis=-1) >= -1e-12)


ties = hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 10)),
                  elements=st.one_of(st.integers(-3, 3).map(float), st.floats(-4, 4)))


@settings(max_examples=60, deadline=None)
@given(s=ties, alpha=st.sampled_from([1.0, 1.5, 1.7, 2.0]))
def test_property_matches_reference_with_ties(s, alpha):
    assert_allclose(an.entmax(s, alpha=alpha), ref.entmax(s, alpha=alpha), 1e-9, 1e-12)
    assert_allclose(an.sparsemax(s), ref.sparsemax(s), 1e-12, 1e-13)
    assert_allclose(an.sinkhorn(s, n_iter=4), ref.sinkhorn(s, n_iter=4), 1e-10, 1e-13)


def test_sinkhorn_empty_nan_leaves_masked_keys_zero(rng):
    # as every row normalizer: an all -inf row is NaN on its visible keys
    # only; a row with no visible key is NaN everywhere
    s = rng.normal(size=(3, 4))
    s[1, :2] = -np.inf
    mask = np.ones((3, 4), bool)
    mask[1, 2:] = False
    mask[2, :] = False
    w = an.sinkhorn(s, mask=mask, empty="nan")
    assert_array_equal(w[1:], an.softmax(s, mask=mask, empty="nan")[1:])
    assert np.isnan(w[1, :2]).all() and (w[1, 2:] == 0).all() and np.isnan(w[2]).all()
