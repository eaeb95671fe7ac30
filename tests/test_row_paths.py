"""The row normalizers' fast paths: unmasked contiguous rows (computed in place in
the output, the next row prefetched, chunks of rows scheduled dynamically) and the
vector primitives (AVX-512 intrinsics with masked tails on CPUs that have it, omp
simd loops elsewhere) at every row length up to a few vectors, against the float64
reference, across thread counts and against the portable path."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import attnnorm as an
from attnnorm import _reference as ref
from conftest import run_portable_and_best, tol

# every row normalizer of normalizers.c, with parameters that take each branch of
# its primitives (relu and polynomial: the integer powers of the vector path)
CASES = [("softmax", {}), ("softmax", {"temperature": 0.3}), ("softmax_sink", {}),
         ("ssmax", {}), ("sigmoid", {}), ("sigmoid", {"bias": 0.4}),
         ("relu", {"power": 1}), ("relu", {"power": 2}), ("polynomial", {"power": 1}),
         ("polynomial", {"power": 2}), ("polynomial", {"power": 3}), ("softpick", {}),
         ("nap", {}), ("nap", {"gain": 2.0, "bias": 0.5, "eps": 0.1}),
         ("affine_softmax", {"a": 0.7, "b": 0.05})]
IDS = [f"{nm}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for nm, kw in CASES]
# 1..70: every tail of the 16-lane (float) and 8-lane (double) loops and of the
# 64- and 32-element unrolled bodies
LENGTHS = list(range(1, 71))


def _rows(m, dtype, seed):
    """Rows of length m: plain scores, one with a NaN, one with +inf and -inf,
    one of large magnitude (exp overflows and underflows in float32)."""
    rng = np.random.default_rng(seed)
    s = 3 * rng.normal(size=(5, m))
    s[1, m // 2] = np.nan
    s[2, m - 1] = np.inf
    s[2, 0] = -np.inf
    s[3] *= 40
    s[4] = np.abs(s[4]) + 0.5           # all positive (softpick's support is full)
    return s.astype(dtype)


def _check(w, r, dtype):
    with np.errstate(over="ignore"):
        rr = np.asarray(r).astype(dtype)
    rtol, atol = tol(dtype)
    assert_array_equal(np.isnan(w), np.isnan(rr))
    assert_allclose(w, rr, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_every_row_length_matches_reference(dtype, name, kw):
    f, r = getattr(an, name), getattr(ref, name)
    for m in LENGTHS:
        s = _rows(m, dtype, m)
        if m == 1:
            s = s[[0, 1, 4]]      # a single key cannot hold both +inf and -inf
        out = np.full_like(s, 7.0)
        w = f(s, out=out, **kw)
        assert w is out
        _check(w, r(s, **kw), dtype)


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_contiguous_rows_bit_identical_across_thread_counts(rng, name, kw):
    """Enough unmasked rows for several chunks per thread, rows of unequal
    length (causal) among them."""
    s = (2 * rng.normal(size=(8, 64, 100))).astype(np.float32)
    s[1, 7, 3] = np.nan
    old = an.get_num_threads()
    try:
        res = {}
        for t in (1, 2):
            an.set_num_threads(t)
            res[t] = (getattr(an, name)(s, **kw), getattr(an, name)(s, causal=True, **kw))
    finally:
        an.set_num_threads(old)
    for a, b in zip(res[1], res[2]):
        assert_array_equal(a, b)
    # the NaN score stays in its own row
    assert np.isnan(res[1][0][1, 7, 3]) and not np.isnan(res[1][0][1, 8]).any()


def test_portable_and_vector_paths_agree(tmp_path):
    """The same rows through ATTNNORM_CPU=default (portable primitives) and the
    best path of this CPU agree to the reference tolerance at every length."""
    arrays = {f"s{m}": _rows(m, np.float64, 100 + m)[[0, 3, 4]] for m in LENGTHS}
    np.savez(tmp_path / "in.npz", **arrays)
    code = (
        "import sys, numpy as np, attnnorm as an\n"
        f"cases = {CASES!r}\n"
        "d = np.load(sys.argv[1]); res = {}\n"
        "for key in d.files:\n"
        "    for j, (nm, kw) in enumerate(cases):\n"
        "        for dt in (np.float32, np.float64):\n"
        "            res[f'{key}_{j}_{np.dtype(dt).name}'] = getattr(an, nm)(d[key].astype(dt), **kw)\n"
        "np.savez(sys.argv[2], path=an.simd_path(), **res)\n")
    outs, keys = run_portable_and_best(tmp_path, code)
    assert len(keys) == len(LENGTHS) * len(CASES) * 2
    for k in keys:
        a, b = outs["default"][k], outs["best"][k]
        rtol, atol = tol(a.dtype)
        assert_array_equal(np.isnan(a), np.isnan(b))
        assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=k)


# every row normalizer, including those that copy the row before working in place
LAYOUT_CASES = CASES + [("sparsemax", {}), ("entmax", {}), ("entmax", {"alpha": 1.3}),
                        ("stochastic_softmax", {"seed": 3}), ("stickbreaking", {}),
                        ("stickbreaking", {"include_current": False}), ("ssmax", {"c": 0.0})]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", LAYOUT_CASES,
                         ids=[f"{nm}-{'-'.join(f'{k}={v}' for k, v in kw.items())}"
                              for nm, kw in LAYOUT_CASES])
def test_scores_read_in_place_or_gathered_give_the_same_bits(dtype, name, kw):
    """A contiguous score row is read where it is and the weights written to the
    output (contiguous or strided); a strided score row is gathered first; with
    out= the scores themselves the row is computed in place.  Every layout gives
    the same bits, with a window (rows whose first visible key is not key 0) and
    without, rows with NaN, +-inf and a row of -inf among them."""
    rng = np.random.default_rng(5)
    s = (3 * rng.normal(size=(3, 9, 37))).astype(dtype)
    s[0, 2, 5] = np.nan
    s[1, 3, [0, 7]] = [np.inf, -np.inf]
    s[2, 4] = -np.inf
    f = getattr(an, name)
    for extra in ({}, {"window": (6, 2)}, {"causal": True}):
        base = f(s, **kw, **extra)
        strided_out = np.full((3, 9, 74), 7.0, dtype)[..., ::2]
        f(s, out=strided_out, **kw, **extra)
        strided_in = np.repeat(s, 2, axis=-1)[..., ::2]
        assert not strided_in.flags.c_contiguous
        inplace = s.copy()
        f(inplace, out=inplace, **kw, **extra)
        for other in (strided_out, f(strided_in, **kw, **extra), inplace):
            assert_array_equal(other, base)


@pytest.mark.parametrize("name,kw", [("softmax", {}), ("sparsemax", {}), ("stickbreaking", {}),
                                     ("softpick", {}), ("ssmax", {}), ("ssmax", {"c": 0.0}),
                                     ("stochastic_softmax", {"seed": 3})])
def test_outputs_beyond_the_caches_give_the_same_bits(name, kw):
    """An output of 16 MiB or more is written by non-temporal stores from the
    thread's scratch (rows of 1021 keys: rows start off vector boundaries).
    It equals the same call into a strided output (written element by
    element), with and without a window, and without a window each row
    equals that row computed in a small call (not for stochastic_softmax,
    whose draws depend on the row's index).  Some rows hold a score far above
    the first ones (the softmax family's lazy shift stops early there, and the
    kernel then fetches the rest of the next row itself)."""
    rng = np.random.default_rng(9)
    s = rng.normal(size=(4112, 1021)).astype(np.float32)      # 16.0 MiB of float32
    s[[1, 1500, 2047], [700, 5, 1020]] = 60.0
    assert s.nbytes >= 16 << 20
    f = getattr(an, name)
    for extra in ({}, {"window": (300, 0)}, {"causal": True}, {"window": (40, 700)}):
        big = f(s, **kw, **extra)
        strided = np.empty((4112, 2042), np.float32)[:, ::2]
        f(s, out=strided, **kw, **extra)
        assert_array_equal(big, strided)
    if name == "stochastic_softmax":
        return
    whole = f(s, **kw)
    for r in (0, 1, 2, 1500, 4111):
        assert_array_equal(whole[r], f(s[r: r + 1], **kw)[0])
