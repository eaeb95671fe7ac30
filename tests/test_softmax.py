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
