"""attnnorm.torch: the PyTorch adapters against PyTorch's own SDPA, gradcheck,
torch.library.opcheck, torch.compile, thread-count independence, errors."""
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import attnnorm as an  # noqa: E402
import attnnorm.torch as at  # noqa: E402

DT = [torch.float32, torch.float64]


def tol(dt):
    return dict(rtol=2e-5, atol=2e-5) if dt == torch.float32 else dict(rtol=1e-10, atol=1e-12)


def qkv(L, S, *, Hq=4, Hk=4, E=8, Ev=5, dt=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, Hq, L, E, dtype=dt, generator=g, requires_grad=True)
    k = torch.randn(2, Hk, S, E, dtype=dt, generator=g, requires_grad=True)
    v = torch.randn(2, Hk, S, Ev, dtype=dt, generator=g, requires_grad=True)
    go = torch.randn(2, Hq, L, Ev, dtype=dt, generator=g)
    return q, k, v, go


def mask_of(kind, L, S, dt, seed=1):
    g = torch.Generator().manual_seed(seed)
    keep = torch.rand(L, S, generator=g) > 0.3
    keep[:, 0] = True
    if kind == "bool":
        return keep
    if kind == "-inf":
        return torch.where(keep, 0.0, float("-inf")).to(dt)
    if kind == "additive":
        return torch.where(keep, torch.randn(L, S, generator=g, dtype=dt), float("-inf"))
    return None


@pytest.mark.parametrize("dt", DT)
@pytest.mark.parametrize("L,S", [(7, 7), (5, 130), (130, 60)])
@pytest.mark.parametrize("is_causal,mask,gqa", [
    (False, None, False), (True, None, False), (False, "bool", False),
    (False, "-inf", False), (False, "additive", False), (True, None, True),
    (False, "bool", True)])
def test_softmax_equals_pytorch_sdpa(dt, L, S, is_causal, mask, gqa):
    """Output and gradients equal torch's SDPA: top-left is_causal, boolean,
    -inf and general additive masks, grouped-query heads, n != m."""
    q, k, v, go = qkv(L, S, Hk=2 if gqa else 4, dt=dt)
    am = mask_of(mask, L, S, dt)
    o1 = at.scaled_dot_product_attention(q, k, v, am, is_causal=is_causal, enable_gqa=gqa)
    o2 = F.scaled_dot_product_attention(q, k, v, am, is_causal=is_causal, enable_gqa=gqa)
    assert o1.dtype == dt and o1.shape == o2.shape
    torch.testing.assert_close(o1, o2, **tol(dt))
    g1 = torch.autograd.grad(o1, (q, k, v), go)
    g2 = torch.autograd.grad(o2, (q, k, v), go)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, **tol(dt))


def test_scale_and_per_head_temperature_match_pytorch():
    """scale= and a per-head temperature tensor (its gradient by autograd of
    the eager formula)."""
    q, k, v, go = qkv(9, 11)
    T = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64, requires_grad=True)
    o1 = at.scaled_dot_product_attention(q, k, v, scale=0.3, temperature=T)
    s = (q @ k.transpose(-1, -2)) * 0.3 / T[:, None, None]
    o2 = torch.softmax(s, -1) @ v
    torch.testing.assert_close(o1, o2)
    g1 = torch.autograd.grad(o1, (q, k, v, T), go)
    g2 = torch.autograd.grad(o2, (q, k, v, T), go)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


PARAMS = {
    "softmax": {"temperature": 0.8},
    "softmax_sink": {"sink": 0.4},
    "ssmax": {"c": 0.6},
    "affine_softmax": {"a": 1.2, "b": 0.1},
    "sigmoid": {"bias": -0.3},
    "relu": {"power": 2.0},
    "polynomial": {},
    "softpick": {"eps": 1e-2},
    "nap": {"gain": 1.1, "bias": 0.1, "eps": 1e-2},
    "sparsemax": {},
    "entmax": {"alpha": 1.4},
    "sinkhorn": {"eps": 1.2, "n_iter": 3},
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_gradcheck_sdpa_every_normalizer(name):
    """torch.autograd.gradcheck through q, k, v and every real parameter
    given as a tensor with requires_grad."""
    q, k, v, _ = qkv(5, 6, Hq=2, Hk=2, E=3, Ev=2)
    pnames = [p for p, x in PARAMS[name].items() if isinstance(x, float)]
    pt = [torch.tensor(PARAMS[name][p], dtype=torch.float64, requires_grad=True) for p in pnames]
    ints = {p: x for p, x in PARAMS[name].items() if not isinstance(x, float)}

    def f(q, k, v, *ps):
        return at.scaled_dot_product_attention(q, k, v, is_causal=True, normalizer=name,
                                               **dict(zip(pnames, ps)), **ints)
    assert torch.autograd.gradcheck(f, (q, k, v, *pt))


@pytest.mark.parametrize("name", ["softmax", "entmax", "nap", "sinkhorn"])
def test_gradcheck_normalize(name):
    g = torch.Generator().manual_seed(3)
    s = torch.randn(3, 6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    pnames = [p for p, x in PARAMS[name].items() if isinstance(x, float)]
    pt = [torch.tensor(PARAMS[name][p], dtype=torch.float64, requires_grad=True) for p in pnames]
    ints = {p: x for p, x in PARAMS[name].items() if not isinstance(x, float)}
    mask = torch.ones(5, 6, dtype=torch.bool)
    mask[1, 2] = False

    def f(s, *ps):   # normalise along dim 1 (6 keys), 5 queries
        return at.normalize(s, name, dim=1, mask=mask, **dict(zip(pnames, ps)), **ints)
    assert torch.autograd.gradcheck(f, (s, *pt))
    w = f(s, *pt)
    ref = getattr(an, name)(s.detach().numpy().swapaxes(1, 2), mask=mask.numpy(),
                            **PARAMS[name])
    np.testing.assert_allclose(w.detach().numpy().swapaxes(1, 2), ref, atol=1e-12)


def test_opcheck_every_operator():
    q, k, v, go = qkv(6, 9, Hq=2, Hk=2, E=4, Ev=3)
    T = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    ops = torch.ops.attnnorm
    torch.library.opcheck(ops.attention, (q, k, v, None, True, -1, -1, None, "softmax",
                                          "temperature", [T]))
    torch.library.opcheck(ops.attention, (q, k, v, torch.rand(6, 9) > 0.2, False, 2, 1, 0.5,
                                          "entmax", "alpha", [torch.tensor(1.5)]))
    # the backward operators have no derivative of their own (no double
    # backward): checked on tensors that do not require gradients
    q, k, v, T = (x.detach() for x in (q, k, v, T))
    out, lse = ops.attention(q, k, v, None, True, -1, -1, None, "softmax", "temperature", [T])
    torch.library.opcheck(ops.attention_backward, (go, q, k, v, out, lse, None, True, -1, -1,
                                                   None, "softmax", "temperature", [T], True))
    s = torch.randn(3, 5, 7, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(ops.normalize, (s, None, True, -1, -1, "sparsemax", "", []))
    s = s.detach()
    w = ops.normalize(s, None, True, -1, -1, "sparsemax", "", [])
    torch.library.opcheck(ops.normalize_backward, (torch.randn_like(s), s, w, None, True, -1, -1,
                                                   "sparsemax", "", [], False))


def test_torch_compile_fullgraph():
    q, k, v, go = qkv(8, 8, dt=torch.float32)
    T = torch.tensor([0.5, 1.0, 2.0, 1.5], requires_grad=True)

    def f(q, k, v, T):
        o = at.scaled_dot_product_attention(q, k, v, is_causal=True, temperature=T)
        return at.normalize(o, "sparsemax").sum() + (o * go).sum()
    cf = torch.compile(f, fullgraph=True)
    # compiled code cached on disk by another build of these operators must not be reused
    with torch._inductor.config.patch(fx_graph_cache=False), \
            torch._functorch.config.patch(enable_autograd_cache=False):
        lc = cf(q, k, v, T)
        gc = torch.autograd.grad(lc, (q, k, v, T))
    le = f(q, k, v, T)
    ge = torch.autograd.grad(le, (q, k, v, T))
    torch.testing.assert_close(lc, le)
    for a, b in zip(gc, ge):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dt", DT)
def test_bit_identical_for_1_and_2_threads(dt):
    q, k, v, go = qkv(100, 300, dt=dt, E=16, Ev=8)
    old = an.get_num_threads()
    res = []
    try:
        for nt in (1, 2):
            an.set_num_threads(nt)
            o = at.scaled_dot_product_attention(q, k, v, is_causal=True)
            res.append((o,) + torch.autograd.grad(o, (q, k, v), go))
    finally:
        an.set_num_threads(old)
    for a, b in zip(*res):
        assert torch.equal(a, b)


def test_errors_name_the_problem():
    q, k, v, _ = qkv(4, 4)
    with pytest.raises(ValueError, match="dropout_p"):
        at.scaled_dot_product_attention(q, k, v, dropout_p=0.1)
    with pytest.raises(ValueError, match="on the CPU; query is on meta"):
        at.scaled_dot_product_attention(q.to("meta"), k, v)
    with pytest.raises(TypeError, match="float32 or float64"):
        at.scaled_dot_product_attention(q.half(), k, v)
    with pytest.raises(ValueError, match="normalizer must be one of"):
        at.scaled_dot_product_attention(q, k, v, normalizer="nope")
    with pytest.raises(ValueError, match="enable_gqa"):
        at.scaled_dot_product_attention(q, k[:, :3], v[:, :3], enable_gqa=True)
    with pytest.raises(ValueError, match="is_causal and attn_mask"):
        at.scaled_dot_product_attention(q, k, v, torch.ones(4, 4, dtype=torch.bool),
                                        is_causal=True)


def test_inputs_are_viewed_not_copied():
    t = torch.randn(3, 4, dtype=torch.float32)[:, ::2]
    a = at._np(t)
    assert np.shares_memory(a, t.detach().numpy())
    assert a.strides == (t.stride(0) * 4, t.stride(1) * 4)


def test_import_attnnorm_does_not_import_torch():
    code = "import sys, attnnorm; assert 'torch' not in sys.modules"
    import os
    here = os.path.dirname(os.path.dirname(os.path.abspath(an.__file__)))
    subprocess.run([sys.executable, "-c", code], check=True,
                   env=dict(os.environ, PYTHONPATH=here))


@pytest.mark.parametrize("causal", [True, "bottom_right", "top_left"])
def test_normalize_causal_alignments(causal):
    """normalize takes causal as the NumPy functions do (both alignments,
    n != m): weights equal them, and the backward passes gradcheck."""
    g = torch.Generator().manual_seed(3)
    s = torch.randn(2, 4, 7, generator=g, dtype=torch.float64, requires_grad=True)
    w = at.normalize(s, "softmax", causal=causal)
    want = an.softmax(s.detach().numpy(), causal=causal)
    assert np.allclose(w.detach().numpy(), want, rtol=1e-13, atol=1e-15)
    assert torch.autograd.gradcheck(lambda x: at.normalize(x, "softmax", causal=causal), (s,))
