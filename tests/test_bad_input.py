"""Bad and odd input: a clear exception or a correct result, never a crash."""
import numpy as np
import pytest
from numpy.testing import assert_array_equal

import attnnorm as an


def test_output_too_large_raises_memory_error():
    # a zero-stride view of 2**41 elements: the output cannot be allocated
    huge = np.broadcast_to(np.zeros((1, 1), np.float32), (2 ** 21, 2 ** 20))
    with pytest.raises(MemoryError):
        an.softmax(huge)


def test_out_with_wrong_shape_or_dtype():
    s = np.random.default_rng(0).normal(size=(3, 4))
    with pytest.raises(ValueError):
        an.softmax(s, out=np.empty((4, 3)))
    with pytest.raises(TypeError):
        an.softmax(s, out=np.empty((3, 4), dtype=np.int64))
    # float32 out for float64 input is NumPy's same_kind casting: allowed, and rounded
    o = np.empty((3, 4), np.float32)
    an.softmax(s, out=o)
    assert_array_equal(o, an.softmax(s).astype(np.float32))


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 1024\]"):
        an.set_num_threads(0)
    with pytest.raises(TypeError):
        an.set_num_threads("two")


def test_threadpoolctl_limits_are_honoured():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not an.has_openmp():
        pytest.skip("built without OpenMP")
    old = an.get_num_threads()
    an.set_num_threads(2)
    try:
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            assert an.get_num_threads() == 1
        assert an.get_num_threads() == 2
    finally:
        an.set_num_threads(max(old, 1))


def test_huge_and_tiny_temperatures():
    s = np.array([[0.0, 1.0, 3.0], [2.0, 2.0, -1.0]])
    assert_array_equal(an.softmax(s, temperature=1e-300), [[0, 0, 1], [0.5, 0.5, 0]])
    np.testing.assert_allclose(an.softmax(s, temperature=1e300), 1 / 3)
    np.testing.assert_allclose(an.softmax(s, temperature=np.inf), 1 / 3)
    s32 = s.astype(np.float32)
    assert_array_equal(an.softmax(s32, temperature=1e-30), [[0, 0, 1], [0.5, 0.5, 0]])


class Wrapped:
    """A minimal array-like implementing __array_ufunc__ (as dask arrays do)."""

    def __init__(self, a):
        self.a = np.asarray(a)
        self.shape = self.a.shape
        self.dtype = self.a.dtype
        self.ndim = self.a.ndim

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        inputs = [x.a if isinstance(x, Wrapped) else x for x in inputs]
        return Wrapped(getattr(ufunc, method)(*inputs, **kw))


def test_array_ufunc_objects_dispatch():
    s = np.random.default_rng(1).normal(size=(2, 3, 4))
    res = an.softmax(Wrapped(s), causal=True)
    assert isinstance(res, Wrapped)
    assert_array_equal(res.a, an.softmax(s, causal=True))


def test_gufuncs_are_exposed_and_documented():
    assert isinstance(an._core.softmax, np.ufunc)
    assert an._core.softmax.signature.startswith("(n,m),(n,m)")
    for name, fn in an.NORMALIZERS.items():
        assert fn.__doc__ and len(fn.__doc__) > 80, name
