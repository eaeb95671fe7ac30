"""causal="bottom_right" (= True) and causal="top_left" (PyTorch's is_causal)
everywhere causal is accepted, with the window measured from the same
diagonal.  Compared with the float64 reference and with torch for n != m."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import attnnorm as an
from attnnorm import _reference as ref

NM = [(3, 7), (7, 3), (5, 5), (1, 4), (4, 1)]
WINDOWS = [None, (1, None), (None, 1), (2, 0), (0, 3)]
EXTRA = {"stochastic_softmax": {"seed": 3}}


def test_visible_top_left_is_pytorch_tril():
    for n, m in NM:
        assert_array_equal(ref.visible(n, m, causal="top_left"),
                           np.tril(np.ones((n, m), bool)))
        assert_array_equal(ref.visible(n, m, causal="bottom_right"),
                           ref.visible(n, m, causal=True))


@pytest.mark.parametrize("name", sorted(an.NORMALIZERS))
@pytest.mark.parametrize("nm", NM)
def test_normalizers_top_left_match_reference(rng, name, nm):
    n, m = nm
    s = rng.normal(size=(2, n, m))
    f, r = an.NORMALIZERS[name], getattr(ref, name)
    for window in WINDOWS:
        for causal in ("top_left", "bottom_right"):
            got = f(s, causal=causal, window=window, **EXTRA.get(name, {}))
            if name == "stochastic_softmax":
                # random weights: same rows as the explicit top-left mask
                vis = ref.visible(n, m, causal=causal, window=window)
                assert_array_equal(got, f(s, mask=vis, **EXTRA[name]))
                continue
            want = r(s, causal=causal, window=window)
            assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=f"{causal} {window}")
        assert_array_equal(f(s, causal="bottom_right", window=window, **EXTRA.get(name, {})),
                           f(s, causal=True, window=window, **EXTRA.get(name, {})))


@pytest.mark.parametrize("name", sorted(an.NORMALIZERS))
def test_attention_top_left_matches_weights_and_reference(rng, name):
    n, m, d, e = 5, 9, 4, 3
    q, k, v = rng.normal(size=(n, d)), rng.normal(size=(m, d)), rng.normal(size=(m, e))
    for window in WINDOWS:
        kw = dict(causal="top_left", window=window, **EXTRA.get(name, {}))
        w = an.attention_weights(q, k, name, **kw)
        vis = ref.visible(n, m, causal="top_left", window=window)
        assert_array_equal(w, an.attention_weights(q, k, name, mask=vis, **EXTRA.get(name, {})))
        assert_allclose(an.attention(q, k, v, name, **kw), w @ v, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("nm", [(3, 7), (7, 3), (6, 6), (1, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_top_left_equals_torch_is_causal(nm, dtype):
    torch = pytest.importorskip("torch")
    n, m = nm
    g = np.random.default_rng(1)
    q = g.normal(size=(2, 3, n, 8)).astype(dtype)
    k = g.normal(size=(2, 3, m, 8)).astype(dtype)
    v = g.normal(size=(2, 3, m, 5)).astype(dtype)
    want = torch.nn.functional.scaled_dot_product_attention(
        torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), is_causal=True).numpy()
    got = an.attention(q, k, v, causal="top_left")
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert_allclose(got, want, rtol=tol, atol=tol)
    if n != m:   # the bottom-right default differs from torch when n != m
        assert not np.allclose(an.attention(q, k, v, causal=True), want, atol=1e-3)


def test_diagnostics_top_left(rng):
    n, m = 4, 7
    q, k = rng.normal(size=(n, 3)), rng.normal(size=(m, 3))
    for window in WINDOWS:
        kw = dict(causal="top_left", window=window)
        w = an.attention_weights(q, k, **kw)
        d = an.diagnose(q, k, **kw)
        assert_allclose(d.entropy, ref.entropy(w, **kw), rtol=1e-10, atol=1e-12)
        assert_allclose(d.column_mass, ref.column_mass(w, **kw), rtol=1e-10, atol=1e-12)
        s = q @ k.T / np.sqrt(3)
        assert_allclose(d.margin, ref.separation_margin(s, **kw), rtol=1e-10, atol=1e-12)
        for f in ("entropy", "participation_ratio", "support_size", "negative_mass",
                  "column_mass"):
            assert_allclose(getattr(an, f)(w, **kw), getattr(ref, f)(w, **kw),
                            rtol=1e-10, atol=1e-12, err_msg=f)
        vis = ref.visible(n, m, **kw)
        assert_allclose(an.effective_support(w, **kw), an.effective_support(w, mask=vis))
        assert_allclose(an.sink_mass(w, **kw), an.sink_mass(w, mask=vis))
        lo, hi = an.vanishing_bounds(q, k, **kw)
        lo2, hi2 = an.vanishing_bounds(q, k, mask=vis)
        assert_array_equal(lo, lo2)
        assert_array_equal(hi, hi2)
        for nm in ("softmax", "sparsemax", "sigmoid"):
            ww = an.attention_weights(q, k, nm, **kw)
            assert_array_equal(an.jacobian_norm(ww, nm, **kw), an.jacobian_norm(ww, nm, mask=vis))


@pytest.mark.parametrize("nm", [(3, 7), (7, 3), (130, 70), (70, 130)])
def test_linear_family_top_left(rng, nm):
    n, m = nm
    q, k, v = rng.normal(size=(n, 4)), rng.normal(size=(m, 4)), rng.normal(size=(m, 3))
    for fmap in ("elu1", "relu", "exp"):
        assert_allclose(an.linear_attention(q, k, v, fmap, causal="top_left"),
                        ref.linear_attention(q, k, v, fmap, causal="top_left"),
                        rtol=1e-9, atol=1e-11, err_msg=fmap)
    assert_allclose(an.log_attention(q, k, v, causal="top_left"),
                    ref.linear_attention(q, k, v, "exp", causal="top_left"), rtol=1e-9, atol=1e-11)
    assert_allclose(an.cheap_linear_attention(k, q, causal="top_left"),
                    ref.cheap_linear_attention(k, q, causal="top_left"), rtol=1e-9, atol=1e-9)
    s = rng.normal(size=m)
    assert_allclose(an.zeros_attention(q, k, v, s, 0.3, 0.7, causal="top_left"),
                    ref.zeros_attention(q, k, v, s, 0.3, 0.7, causal="top_left"),
                    rtol=1e-9, atol=1e-11)
    assert_allclose(an.zeros_weights(s, 0.3, 0.7, causal="top_left", n=n),
                    ref.zeros_weights(s, 0.3, 0.7, causal="top_left", n=n), rtol=1e-9, atol=1e-12)
    if n != m:
        assert not np.allclose(an.linear_attention(q, k, v, causal="top_left"),
                               an.linear_attention(q, k, v, causal=True))


def test_linear_attention_top_left_is_the_tril_mask_of_exp_logits():
    # exp-kernel linear attention is softmax attention on the logits
    # log(exp(q) exp(k)^T); top-left causal keeps the tril part (is_causal)
    g = np.random.default_rng(2)
    n, m = 4, 9
    q, k, v = g.normal(size=(n, 3)), g.normal(size=(m, 3)), g.normal(size=(m, 2))
    w = np.tril(np.exp(q) @ np.exp(k).T)
    want = (w / w.sum(-1, keepdims=True)) @ v
    assert_allclose(an.linear_attention(q, k, v, "exp", causal="top_left"), want, rtol=1e-10)
    assert_allclose(an.log_attention(q, k, v, causal="top_left"), want, rtol=1e-10)


@pytest.mark.parametrize("bad", ["top-left", "TOP_LEFT", 2, -1, 0.5, "true", None, [True]])
def test_bad_causal_values_raise_naming_causal(rng, bad):
    s = rng.normal(size=(3, 4))
    q = rng.normal(size=(3, 2))
    calls = [lambda: an.softmax(s, causal=bad), lambda: an.attention(q, q, q, causal=bad),
             lambda: an.entropy(s, causal=bad), lambda: an.diagnose(q, q, causal=bad),
             lambda: an.linear_attention(q, q, q, causal=bad),
             lambda: an.vanishing_bounds(q, q, causal=bad)]
    for call in calls:
        with pytest.raises(ValueError, match="causal"):
            call()


@pytest.mark.parametrize("name", ["softmax", "entmax", "sinkhorn", "sigmoid"])
def test_normalizer_vjp_top_left_matches_explicit_mask(rng, name):
    n, m = 4, 7
    s, g = rng.normal(size=(n, m)), rng.normal(size=(n, m))
    vis = ref.visible(n, m, causal="top_left")
    got = an.normalizer_vjp(s, g, name, causal="top_left")
    want = an.normalizer_vjp(s, g, name, mask=vis)
    assert_array_equal(got[0], want[0])


def test_linear_vjps_top_left_square_is_bottom_right(rng):
    q, k, v, g = (rng.normal(size=(4, 3)) for _ in range(4))
    for a, b in zip(an.linear_attention_vjp(q, k, v, g, causal="top_left"),
                    an.linear_attention_vjp(q, k, v, g, causal=True)):
        assert_array_equal(a, b)
    with pytest.raises(ValueError, match="causal must be"):
        an.linear_attention_vjp(q, k, v, g, causal="top-left")
