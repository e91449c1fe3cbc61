"""``open_clip:ARCH[:PRETRAINED]``: the image tower of an OpenCLIP model.

Default features follow the paper: a ViT's pooled [CLS] token before the projection to the joint space
(768-d for ViT-B/16); a ModifiedResNet's global average pool of its last stage (2048-d for RN50), before the
attention pooling. ``--layer embed`` gives the projected CLIP image embedding instead. Without a PRETRAINED tag
(or with ``--no-pretrained``) the weights are random.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..._network import hub_download_mode
from ...errors import require
from ..base import Representation, freeze, probe_dim
from ..layers import LayerTap, PooledOutput
from ..preprocess import LibraryPreprocess
from .common import hub_error, maybe_load_weights, tap_or_default, unknown_name_error


class _EncodeImage(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        encode: Any = self.model.encode_image  # open_clip's models are untyped: nn.Module's __getattr__ says Tensor
        return encode(x)


def build(name: str, *, layer: str | None = None, pretrained: bool = True, weights: str | None = None,
          strict_weights: bool = False) -> Representation:
    oc = require("open_clip", "vision", f"open_clip:{name}")
    arch, _, tag = name.partition(":")
    if arch not in oc.list_models():
        raise unknown_name_error("open_clip", arch, oc.list_models())
    load_hub = bool(tag) and pretrained and weights is None
    offline = hub_download_mode() if load_hub else None
    try:
        model, _, transform = oc.create_model_and_transforms(arch, pretrained=tag if load_hub else None)
    except (OSError, RuntimeError) as exc:
        if load_hub:
            raise hub_error(f"open_clip:{name}", exc, offline) from None
        raise
    freeze(model)
    visual = model.visual
    info = {"adapter": "open_clip", "architecture": arch,
            "weights": f"pretrained ({tag})" if load_hub else "random init"}
    maybe_load_weights(info, [("model", model), ("visual", visual)], weights, strict_weights)
    cfg = dict(getattr(visual, "preprocess_cfg", {}) or {})
    preprocess = LibraryPreprocess(transform, {"kind": "open_clip",
                                               **{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}})
    encoder: nn.Module
    if layer == "embed":
        encoder, layer_name = _EncodeImage(model), "embed"
    elif layer:
        encoder, layer_name = tap_or_default(visual, layer, visual, visual, layer)
    else:
        encoder, layer_name = _default_encoder(visual)
    return Representation(f"open_clip:{name}", encoder, preprocess, layer_name, probe_dim(encoder, preprocess),
                          model=model, info=info)


def _default_encoder(visual: nn.Module) -> tuple[nn.Module, str]:
    kind = type(visual).__name__
    if kind == "VisionTransformer" and getattr(visual, "proj", None) is not None:
        # the pooled token before the projection to the joint space (torch accepts None for a parameter; the
        # stubs of nn.Module.__setattr__ do not)
        setattr(visual, "proj", None)  # noqa: B010
        pool = getattr(visual, "pool_type", "tok")
        return PooledOutput(visual), "cls" if pool == "tok" else f"pool({pool})"
    if kind == "ModifiedResNet":
        return LayerTap(visual, "layer4", visual, "avg"), "pool"
    return PooledOutput(visual), "embed"
