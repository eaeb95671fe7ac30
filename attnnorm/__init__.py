"""attnnorm: every attention-normalisation variant and its diagnostics as
NumPy gufuncs written in C with OpenMP.

See README.md for the conventions (masks, causal alignment, n_i, empty rows)
and docs/references.md for the papers cited as ``[Key]`` in the docstrings.
"""
import os as _os

try:
    from . import _core
except ImportError:
    _here = _os.path.dirname(_os.path.abspath(__file__))
    _built = [f for f in _os.listdir(_here) if f.startswith("_core.") and
              f.endswith((".so", ".pyd"))]
    if _built:
        raise   # the extension is there but does not load: show the real reason
    raise ImportError(
        f"attnnorm's compiled extension attnnorm._core is missing from {_here}.\n"
        "You are probably importing attnnorm from its source directory without having "
        "built it there (for example `python -c \"import attnnorm\"` or `python -m attnnorm` "
        "run from the repository root after `pip install .`: Python finds the source tree "
        "first, not the installed package). Either\n"
        "  * build in place:    python setup.py build_ext --inplace\n"
        "  * install editable:  pip install -e .\n"
        "  * or run Python from another directory, so that the installed attnnorm is imported."
    ) from None
from ._core import get_num_threads, set_num_threads, simd_path, simd_best, has_openmp
from ._normalizers import *  # noqa: F401,F403
from ._normalizers import NORMALIZERS
from ._attention import *  # noqa: F401,F403
from ._linear import *  # noqa: F401,F403
from ._diagnostics import *  # noqa: F401,F403
from ._grad import *  # noqa: F401,F403
from ._linear_grad import *  # noqa: F401,F403
from . import _normalizers, _attention, _linear, _diagnostics, _grad, _linear_grad

__version__ = "0.1.0"

__all__ = (["get_num_threads", "set_num_threads", "simd_path", "simd_best", "has_openmp"]
           + _normalizers.__all__ + _attention.__all__ + _linear.__all__
           + _diagnostics.__all__ + _grad.__all__ + _linear_grad.__all__)

# one hook for lazy arrays: dask arrays and xarray DataArrays go to
# attnnorm._dask (imported on first use, so importing attnnorm never imports dask);
# the gradients (whose parameter gradients reduce over the leading axes) are not
# lazy: they take dask arrays as NumPy would (computed)
from ._lazy import wrap_public as _wrap_public
_wrap_public(globals(), [nm for nm in __all__ if nm not in _grad.__all__ + _linear_grad.__all__],
             NORMALIZERS)
del _wrap_public
