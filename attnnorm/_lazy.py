"""Lazy-array dispatch for the public functions.

``dask_aware(func)`` wraps a public function so that a call with a dask array
or an xarray DataArray among its arguments goes to :mod:`attnnorm._dask`
(imported only then); every other call goes straight to ``func``.  The check
looks at the type's module name, so importing attnnorm never imports dask or
xarray.
"""
import functools
import inspect

_LAZY_MODULES = ("dask", "xarray")


def _is_lazy(x):
    mod = type(x).__module__
    return mod.partition(".")[0] in _LAZY_MODULES


def has_lazy(args, kwargs):
    """True if any argument (or an element of a tuple/list argument) is a
    dask array or an xarray object."""
    for a in (*args, *kwargs.values()):
        if _is_lazy(a):
            return True
        if isinstance(a, (tuple, list)) and any(_is_lazy(b) for b in a):
            return True
    return False


def dask_aware(func):
    """``func`` with dask/xarray arguments dispatched to attnnorm._dask."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if has_lazy(args, kwargs):
            from . import _dask
            return _dask.dispatch(func, args, kwargs)
        return func(*args, **kwargs)
    wrapper.__wrapped_numpy__ = func
    return wrapper


def wrap_public(namespace, names, registry):
    """Replace every public Python function of ``namespace`` listed in
    ``names`` (and the values of the normalizer ``registry``) by its
    dask-aware wrapper."""
    for name in names:
        f = namespace.get(name)
        if inspect.isfunction(f) and not hasattr(f, "__wrapped_numpy__"):
            namespace[name] = dask_aware(f)
    for key, f in list(registry.items()):
        if inspect.isfunction(f) and not hasattr(f, "__wrapped_numpy__"):
            registry[key] = namespace.get(f.__name__) if namespace.get(f.__name__) is not None \
                and getattr(namespace[f.__name__], "__wrapped__", None) is f else dask_aware(f)
