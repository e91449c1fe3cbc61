"""Concept banks (which concepts each image shows) and the experts that produce them."""

from .bank import ConceptBank, read_table

__all__ = ["ConceptBank", "read_table"]
