"""``timm:NAME``: any timm model; features are its pooled pre-logits output (``num_classes=0``): the global
average pool of a CNN, the [CLS] token (after the final norm) of a ViT with ``global_pool="token"``."""

from __future__ import annotations

from ..._network import hub_download_mode
from ...errors import QRProbeInputError, require
from ..base import Representation, freeze, probe_dim
from ..preprocess import LibraryPreprocess
from .common import hub_error, maybe_load_weights, tap_or_default


def build(name: str, *, layer: str | None = None, pretrained: bool = True, weights: str | None = None,
          strict_weights: bool = False) -> Representation:
    timm = require("timm", "vision", f"timm:{name}")
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0]}*")[:10]
        raise QRProbeInputError(f"MODEL timm:{name}: unknown timm model" + (f"; similar: {close}" if close else ""))
    load_hub = pretrained and weights is None
    offline = hub_download_mode() if load_hub else None
    try:
        model = timm.create_model(name, pretrained=load_hub, num_classes=0)
    except (OSError, RuntimeError, ValueError) as exc:
        if load_hub:
            raise hub_error(f"timm:{name}", exc, offline) from None
        raise
    freeze(model)
    info = {"adapter": "timm", "architecture": name,
            "weights": "pretrained (timm hub)" if load_hub else "random init"}
    info.update(hub_tag(model))
    maybe_load_weights(info, model, weights, strict_weights)
    cfg = timm.data.resolve_model_data_config(model)
    preprocess = LibraryPreprocess(timm.data.create_transform(**cfg),
                                   {"kind": "timm", **{k: _jsonable(v) for k, v in cfg.items()}})
    default_name = "cls" if getattr(model, "global_pool", None) == "token" else "pool"
    encoder, layer_name = tap_or_default(model, layer, model, model, default_name)
    return Representation(f"timm:{name}", encoder, preprocess, layer_name,
                          int(model.num_features) if not layer else probe_dim(encoder, preprocess),
                          model=model, info=info)


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


def hub_tag(model) -> dict:
    """The pretrained tag a timm name resolves to (``resnet50`` -> ``resnet50.a1_in1k``) and where its
    weights come from; recorded whether or not they are loaded, because its preprocessing is used."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch, tag = cfg.get("architecture"), cfg.get("tag")
    if not arch:
        return {}
    out = {"hub_tag": f"{arch}.{tag}" if tag else arch, "hub_source": cfg.get("hf_hub_id") or cfg.get("url") or ""}
    if cfg.get("url"):
        out["hub_url"] = cfg["url"]
    return out
