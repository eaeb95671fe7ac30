"""attnnorm: every attention-normalisation variant and its diagnostics as
NumPy gufuncs written in C with OpenMP.

See README.md for the conventions (masks, causal alignment, n_i, empty rows).
"""
from . import _core
from ._core import get_num_threads, set_num_threads, simd_path, simd_best, has_openmp
from ._normalizers import *  # noqa: F401,F403
from ._normalizers import NORMALIZERS
from ._attention import *  # noqa: F401,F403
from ._attention_grad import *  # noqa: F401,F403
from ._linear import *  # noqa: F401,F403
from ._diagnostics import *  # noqa: F401,F403
from ._grad import *  # noqa: F401,F403
from . import _normalizers, _attention, _attention_grad, _linear, _diagnostics, _grad

__version__ = "0.1.0"

__all__ = (["NORMALIZERS", "get_num_threads", "set_num_threads", "simd_path",
            "simd_best", "has_openmp"]
           + _normalizers.__all__ + _attention.__all__ + _attention_grad.__all__
           + _linear.__all__ + _diagnostics.__all__ + _grad.__all__)
