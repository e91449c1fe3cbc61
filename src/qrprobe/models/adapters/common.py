"""Helpers shared by the adapters: layer selection, checkpoint loading, close-name suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

import torch
from torch import nn

from ...errors import QRProbeInputError
from ..checkpoint import load_checkpoint
from ..layers import LayerTap, parse_layer


def unknown_name_error(family: str, name: str, known: Iterable[str]) -> QRProbeInputError:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=8, cutoff=0.5)
    hint = f"; close names: {close}" if close else ""
    return QRProbeInputError(f"MODEL {family}:{name}: unknown {family} model{hint}")


def maybe_load_weights(info: dict, targets, weights: str | None, strict: bool) -> None:
    """Load ``weights`` into ``targets`` (a module or ``[(name, module), ...]``) and record the report."""
    if weights:
        info["checkpoint"] = load_checkpoint(targets, weights, strict=strict).as_dict()
        info["weights"] = "checkpoint"


def tap_or_default(root: nn.Module, layer: str | None, run: Callable[[torch.Tensor], object],
                   default: nn.Module, default_name: str) -> tuple[nn.Module, str]:
    """The encoder for ``layer`` (a :class:`LayerTap` on ``root``), or ``default`` when no layer is asked."""
    if not layer:
        return default, default_name
    name, pooling = parse_layer(layer)
    return LayerTap(root, name, run, pooling), layer


def hub_error(spec: str, exc: Exception | None, offline: str | None = None) -> QRProbeInputError:
    """The error for pretrained weights that could not be had; ``offline``: why downloads are off (the
    weights were then looked for in the local cache only)."""
    if offline is not None:
        why = f"offline: {offline}, and they are not in the local cache"
    else:
        why = f"{type(exc).__name__}: {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}"
    return QRProbeInputError(
        f"MODEL {spec}: could not get the pretrained weights ({why}). Without "
        "internet, pass a local checkpoint with --weights PATH, or --no-pretrained for random weights")
