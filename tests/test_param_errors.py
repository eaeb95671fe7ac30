"""Every out-of-domain parameter of every public function raises ValueError
naming the parameter (and its value), before any work starts: the gufunc is
never called (checked with an array-like that records __array_ufunc__ calls).
"""
import math

import numpy as np
import pytest

import attnnorm as an

NAN, INF = float("nan"), float("inf")

#: normalizer -> [(parameter, bad value), ...]
BAD_NORMALIZER_PARAMS = {
    "softmax": [("temperature", v) for v in (0, -1.0, -INF, NAN, "1", None, 1j,
                                              np.array([1.0, NAN]), np.array([2.0, 0.0]))],
    "softmax_sink": [("sink", v) for v in (NAN, "0", None, np.array([0.0, NAN]))],
    "ssmax": [("c", v) for v in (-1e-9, -1.0, INF, -INF, NAN, np.array([0.5, -0.5]))],
    "sigmoid": [("bias", v) for v in (INF, -INF, NAN, "b", np.array([0.0, INF]))],
    "relu": [("power", v) for v in (0, -1, INF, NAN, np.array([1.0, 0.0]))],
    "polynomial": [("power", v) for v in (0, -3, 2.5, INF, NAN, 2 ** 25, np.array([3, -1]))],
    "softpick": [("eps", v) for v in (0, -1e-8, INF, NAN, np.array([1e-8, 0.0]))],
    "nap": [("gain", INF), ("gain", NAN), ("bias", -INF), ("bias", NAN),
            ("eps", 0.0), ("eps", -1e-3), ("eps", INF), ("eps", NAN)],
    "affine_softmax": [("a", INF), ("a", NAN), ("b", -INF), ("b", NAN),
                       ("a", np.ones(4)), ("b", np.ones((7, 5)))],
    # sparse / stochastic / Sinkhorn (README "Conventions", errors: alpha <= 1, negative
    # trials, n_iter < 1, eps <= 0); checked once they are registered
    "entmax": [("alpha", v) for v in (0.5, -1.0, NAN, INF)] +
              [("n_iter", v) for v in (0, -1, 2.5)],
    "sinkhorn": [("n_iter", v) for v in (0, -1, 1.5)] +
                [("eps", v) for v in (0.0, -1.0, NAN, INF)],
    "stochastic_softmax": [("trials", v) for v in (-1, 0, 1.5)] + [("seed", v) for v in (2 ** 63, 1.5, "s")],
}

#: arguments every normalizer shares -> bad values
BAD_SHARED = [
    ("window", (-1, 0)), ("window", (0, -2)), ("window", (1.5, 0)), ("window", 3),
    ("window", (1, 2, 3)), ("window", "ab"),
    ("empty", "skip"), ("empty", None), ("empty", 0),
    ("mask", np.ones((4, 5), bool)), ("mask", np.ones((3, 2, 5), bool)),
    ("mask", np.ones((2, 5), float)), ("mask", np.ones((2, 5), complex)),
    ("axes", [(0,)]), ("axes", [(0, 1)]),
]


class Spy:
    """Array-like that records whether a ufunc (the kernel) was called on it."""

    def __init__(self, a):
        self.a = np.asarray(a)
        self.shape, self.dtype, self.ndim = self.a.shape, self.a.dtype, self.a.ndim
        self.called = False

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        self.called = True
        inputs = [x.a if isinstance(x, Spy) else x for x in inputs]
        return getattr(ufunc, method)(*inputs, **kw)

    def __array__(self, dtype=None, copy=None):
        return self.a if dtype is None else self.a.astype(dtype)


def _shown(value):
    """Text by which the error message can show the value."""
    if isinstance(value, np.ndarray):
        return None                        # arrays: message shows some entries
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return repr(value) if not isinstance(value, float) else None


def _cases():
    for name, bad in BAD_NORMALIZER_PARAMS.items():
        for param, value in bad:
            yield pytest.param(name, param, value, id=f"{name}-{param}={value!r}"[:60],
                               marks=() if name in an.NORMALIZERS else
                               pytest.mark.skip(reason=f"{name} not registered yet"))


@pytest.mark.parametrize("name,param,value", list(_cases()))
def test_bad_normalizer_parameter(name, param, value):
    scores = Spy(np.random.default_rng(0).normal(size=(2, 3, 5)))
    with pytest.raises(ValueError, match=param) as info:
        an.NORMALIZERS[name](scores, **{param: value})
    assert not scores.called, "the kernel ran before the parameter was rejected"
    shown = _shown(value)
    msg = str(info.value)
    if shown is not None:
        assert shown in msg or str(value) in msg, msg
    elif isinstance(value, float):
        assert f"{value:g}" in msg or repr(value) in msg or str(value) in msg, msg


@pytest.mark.parametrize("name", sorted(an.NORMALIZERS))
@pytest.mark.parametrize("param,value", BAD_SHARED,
                         ids=[f"{p}={v!r}"[:40] for p, v in BAD_SHARED])
def test_bad_shared_argument(name, param, value):
    scores = Spy(np.random.default_rng(0).normal(size=(2, 3, 5)))
    with pytest.raises(ValueError, match=param):
        an.NORMALIZERS[name](scores, **{param: value})
    assert not scores.called


@pytest.mark.parametrize("name", sorted(an.NORMALIZERS))
def test_valid_edges_are_accepted(name):
    """The edges of each domain that are inside it do not raise."""
    edges = {"softmax": {"temperature": [1e-300, INF]}, "softmax_sink": {"sink": [-INF, INF]},
             "ssmax": {"c": [0.0, 1e300]}, "sigmoid": {"bias": [None, -1e300, 1e300]},
             "relu": {"power": [1e-300, 1e300]}, "polynomial": {"power": [1, 2 ** 24, 3.0]},
             "softpick": {"eps": [1e-300, 1e300]}, "nap": {"eps": [1e-300, 1e300],
                                                           "gain": [0.0, -1e300]},
             "affine_softmax": {"a": [0.0, -1e300], "b": [1e300]}}.get(name, {})
    s = np.random.default_rng(0).normal(size=(3, 5))
    for dt in (np.float32, np.float64):
        for param, values in edges.items():
            for v in values:
                w = an.NORMALIZERS[name](s.astype(dt), **{param: v})
                assert w.shape == s.shape and not np.isnan(w).any(), (param, v, dt)


# ---------------------------------------------------------------------------
# attention, the linear family and the diagnostics: (function, positional
# operands as shapes, parameter, bad value).  Functions not yet in the
# package are skipped.
# ---------------------------------------------------------------------------

QKV = [(2, 3, 4), (2, 5, 4), (2, 5, 2)]
ZEROS = QKV + [(2, 5), 0.5, 0.5]
BAD_OTHER = [
    ("attention", QKV, "normalizer", "softmaxx"),
    ("attention", QKV, "normalizer", 3),
    ("attention", QKV, "scale", 0.0),
    ("attention", QKV, "scale", NAN),
    ("attention", QKV, "scale", INF),
    ("attention", QKV, "window", (-1, 1)),
    ("attention", QKV, "empty", "skip"),
    ("attention", QKV, "mask", np.ones((4, 5), bool)),
    ("attention", QKV, "temperature", 0.0),
    ("attention_weights", QKV[:2], "scale", 0.0),
    ("attention_weights", QKV[:2], "normalizer", "nope"),
    ("linear_attention", QKV, "feature_map", "elu"),
    ("linear_attention", QKV, "feature_map", None),
    ("linear_attention", QKV, "eps", -1e-6),
    ("linear_attention", QKV, "eps", NAN),
    ("linear_attention", QKV, "eps", INF),
    ("zeros_attention", ZEROS[:4] + [{"gate_softmax": 0.5}], "gate_linear", NAN),
    ("zeros_attention", ZEROS[:4] + [{"gate_linear": 0.5}], "gate_softmax", INF),
    ("zeros_weights", [(2, 5), {"gate_softmax": 0.5}], "gate_linear", -INF),
    ("zeros_weights", [(2, 5), 0.5, 0.5], "n", -1),
    ("zeros_weights", [(2, 5), 0.5, 0.5], "n", 2.5),
    ("soft_attention", [(6, 3), (6, 2)], "newton_iters", 0),
    ("soft_attention", [(6, 3), (6, 2)], "newton_iters", 1.5),
    ("soft_attention", [(6, 3), (6, 2)], "n_landmarks", 0),
    ("soft_attention", [(6, 3), (6, 2)], "n_landmarks", 7),
    ("entropy", [(3, 4)], "base", 1.0),
    ("entropy", [(3, 4)], "base", -2.0),
    ("entropy", [(3, 4)], "base", NAN),
    ("entropy", [(3, 4)], "window", (0, -1)),
    ("support_size", [(3, 4)], "threshold", NAN),
    ("sink_mass", [(3, 4)], "sink", 4),
    ("sink_mass", [(3, 4)], "sink", 1.5),
    ("row_residual", [(3, 4)], "ord", 3),
    ("column_residual", [(3, 4)], "ord", "fro2"),
    ("jacobian_norm", [(3, 4)], "normalizer", "nope"),
    ("jacobian_norm", [(3, 4)], "ord", 7),
    ("vanishing_bounds", [(2, 3), (4, 3)], "temperature", 0.0),
    ("vanishing_bounds", [(2, 3), (4, 3)], "temperature", NAN),
]


def _operands(spec):
    """Positional operands (shapes become random row-stochastic Spy arrays)
    and the extra keyword arguments (a dict at the end of spec)."""
    rng = np.random.default_rng(0)
    ops, kw = [], {}
    for x in spec:
        if isinstance(x, tuple):
            a = rng.random(x)
            ops.append(Spy(a / a.sum(-1, keepdims=True)))
        elif isinstance(x, dict):
            kw.update(x)
        else:
            ops.append(x)
    return ops, kw


@pytest.mark.parametrize("fname,spec,param,value", [
    pytest.param(f, s, p, v, id=f"{f}-{p}={v!r}"[:60],
                 marks=() if hasattr(an, f) else pytest.mark.skip(reason=f"{f} not merged yet"))
    for f, s, p, v in BAD_OTHER])
def test_bad_parameter_other_functions(fname, spec, param, value):
    ops, kw = _operands(spec)
    with pytest.raises(ValueError, match=param):
        getattr(an, fname)(*ops, **kw, **{param: value})
    assert not any(o.called for o in ops if isinstance(o, Spy)), "kernel ran first"


#: a valid value of one parameter of each normalizer (affine_softmax's a and b
#: are per-row and have their own check)
ONE_PARAM = {"softmax": ("temperature", 1.0), "softmax_sink": ("sink", 0.0), "ssmax": ("c", 0.4),
             "sigmoid": ("bias", 0.0), "relu": ("power", 1.0), "polynomial": ("power", 3),
             "softpick": ("eps", 1e-8), "nap": ("gain", 1.0), "entmax": ("alpha", 1.5),
             "stochastic_softmax": ("trials", 5), "sinkhorn": ("eps", 1.0)}


@pytest.mark.parametrize("name", sorted(ONE_PARAM))
def test_per_head_parameter_that_does_not_broadcast_is_named(name):
    rng = np.random.default_rng(0)
    param, value = ONE_PARAM[name]
    bad = np.full((4,), value)                 # leading axes are (2, 3)
    scores = Spy(rng.normal(size=(2, 3, 4, 5)))
    with pytest.raises(ValueError, match=rf"{param} has shape \(4,\).*\(2, 3\)"):
        an.NORMALIZERS[name](scores, **{param: bad})
    assert not scores.called
    q, k = rng.normal(size=(2, 3, 4, 8)), rng.normal(size=(2, 3, 5, 8))
    with pytest.raises(ValueError, match=rf"{param} has shape \(4,\)"):
        an.attention(q, k, k, name, **{param: bad})
    if name != "sinkhorn":
        with pytest.raises(ValueError, match=rf"{param} has shape \(4,\)"):
            an.diagnose(q, k, name, **{param: bad})
    # one value per head, (3,) against (2, 3), is fine
    good = np.full((3,), value)
    assert an.NORMALIZERS[name](rng.normal(size=(2, 3, 4, 5)), **{param: good}).shape == (2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"scale has shape \(7,\)"):
        an.attention(q, k, k, name, scale=np.ones(7))


_SCALARS = [0, 3, -2, 10 ** 400, 0.0, -0.0, 1.0, -1.5, 1e300, -1e300, 1e-300, -1e-300,
            3.4e38, 1e-45, INF, -INF, NAN]
_CHECKS = [{}, {"positive": True}, {"nonneg": True}, {"allow_inf": False},
           {"minimum": 1.0}, {"exclusive_min": -1.0}]


@pytest.mark.parametrize("dtype", [None, np.float32, np.float64])
@pytest.mark.parametrize("checks", _CHECKS)
def test_real_param_python_scalars_take_the_same_path(dtype, checks):
    """A Python float or int parameter is checked and rounded in plain float
    arithmetic (not through NumPy): the same result bits and dtype, or the
    same error, as the same value passed as a 0-d array."""
    from attnnorm._common import real_param

    def run(v):
        try:
            return real_param("p", v, dtype=dtype, **checks)
        except ValueError as e:
            return str(e).split("; got")[0]

    for v in _SCALARS:
        fast = run(v)
        general = run(np.asarray(v) if not isinstance(v, int) or abs(v) < 2 ** 63
                      else v)
        if isinstance(general, str):
            assert fast == general, (v, checks)
            continue
        assert isinstance(fast, np.ndarray) and fast.ndim == 0, (v, fast)
        assert fast.dtype == general.dtype, (v, fast.dtype, general.dtype)
        assert fast.tobytes() == general.tobytes(), (v, fast, general)
