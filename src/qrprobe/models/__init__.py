"""Frozen image representations behind one registry and one factory.

>>> from qrprobe.models import create_representation
>>> rep = create_representation("timm:resnet50", pretrained=False)    # doctest: +SKIP
>>> rep.dim, rep.layer                                                 # doctest: +SKIP
(2048, 'pool')

Heavy libraries (torch, timm, open_clip, transformers, onnxruntime) are imported only when used.
"""

from __future__ import annotations

from importlib import resources

_LAZY = {
    "Representation": ".base",
    "create_representation": ".registry",
    "parse_model_spec": ".registry",
    "list_models": ".registry",
    "register_adapter": ".registry",
    "Adapter": ".registry",
    "load_checkpoint": ".checkpoint",
    "LoadReport": ".checkpoint",
    "ImagePreprocess": ".preprocess",
    "efficientnet_lite0": ".builtin",
    "efficientnet_lite0_preprocess": ".builtin",
}

__all__ = [*sorted(_LAZY), "imagenet_class_names"]


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names, in the order of the classifier outputs (index 0 = "tench")."""
    text = resources.files("qrprobe").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    names = [line for line in text.splitlines() if line]
    if len(names) != 1000:  # pragma: no cover - packaging error
        raise RuntimeError(f"imagenet_classes.txt has {len(names)} names, expected 1000")
    return names


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if name in ("builtin", "adapters", "checkpoint", "layers", "preprocess", "classical", "efficientnet_lite",
                "base", "registry"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
