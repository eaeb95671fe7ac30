"""Execute every notebook in notebooks/ at its default size; fail if a cell raises.

The kernel imports attnnorm from the repository root when an in-place build
(attnnorm/_core*.so) is there, otherwise from the installed package.  Each
notebook runs with its own directory as the working directory.
"""
import concurrent.futures
import glob
import os
import pathlib
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = pathlib.Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))

#: the notebooks the README promises; a missing one is a failure, not a skip
EXPECTED = [
    "00_tour", "01_sinkhorn_C1", "02_heinsen_C2", "03_init_scaling_C3", "04_frobenius_C4",
    "05_vanishing_jacobian_C5", "06_sigmoid_C6", "07_uap_construction_C7", "08_norm_analysis_C8",
    "09_zeros_soft_C9_C10", "11_entropy_dispersion_C11",
    "13_softpick_stochastic_cheap_C13_C15", "17_oversmoothing_C17", "20_real_attention",
    "27_sink_training_C16", "22_softmax_vs_rivals_training", "23_length_generalisation_C11",
    "24_uap_training_C7", "25_memorisation_C12", "26_sigmoid_sample_complexity_C6",
]

#: notebooks that train models (about a minute each at their defaults): marked ``training`` so
#: ``pytest -m "not training"`` skips them; they run by default
TRAINING = {"27_sink_training_C16", "22_softmax_vs_rivals_training",
            "23_length_generalisation_C11", "24_uap_training_C7", "25_memorisation_C12",
            "26_sigmoid_sample_complexity_C6"}

CELL_TIMEOUT = 600  # seconds per cell; the defaults take seconds (training notebooks: ~a minute)
WORKERS = 2         # notebooks executed at once (kernel start-up overlaps with work)


def kernel_env():
    """Environment for the kernel: the repo root first on sys.path only if it
    holds a built extension (in-place build), so a pip-installed attnnorm is
    used from a clean clone."""
    env = dict(os.environ)
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    if glob.glob(str(ROOT / "attnnorm" / "_core*.so")) or glob.glob(str(ROOT / "attnnorm" / "_core*.pyd")):
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _execute(path):
    """Run one notebook in its own kernel; return (notebook, error text or None)."""
    nb = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute(env=kernel_env())
    except nbclient.exceptions.CellExecutionError as exc:  # the traceback names the cell
        return nb, str(exc)
    except Exception as exc:  # kernel died, timeout, ...
        return nb, f"{type(exc).__name__}: {exc}"
    return nb, None


def _selected_notebooks(session):
    """The notebooks whose test_notebook_executes item survived selection (-k, -m)."""
    paths = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if item.originalname == "test_notebook_executes" and callspec is not None:
            paths.append(callspec.params["path"])
    return paths


@pytest.fixture(scope="module")
def executed(request):
    """Execute every selected notebook once, WORKERS at a time (each in its own kernel process)."""
    paths = _selected_notebooks(request.session)
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = dict(zip(paths, pool.map(_execute, paths)))
    return results


def _param(path):
    marks = [pytest.mark.training] if path.stem in TRAINING else []
    return pytest.param(path, marks=marks, id=path.stem)


def test_every_expected_notebook_exists():
    names = {p.stem for p in NOTEBOOKS}
    missing = [n for n in EXPECTED if n not in names]
    assert not missing, f"notebooks missing from {NB_DIR}: {missing}"


@pytest.mark.parametrize("path", [_param(p) for p in NOTEBOOKS])
def test_notebook_executes(path, executed):
    nb, error = executed[path]
    if error is not None:
        pytest.fail(f"{path.name}: a cell raised:\n{error}", pytrace=False)
    # every notebook ends with a printed conclusion from its last code cell
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells, f"{path.name} has no code cell"
    last_out = "".join(o.get("text", "") for o in code_cells[-1].get("outputs", [])
                       if o.get("output_type") == "stream")
    assert "measured" in last_out.lower(), (
        f"{path.name}: the last code cell must print the measured conclusion; got {last_out!r}")
    # every notebook shows at least one plot
    n_images = sum(1 for c in code_cells for o in c.get("outputs", [])
                   if "image/png" in o.get("data", {}))
    assert n_images >= 1, f"{path.name} produced no plot"


def test_notebooks_match_their_sources():
    """Each .ipynb holds exactly the cells of notebooks/_src/<name>.py (rebuild with
    python notebooks/build_notebooks.py after editing a source)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("build_notebooks", NB_DIR / "build_notebooks.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    sources = sorted((NB_DIR / "_src").glob("*.py"))
    assert {s.stem for s in sources} == {p.stem for p in NOTEBOOKS}
    for src in sources:
        want = [(c.cell_type, c.source) for c in builder.parse(src.read_text())]
        nb = nbformat.read(str(NB_DIR / (src.stem + ".ipynb")), as_version=4)
        got = [(c.cell_type, c.source) for c in nb.cells]
        assert got == want, f"{src.stem}.ipynb is out of date with _src/{src.name}"


#: (notebook, code run in the kernel before the notebook's cells that breaks one attnnorm
#: function, the check that must then fail).  The notebooks compare attnnorm with their own NumPy
#: evaluation of each formula, so a wrong kernel must stop them.
SABOTAGE = [
    ("09_zeros_soft_C9_C10",  # the linear and softmax gates swapped: invisible when the gates are equal
     "import attnnorm\n_f = attnnorm.zeros_attention\n"
     "attnnorm.zeros_attention = lambda q, k, v, s, g1, gh, **kw: _f(q, k, v, s, gh, g1, **kw)",
     "prefix-sum ZeroS"),
    ("04_frobenius_C4",  # a Jacobian norm 20% too large still passes the old 2*sqrt(N) bound
     "import attnnorm, numpy as np\n_f = attnnorm.jacobian_norm\n"
     "attnnorm.jacobian_norm = lambda *a, **kw: 1.2 * np.asarray(_f(*a, **kw))",
     "Jacobian"),
    ("13_softpick_stochastic_cheap_C13_C15",  # the causal path silently replaced by the full one
     "import attnnorm\n_f = attnnorm.cheap_linear_attention\n"
     "attnnorm.cheap_linear_attention = lambda h, q, causal=False, **kw: _f(h, q, **kw)",
     "cheap_linear_attention(causal)"),
    ("27_sink_training_C16",  # the PyTorch adapter's attention forward 1% off
     "import attnnorm.torch as _t\n_f = _t.attention_forward\n"
     "_t.attention_forward = lambda *a, **kw: (lambda r: (1.01 * r[0], r[1]))(_f(*a, **kw))",
     "adapter softmax causal: max |output"),
    ("22_softmax_vs_rivals_training",  # the adapter's backward fed a gradient 1% too large
     "import attnnorm.torch as _t\n_f = _t.normalizer_vjp\n"
     "_t.normalizer_vjp = lambda scores, grad, *a, **kw: _f(scores, 1.01 * grad, *a, **kw)",
     "normalize softmax: max |gradient"),
    ("25_memorisation_C12",  # the adapter's normalised weights 1% off
     "import attnnorm.torch as _t\n_f = _t.normalize\n"
     "_t.normalize = lambda *a, **kw: 1.01 * _f(*a, **kw)",
     "normalize softmax: max |output"),
]


def _execute_sabotaged(item):
    """Run a notebook with a patch cell in front; return the error text (None if it ran)."""
    name, patch, _ = item
    path = NB_DIR / (name + ".ipynb")
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(patch))
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute(env=kernel_env())
    except nbclient.exceptions.CellExecutionError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def sabotaged():
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return dict(zip([s[0] for s in SABOTAGE], pool.map(_execute_sabotaged, SABOTAGE)))


@pytest.mark.parametrize("name,patch,check", SABOTAGE, ids=[s[0] for s in SABOTAGE])
def test_notebook_checks_fail_on_a_wrong_kernel(name, patch, check, sabotaged):
    text = sabotaged[name]
    assert text is not None, f"{name} ran to the end with a broken kernel ({patch!r})"
    assert "AssertionError" in text and "check FAIL" in text and check in text, text[-2000:]
