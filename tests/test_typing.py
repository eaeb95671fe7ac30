"""attnnorm ships type information: mypy --strict accepts a script that uses
the API, the stubs cover every public name, and an IDE (Jedi) infers arrays."""
import ast
import os
import subprocess
import sys
import textwrap

import pytest

import attnnorm as an

PKG = os.path.dirname(os.path.abspath(an.__file__))
STUB = os.path.join(PKG, "__init__.pyi")

SCRIPT = textwrap.dedent('''
    import numpy as np
    from numpy.typing import NDArray
    import attnnorm as an

    rng = np.random.default_rng(0)
    s = rng.standard_normal((2, 4, 8, 8))
    w: NDArray[np.floating] = an.softmax(s, temperature=0.5, causal=True, window=(2, 0))
    w2, tau, sup = an.entmax(s, alpha=1.5, return_tau=True)
    support: NDArray[np.int64] = sup
    q = rng.standard_normal((2, 8, 16, 4))
    o: NDArray[np.floating] = an.attention(q, q, q, "sigmoid", causal=True)
    o2, st = an.attention(q, q, q, return_stats=True)
    sink: NDArray[np.floating] = st.sink_weight + st.entropy
    dg = an.diagnose(q, q, "entmax", alpha=1.5)
    total: float = float(an.entropy(w).mean()) + float(dg.column_mass.sum())
    lo, hi = an.vanishing_bounds(q, q)
    out, state = an.log_attention(q, q, q, causal=True, return_state=True)
    n: int = an.get_num_threads()
    path: str = an.simd_path()
    f = an.NORMALIZERS["softmax"]
    print(w2.shape, tau.shape, support.shape, o.shape, o2.shape, sink.shape, total, n, path,
          lo.shape, hi.shape, out.shape, state.shape, f)
''')


def test_py_typed_and_stub_ship():
    assert os.path.exists(os.path.join(PKG, "py.typed"))
    assert os.path.exists(STUB)


def stub_names():
    tree = ast.parse(open(STUB).read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_stub_covers_the_public_api():
    missing = set(an.__all__) - stub_names()
    assert not missing, f"public names without a type stub in attnnorm/__init__.pyi: {sorted(missing)}"


def test_mypy_strict(tmp_path):
    """One mypy --strict run over two scripts: the one that uses the API is
    accepted, and a wrong use (softmax's array result as a str) is an error,
    so the stubs have teeth."""
    pytest.importorskip("mypy")
    good = tmp_path / "use_attnnorm.py"
    good.write_text(SCRIPT)
    bad = tmp_path / "wrong.py"
    bad.write_text("import attnnorm as an\nx: str = an.softmax([[1.0]])\n")
    env = dict(os.environ, MYPYPATH=os.path.dirname(PKG))
    res = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                          "--cache-dir", os.devnull, str(good), str(bad)],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    errors = [ln for ln in res.stdout.splitlines() if ": error:" in ln]
    assert errors and all(ln.startswith("wrong.py:2:") for ln in errors), res.stdout + res.stderr
    assert "Incompatible types in assignment" in errors[0]
    # the script runs, too
    res = subprocess.run([sys.executable, str(good)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(PKG)), cwd=tmp_path)
    assert res.returncode == 0, res.stderr


def test_jedi_infers_ndarray(tmp_path):
    jedi = pytest.importorskip("jedi")
    src = ("import attnnorm as an\nw = an.softmax([[1.0, 2.0]])\nw\n"
           "o, st = an.attention(1, 2, 3, return_stats=True)\nst\n")
    project = jedi.Project(str(tmp_path), sys_path=[os.path.dirname(PKG)] + sys.path)
    script = jedi.Script(src, path=str(tmp_path / "x.py"), project=project)
    assert [d.name for d in script.infer(3, 0)] == ["ndarray"]
    assert [d.name for d in script.infer(5, 0)] == ["AttentionStats"]
