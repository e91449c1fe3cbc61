"""The model registry and the one factory: ``MODEL`` string -> :class:`Representation`.

MODEL forms::

    timm:NAME                     e.g. timm:resnet50, timm:vit_base_patch16_224
    torchvision:NAME              e.g. torchvision:resnet50, torchvision:vit_b_16
    open_clip:ARCH[:PRETRAINED]   e.g. open_clip:ViT-B-16:openai (random weights without PRETRAINED)
    hf:NAME                       a HuggingFace transformers model id or save_pretrained folder
    torchscript:PATH | PATH.pt    a TorchScript archive (also .ts, .torchscript, .jit)
    onnx:PATH | PATH.onnx         an ONNX graph
    python:MODULE:FACTORY         any nn.Module built by a user function (MODULE may be a .py file)
    efficientnet-lite0 | efficientnet-lite0-random | pixels[-N] | color-histogram | hog   (built in)
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import QRProbeInputError
from .base import Representation
from .builtin import builtin_models, lookup_builtin
from .preprocess import ImagePreprocess, parse_preprocess, with_overrides

_TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".jit")


@dataclass(frozen=True)
class Adapter:
    """A model family: ``prefix:NAME`` specs are built by ``module.function``."""

    prefix: str
    module: str
    function: str
    extra: str
    needs: tuple[str, ...]
    description: str
    example: str

    def builder(self) -> Callable[..., Representation]:
        return getattr(importlib.import_module(self.module, __package__), self.function)

    def available(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.needs)


ADAPTERS: dict[str, Adapter] = {}


def register_adapter(adapter: Adapter) -> None:
    """Add (or replace) a model family."""
    ADAPTERS[adapter.prefix] = adapter


for _a in (
    Adapter("timm", ".adapters.timm_models", "build", "vision", ("timm",),
            "timm models; pooled pre-logits features", "timm:resnet50"),
    Adapter("torchvision", ".adapters.torchvision_models", "build", "vision", ("torchvision",),
            "torchvision classifiers without their last linear layer", "torchvision:vit_b_16"),
    Adapter("open_clip", ".adapters.open_clip_models", "build", "vision", ("open_clip",),
            "OpenCLIP image towers (pre-projection features)", "open_clip:ViT-B-16:openai"),
    Adapter("hf", ".adapters.hf_models", "build", "hf", ("transformers",),
            "HuggingFace transformers vision models", "hf:facebook/dinov2-small"),
    Adapter("torchscript", ".adapters.exported", "build_torchscript", "(none)", (),
            "a TorchScript archive; its output is the feature", "torchscript:model.pt"),
    Adapter("onnx", ".adapters.exported", "build_onnx", "onnx", ("onnxruntime",),
            "an ONNX graph (onnxruntime); its first output is the feature", "onnx:model.onnx"),
    Adapter("python", ".adapters.python_factory", "build", "(none)", (),
            "nn.Module from a user factory function", "python:mypkg.nets:build_model"),
):
    register_adapter(_a)


def parse_model_spec(spec: str) -> tuple[str, str]:
    """Split MODEL into ``(family, name)``; family is an adapter prefix or ``"builtin"``."""
    spec = str(spec).strip()
    if not spec:
        raise QRProbeInputError("MODEL: empty model name")
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in ADAPTERS:
        return prefix, rest
    if sep and prefix == "builtin":
        return "builtin", rest
    if lookup_builtin(spec) is not None:
        return "builtin", spec
    lower = spec.lower()
    if lower.endswith(".onnx"):
        return "onnx", spec
    if lower.endswith(_TORCHSCRIPT_SUFFIXES):
        return "torchscript", spec
    known = ", ".join([f"{p}:NAME" for p in ADAPTERS] + list(builtin_models()))
    raise QRProbeInputError(f"MODEL {spec!r}: unknown model; expected one of {known} "
                            "(`qrprobe models` lists them)")


def create_representation(spec: str, *, layer: str | None = None, weights: str | None = None,
                          pretrained: bool = True, strict_weights: bool = False,
                          image_size: int | None = None, mean: tuple[float, ...] | None = None,
                          std: tuple[float, ...] | None = None,
                          preprocess: str | Mapping | ImagePreprocess | None = None) -> Representation:
    """Build a frozen representation with its own preprocessing, on the CPU.

    Parameters
    ----------
    spec : MODEL string (see the module docstring).
    layer : None for the paper's default features (pooled penultimate output of a CNN, [CLS] token of the
        last block of a ViT); or a module name, optionally with a pooling (``"layer3"``, ``"blocks.6:avg"``);
        the layer's output is globally pooled.
    weights : a local checkpoint loaded weights-only into the model (prefixes such as ``module.`` stripped;
        missing/unexpected keys reported in ``info["checkpoint"]``). Implies no hub download.
    pretrained : download the family's pretrained weights (timm, torchvision, open_clip tag, hf); False gives
        random weights (offline).
    strict_weights : reject a checkpoint with missing or unexpected keys.
    preprocess : the transform the model was trained/evaluated with, stated explicitly: a preset name
        (``"imagenet"``, ``"imagenet-bicubic"``), a mapping (``{"resize": 256, "crop": 224, "interpolation":
        "bicubic", "mean": [...], "std": [...]}``) or an :class:`ImagePreprocess`; it replaces the family's
        own transform (see :func:`~qrprobe.models.preprocess.parse_preprocess`). Needed for a checkpoint
        file: without it the transform is the hub configuration of the architecture, not the checkpoint's.
    image_size, mean, std : override the preprocessing (crop size; resize = size / 0.875), after ``preprocess``.

    Returns
    -------
    Representation with ``encoder``, ``preprocess``, ``dim``, ``layer`` and provenance ``info``.
    """
    family, name = parse_model_spec(spec)
    if not name:
        raise QRProbeInputError(f"MODEL {spec!r}: missing the model name after {family}:")
    if family == "builtin":
        entry = lookup_builtin(name)
        if entry is None:
            raise QRProbeInputError(f"MODEL {spec!r}: unknown built-in model; built-ins: {list(builtin_models())}")
        if weights and not name.startswith("efficientnet"):
            raise QRProbeInputError(f"--weights: the classical representation {name!r} has no weights")
        rep = entry.build(name, layer=layer, weights=weights, strict_weights=strict_weights)
    else:
        rep = ADAPTERS[family].builder()(name, layer=layer, pretrained=pretrained, weights=weights,
                                         strict_weights=strict_weights)
    if preprocess is not None:
        if rep.info.get("kind") == "classical":
            raise QRProbeInputError(f"preprocess: not applicable to {spec!r}")
        rep.preprocess = parse_preprocess(preprocess)
        rep.info["preprocessing_source"] = "stated"
    elif weights and family in ("timm", "torchvision", "open_clip", "hf"):
        rep.info["preprocessing_source"] = (f"the {family} configuration of {name!r}, not the checkpoint's "
                                            "own; state the checkpoint's transform with `preprocess`")
    if image_size is not None or mean is not None or std is not None:
        if rep.info.get("kind") == "classical":
            raise QRProbeInputError(f"--image-size/--mean/--std: not applicable to {spec!r}")
        base = rep.preprocess if isinstance(rep.preprocess, ImagePreprocess) else ImagePreprocess()
        rep.preprocess = with_overrides(base, image_size=image_size, mean=mean, std=std)
        rep.info["preprocessing_overridden"] = True
    return rep


def list_models() -> list[dict]:
    """What ``qrprobe models`` shows: every family and built-in, its extra and whether it is usable here."""
    rows = []
    for a in ADAPTERS.values():
        rows.append({"model": f"{a.prefix}:NAME", "example": a.example, "extra": a.extra,
                     "available": a.available(), "description": a.description, "dim": None})
    for b in builtin_models().values():
        available = all(importlib.util.find_spec(m) is not None for m in b.needs)
        rows.append({"model": b.name, "example": b.name, "extra": "vision",
                     "available": available, "description": b.description, "dim": b.dim})
    return rows
