import os
import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def tol(dtype):
    """(rtol, atol) for comparing a kernel of this dtype with the float64 reference."""
    return (2e-5, 2e-6) if np.dtype(dtype) == np.float32 else (1e-12, 1e-13)


TEST_ENV = ("ATTNNORM_CPU", "ATTNNORM_ATTENTION_GENERIC", "ATTNNORM_SINKHORN_RECOMPUTE",
            "ATTNNORM_SINKHORN_LOGDOMAIN", "ATTNNORM_SINKHORN_CACHE_BYTES",
            "ATTNNORM_KEEP_SCRATCH")


def run_variants(tmp_path, code, variants):
    """Run `code` (argv: input .npz, output .npz) in one subprocess per
    (tag, environment) of `variants` (the kernels read these switches at
    import or per call; the other switches are cleared) on tmp_path/in.npz;
    returns tag -> the loaded output."""
    import attnnorm as an
    # the directory holding the attnnorm this process imported (source tree with
    # an in-place build, or site-packages after pip install)
    here = os.path.dirname(os.path.dirname(os.path.abspath(an.__file__)))
    outs = {}
    for tag, extra in variants:
        env = {k: v for k, v in os.environ.items() if k not in TEST_ENV}
        env.update(PYTHONPATH=here, **extra)
        fn = tmp_path / f"out_{tag}.npz"
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "in.npz"), str(fn)],
                       check=True, env=env, cwd=str(tmp_path))
        outs[tag] = np.load(fn)
    return outs


def run_portable_and_best(tmp_path, code):
    """run_variants on the portable path (ATTNNORM_CPU=default) and on this
    CPU's best path; `code` saves an.simd_path() as `path` beside its results.
    Checks that each ran on its path; returns (outputs by tag "default" and
    "best", the names of the results)."""
    import attnnorm as an
    outs = run_variants(tmp_path, code, (("default", {"ATTNNORM_CPU": "default"}),
                                         ("best", {})))
    assert str(outs["default"]["path"]) == "default"
    assert str(outs["best"]["path"]) == an.simd_best()
    return outs, [k for k in outs["default"].files if k != "path"]
