"""Linear-time attention family (DESIGN "Attention", linear-time family)."""
__all__ = []
