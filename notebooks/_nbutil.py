"""Small helpers shared by the notebooks (plot style, provenance of each function).

``impl(name)`` returns ``attnnorm.<name>`` (the C kernels).  If this build of
attnnorm lacks that function it falls back to ``attnnorm._reference.<name>``
(float64 NumPy) or to a NumPy fallback defined here, and *prints* which one
ran, so a number is never attributed to code that did not compute it.
"""
import numpy as np
import matplotlib
import matplotlib.pyplot as plt

import attnnorm

SOURCES = {}


def setup():
    """Readable plots at notebook width; print where attnnorm was imported from."""
    matplotlib.rcParams.update({
        "figure.figsize": (8.0, 3.6), "figure.dpi": 80, "axes.grid": True,
        "grid.alpha": 0.3, "axes.titlesize": 11, "axes.labelsize": 10,
        "legend.fontsize": 8, "xtick.labelsize": 9, "ytick.labelsize": 9,
    })
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    print(f"attnnorm {attnnorm.__version__} from {attnnorm.__file__}; SIMD path: "
          f"{getattr(attnnorm, 'simd_path', lambda: '?')()}")


def impl(name, fallback=None):
    """attnnorm.<name> if it exists, else the reference or the given fallback."""
    fn = getattr(attnnorm, name, None)
    if fn is not None:
        SOURCES[name] = "attnnorm (C)"
        return fn
    ref = getattr(getattr(attnnorm, "_reference", None), name, None)
    if ref is not None:
        SOURCES[name] = "attnnorm._reference (NumPy float64; the C function is missing from this build)"
        print(f"NOTE: attnnorm.{name} is missing from this build; using attnnorm._reference.{name}")
        return ref
    if fallback is not None:
        SOURCES[name] = "notebook NumPy fallback (attnnorm has no such function in this build)"
        print(f"NOTE: attnnorm.{name} is missing from this build; using the notebook's NumPy fallback")
        return fallback
    raise AttributeError(f"attnnorm has no {name} and no fallback was given")


def provenance():
    """Print which implementation computed each function used so far."""
    for name, src in sorted(SOURCES.items()):
        print(f"  {name:24s} {src}")


def loglog_slope(x, y):
    """Least-squares slope of log y against log x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(y)
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


# ---- NumPy fallbacks (used only when this build of attnnorm lacks the function) ----

def fb_entropy(a, normalized=False, **_):
    a = np.asarray(a, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0).sum(-1)
        if normalized:
            h = h / np.log(a.shape[-1])
    return h


def fb_column_mass(a, causal=False, **_):
    a = np.asarray(a, float)
    n, m = a.shape[-2:]
    if not causal:
        return a.mean(-2)
    vis = np.arange(m)[None, :] <= np.arange(n)[:, None] + (m - n)
    return (a * vis).sum(-2) / np.maximum(vis.sum(-2), 1)


def fb_sink_mass(a, sink=0, causal=False, **_):
    return fb_column_mass(a, causal=causal)[..., sink]


def fb_separation_margin(s, **_):
    s = np.sort(np.asarray(s, float), axis=-1)
    return s[..., -1] - s[..., -2]


def fb_row_residual(a, **_):
    return np.abs(np.asarray(a, float).sum(-1) - 1.0)


def fb_frobenius_norm(a, **_):
    return np.sqrt((np.asarray(a, float) ** 2).sum((-2, -1)))
