"""Fused attention for every normalizer (DESIGN "Attention")."""
__all__ = []
