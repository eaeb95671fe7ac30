import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import attnnorm as an
from attnnorm import _reference as ref
from conftest import tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opts", [{}, {"causal": True}, {"window": (2, 1)},
                                  {"causal": True, "window": (3, None)}])
def test_softmax_matches_reference(rng, dtype, opts):
    s = rng.normal(size=(2, 3, 5, 7)).astype(dtype)
    w = an.softmax(s, temperature=0.7, **opts)
    assert w.dtype == dtype and w.shape == s.shape
    assert_allclose(w, ref.softmax(s, temperature=0.7, **opts), *tol(dtype))


def test_softmax_mask_and_empty_rows(rng):
    s = rng.normal(size=(4, 6))
    mask = rng.random((4, 6)) > 0.4
    mask[2] = False
    w = an.softmax(s, mask=mask)
    assert_allclose(w, ref.softmax(s, mask=mask), 1e-12, 1e-13)
    assert_array_equal(w[2], 0.0)
    assert np.isnan(an.softmax(s, mask=mask, empty="nan")[2]).all()
    with pytest.raises(ValueError, match="empty='raise'"):
        an.softmax(s, mask=mask, empty="raise")


def test_softmax_limits():
    s = np.array([[np.inf, 1.0, np.inf], [np.nan, 1, 2], [-np.inf] * 3, [1e30, -1e30, 0]])
    w = an.softmax(s)
    assert_array_equal(w[0], [0.5, 0, 0.5])
    assert np.isnan(w[1]).all()
    assert_array_equal(w[2], 0)
    assert_array_equal(w[3], [1, 0, 0])
    assert_allclose(w, ref.softmax(s), 1e-12, 1e-13)


def test_softmax_strided_views(rng):
    base = rng.normal(size=(6, 10))
    for view in (base.T, base[::-1, ::-2], np.broadcast_to(base[:1], (4, 10))):
        assert_allclose(an.softmax(view), ref.softmax(view), 1e-12, 1e-13)


def test_softmax_per_head_temperature(rng):
    s = rng.normal(size=(2, 3, 4, 5))
    t = np.array([0.5, 1.0, 2.0])
    w = an.softmax(s, temperature=t[:, None] if False else t)
    for h in range(3):
        assert_allclose(w[:, h], ref.softmax(s[:, h], temperature=t[h]), 1e-12, 1e-13)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
def test_softmax_bad_temperature(bad):
    with pytest.raises(ValueError, match="temperature"):
        an.softmax(np.ones((2, 2)), temperature=bad)


def _lazy_shift_rows(dtype):
    """Rows of 300 scores whose first 16 have the maximum 2: later scores
    below 2 + 60 (no rescaling), above it in the middle of a block of 16
    (row 1) or at a block's start and again later (row 2), far above (row
    3: the first terms become tiny), a NaN (row 4) or +inf (rows 5, 6: the
    mass goes to the +inf entries) after the first block, every first score
    -inf (row 7), and the cap reached at a temperature of 0.05 (row 8)."""
    rng = np.random.default_rng(4)
    s = rng.uniform(-3, 1.5, size=(9, 300))
    s[:, 5] = 2.0
    s[0, 200] = 40.0
    s[1, 123] = 70.0
    s[2, 128] = 65.0
    s[2, 250] = 140.0
    s[3, 290] = 1e4
    s[4, 150] = np.nan
    s[5, 100] = np.inf
    s[6, [40, 299]] = np.inf
    s[7, :20] = -np.inf
    s[8, 60] = 6.0
    return s.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_rows_lazy_shift(dtype):
    """Softmax rows take exp against the first scores' maximum while no score
    exceeds it by the cap and the maximum of the rest from the first block
    that does: against the float64 reference, with and without out= (the
    streamed rows keep the last scaling), and the limits of NaN and +inf."""
    s = _lazy_shift_rows(dtype)
    w = np.concatenate([an.softmax(s[:8]), an.softmax(s[8:], temperature=0.05)])
    want = np.concatenate([ref.softmax(s[:8].astype(np.float64)),
                           ref.softmax(s[8:].astype(np.float64), temperature=0.05)])
    assert np.isnan(w[4]).all()
    assert_array_equal(w[5], np.eye(300)[100])
    assert_array_equal(w[6], (np.eye(300)[40] + np.eye(300)[299]) / 2)
    ok = [0, 1, 2, 3, 7, 8]
    assert_allclose(w[ok], want[ok], *tol(dtype))
    assert_allclose(w[ok].sum(-1), 1, 4 * np.finfo(dtype).eps * 300)
    out = np.empty_like(s[:8])
    assert_array_equal(an.softmax(s[:8], out=out), w[:8])
    st = an.stochastic_softmax(s[ok], trials=1000, seed=3)
    assert_allclose(st.sum(-1), 1)
    assert (st[2, :250] == 0).all() and st[2, 250] == 1   # all the mass on 140
