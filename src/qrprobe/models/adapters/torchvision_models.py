"""``torchvision:NAME``: a torchvision classification model whose last linear layer is replaced by the
identity, so the output is the pooled penultimate feature (the [CLS] token for ``vit_*``)."""

from __future__ import annotations

from torch import nn

from ..._network import url_offline_reason
from ...errors import require
from ..base import Representation, freeze, probe_dim
from ..layers import PooledOutput
from ..preprocess import ImagePreprocess, LibraryPreprocess
from .common import hub_error, maybe_load_weights, tap_or_default, unknown_name_error


def _remove_last_linear(model: nn.Module) -> str:
    """Replace the last ``nn.Linear`` (the classifier) by the identity; return its name."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        return ""
    name = linears[-1]
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, nn.Identity())
    return name


def _cached(url: str) -> bool:
    """Whether torch.hub already holds the file of ``url`` (where ``load_state_dict_from_url`` looks)."""
    import os

    import torch.hub

    return os.path.isfile(os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url)))


def build(name: str, *, layer: str | None = None, pretrained: bool = True, weights: str | None = None,
          strict_weights: bool = False) -> Representation:
    tv = require("torchvision", "vision", f"torchvision:{name}")
    known = tv.models.list_models(module=tv.models)
    if name not in known:
        raise unknown_name_error("torchvision", name, known)
    try:
        weight_enum = tv.models.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError):
        weight_enum = None
    load_hub = pretrained and weights is None and weight_enum is not None
    if load_hub and not _cached(weight_enum.url):
        offline = url_offline_reason(weight_enum.url)
        if offline is not None:
            raise hub_error(f"torchvision:{name}", None, offline)
    try:
        model = tv.models.get_model(name, weights=weight_enum if load_hub else None)
    except (OSError, RuntimeError) as exc:
        if load_hub:
            raise hub_error(f"torchvision:{name}", exc) from None
        raise
    freeze(model)
    info = {"adapter": "torchvision", "architecture": name,
            "weights": str(weight_enum) if load_hub else "random init"}
    if weight_enum is not None:  # what the name resolves to; its transform is used even without its weights
        info.update(hub_tag=str(weight_enum), hub_source=weight_enum.url, hub_url=weight_enum.url)
    if not layer:
        info["classifier_removed"] = _remove_last_linear(model)
    maybe_load_weights(info, model, weights, strict_weights)
    preprocess: LibraryPreprocess | ImagePreprocess
    if weight_enum is not None:
        t = weight_enum.transforms()
        preprocess = LibraryPreprocess(t, {
            "kind": "torchvision", "resize": list(t.resize_size), "crop": list(t.crop_size),
            "interpolation": t.interpolation.value, "mean": list(t.mean), "std": list(t.std)})
    else:
        preprocess = ImagePreprocess()
    default_name = "cls" if name.startswith("vit_") else "pool"
    encoder, layer_name = tap_or_default(model, layer, model, PooledOutput(model), default_name)
    return Representation(f"torchvision:{name}", encoder, preprocess, layer_name,
                          probe_dim(encoder, preprocess), model=model, info=info)
