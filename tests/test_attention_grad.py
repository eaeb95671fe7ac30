"""attention_vjp: the fused softmax-family backward and the composed path for
the other normalizers, against central finite differences of the float64
NumPy reference, the normalizer VJP composed with matrix products, and PyTorch
autograd of the eager formula; thread-count and SIMD-path independence."""
import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import attnnorm as an
from attnnorm import _reference as ref

FAMILY = {
    "softmax": {"temperature": 0.7},
    "softmax_sink": {"sink": 0.3},
    "ssmax": {"c": 0.5},
    "affine_softmax": {"a": 1.3, "b": 0.2},
}
# the other normalizers (composed path) with parameters away from kinks
OTHERS = {
    "sigmoid": {"bias": -0.5},
    "relu": {"power": 2.0},
    "polynomial": {"power": 3},
    "softpick": {"eps": 1e-3},
    "nap": {"gain": 1.2, "bias": 0.1, "eps": 1e-2},
    "sparsemax": {},
    "entmax": {"alpha": 1.5},
    "sinkhorn": {"n_iter": 3, "eps": 1.3},
    "stickbreaking": {},
}
# (n, m, causal, window, boolean mask, a fully masked row)
LAYOUTS = {
    "plain": (5, 7, False, None, False, False),
    "causal_n_lt_m": (4, 9, True, None, False, False),
    "window": (7, 7, False, (2, 1), False, False),
    "bool_mask": (5, 6, False, None, True, False),
    "masked_row": (5, 6, True, None, True, True),
}


def make(rng, n, m, d=3, e=2, lead=(2,), dtype=np.float64, masked=False, empty_row=False):
    q = rng.standard_normal(lead + (n, d)).astype(dtype)
    k = rng.standard_normal(lead + (m, d)).astype(dtype)
    v = rng.standard_normal(lead + (m, e)).astype(dtype)
    go = rng.standard_normal(lead + (n, e)).astype(dtype)
    mask = None
    if masked:
        mask = rng.random((n, m)) > 0.3
        mask[:, -1] = True
        if empty_row:
            mask[1] = False
    return q, k, v, go, mask


def loss(q, k, v, go, name, opts, params):
    return float(np.sum(go * ref.attention(q, k, v, name, **opts, **params)))


def fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        x0 = x[idx]
        x[idx] = x0 + h
        fp = f()
        x[idx] = x0 - h
        fm = f()
        x[idx] = x0
        g[idx] = (fp - fm) / (2 * h)
    return g


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("name", sorted(FAMILY) + sorted(OTHERS))
def test_against_finite_differences(name, layout):
    """Every input and every real parameter, float64, relative error <= 1e-6."""
    rng = np.random.default_rng(abs(hash((name, layout))) % 2**32)
    n, m, causal, window, masked, empty_row = LAYOUTS[layout]
    q, k, v, go, mask = make(rng, n, m, masked=masked, empty_row=empty_row)
    params = dict(FAMILY.get(name, OTHERS.get(name)))
    opts = dict(causal=causal, window=window, mask=mask)
    g = an.attention_vjp(q, k, v, go, name, **opts, **params)
    f = lambda: loss(q, k, v, go, name, opts, params)  # noqa: E731
    for got, x in ((g.q, q), (g.k, k), (g.v, v)):
        assert got.shape == x.shape
        assert np.all(np.isfinite(got))
        assert rel_err(got, fd_grad(f, x)) <= 1e-6
    if empty_row:
        assert_array_equal(g.q[:, 1], 0)
    for p, val in params.items():
        if p in ("n_iter", "power") and name != "relu":
            continue   # integer parameters
        box = np.array(float(val))

        def fp():
            return loss(q, k, v, go, name, opts, dict(params, **{p: float(box)}))
        fd = fd_grad(fp, box)
        assert np.isfinite(g.params[p])
        assert abs(float(g.params[p]) - float(fd)) <= 1e-6 * max(abs(float(fd)), 1e-3), p


def _per_head(name, H):
    if name not in FAMILY:
        return dict(OTHERS[name])
    shape = lambda p: (H, 1) if p in ("a", "b") else (H,)  # noqa: E731
    return {p: val * (1 + 0.1 * np.arange(H)).reshape(shape(p))
            for p, val in FAMILY[name].items()}


@pytest.mark.parametrize("name", sorted(FAMILY) + sorted(OTHERS))
@pytest.mark.parametrize("causal", [False, True, "top_left"])
def test_kernel_equals_normalizer_vjp_composed(name, causal):
    """The C backward (fused softmax family, generic row-VJP path, Sinkhorn
    through its iterations) against normalizer_vjp on the materialised scores composed with
    the matrix products (n != m, several query blocks and key chunks,
    per-head parameters, a boolean mask with a fully masked row)."""
    rng = np.random.default_rng(7)
    n, m, d, e, H = 70, 300, 8, 5, 3
    q, k, v, go, _ = make(rng, n, m, d, e, lead=(H,))
    mask = rng.random((n, m)) > 0.2
    mask[4] = False
    params = _per_head(name, H)
    g = an.attention_vjp(q, k, v, go, name, causal=causal, mask=mask, **params)
    sc = 1 / np.sqrt(d)
    s = sc * q @ np.swapaxes(k, -1, -2)
    w = ref.attention_weights(q, k, name, causal=causal, mask=mask, **params)
    ng = an.normalizer_vjp(s, go @ np.swapaxes(v, -1, -2), name, causal=causal, mask=mask,
                           **params)
    assert_allclose(g.v, np.swapaxes(w, -1, -2) @ go, atol=1e-12)
    assert_allclose(g.q, sc * ng.scores @ k, atol=1e-12)
    assert_allclose(g.k, sc * np.swapaxes(ng.scores, -1, -2) @ q, atol=1e-12)
    for p in ng.params:
        assert np.shape(g.params[p]) == np.shape(params.get(p, 0.0))
        assert_allclose(g.params[p], ng.params[p], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(OTHERS))
@pytest.mark.parametrize("causal,window", [(False, None), (True, (200, 0)), (False, (90, 130))])
def test_unmasked_windows_equal_normalizer_vjp_composed(name, causal, window):
    """Without a boolean mask (the row VJP reads the visible keys in place)
    and with windows whose query blocks start in the middle of a key chunk
    (full-row tiles from a column offset): the generic path and Sinkhorn
    against normalizer_vjp composed with the matrix products."""
    rng = np.random.default_rng(17)
    n, m, d, e = 70, 600, 8, 5
    q, k, v, go, _ = make(rng, n, m, d, e, lead=(2,))
    params = dict(OTHERS[name])
    opts = dict(causal=causal, window=window)
    g = an.attention_vjp(q, k, v, go, name, **opts, **params)
    sc = 1 / np.sqrt(d)
    s = sc * q @ np.swapaxes(k, -1, -2)
    w = ref.attention_weights(q, k, name, **opts, **params)
    ng = an.normalizer_vjp(s, go @ np.swapaxes(v, -1, -2), name, **opts, **params)
    assert np.abs(ng.scores).max() > 0
    assert_allclose(g.v, np.swapaxes(w, -1, -2) @ go, atol=1e-12)
    assert_allclose(g.q, sc * ng.scores @ k, atol=1e-12)
    assert_allclose(g.k, sc * np.swapaxes(ng.scores, -1, -2) @ q, atol=1e-12)
    for p in ng.params:
        assert_allclose(g.params[p], ng.params[p], rtol=1e-10, atol=1e-12)



def _nan_filled_heap():
    """Leave freed heap blocks of many sizes full of NaN, so that a kernel
    reading scratch it never wrote (and multiplying it by a zero weight)
    returns NaN instead of the right answer."""
    for size in (1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 3 << 18):
        blocks = [np.full(size, np.nan) for _ in range(4)]
        del blocks


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sinkhorn_windows_never_read_stale_scratch(dtype):
    """Windows whose query blocks start in the middle of a key chunk: the
    dO V^T tiles begin at the block's first visible column, and the columns
    before it must count as zero, whatever the scratch held before."""
    rng = np.random.default_rng(17)
    q, k, v, go, _ = make(rng, 70, 600, 8, 5, lead=(2,), dtype=dtype)
    params = dict(OTHERS["sinkhorn"])
    for window in [(90, 130), (2, 1), (5, 0)] * 4:
        clean = an.attention_vjp(q, k, v, go, "sinkhorn", window=window, **params)
        _nan_filled_heap()
        g = an.attention_vjp(q, k, v, go, "sinkhorn", window=window, **params)
        for a, b in zip((g.q, g.k, g.v), (clean.q, clean.k, clean.v)):
            assert np.isfinite(a).all()
            assert_array_equal(a, b)

def _torch_reference(q, k, v, go, name, params, causal, mask):
    torch = pytest.importorskip("torch")
    Q, K, V = (torch.tensor(x, requires_grad=True) for x in (q, k, v))
    P = {p: torch.tensor(float(x), dtype=torch.float64, requires_grad=True)
         for p, x in params.items()}
    n, m = q.shape[-2], k.shape[-2]
    vis = torch.ones(n, m, dtype=torch.bool)
    if causal:
        vis &= torch.arange(m)[None, :] <= torch.arange(n)[:, None] + (m - n)
    if mask is not None:
        vis &= torch.tensor(mask)
    s = (Q @ K.transpose(-1, -2)) / np.sqrt(q.shape[-1])
    neg = torch.finfo(torch.float64).min
    if name == "softmax":
        a = torch.softmax((s / P["temperature"]).masked_fill(~vis, neg), -1)
    elif name == "softmax_sink":
        z = s.masked_fill(~vis, neg)
        a = torch.softmax(torch.cat([P["sink"].expand(z.shape[:-1] + (1,)), z], -1), -1)[..., 1:]
    elif name == "ssmax":
        nv = vis.sum(-1, keepdim=True).clamp(min=1).double()
        a = torch.softmax((P["c"] * torch.log(nv) * s).masked_fill(~vis, neg), -1)
    else:
        a = P["a"] * torch.softmax(s.masked_fill(~vis, neg), -1) + P["b"]
    a = a * vis * vis.any(-1, keepdim=True)
    (a @ V * torch.tensor(go)).sum().backward()
    return (Q.grad.numpy(), K.grad.numpy(), V.grad.numpy(),
            {p: t.grad.numpy() for p, t in P.items()})


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_against_pytorch_autograd(name):
    rng = np.random.default_rng(11)
    q, k, v, go, _ = make(rng, 60, 280, 8, 5, lead=(2,))
    mask = rng.random((60, 280)) > 0.25
    mask[7] = False
    g = an.attention_vjp(q, k, v, go, name, causal=True, mask=mask, **FAMILY[name])
    tq, tk, tv, tp = _torch_reference(q, k, v, go, name, FAMILY[name], True, mask)
    assert_allclose(g.q, tq, atol=1e-12)
    assert_allclose(g.k, tk, atol=1e-12)
    assert_allclose(g.v, tv, atol=1e-12)
    for p in FAMILY[name]:
        assert_allclose(g.params[p], tp[p], rtol=1e-10)


@pytest.mark.parametrize("name", sorted(FAMILY) + ["stochastic_softmax", "sigmoid", "entmax",
                                                    "sinkhorn"])
def test_float32_close_to_float64(name):
    rng = np.random.default_rng(5)
    params = FAMILY.get(name, OTHERS.get(name, {}))
    q, k, v, go, _ = make(rng, 50, 130, 16, 8, lead=(3,))
    g64 = an.attention_vjp(q, k, v, go, name, causal=True, **params)
    g32 = an.attention_vjp(*(x.astype(np.float32) for x in (q, k, v, go)), name, causal=True,
                           **params)
    for a, b in zip(g32[:3], g64[:3]):
        assert a.dtype == np.float32
        assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    for p in g64.params:
        assert_allclose(g32.params[p], g64.params[p], rtol=2e-4, atol=2e-3)


def test_stochastic_softmax_is_straight_through():
    """The straight-through estimator: exactly softmax attention's backward."""
    rng = np.random.default_rng(2)
    q, k, v, go, _ = make(rng, 20, 30, 4, 3)
    g = an.attention_vjp(q, k, v, go, "stochastic_softmax", causal=True, trials=50, seed=3)
    s = an.attention_vjp(q, k, v, go, "softmax", causal=True)
    for a, b in zip(g[:3], s[:3]):
        assert_array_equal(a, b)
    assert g.params == {}


def test_out_and_stats_from_the_forward_pass():
    rng = np.random.default_rng(4)
    q, k, v, go, _ = make(rng, 30, 40, 4, 3)
    out, st = an.attention(q, k, v, "softmax_sink", sink=0.5, return_stats=True)
    out2, lse = an.attention_forward(q, k, v, "softmax_sink", sink=0.5)
    assert_allclose(out2, out, atol=1e-14)
    assert_allclose(lse, st.lognorm, atol=1e-13)
    g1 = an.attention_vjp(q, k, v, go, "softmax_sink", sink=0.5)
    g2 = an.attention_vjp(q, k, v, go, "softmax_sink", sink=0.5, out=out, stats=st)
    g3 = an.attention_vjp(q, k, v, go, "softmax_sink", sink=0.5, out=out2, stats=lse)
    for a, b, c in zip(g1[:3], g2[:3], g3[:3]):
        assert_allclose(a, b, atol=1e-13)
        assert_allclose(a, c, atol=1e-13)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name,params", sorted(FAMILY.items()) + [
    ("affine_softmax", {"a": 0.7, "b": 0.0}), ("stochastic_softmax", {"seed": 4}),
    ("sigmoid", {})])
def test_attention_forward_matches_attention_stats(name, params, causal):
    """attention_forward's output and log-normaliser (online pass where there
    is one) equal attention(..., return_stats=True)'s, empty rows included."""
    rng = np.random.default_rng(6)
    q, k, v, _, _ = make(rng, 60, 300, 8, 5, lead=(2,))
    mask = rng.random((60, 300)) > 0.3
    mask[5] = False
    out, lse = an.attention_forward(q, k, v, name, causal=causal, mask=mask, **params)
    out2, st = an.attention(q, k, v, name, causal=causal, mask=mask, return_stats=True, **params)
    assert_allclose(out, out2, atol=1e-13)
    assert_allclose(lse, st.lognorm, atol=1e-12)   # NaN for sigmoid: equal_nan
    assert np.isnan(lse[:, 5]).all()


def test_grouped_query_and_per_head_temperature():
    """k, v shared by 2 query groups: dk, dv summed over the groups; a per-head
    temperature gets a per-head gradient."""
    rng = np.random.default_rng(8)
    q = rng.standard_normal((2, 3, 2, 9, 4))        # (B, Hkv, G, n, d)
    k = rng.standard_normal((2, 3, 1, 11, 4))
    v = rng.standard_normal((2, 3, 1, 11, 5))
    go = rng.standard_normal((2, 3, 2, 9, 5))
    T = np.array([0.5, 1.0, 2.0]).reshape(3, 1)   # per kv head, over (B, Hkv, G)
    g = an.attention_vjp(q, k, v, go, "softmax", temperature=T, causal=True)
    assert g.k.shape == k.shape and g.v.shape == v.shape
    assert g.params["temperature"].shape == (3, 1)
    kb = np.broadcast_to(k, q.shape[:-2] + k.shape[-2:])
    vb = np.broadcast_to(v, q.shape[:-2] + v.shape[-2:])
    gb = an.attention_vjp(q, kb.copy(), vb.copy(), go, "softmax", temperature=T, causal=True)
    assert_allclose(g.k, gb.k.sum(axis=2, keepdims=True), atol=1e-13)
    assert_allclose(g.v, gb.v.sum(axis=2, keepdims=True), atol=1e-13)
    assert_allclose(g.params["temperature"], gb.params["temperature"], atol=1e-13)


def test_fully_masked_and_minus_inf_rows_are_zero_not_nan():
    rng = np.random.default_rng(9)
    q, k, v, go, _ = make(rng, 6, 5, lead=())
    mask = np.ones((6, 5), bool)
    mask[2] = False
    for name in sorted(FAMILY):
        g = an.attention_vjp(q, k, v, go, name, mask=mask, window=(0, 0), **FAMILY[name])
        for x in g[:3]:
            assert np.all(np.isfinite(x))
        assert_array_equal(g.q[2], 0)
        assert_array_equal(g.q[:1], 0)   # row 0 of a (6, 5) window (0, 0) sees no key


def test_large_scores_stay_finite():
    """Scores of size ~1e3: the log-normaliser keeps the exponentials in range."""
    rng = np.random.default_rng(10)
    q, k, v, go, _ = make(rng, 20, 40, 4, 3, lead=())
    for dt in (np.float32, np.float64):
        g = an.attention_vjp(*(x.astype(dt) for x in (q * 30, k * 30, v, go)), "softmax")
        for x in g[:3]:
            assert np.all(np.isfinite(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,lead", [
    ("softmax", (5,)), ("ssmax", (5,)), ("affine_softmax", (5,)), ("entmax", (5,)),
    ("nap", (5,)), ("sinkhorn", (5,)), ("softmax", ()), ("softmax_sink", (1,)),
    ("ssmax", ()), ("affine_softmax", ())])
def test_bit_identical_for_1_and_2_threads(name, lead, dtype):
    """5 problems: one per thread; 1 problem: the split schedule with 2
    threads (query blocks, then key chunks in parallel) against 1 thread."""
    rng = np.random.default_rng(12)
    q, k, v, go, _ = make(rng, 100, 600, 16, 8, lead=lead, dtype=dtype)
    mask = rng.random((100, 600)) > 0.1
    mask[3] = False
    params = _per_head(name, 5) if lead == (5,) else dict(FAMILY.get(name, OTHERS.get(name)))
    res = []
    old = an.get_num_threads()
    try:
        for nt in (1, 2, 1):
            an.set_num_threads(nt)
            res.append(an.attention_vjp(q, k, v, go, name, causal=True, mask=mask, **params))
    finally:
        an.set_num_threads(old)
    for other in res[1:]:
        for a, b in zip(res[0][:3], other[:3]):
            assert_array_equal(a, b)
        for p in res[0].params:
            assert_array_equal(res[0].params[p], other.params[p])


def test_non_contiguous_views():
    """Strided inputs (Fortran order, transposed copies, every other element)
    give the same gradients as contiguous ones."""
    rng = np.random.default_rng(13)
    q, k, v, go, _ = make(rng, 20, 30, 6, 4, lead=(2,))
    qt = np.asfortranarray(q)
    kt = np.swapaxes(np.swapaxes(k, -1, -2).copy(), -1, -2)
    vt = np.stack([v, -v], axis=-1)[..., 0]
    got = np.stack([go, go], axis=-2)[..., 0, :]
    assert not (qt.flags.c_contiguous or kt.flags.c_contiguous or vt.flags.c_contiguous
                or got.flags.c_contiguous)
    g1 = an.attention_vjp(q, k, v, go, "softmax", causal=True)
    g2 = an.attention_vjp(qt, kt, vt, got, "softmax", causal=True)
    for a, b in zip(g1[:3], g2[:3]):
        assert_allclose(a, b, atol=1e-14)


@pytest.mark.parametrize("name", ["softmax", "polynomial", "entmax", "sinkhorn"])
def test_param_grads_false_skips_only_the_parameters(name):
    rng = np.random.default_rng(16)
    q, k, v, go, _ = make(rng, 30, 70, 6, 4, lead=(2,))
    params = dict(FAMILY.get(name, OTHERS.get(name)))
    g1 = an.attention_vjp(q, k, v, go, name, causal=True, **params)
    g2 = an.attention_vjp(q, k, v, go, name, causal=True, param_grads=False, **params)
    for a, b in zip(g1[:3], g2[:3]):
        assert_array_equal(a, b)
    assert g2.params == {} and len(g1.params) == len(an.REAL_PARAMS[name])


def test_grad_out_shape_is_checked():
    rng = np.random.default_rng(14)
    q, k, v, go, _ = make(rng, 5, 6)
    with pytest.raises(ValueError, match="grad_out"):
        an.attention_vjp(q, k, v, go[..., :1], "softmax")


def test_portable_and_simd_paths_agree(tmp_path):
    rng = np.random.default_rng(15)
    q, k, v, go, _ = make(rng, 60, 280, 12, 7, lead=(2,), dtype=np.float32)
    np.savez(tmp_path / "in.npz", q=q, k=k, v=v, go=go)
    code = (
        "import sys, numpy as np, attnnorm as an\n"
        "z = np.load(sys.argv[1]); res = {}\n"
        "for dt in (np.float32, np.float64):\n"
        "    g = an.attention_vjp(*(z[x].astype(dt) for x in ('q', 'k', 'v', 'go')),"
        " 'softmax', causal=True, temperature=0.8)\n"
        "    for nm, x in zip('qkv', g[:3]): res[nm + dt.__name__] = x\n"
        "np.savez(sys.argv[2], path=an.simd_path(), **res)\n")
    here = os.path.dirname(os.path.dirname(os.path.abspath(an.__file__)))
    outs = {}
    for tag, cpu in (("default", "default"), ("best", "")):
        env = dict(os.environ, PYTHONPATH=here, ATTNNORM_CPU=cpu)
        fn = tmp_path / f"out_{tag}.npz"
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "in.npz"), str(fn)],
                       check=True, env=env, cwd=str(tmp_path))
        outs[tag] = np.load(fn)
    assert str(outs["default"]["path"]) == "default"
    for key in outs["best"].files:
        if key != "path":
            tol = 1e-4 if key.endswith("float32") else 1e-11
            assert_allclose(outs["default"][key], outs["best"][key], rtol=tol, atol=tol)
