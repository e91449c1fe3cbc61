"""``hf:NAME``: a HuggingFace transformers vision model (a hub id or a local ``save_pretrained`` folder).

Default features: the [CLS] token (``last_hidden_state[:, 0]``) of transformers, the pooled output of CNNs.
The image processor saved with the model is used when there is one; otherwise the model config's image size
with the usual ImageNet transform.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ..._network import hub_download_mode
from ...errors import QRProbeInputError, require
from ..base import Representation, freeze, probe_dim
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess, LibraryPreprocess
from .common import hub_error, maybe_load_weights, tap_or_default


class _HFDefault(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x)
        hidden = getattr(out, "last_hidden_state", None)
        if hidden is not None and hidden.ndim == 3:
            return hidden[:, 0]
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        if hidden is not None and hidden.ndim == 4:
            return hidden.mean(dim=(2, 3))
        raise RuntimeError("the HuggingFace model returned neither last_hidden_state nor pooler_output")


class _ProcessorPreprocess:
    """PIL image -> pixel_values (3, H, W) through a HuggingFace image processor."""

    def __init__(self, processor) -> None:
        self.processor = processor

    def __call__(self, image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]


def _describe_processor(processor) -> dict:
    keep = ("size", "crop_size", "do_resize", "do_center_crop", "resample", "image_mean", "image_std",
            "rescale_factor", "do_normalize")
    d = processor.to_dict() if hasattr(processor, "to_dict") else {}
    return {"kind": "hf", "processor": type(processor).__name__,
            **{k: _jsonable(d[k]) for k in keep if k in d}}


def _jsonable(v):
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def build(name: str, *, layer: str | None = None, pretrained: bool = True, weights: str | None = None,
          strict_weights: bool = False) -> Representation:
    tr = require("transformers", "hf", f"hf:{name}")
    load_hub = pretrained and weights is None
    offline = None if os.path.isdir(name) else hub_download_mode()  # even a config comes from the hub
    try:
        if load_hub:
            model = tr.AutoModel.from_pretrained(name)
        else:
            model = tr.AutoModel.from_config(tr.AutoConfig.from_pretrained(name))
    except (OSError, ValueError) as exc:
        raise hub_error(f"hf:{name}", exc, offline) if load_hub else QRProbeInputError(
            f"MODEL hf:{name}: cannot read its config ({f'offline: {offline}' if offline else exc})") from None
    if hasattr(model, "vision_model"):  # CLIP-like dual encoders: keep the image tower
        model = model.vision_model
    freeze(model)
    info = {"adapter": "hf", "architecture": type(model).__name__,
            "weights": "pretrained (hub)" if load_hub else "random init"}
    maybe_load_weights(info, model, weights, strict_weights)
    preprocess: LibraryPreprocess | ImagePreprocess
    try:
        processor = tr.AutoImageProcessor.from_pretrained(name)
        preprocess = LibraryPreprocess(_ProcessorPreprocess(processor), _describe_processor(processor))
    except (OSError, ValueError, KeyError):
        size = getattr(model.config, "image_size", 224)
        size = size[0] if isinstance(size, (list, tuple)) else int(size)
        preprocess = ImagePreprocess(resize=round(size / 0.875), crop=size, mean=IMAGENET_MEAN,
                                     std=IMAGENET_STD)
        info["preprocessing_note"] = "no image processor found; ImageNet transform at the config's image size"

    def run(x):
        return model(pixel_values=x)

    default = _HFDefault(model)
    probe_name = "cls" if _is_token_model(model) else "pool"
    encoder, layer_name = tap_or_default(model, layer, run, default, probe_name)
    return Representation(f"hf:{name}", encoder, preprocess, layer_name, probe_dim(encoder, preprocess),
                          model=model, info=info)


def _is_token_model(model: nn.Module) -> bool:
    cfg = getattr(model, "config", None)
    return cfg is not None and hasattr(cfg, "patch_size") and hasattr(cfg, "num_attention_heads")
