# Type stubs for attnnorm's public API (the implementation is in the .py modules
# and the C extension attnnorm._core).  Numeric results are NumPy arrays of float32 or
# float64 (int64 for counts and indices).
from typing import Any, Callable, Literal, NamedTuple, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

__version__: str
__all__: list[str]

_Float = NDArray[np.floating[Any]]
_Int = NDArray[np.int64]
_Causal = bool | Literal["bottom_right", "top_left"]
_Window = tuple[int | None, int | None] | None
_Empty = Literal["zero", "nan", "raise"]
_Axes = list[tuple[int, int]] | None
_Out = NDArray[Any] | None

def get_num_threads() -> int: ...
def set_num_threads(n: int, /) -> None: ...
def simd_path() -> str: ...
def simd_best() -> str: ...
def has_openmp() -> bool: ...

# ---- normalizers: scores (..., n, m) -> weights (..., n, m) -------------------

NORMALIZERS: dict[str, Callable[..., Any]]

def softmax(scores: ArrayLike, *, temperature: ArrayLike = ..., mask: ArrayLike | None = ...,
            causal: _Causal = ..., window: _Window = ..., empty: _Empty = ...,
            out: _Out = ..., axes: _Axes = ...) -> _Float: ...
def softmax_sink(scores: ArrayLike, *, sink: ArrayLike = ..., mask: ArrayLike | None = ...,
                 causal: _Causal = ..., window: _Window = ..., empty: _Empty = ...,
                 out: _Out = ..., axes: _Axes = ...) -> _Float: ...
def ssmax(scores: ArrayLike, *, c: ArrayLike = ..., mask: ArrayLike | None = ...,
          causal: _Causal = ..., window: _Window = ..., empty: _Empty = ...,
          out: _Out = ..., axes: _Axes = ...) -> _Float: ...
def sigmoid(scores: ArrayLike, *, bias: ArrayLike | None = ..., mask: ArrayLike | None = ...,
            causal: _Causal = ..., window: _Window = ..., empty: _Empty = ...,
            out: _Out = ..., axes: _Axes = ...) -> _Float: ...
def relu(scores: ArrayLike, *, power: ArrayLike = ..., mask: ArrayLike | None = ...,
         causal: _Causal = ..., window: _Window = ..., empty: _Empty = ...,
         out: _Out = ..., axes: _Axes = ...) -> _Float: ...
def polynomial(scores: ArrayLike, *, power: ArrayLike = ..., mask: ArrayLike | None = ...,
               causal: _Causal = ..., window: _Window = ..., empty: _Empty = ...,
               out: _Out = ..., axes: _Axes = ...) -> _Float: ...
def softpick(scores: ArrayLike, *, eps: ArrayLike = ..., mask: ArrayLike | None = ...,
             causal: _Causal = ..., window: _Window = ..., empty: _Empty = ...,
             out: _Out = ..., axes: _Axes = ...) -> _Float: ...
def nap(scores: ArrayLike, *, gain: ArrayLike = ..., bias: ArrayLike = ..., eps: ArrayLike = ...,
        mask: ArrayLike | None = ..., causal: _Causal = ..., window: _Window = ...,
        empty: _Empty = ..., out: _Out = ..., axes: _Axes = ...) -> _Float: ...
def affine_softmax(scores: ArrayLike, *, a: ArrayLike = ..., b: ArrayLike = ...,
                   mask: ArrayLike | None = ..., causal: _Causal = ..., window: _Window = ...,
                   empty: _Empty = ..., out: _Out = ..., axes: _Axes = ...) -> _Float: ...
@overload
def sparsemax(scores: ArrayLike, *, return_tau: Literal[False] = ...,
              mask: ArrayLike | None = ..., causal: _Causal = ..., window: _Window = ...,
              empty: _Empty = ..., out: _Out = ..., axes: _Axes = ...) -> _Float: ...
@overload
def sparsemax(scores: ArrayLike, *, return_tau: Literal[True],
              mask: ArrayLike | None = ..., causal: _Causal = ..., window: _Window = ...,
              empty: _Empty = ..., out: NDArray[Any] | tuple[NDArray[Any], ...] | None = ...,
              axes: _Axes = ...) -> tuple[_Float, _Float, _Int]: ...
@overload
def entmax(scores: ArrayLike, *, alpha: ArrayLike = ..., n_iter: ArrayLike = ...,
           return_tau: Literal[False] = ..., mask: ArrayLike | None = ...,
           causal: _Causal = ..., window: _Window = ..., empty: _Empty = ...,
           out: _Out = ..., axes: _Axes = ...) -> _Float: ...
@overload
def entmax(scores: ArrayLike, *, alpha: ArrayLike = ..., n_iter: ArrayLike = ...,
           return_tau: Literal[True], mask: ArrayLike | None = ...,
           causal: _Causal = ..., window: _Window = ..., empty: _Empty = ...,
           out: NDArray[Any] | tuple[NDArray[Any], ...] | None = ...,
           axes: _Axes = ...) -> tuple[_Float, _Float, _Int]: ...
def stochastic_softmax(scores: ArrayLike, *, trials: ArrayLike = ..., seed: ArrayLike = ...,
                       mask: ArrayLike | None = ..., causal: _Causal = ..., window: _Window = ...,
                       empty: _Empty = ..., out: _Out = ..., axes: _Axes = ...) -> _Float: ...
def sinkhorn(scores: ArrayLike, *, n_iter: int = ..., eps: float = ...,
             mask: ArrayLike | None = ..., causal: _Causal = ..., window: _Window = ...,
             empty: _Empty = ..., out: _Out = ..., axes: _Axes = ...) -> _Float: ...
def stickbreaking(scores: ArrayLike, *, include_current: bool = ...,
                  mask: ArrayLike | None = ..., causal: _Causal = ..., window: _Window = ...,
                  empty: _Empty = ..., out: _Out = ..., axes: _Axes = ...) -> _Float: ...

# ---- attention -------------------------------------------------------------------

class AttentionStats(NamedTuple):
    lognorm: _Float
    entropy: _Float
    max_weight: _Float
    argmax: _Int
    sink_weight: _Float
    margin: _Float
    support: _Int
    weight_sum: _Float
    @property
    def weight0(self) -> _Float: ...

@overload
def attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, normalizer: str = ..., *,
              scale: ArrayLike | None = ..., causal: _Causal = ..., window: _Window = ...,
              mask: ArrayLike | None = ..., empty: _Empty = ...,
              return_stats: Literal[False] = ..., **normalizer_params: Any) -> _Float: ...
@overload
def attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, normalizer: str = ..., *,
              scale: ArrayLike | None = ..., causal: _Causal = ..., window: _Window = ...,
              mask: ArrayLike | None = ..., empty: _Empty = ...,
              return_stats: Literal[True], **normalizer_params: Any
              ) -> tuple[_Float, AttentionStats]: ...
def attention_weights(q: ArrayLike, k: ArrayLike, normalizer: str = ..., *,
                      scale: ArrayLike | None = ..., causal: _Causal = ...,
                      window: _Window = ..., mask: ArrayLike | None = ...,
                      empty: _Empty = ..., **normalizer_params: Any) -> _Float: ...

# ---- linear-time family ----------------------------------------------------------

def linear_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike,
                     feature_map: Literal["elu1", "relu", "exp", "identity"] = ..., *,
                     causal: bool = ..., eps: float = ..., out: _Out = ...) -> _Float: ...
@overload
def log_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, *, causal: bool = ...,
                  state: ArrayLike | None = ..., return_state: Literal[False] = ...,
                  out: _Out = ...) -> _Float: ...
@overload
def log_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, *, causal: bool = ...,
                  state: ArrayLike | None = ..., return_state: Literal[True],
                  out: _Out = ...) -> tuple[_Float, _Float]: ...
def cheap_linear_attention(h: ArrayLike, q: ArrayLike, *, causal: bool = ...,
                           out: _Out = ...) -> _Float: ...
def zeros_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, s: ArrayLike,
                    gate_linear: ArrayLike, gate_softmax: ArrayLike, *, causal: bool = ...,
                    out: _Out = ...) -> _Float: ...
def zeros_weights(s: ArrayLike, gate_linear: ArrayLike, gate_softmax: ArrayLike, *,
                  causal: bool = ..., n: int | None = ..., out: _Out = ...) -> _Float: ...
@overload
def soft_attention(q: ArrayLike, v: ArrayLike, landmarks: ArrayLike | None = ..., *,
                   n_landmarks: int | None = ..., newton_iters: int = ...,
                   return_residuals: Literal[False] = ..., out: _Out = ...) -> _Float: ...
@overload
def soft_attention(q: ArrayLike, v: ArrayLike, landmarks: ArrayLike | None = ..., *,
                   n_landmarks: int | None = ..., newton_iters: int = ...,
                   return_residuals: Literal[True], out: _Out = ...) -> tuple[_Float, _Float]: ...
def soft_kernel(q: ArrayLike, *, out: _Out = ...) -> _Float: ...

# ---- diagnostics -----------------------------------------------------------------

def entropy(a: ArrayLike, *, normalized: bool = ..., base: float | None = ...,
            mask: ArrayLike | None = ..., causal: _Causal = ..., window: _Window = ...,
            out: _Out = ...) -> _Float: ...
def effective_support(a: ArrayLike, *, mask: ArrayLike | None = ..., causal: _Causal = ...,
                      window: _Window = ..., out: _Out = ...) -> _Float: ...
def participation_ratio(a: ArrayLike, *, mask: ArrayLike | None = ..., causal: _Causal = ...,
                        window: _Window = ..., out: _Out = ...) -> _Float: ...
def support_size(a: ArrayLike, *, threshold: float = ..., mask: ArrayLike | None = ...,
                 causal: _Causal = ..., window: _Window = ..., out: _Out = ...) -> _Int: ...
def column_mass(a: ArrayLike, *, mask: ArrayLike | None = ..., causal: _Causal = ...,
                window: _Window = ..., out: _Out = ...) -> _Float: ...
def sink_mass(a: ArrayLike, *, sink: int = ..., mask: ArrayLike | None = ...,
              causal: _Causal = ..., window: _Window = ..., out: _Out = ...) -> _Float: ...
def separation_margin(scores: ArrayLike, *, mask: ArrayLike | None = ..., causal: _Causal = ...,
                      window: _Window = ..., out: _Out = ...) -> _Float: ...
def row_residual(a: ArrayLike, *, ord: float | str = ..., out: _Out = ...) -> _Float: ...
def column_residual(a: ArrayLike, *, ord: float | str = ..., out: _Out = ...) -> _Float: ...
def negative_mass(a: ArrayLike, *, mask: ArrayLike | None = ..., causal: _Causal = ...,
                  window: _Window = ..., out: _Out = ...) -> _Float: ...
def frobenius_norm(a: ArrayLike, *, out: _Out = ...) -> _Float: ...
def rank_collapse(x: ArrayLike, *, out: _Out = ...) -> _Float: ...
def jacobian_norm(a: ArrayLike, normalizer: str = ..., ord: int | Literal["fro"] = ..., *,
                  mask: ArrayLike | None = ..., causal: _Causal = ..., window: _Window = ...,
                  scores: ArrayLike | None = ..., out: _Out = ..., **params: Any) -> _Float: ...
def vanishing_bounds(q: ArrayLike, k: ArrayLike, *, temperature: ArrayLike = ...,
                     mask: ArrayLike | None = ..., causal: _Causal = ...,
                     window: _Window = ...) -> tuple[_Float, _Float]: ...
def selectivity_distance(a: ArrayLike, x: ArrayLike, top: int) -> _Float: ...
def geometric_separability(a: ArrayLike, x: ArrayLike, top: int) -> _Float: ...
def attention_norms(a: ArrayLike, fx: ArrayLike) -> _Float: ...

class MixingRatios(NamedTuple):
    attn: _Float
    attn_res: _Float
    attn_res_ln: _Float
    vectors: dict[str, _Float] | None

def mixing_ratios(a: ArrayLike, fx: ArrayLike, x: ArrayLike, *, gamma: ArrayLike | None = ...,
                  beta: ArrayLike | None = ..., eps: float = ...,
                  return_vectors: bool = ...) -> MixingRatios: ...

class Diagnosis(NamedTuple):
    entropy: _Float
    max_weight: _Float
    sink_weight: _Float
    margin: _Float
    support: _Int
    column_mass: _Float

def diagnose(q: ArrayLike, k: ArrayLike, normalizer: str = ..., *,
             scale: ArrayLike | None = ..., causal: _Causal = ..., window: _Window = ...,
             mask: ArrayLike | None = ..., out: tuple[NDArray[Any], ...] | None = ...,
             **normalizer_params: Any) -> Diagnosis: ...

# ---- gradients (vector-Jacobian products) ----------------------------------------

REAL_PARAMS: dict[str, tuple[str, ...]]

class NormalizerGrad(NamedTuple):
    scores: _Float
    params: dict[str, Any]

def normalizer_vjp(scores: ArrayLike, grad_weights: ArrayLike, normalizer: str = ..., *,
                   weights: ArrayLike | None = ..., mask: ArrayLike | None = ...,
                   causal: _Causal = ..., window: _Window = ..., empty: _Empty = ...,
                   param_grads: bool = ..., **params: Any) -> NormalizerGrad: ...

class LinearAttentionGrad(NamedTuple):
    q: _Float
    k: _Float
    v: _Float
    eps: Any

class LogAttentionGrad(NamedTuple):
    q: _Float
    k: _Float
    v: _Float
    state: _Float | None

class CheapLinearGrad(NamedTuple):
    h: _Float
    q: _Float

class ZerosAttentionGrad(NamedTuple):
    q: _Float
    k: _Float
    v: _Float
    s: _Float
    gate_linear: Any
    gate_softmax: Any

class SoftAttentionGrad(NamedTuple):
    q: _Float
    v: _Float
    landmarks: _Float | None

def linear_attention_vjp(q: ArrayLike, k: ArrayLike, v: ArrayLike, grad_out: ArrayLike,
                         feature_map: Literal["elu1", "relu", "exp", "identity"] = ..., *,
                         causal: bool = ..., eps: ArrayLike = ...) -> LinearAttentionGrad: ...
def log_attention_vjp(q: ArrayLike, k: ArrayLike, v: ArrayLike, grad_out: ArrayLike, *,
                      causal: bool = ..., state: ArrayLike | None = ...,
                      grad_state: ArrayLike | None = ...) -> LogAttentionGrad: ...
def cheap_linear_attention_vjp(h: ArrayLike, q: ArrayLike, grad_out: ArrayLike, *,
                               causal: bool = ...) -> CheapLinearGrad: ...
def zeros_attention_vjp(q: ArrayLike, k: ArrayLike, v: ArrayLike, s: ArrayLike,
                        gate_linear: ArrayLike, gate_softmax: ArrayLike, grad_out: ArrayLike, *,
                        causal: bool = ...) -> ZerosAttentionGrad: ...
def soft_attention_vjp(q: ArrayLike, v: ArrayLike, grad_out: ArrayLike,
                       landmarks: ArrayLike | None = ..., *, n_landmarks: int | None = ...,
                       newton_iters: int = ...) -> SoftAttentionGrad: ...
