"""Experts: models and rules that label images with human-nameable concepts, and the labelling loop.

>>> from qrprobe.experts import build_expert, label_images
>>> bank = label_images("photos/", ["labels", "color", "image-stats"])      # doctest: +SKIP
>>> bank.display_names()[:2]                                                  # doctest: +SKIP
['[Labels/labels] cat', '[Labels/labels] dog']

``qrprobe experts`` lists the experts; importing this package imports no model library.
"""

from __future__ import annotations

from . import catalog as _catalog  # noqa: F401 - registers the built-in experts
from .base import PAPER_GROUPS, Expert, ExpertOutput, as_rgb_array
from .registry import (
    ExpertInfo,
    available_experts,
    build_expert,
    expert_class,
    expert_info,
    parse_expert_list,
    register_expert,
)

__all__ = [
    "PAPER_GROUPS",
    "Expert",
    "ExpertInfo",
    "ExpertOutput",
    "LabelConfig",
    "LabelReport",
    "as_rgb_array",
    "available_experts",
    "build_expert",
    "circularity_warnings",
    "expert_class",
    "expert_info",
    "label_images",
    "parse_expert_list",
    "register_expert",
]

_LAZY = {"label_images": ".label", "LabelReport": ".label", "LabelConfig": ".label_config",
         "circularity_warnings": "..concepts.provenance"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
