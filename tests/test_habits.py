"""Friction for newcomers and PyTorch users: the unbuilt source tree, keywords
and shapes brought from PyTorch/NumPy, dtypes and masks, a consistent surface."""
import collections
import inspect
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import attnnorm as an

PKG = os.path.dirname(os.path.abspath(an.__file__))
S = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
QKV = tuple(np.random.default_rng(1).standard_normal((3, 2, 4, 6, 3)))

#: one call per kind of entry point: (label, function, positional arguments)
ENTRY_POINTS = [
    ("normalizer", an.softmax, (S,)),
    ("sparse normalizer", an.entmax, (S,)),
    ("attention", an.attention, QKV),
    ("attention_weights", an.attention_weights, QKV[:2]),
    ("diagnose", an.diagnose, QKV[:2]),
    ("linear", an.linear_attention, QKV),
    ("row diagnostic", an.entropy, (an.softmax(S),)),
    ("matrix diagnostic", an.frobenius_norm, (an.softmax(S),)),
]
HABITS = {"is_causal": "causal=True", "attn_mask": "mask=", "dropout_p": "no dropout",
          "dim": "axes=", "axis": "axes="}


@pytest.mark.parametrize("key,hint", HABITS.items())
@pytest.mark.parametrize("label,fn,args", ENTRY_POINTS, ids=[e[0] for e in ENTRY_POINTS])
def test_pytorch_keywords_name_the_equivalent(label, fn, args, key, hint):
    with pytest.raises(TypeError) as info:
        fn(*args, **{key: True if key == "is_causal" else 0})
    msg = str(info.value)
    assert repr(key) in msg and hint in msg, msg
    assert fn.__name__ in msg


def test_is_causal_message_explains_the_alignment():
    with pytest.raises(TypeError, match="top-left") as info:
        an.attention(*QKV, is_causal=True)
    assert "bottom-right" in str(info.value) and "n == m" in str(info.value)


def test_other_unknown_keywords_keep_the_python_message():
    with pytest.raises(TypeError, match="unexpected keyword argument.*bogus"):
        an.softmax(S, bogus=1)
    with pytest.raises(TypeError, match="unexpected"):
        an.attention(*QKV, bogus=1)


def test_grouped_query_shapes_show_the_reshape():
    rng = np.random.default_rng(2)
    q = rng.standard_normal((2, 8, 5, 4))
    k = rng.standard_normal((2, 2, 7, 4))
    v = rng.standard_normal((2, 2, 7, 3))
    for call in (lambda: an.attention(q, k, v), lambda: an.diagnose(q, k),
                 lambda: an.attention_weights(q, k), lambda: an.linear_attention(q, k, v)):
        with pytest.raises(ValueError) as info:
            call()
        msg = str(info.value)
        assert "(2, 2, 4, n, d)" in msg and "(2, 2, 1, m, d)" in msg, msg
    # the suggested reshape works and matches PyTorch's enable_gqa head mapping
    qg = q.reshape(*q.shape[:-3], 2, 4, *q.shape[-2:])
    kg, vg = np.expand_dims(k, -3), np.expand_dims(v, -3)
    out = an.attention(qg, kg, vg).reshape(2, 8, 5, 3)
    for h in range(8):
        assert_array_equal(out[:, h], an.attention(q[:, h], k[:, h // 4], v[:, h // 4]))


def test_non_gqa_shape_mismatch_has_no_gqa_hint():
    with pytest.raises(ValueError) as info:
        an.attention(np.ones((3, 4, 2)), np.ones((2, 5, 2)), np.ones((2, 5, 3)))
    assert "do not broadcast" in str(info.value) and "grouped" not in str(info.value)


@pytest.mark.parametrize("bad,word", [(S.astype(complex), "complex"),
                                      (S.astype(object), "object")])
@pytest.mark.parametrize("label,fn,args", ENTRY_POINTS, ids=[e[0] for e in ENTRY_POINTS])
def test_complex_and_object_dtypes_get_attnnorm_messages(label, fn, args, bad, word):
    args = (np.asarray(args[0]).astype(bad.dtype),) + tuple(args[1:])
    with pytest.raises(TypeError) as info:
        fn(*args)
    msg = str(info.value)
    assert word in msg and "float32 or float64" in msg and "Cannot cast" not in msg, msg
    first = list(inspect.signature(fn).parameters)[0]
    assert f"{first} has" in msg, msg


def test_integer_masks():
    mk = np.random.default_rng(3).random((4, 5)) > 0.3
    mk[:, 0] = True
    mk6 = np.random.default_rng(4).random((6, 6)) > 0.3
    for dt in (np.int8, np.int64, np.uint8):
        assert_array_equal(an.softmax(S, mask=mk.astype(dt)), an.softmax(S, mask=mk))
        assert_array_equal(an.attention(*QKV, mask=mk6.astype(dt)), an.attention(*QKV, mask=mk6))
    with pytest.raises(ValueError, match="only 0 .* and 1"):
        an.softmax(S, mask=np.full((4, 5), 2))
    with pytest.raises(ValueError, match="additive"):
        an.softmax(S, mask=np.where(mk, 0.0, -np.inf))


def _isolated_python(cmd, cwd):
    """Run Python without site-packages' .pth hooks (an editable install's import finder
    would otherwise supply attnnorm._core to the copy), NumPy still importable."""
    site_dir = os.path.dirname(os.path.dirname(np.__file__))
    return subprocess.run([sys.executable, "-S", *cmd], cwd=cwd, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=site_dir))


def test_unbuilt_source_tree_says_what_to_do(tmp_path):
    """Copy the package without its compiled extension and import it."""
    dst = tmp_path / "attnnorm"
    shutil.copytree(PKG, dst, ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    for cmd in (["-c", "import attnnorm"], ["-m", "attnnorm"]):
        res = _isolated_python(cmd, tmp_path)
        assert res.returncode != 0
        err = res.stderr
        assert "ImportError" in err and "circular import" not in err, err
        for advice in ("build_ext --inplace", "pip install -e .", "another directory"):
            assert advice in err, err


def test_broken_extension_is_not_misreported(tmp_path):
    """An extension that exists but fails to load shows the real reason."""
    dst = tmp_path / "attnnorm"
    shutil.copytree(PKG, dst, ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    (dst / "_core.cpython-311-x86_64-linux-gnu.so").write_bytes(b"not an ELF file")
    res = _isolated_python(["-c", "import attnnorm"], tmp_path)
    assert res.returncode != 0 and "is missing" not in res.stderr


def test_all_lists_each_name_once():
    dup = [k for k, c in collections.Counter(an.__all__).items() if c > 1]
    assert not dup and "NORMALIZERS" in an.__all__
    assert all(hasattr(an, n) for n in an.__all__)


def test_one_name_for_the_weight_on_key_0():
    q, k, v = QKV
    _, st = an.attention(q, k, v, causal=True, return_stats=True)
    dg = an.diagnose(q, k, causal=True)
    assert "sink_weight" in st._fields and "sink_weight" in dg._fields
    assert "weight0" not in st._fields
    assert_array_equal(st.weight0, st.sink_weight)           # kept as an alias
    np.testing.assert_allclose(st.sink_weight, dg.sink_weight, rtol=1e-12, atol=1e-15)


def test_causal_defaults_are_false_or_explained():
    odd = {}
    for name in an.__all__:
        fn = getattr(an, name)
        if not inspect.isfunction(fn):
            continue
        p = inspect.signature(fn).parameters.get("causal")
        if p is not None and p.default is not False:
            odd[name] = fn
    assert set(odd) == {"zeros_attention", "zeros_weights", "zeros_attention_vjp"}
    assert "unlike the rest of attnnorm the default is" in odd["zeros_attention"].__doc__
    assert "As in :func:`zeros_attention`" in odd["zeros_weights"].__doc__
    assert "As in :func:`zeros_attention`" in odd["zeros_attention_vjp"].__doc__
