"""Diagnostics of attention weights and scores (DESIGN "Diagnostics")."""
__all__ = []
