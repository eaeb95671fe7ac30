"""Softmax family and elementwise normalizers: softmax_sink, ssmax, sigmoid,
relu, polynomial, softpick, nap, affine_softmax.

Every kernel is compared with the float64 NumPy reference of attnnorm._reference
(written from the formulas with explicit masks), in float32 and float64, on
random inputs and edge cases; plus identities between variants, broadcasting,
views, out=/axes=, thread-count determinism and hypothesis properties."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import attnnorm as an
from attnnorm import _reference as ref
from conftest import tol

NAMES = ["softmax_sink", "ssmax", "sigmoid", "relu", "polynomial", "softpick", "nap",
         "affine_softmax"]

# non-default parameter sets (the defaults are tested too)
PARAMS = {
    "softmax_sink": [{"sink": 0.0}, {"sink": -1.5}, {"sink": 3.0}],
    "ssmax": [{"c": 0.43}, {"c": 1.7}],
    "sigmoid": [{"bias": None}, {"bias": 0.3}, {"bias": -2.0}],
    "relu": [{"power": 1}, {"power": 2}, {"power": 1.5}],
    "polynomial": [{"power": 3}, {"power": 1}, {"power": 2}, {"power": 5}],
    "softpick": [{"eps": 1e-8}, {"eps": 0.5}],
    "nap": [{}, {"gain": 2.0, "bias": 0.5, "eps": 0.1}],
    "affine_softmax": [{"a": 1.0, "b": 0.0}, {"a": 0.7, "b": 0.05}],
}
CASES = [(nm, kw) for nm in NAMES for kw in PARAMS[nm]]
CASE_IDS = [f"{nm}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for nm, kw in CASES]

# elementwise maps (no coupling between the keys of a row)
ELEMENTWISE = ["sigmoid", "relu", "polynomial"]
# normalizers whose weights are >= 0 for every input
NONNEG = ["softmax_sink", "ssmax", "sigmoid", "relu", "softpick"]


def fn(name):
    return getattr(an, name)


def check(w, r, dtype, *, scale=1.0):
    """w (kernel, dtype) against r (float64 reference): same NaN pattern, close
    values (the reference is rounded to dtype first, so overflow to inf in
    float32 is expected where the formula overflows)."""
    with np.errstate(over="ignore"):
        rr = np.asarray(r).astype(dtype)
    assert w.dtype == dtype
    assert w.shape == rr.shape
    rtol, atol = tol(dtype)
    assert_array_equal(np.isnan(w), np.isnan(rr))
    assert_allclose(w, rr, rtol=rtol, atol=atol * scale)


# ---------------------------------------------------------------------------
# against the reference
# ---------------------------------------------------------------------------

OPTS = [{}, {"causal": True}, {"window": (2, 1)}, {"causal": True, "window": (3, None)},
        {"window": (None, 0)}]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_matches_reference(rng, dtype, name, kw):
    s = (2.0 * rng.normal(size=(2, 3, 5, 7))).astype(dtype)
    for opts in OPTS:
        w = fn(name)(s, **kw, **opts)
        check(w, getattr(ref, name)(s, **kw, **opts), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n,m", [(7, 4), (4, 9), (1, 1), (3, 1), (1, 6)])
def test_causal_shapes_and_masks(rng, dtype, name, n, m):
    s = rng.normal(size=(2, n, m)).astype(dtype)
    mask = rng.random((2, n, m)) > 0.35
    for opts in ({"causal": True}, {"mask": mask}, {"mask": mask, "causal": True},
                 {"mask": mask[0], "window": (1, 2)}, {"causal": True, "window": (0, 0)}):
        check(fn(name)(s, **opts), getattr(ref, name)(s, **opts), dtype)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_design_defaults(rng, name):
    s = rng.normal(size=(4, 6))
    defaults = {"softmax_sink": {"sink": 0.0}, "ssmax": {"c": 0.43}, "sigmoid": {"bias": None},
                "relu": {"power": 1}, "polynomial": {"power": 3}, "softpick": {"eps": 1e-8},
                "nap": {"gain": 1.0, "bias": 0.0, "eps": 1e-3},
                "affine_softmax": {"a": 1.0, "b": 0.0}}[name]
    assert_array_equal(fn(name)(s), fn(name)(s, **defaults))
    assert name in an.NORMALIZERS and an.NORMALIZERS[name] is fn(name)
    assert name in an.__all__


# ---------------------------------------------------------------------------
# edge cases
# ---------------------------------------------------------------------------

EDGE_ROWS = np.array([
    [-np.inf, -np.inf, -np.inf, -np.inf, -np.inf],   # no mass
    [np.inf, 1.0, -2.0, np.inf, 0.0],               # +inf ties
    [np.inf, -np.inf, 1.0, 2.0, -1.0],              # both infinities
    [1e30, -1e30, 0.0, 1.0, -1.0],                  # huge
    [-1e30, -1e30, -1e30, -1e30, -1e30],            # huge negative, constant
    [1e-30, -1e-30, 0.0, 1e-30, 0.0],               # tiny
    [-np.inf, 2.0, -np.inf, 0.5, -3.0],             # some -inf
    [-1.0, -2.0, -0.5, -3.0, 0.0],                  # all non-positive
    [3.0, 3.0, 3.0, 3.0, 3.0],                      # constant
    [80.0, 81.0, -80.0, 0.0, 700.0],                # beyond float32 exp range
])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_edge_rows(dtype, name, kw):
    s = EDGE_ROWS.astype(dtype)
    w = fn(name)(s, **kw)
    r = getattr(ref, name)(s, **kw)
    check(w, r, dtype)


@pytest.mark.parametrize("name", NAMES)
def test_nan_only_affects_its_row(rng, name):
    s = rng.normal(size=(5, 6))
    s[2, 3] = np.nan
    w = fn(name)(s)
    if name in ELEMENTWISE:      # no row coupling: only that element is NaN
        assert_array_equal(np.isnan(w[2]), np.isnan(s[2]))
    else:
        assert np.isnan(w[2]).all()
    assert not np.isnan(np.delete(w, 2, axis=0)).any()
    assert_allclose(np.delete(w, 2, axis=0), fn(name)(np.delete(s, 2, axis=0)), 1e-15, 0)
    # a NaN under the mask is not seen at all
    mask = np.ones((5, 6), bool)
    mask[2, 3] = False
    w2 = fn(name)(s, mask=mask)
    assert not np.isnan(w2).any()
    assert w2[2, 3] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_fully_masked_rows_follow_empty_policy(rng, dtype, name):
    s = rng.normal(size=(4, 5)).astype(dtype)
    mask = rng.random((4, 5)) > 0.3
    mask[1] = False
    w = fn(name)(s, mask=mask)
    assert_array_equal(w[1], 0)
    assert not np.isnan(w).any()
    check(w, getattr(ref, name)(s, mask=mask), dtype)
    wn = fn(name)(s, mask=mask, empty="nan")
    assert np.isnan(wn[1]).all()
    assert_array_equal(np.delete(wn, 1, 0), np.delete(w, 1, 0))
    with pytest.raises(ValueError, match="empty='raise'"):
        fn(name)(s, mask=mask, empty="raise")
    # no error when no row is empty
    fn(name)(s, mask=np.ones((4, 5), bool), empty="raise")
    # window that leaves the first rows without keys (n > m, causal)
    s2 = rng.normal(size=(6, 3)).astype(dtype)
    wc = fn(name)(s2, causal=True, empty="nan")
    assert np.isnan(wc[:3]).all() and not np.isnan(wc[3:]).any()


# which normalizers treat a visible row of -inf as empty (no mass at all)
NEGINF_EMPTY = {"ssmax", "affine_softmax"}


@pytest.mark.parametrize("name", NAMES)
def test_neginf_row(name):
    s = np.array([[-np.inf] * 4, [0.0, 1.0, 2.0, 3.0]])
    if name in NEGINF_EMPTY:
        assert_array_equal(fn(name)(s)[0], 0)
        assert np.isnan(fn(name)(s, empty="nan")[0]).all()
        with pytest.raises(ValueError, match="empty='raise'"):
            fn(name)(s, empty="raise")
    else:
        # softmax_sink (sink takes the mass), sigmoid, relu, softpick: zeros by the
        # formula; polynomial: (-inf)^3 = -inf; nap: constant row -> bias
        w = fn(name)(s, empty="raise")
        expect = {"polynomial": -np.inf, "nap": 0.0}.get(name, 0.0)
        assert_array_equal(w[0], expect)


def test_softmax_sink_limits():
    s = np.array([[1.0, 2.0, np.inf], [1.0, 2.0, 3.0], [-np.inf, -np.inf, -np.inf]])
    assert_array_equal(an.softmax_sink(s, sink=np.inf), [[0, 0, 0.5], [0, 0, 0], [0, 0, 0]])
    assert_array_equal(an.softmax_sink(s, sink=2.0)[0], [0, 0, 1])
    w = an.softmax_sink(s[:2], sink=1e30)
    assert_array_equal(w, [[0, 0, 1], [0, 0, 0]])   # +inf beats any finite sink
    w = an.softmax_sink(s[1:2], sink=-1e30)
    assert_allclose(w, an.softmax(s[1:2]), 1e-15)
    # softmax_1: sum = 1 - 1/(1 + sum e^s)
    x = np.array([0.3, -1.2, 2.0])
    assert_allclose(an.softmax_sink(x).sum(), 1 - 1 / (1 + np.exp(x).sum()), 1e-14)
    assert_allclose(an.softmax_sink(x), np.exp(x) / (1 + np.exp(x).sum()), 1e-14)


def test_m_equals_one(rng):
    s = rng.normal(size=(3, 4, 1))
    assert_array_equal(an.ssmax(s), 1.0)            # n_i = 1: log 1 = 0 -> weight 1
    assert_allclose(an.softmax_sink(s), np.exp(s) / (1 + np.exp(s)), 1e-14)
    assert_allclose(an.sigmoid(s), 1 / (1 + np.exp(-s)), 1e-14)   # -log 1 = 0
    assert_allclose(an.relu(s), np.maximum(s, 0), 1e-15)
    assert_allclose(an.polynomial(s), s ** 3, 1e-14)
    assert_array_equal(an.nap(s, bias=0.25), 0.25)
    assert_array_equal(an.affine_softmax(s, a=2.0, b=0.5), 2.5)
    for name in NAMES:
        check(fn(name)(s.astype(np.float32)), getattr(ref, name)(s.astype(np.float32)), np.float32)


def test_ssmax_multiplier_zero_limit():
    s = np.array([[1.0, -np.inf, 5.0, 2.0], [np.inf, 0.0, 1.0, 2.0]])
    w = an.ssmax(s, c=0.0)
    assert_array_equal(w[0], [1 / 3, 0, 1 / 3, 1 / 3])
    assert_array_equal(w[1], [1, 0, 0, 0])
    assert_array_equal(an.ssmax(np.array([[-np.inf]]), empty="nan"), [[np.nan]])
    assert_array_equal(an.ssmax(np.array([[np.nan, 1.0]]), c=0.0), [[np.nan, np.nan]])


def test_softpick_properties_exact():
    s = np.array([[-1.0, 0.0, -3.0], [0.0, 0.0, 0.0], [2.0, -1.0, 0.0]])
    w = an.softpick(s)
    assert_array_equal(w[:2], 0)                   # max <= 0: all zero, not empty
    assert w[2, 0] > 0 and w[2, 1] == 0 and w[2, 2] == 0
    # the unscaled formula with eps negligible
    e = np.exp(s[2]) - 1
    assert_allclose(w[2], np.maximum(e, 0) / np.abs(e).sum(), 1e-7)
    # -inf entries are left out of the denominator
    w2 = an.softpick(np.array([[2.0, -np.inf, -np.inf, -1.0]]))
    assert_allclose(w2, an.softpick(np.array([[2.0, -1.0]]))[:, [0, 1, 1, 1]] * [1, 0, 0, 0], 1e-14)


def test_nap_statistics(rng):
    s = rng.normal(size=(3, 9)) * 5 + 2
    mask = rng.random((3, 9)) > 0.3
    w = an.nap(s, gain=1.0, bias=0.0, eps=1e-12, mask=mask)
    for i in range(3):
        v = w[i, mask[i]]
        assert_allclose(v.mean(), 0, atol=1e-12)
        assert_allclose(v.std(), 1, 1e-9)
        assert_array_equal(w[i, ~mask[i]], 0)
    wb = an.nap(s, bias=0.5, mask=mask)
    assert_allclose(wb.sum(-1), 0.5 * mask.sum(-1), 1e-10)
    # one +inf: limit is the standardised indicator
    x = np.array([[np.inf, 1.0, 2.0, 3.0]])
    u = np.array([1.0, 0, 0, 0])
    assert_allclose(an.nap(x), [(u - u.mean()) / u.std()], 1e-14)
    # huge finite scores whose sums overflow are rescaled, not inf/NaN
    for h in (np.array([1e308, 1.5e308, -1e308, 0.0]), np.array([1.7e308, 1.7e308, -1.7e308, 0])):
        y = h / 1e300
        assert_allclose(an.nap(h), (y - y.mean()) / y.std(), 1e-12)



def test_nap_float_rows_one_pass_and_second_pass_variance(rng):
    """float32 rows take the variance from the first pass unless its
    cancellation factor exceeds 64 (a first score far from the rest, the
    pivot): both kinds of row against the float64 reference, and a row whose
    deviations cancel exactly is still constant."""
    typical = rng.normal(size=(4, 300)) * 3 + 1
    outlier = rng.normal(size=(4, 300))
    outlier[:, 0] = 1e4                       # factor ~ n: the second pass
    for s in (typical, outlier):
        s32 = s.astype(np.float32)
        w = an.nap(s32, eps=1e-6)
        assert w.dtype == np.float32
        assert_allclose(w, ref.nap(s32.astype(np.float64), eps=1e-6), rtol=2e-5, atol=2e-5)
    const = np.full((2, 50), 7.25, np.float32)
    assert_array_equal(an.nap(const, bias=0.5), 0.5)

def test_huge_and_tiny_parameters(rng):
    s = rng.normal(size=(3, 6))
    assert_array_equal(an.sigmoid(s, bias=1e30), 1.0)
    assert_array_equal(an.sigmoid(s, bias=-1e30), 0.0)
    assert_array_equal(an.softmax_sink(s, sink=1e300), 0.0)
    assert_allclose(an.softpick(np.abs(s) + 1, eps=1e300), 0.0, atol=1e-290)
    check(an.softpick(s, eps=1e-300), ref.softpick(s, eps=1e-300), np.float64)
    check(an.nap(s, eps=1e-300), ref.nap(s, eps=1e-300), np.float64)
    check(an.nap(s, eps=1e30), ref.nap(s, eps=1e30), np.float64)
    w = an.ssmax(s, c=1e300)                    # argmax
    assert_array_equal(w, (s == s.max(-1, keepdims=True)) * 1.0)
    w = an.ssmax(s, c=1e-300)                   # nearly uniform
    assert_allclose(w, 1 / 6, 1e-12)
    check(an.relu(s, power=1e-6), ref.relu(s, power=1e-6), np.float64)
    check(an.relu(s, power=300.0), ref.relu(s, power=300.0), np.float64)
    check(an.polynomial(s, power=101), ref.polynomial(s, power=101), np.float64, scale=1e10)
    # float32 loop: parameters that underflow in float32 never give NaN
    s32 = np.full((2, 4), 1e-40, dtype=np.float32)
    assert not np.isnan(an.softpick(s32, eps=1e-300)).any()
    assert not np.isnan(an.nap(s32, eps=1e-300)).any()


# ---------------------------------------------------------------------------
# identities between variants
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identities(rng, dtype):
    s = (3 * rng.normal(size=(2, 6, 8))).astype(dtype)
    s[0, 1, 2] = -np.inf
    mask = rng.random((6, 8)) > 0.25
    for opts in ({}, {"causal": True}, {"mask": mask}):
        # softmax_sink(sink=-inf) is softmax, bit for bit
        assert_array_equal(an.softmax_sink(s, sink=-np.inf, **opts), an.softmax(s, **opts))
        # affine_softmax(a=1, b=0) is softmax, bit for bit
        assert_array_equal(an.affine_softmax(s, **opts), an.softmax(s, **opts))
        # ssmax == softmax with temperature 1/(c log n_i), row by row
        w = an.ssmax(s, c=0.7, **opts)
        vis = ref.visible(6, 8, causal=opts.get("causal", False), mask=opts.get("mask"))
        for i in range(6):
            n_i = vis[i].sum()
            if n_i > 1:
                t = 1.0 / (0.7 * np.log(n_i))
                assert_allclose(w[:, i], an.softmax(s[:, i:i + 1], temperature=t,
                                                    mask=vis[i:i + 1])[:, 0], *tol(dtype))
        # sigmoid default bias == explicit -log n_i (per row)
        w = an.sigmoid(s, **opts)
        n_i = vis.sum(-1)
        for k in np.unique(n_i):
            rows = n_i == k
            we = an.sigmoid(s, bias=-np.log(k), **opts)
            assert_allclose(w[:, rows], we[:, rows], *tol(dtype))
    # relu power 1 on positive rows == s / n_i
    p = np.abs(s[:, :, :]) + 0.1
    assert_allclose(an.relu(p), p / 8, rtol=1e-7 if dtype == np.float32 else 1e-16)
    assert_allclose(an.relu(p, causal=True), np.tril(p, 2) / np.arange(3, 9)[:, None],
                    rtol=1e-7 if dtype == np.float32 else 1e-16)
    # polynomial power 1 == s / sqrt(n_i)
    assert_allclose(an.polynomial(s[1], power=1), s[1] / np.sqrt(8), *tol(dtype))


# ---------------------------------------------------------------------------
# broadcasting, parameters per head, out=, axes=, views
# ---------------------------------------------------------------------------

PER_HEAD = {"softmax_sink": ("sink", [-1.0, 0.0, 2.0]), "ssmax": ("c", [0.1, 0.43, 2.0]),
            "sigmoid": ("bias", [-1.0, 0.0, 1.0]), "relu": ("power", [1.0, 2.0, 0.5]),
            "polynomial": ("power", [1, 2, 3]), "softpick": ("eps", [1e-8, 0.1, 1.0]),
            "nap": ("gain", [0.5, 1.0, 2.0])}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(PER_HEAD))
def test_per_head_parameters(rng, dtype, name):
    key, vals = PER_HEAD[name]
    s = rng.normal(size=(2, 3, 4, 5)).astype(dtype)
    w = fn(name)(s, **{key: np.array(vals)}, causal=True)
    assert w.dtype == dtype and w.shape == s.shape
    for h in range(3):
        check(w[:, h], getattr(ref, name)(s[:, h], **{key: vals[h]}, causal=True), dtype)
    check(w, getattr(ref, name)(s, **{key: np.array(vals)}, causal=True), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_softmax_parameters(rng, dtype):
    s = rng.normal(size=(2, 3, 4, 5)).astype(dtype)
    mask = rng.random((4, 5)) > 0.3
    mask[:, 0] = True
    sm = ref.softmax(s, mask=mask)
    # per head (H, 1)
    a = np.array([0.5, 1.0, 2.0])[:, None]
    b = np.array([0.0, 0.1, -0.2])[:, None]
    w = an.affine_softmax(s, a=a, b=b, mask=mask)
    check(w, np.where(mask, a[..., None] * sm + b[..., None], 0), dtype)
    check(w, ref.affine_softmax(s, a=a, b=b, mask=mask), dtype)
    # per query row (n,)
    a = np.linspace(0.5, 2, 4)
    w = an.affine_softmax(s, a=a, b=0.25, mask=mask)
    check(w, np.where(mask, a[:, None] * sm + 0.25, 0), dtype)
    assert_array_equal(w[..., ~mask], 0)     # masked keys stay exactly 0
    # full (B, H, n)
    a = rng.random((2, 3, 4)) + 0.5
    check(an.affine_softmax(s, a=a), ref.affine_softmax(s, a=a), dtype)
    with pytest.raises(ValueError, match="a"):
        an.affine_softmax(s, a=np.ones(3))   # (H,) does not broadcast against n=4
    with pytest.raises(ValueError, match="b"):
        an.affine_softmax(s, b=np.nan)
    with pytest.raises(ValueError, match="a"):
        an.affine_softmax(s, a=np.inf)
    with pytest.raises(ValueError, match="a of shape"):
        an.affine_softmax(s, a=np.ones((4, 1)))   # leading (4,) vs heads (2, 3)
    # with axes=, (..., n) is the query-last layout: scores (n, B, m) -> (B, n, m)
    t = rng.normal(size=(4, 2, 5)).astype(dtype)
    a = np.array([1.0, 2.0, 3.0, 4.0])
    wa = an.affine_softmax(t, a=a, b=0.5, axes=[(0, 2), (0, 2)])
    check(wa, np.moveaxis(ref.affine_softmax(np.moveaxis(t, 0, 1), a=a, b=0.5), 1, 0), dtype)
    # 1-D scores: a single row
    x = rng.normal(size=6)
    assert_allclose(an.affine_softmax(x, a=2.0, b=1.0), 2 * ref.softmax(x) + 1, 1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_broadcasting_out_axes_and_1d(rng, name):
    s = rng.normal(size=(3, 1, 4, 5))
    mask = rng.random((2, 4, 5)) > 0.3                 # broadcasts to (3, 2, 4, 5)
    w = fn(name)(s, mask=mask)
    assert w.shape == (3, 2, 4, 5)
    assert_allclose(w, getattr(ref, name)(s, mask=mask), 1e-12, 1e-13)
    # out=
    out = np.empty((3, 2, 4, 5))
    res = fn(name)(s, mask=mask, out=out)
    assert res is out or np.shares_memory(res, out)
    assert_array_equal(out, w)
    # axes=: keys on axis 0, queries on axis 1
    t = rng.normal(size=(5, 4, 2))
    wa = fn(name)(t, axes=[(1, 0), (1, 0)], causal=True)
    assert wa.shape == t.shape
    for k in range(2):
        assert_allclose(wa[:, :, k].T, getattr(ref, name)(t[:, :, k].T, causal=True),
                        1e-12, 1e-13)
    # a 1-D vector is one row
    x = rng.normal(size=7)
    assert_allclose(fn(name)(x), getattr(ref, name)(x[None])[0], 1e-12, 1e-13)


@pytest.mark.parametrize("name", NAMES)
def test_views(rng, name):
    base = rng.normal(size=(6, 10))
    views = (base.T, base[::-1, ::-2], np.broadcast_to(base[:1], (4, 10)),
             np.broadcast_to(base[:, :1], (6, 5)), base[1:5, 2:9].T[::-1])
    for v in views:
        before = base.copy()
        assert_allclose(fn(name)(v, causal=True), getattr(ref, name)(v, causal=True),
                        1e-12, 1e-13)
        assert_array_equal(base, before)         # input untouched
    # output into a transposed / negative-stride view
    out = np.zeros((10, 6)).T
    fn(name)(base, out=out)
    assert_allclose(out, getattr(ref, name)(base), 1e-12, 1e-13)
    out2 = np.zeros((6, 10))[::-1]
    fn(name)(base, out=out2)
    assert_allclose(out2, getattr(ref, name)(base), 1e-12, 1e-13)


@pytest.mark.parametrize("name", NAMES)
def test_bit_identical_across_thread_counts(rng, name):
    s = rng.normal(size=(4, 64, 200)).astype(np.float32)
    s[0, 3, 5] = np.nan
    mask = rng.random((64, 200)) > 0.2
    old = an.get_num_threads()
    try:
        an.set_num_threads(1)
        w1 = fn(name)(s, mask=mask, causal=True)
        an.set_num_threads(2)
        w2 = fn(name)(s, mask=mask, causal=True)
    finally:
        an.set_num_threads(old)
    assert_array_equal(w1, w2)


def test_portable_simd_path_matches_reference():
    """Run the vectorised primitives through the portable (non-AVX) table."""
    code = (
        "import numpy as np, attnnorm as an\n"
        "from attnnorm import _reference as ref\n"
        "assert an.simd_path() == 'default'\n"
        "rng = np.random.default_rng(1)\n"
        "s = 3 * rng.normal(size=(5, 37)); s[1, 4] = -np.inf; s[2, :] = -5.0\n"
        "for dt, tl in ((np.float32, 2e-5), (np.float64, 1e-12)):\n"
        "    x = s.astype(dt)\n"
        "    for nm in ['softmax_sink', 'sigmoid', 'softpick', 'ssmax', 'nap']:\n"
        "        np.testing.assert_allclose(getattr(an, nm)(x), getattr(ref, nm)(x), tl, tl / 10)\n"
        "print('ok')\n")
    # import the same attnnorm as this process (in-place build or installed)
    here = os.path.dirname(os.path.dirname(os.path.abspath(an.__file__)))
    env = dict(os.environ, ATTNNORM_CPU="default", PYTHONPATH=here)
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=os.path.dirname(here),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


# ---------------------------------------------------------------------------
# parameter validation
# ---------------------------------------------------------------------------

BAD = [
    ("softmax_sink", "sink", np.nan),
    ("ssmax", "c", np.nan), ("ssmax", "c", -0.1), ("ssmax", "c", np.inf),
    ("sigmoid", "bias", np.nan), ("sigmoid", "bias", np.inf), ("sigmoid", "bias", "x"),
    ("relu", "power", 0), ("relu", "power", -1.0), ("relu", "power", np.inf),
    ("polynomial", "power", 0), ("polynomial", "power", 2.5), ("polynomial", "power", -3),
    ("polynomial", "power", np.nan),
    ("softpick", "eps", 0.0), ("softpick", "eps", -1e-8), ("softpick", "eps", np.nan),
    ("nap", "eps", 0.0), ("nap", "eps", -1.0), ("nap", "gain", np.nan), ("nap", "bias", np.inf),
    ("affine_softmax", "a", np.nan), ("affine_softmax", "b", np.inf),
]


@pytest.mark.parametrize("name,key,value", BAD)
def test_bad_parameters_raise_naming_them(name, key, value):
    with pytest.raises(ValueError, match=key):
        fn(name)(np.ones((2, 3)), **{key: value})
    # the shared registry validates identically (used by attention / diagnose)
    with pytest.raises(ValueError, match=key):
        an._normalizers.validate(name, np.dtype(np.float64), {key: value})


def test_bad_parameter_arrays_and_options():
    with pytest.raises(ValueError, match="power"):
        an.relu(np.ones((2, 3)), power=np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="empty"):
        an.sigmoid(np.ones((2, 3)), empty="bogus")
    with pytest.raises(ValueError, match="window"):
        an.softpick(np.ones((2, 3)), window=(-1, 2))
    with pytest.raises(ValueError, match="mask"):
        an.nap(np.ones((2, 3)), mask=np.ones((3, 3), bool))
    with pytest.raises(TypeError):
        an.ssmax(np.ones((2, 3)), temperature=2.0)


def test_params_registry_shapes():
    """The parameter operands (reals (r), ints (i), per-row reals (n, w)) built
    from the descriptors: counts, dtypes, and sigmoid's length-aware default
    (bias=None is NaN in the operand, the kernel then uses -log n_i)."""
    dt = np.dtype(np.float32)
    N = an._normalizers

    def ops(name, **kw):
        return N.param_operands(name, dt, N.validate(name, dt, kw), 4, ())
    r, i, w = ops("sigmoid")
    assert (r.shape, i.shape, w.shape) == ((1,), (0,), (4, 0))
    assert np.isnan(r[0]) and ops("sigmoid", bias=0.5)[0][0] == np.float32(0.5)
    r, i, w = ops("nap")
    assert r.shape == (3,) and r.dtype == dt and i.shape == (0,)
    r, i, w = ops("affine_softmax", a=2.0)
    assert r.shape == (0,) and w.shape == (4, 2) and w.dtype == dt and (w[:, 0] == 2).all()
    r, i, w = ops("entmax", n_iter=7)
    assert r.shape == (1,) and i.dtype == np.int64 and list(i) == [7]
    for name in NAMES:
        assert name in N.INFO


# ---------------------------------------------------------------------------
# hypothesis properties
# ---------------------------------------------------------------------------

finite = st.floats(-60, 60, allow_nan=False, allow_infinity=False, width=64)
score_mats = hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 9)),
                        elements=finite)


@settings(max_examples=60, deadline=None)
@given(s=score_mats, data=st.data())
def test_property_nonnegative_and_sums(s, data):
    causal = data.draw(st.booleans())
    for name in NONNEG:
        w = fn(name)(s, causal=causal)
        assert (w >= 0).all(), name
    w = an.ssmax(s, causal=causal)
    vis = ref.visible(*s.shape, causal=causal)
    nonempty = vis.any(-1)
    assert_allclose(w.sum(-1)[nonempty], 1, 1e-12)
    ws = an.softmax_sink(s, causal=causal, sink=data.draw(st.floats(-5, 5)))
    assert (ws.sum(-1) <= 1 + 1e-12).all()
    assert (an.softpick(s, causal=causal).sum(-1) <= 1 + 1e-12).all()
    # relu, sigmoid weights vanish exactly where promised
    assert_array_equal(an.relu(s, causal=causal)[s <= 0], 0)
    assert_array_equal(an.softpick(s, causal=causal)[s <= 0], 0)
    assert (an.sigmoid(s) <= 1).all()


@settings(max_examples=40, deadline=None)
@given(s=score_mats, data=st.data())
def test_property_permutation_equivariance(s, data):
    perm = data.draw(st.permutations(range(s.shape[1])))
    mask = data.draw(hnp.arrays(np.bool_, s.shape))
    for name in NAMES:
        w = fn(name)(s, mask=mask)
        wp = fn(name)(s[:, perm], mask=mask[:, perm])
        assert_allclose(wp, w[:, perm], 1e-10, 1e-12, err_msg=name)


@settings(max_examples=40, deadline=None)
@given(s=score_mats, sink=st.floats(-30, 30))
def test_property_sink_mass(s, sink):
    w = an.softmax_sink(s, sink=sink)
    mx = max(s.max(-1).max(), sink)
    lse = mx + np.log(np.exp(s - mx).sum(-1) + np.exp(sink - mx))
    assert_allclose(1 - w.sum(-1), np.exp(sink - lse), 1e-9, 1e-12)


@settings(max_examples=40, deadline=None)
@given(s=score_mats, shift=st.floats(-50, 50))
def test_property_shift_invariance(s, shift):
    """ssmax (a softmax) and nap (a standardisation) ignore a constant added to
    a row; softpick and softmax_sink do not (their 1 / sink is absolute)."""
    assert_allclose(an.ssmax(s + shift), an.ssmax(s), 1e-9, 1e-12)
    sd = s.std(-1)
    rows = sd > 1e-3
    assert_allclose(an.nap(s + shift)[rows], an.nap(s)[rows], 1e-7, 1e-9)
    # softmax_sink: moving the sink with the scores is a shift of everything
    assert_allclose(an.softmax_sink(s + shift, sink=shift), an.softmax_sink(s), 1e-9, 1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 0), (0, 3), (3, 0, 4), (0, 2, 5)])
def test_zero_size_inputs(name, shape):
    w = fn(name)(np.zeros(shape, dtype=np.float32))
    assert w.shape == shape and w.dtype == np.float32
    # m = 0: every row is empty, so empty="raise" raises when there are rows
    if shape[-1] == 0 and shape[-2] > 0:
        with pytest.raises(ValueError, match="empty='raise'"):
            fn(name)(np.zeros(shape), empty="raise")
