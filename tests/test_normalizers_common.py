"""Properties every normalizer of attnnorm.NORMALIZERS must have, whatever its
formula: agreement with the float64 reference, masks and empty rows, strides,
out=/axes=, determinism across thread counts, and NaN isolation.  Each new
normalizer registered in NORMALIZERS is picked up automatically."""
import concurrent.futures

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import attnnorm as an
from attnnorm import _reference as ref

NAMES = sorted(an.NORMALIZERS)
RANDOM = {"stochastic_softmax"}          # compared with itself, not with a reference
COUPLED = {"sinkhorn"}                   # rows interact through the column step


def tol(dtype, name):
    if np.dtype(dtype) == np.float32:
        return dict(rtol=2e-4, atol=2e-5)
    return dict(rtol=1e-9, atol=1e-11)


def call(name, s, **kw):
    return an.NORMALIZERS[name](s, **kw)


@pytest.fixture
def scores():
    return np.random.default_rng(7).normal(size=(2, 3, 5, 7))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opts", [{}, {"causal": True}, {"window": (1, 2)},
                                  {"mask": "random"}], ids=["plain", "causal", "window", "mask"])
def test_matches_reference(name, dtype, opts, scores):
    if name in RANDOM:
        pytest.skip("random normalizer: see test_normalizers_sparse")
    opts = dict(opts)
    if opts.get("mask") == "random":
        opts["mask"] = np.random.default_rng(1).random((5, 7)) > 0.3
    s = scores.astype(dtype)
    w = call(name, s, **opts)
    assert w.dtype == dtype and w.shape == s.shape
    assert_allclose(w, getattr(ref, name)(s.astype(np.float64), **opts), **tol(dtype, name))


@pytest.mark.parametrize("name", NAMES)
def test_strided_views_equal_contiguous(name):
    base = np.random.default_rng(3).normal(size=(9, 8))
    for view in (base.T, base[::-1, ::-2], np.broadcast_to(base[:1], (5, 8)), base[1::2]):
        assert_array_equal(call(name, view), call(name, np.ascontiguousarray(view)))


@pytest.mark.parametrize("name", NAMES)
def test_out_and_axes(name, scores):
    expect = call(name, scores)
    out = np.empty_like(scores)
    res = call(name, scores, out=out)
    assert res is out
    assert_array_equal(out, expect)
    # (query, key) axes given explicitly: keys on axis 1, queries on axis 3
    moved = np.moveaxis(scores, (-2, -1), (3, 1))
    res = call(name, moved, axes=[(3, 1), (3, 1)])
    assert_array_equal(np.moveaxis(res, (3, 1), (-2, -1)), expect)


@pytest.mark.parametrize("name", NAMES)
def test_out_aliasing_input(name, scores):
    expect = call(name, scores)
    s = scores.copy()
    res = call(name, s, out=s)
    assert_array_equal(res, expect)


@pytest.mark.parametrize("name", NAMES)
def test_bit_identical_for_1_and_2_threads(name):
    s = np.random.default_rng(5).normal(size=(4, 64, 301)).astype(np.float32)
    old = an.get_num_threads()
    try:
        an.set_num_threads(1)
        one = call(name, s, causal=True)
        an.set_num_threads(2)
        two = call(name, s, causal=True)
    finally:
        an.set_num_threads(max(old, 1))
    assert_array_equal(one, two)


@pytest.mark.parametrize("name", NAMES)
def test_fully_masked_rows(name, scores):
    mask = np.ones((5, 7), bool)
    mask[2] = False
    w = call(name, scores, mask=mask)
    assert_array_equal(w[..., 2, :], 0.0)
    assert not np.isnan(w).any()
    assert np.isnan(call(name, scores, mask=mask, empty="nan")[..., 2, :]).all()
    with pytest.raises(ValueError, match="empty"):
        call(name, scores, mask=mask, empty="raise")
    # masked keys always get exactly zero weight
    mask = np.random.default_rng(2).random((5, 7)) > 0.5
    assert_array_equal(call(name, scores, mask=mask)[..., ~mask], 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_nan_only_affects_its_row(name, scores):
    s = scores.copy()
    s[0, 1, 3, 4] = np.nan
    w = call(name, s)
    assert np.isnan(w[0, 1, 3]).any()
    clean = call(name, scores)
    if name in COUPLED:
        # the NaN row is excluded from the coupling; the others stay finite
        assert np.isfinite(np.delete(w[0, 1], 3, axis=0)).all()
    else:
        others = np.ones(w.shape[:-1], bool)
        others[0, 1, 3] = False
        assert_array_equal(w[others], clean[others])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(4, 1), (1, 6), (6,), (0, 5), (3, 0)])
def test_small_and_empty_shapes(name, shape):
    s = np.random.default_rng(0).normal(size=shape)
    w = call(name, s)
    assert w.shape == s.shape
    assert not np.isnan(w).any()
    if name not in RANDOM and s.size:
        assert_allclose(w, getattr(ref, name)(s), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", NAMES)
def test_leading_axes_broadcast_with_mask(name):
    if name in RANDOM:
        pytest.skip("each matrix of a batch draws from its own stream")
    rng = np.random.default_rng(4)
    s = rng.normal(size=(2, 3, 4, 6))
    mask = rng.random((2, 1, 4, 6)) > 0.3            # per batch, shared by heads
    w = call(name, s, mask=mask)
    for b in range(2):
        for h in range(3):
            assert_array_equal(w[b, h], call(name, s[b, h], mask=mask[b, 0]))


@pytest.mark.parametrize("name", NAMES)
def test_many_python_threads(name):
    rng = np.random.default_rng(8)
    inputs = [rng.normal(size=(3, 16, 40)) for _ in range(8)]
    expect = [call(name, x, causal=True) for x in inputs]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda x: call(name, x, causal=True), inputs * 3))
    for i, g in enumerate(got):
        assert_array_equal(g, expect[i % 8])


@pytest.mark.parametrize("name", NAMES)
def test_shared_argument_errors(name, scores):
    with pytest.raises(ValueError, match="mask"):
        call(name, scores, mask=np.ones((4, 7), bool))
    with pytest.raises(ValueError, match="mask"):
        call(name, scores, mask=np.ones((5, 2, 5, 7), bool))
    with pytest.raises(ValueError, match="empty"):
        call(name, scores, empty="skip")
    with pytest.raises(ValueError, match="window"):
        call(name, scores, window=(-1, 2))
    with pytest.raises(ValueError, match="window"):
        call(name, scores, window=3)
    with pytest.raises(ValueError, match="scores"):
        call(name, 1.0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.array([[1 + 2j, 0]]), np.array([["a", "b"]]),
                                 np.array([[object(), 1.0]], dtype=object)],
                         ids=["complex", "str", "object"])
def test_bad_dtypes_raise_type_error(name, bad):
    with pytest.raises(TypeError):
        call(name, bad)


@pytest.mark.parametrize("name", NAMES)
def test_dtype_promotion(name):
    s16 = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float16)
    assert call(name, s16).dtype == np.float32
    assert call(name, np.arange(12).reshape(3, 4)).dtype == np.float64
    assert call(name, [[0.5, 1.0, -2.0]]).dtype == np.float64
