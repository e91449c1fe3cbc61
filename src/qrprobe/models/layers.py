"""Which features: pooling a layer's output to one vector per image, and tapping intermediate layers.

A layer is named by its ``named_modules()`` path, optionally followed by a pooling: ``"layer3"``,
``"blocks.6:avg"``, ``"features.4:max"``. Pooling of a module output of shape

- (B, C, H, W): ``avg`` (default) or ``max`` over H, W  -> (B, C)
- (B, T, C) token sequence: ``cls`` (default: token 0) or ``avg``/``max`` over tokens -> (B, C)
- (B, C): taken as is; anything else is flattened (``flatten``).
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable

import torch
from torch import nn

from ..errors import QRProbeInputError

POOLINGS = ("auto", "avg", "max", "cls", "flatten")


def first_tensor(output) -> torch.Tensor:
    """The tensor in a module output: itself, the first element of a tuple/list, or a known field."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output:
        return first_tensor(output[0])
    for name in ("last_hidden_state", "pooler_output", "logits"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"cannot find a tensor in a module output of type {type(output).__name__}")


def pool_features(x: torch.Tensor, pooling: str = "auto") -> torch.Tensor:
    """Reduce a layer output to (B, C) as described in the module docstring."""
    if pooling not in POOLINGS:
        raise QRProbeInputError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if pooling == "flatten" or x.ndim == 2:
        return x.flatten(1)
    if x.ndim == 4:
        if pooling == "cls":
            raise QRProbeInputError("pooling 'cls' needs a token sequence (B, T, C), the layer gives (B, C, H, W)")
        return x.amax(dim=(2, 3)) if pooling == "max" else x.mean(dim=(2, 3))
    if x.ndim == 3:
        if pooling in ("auto", "cls"):
            return x[:, 0]
        return x.amax(dim=1) if pooling == "max" else x.mean(dim=1)
    return x.flatten(1)


def parse_layer(layer: str) -> tuple[str, str]:
    """``"blocks.6:avg"`` -> (``"blocks.6"``, ``"avg"``); no suffix means ``"auto"``."""
    name, _, pooling = layer.partition(":")
    pooling = pooling or "auto"
    if pooling not in POOLINGS:
        raise QRProbeInputError(f"--layer {layer!r}: unknown pooling {pooling!r} (use one of {POOLINGS})")
    return name, pooling


def find_module(root: nn.Module, name: str, what: str = "--layer") -> nn.Module:
    """The sub-module called ``name``, or an input error listing the closest names."""
    modules = dict(root.named_modules())
    if name in modules and name:
        return modules[name]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(name, names, n=8, cutoff=0.4) or names[:8]
    raise QRProbeInputError(f"{what} {name!r}: no such layer in the model; close names: {close} "
                            f"(`qrprobe models --layers MODEL` lists all {len(names)})")


class _StopForward(Exception):
    """Raised inside a forward hook once the tapped layer has run, to skip the rest of the network."""


class LayerTap(nn.Module):
    """Run a model up to one named layer and return that layer's output, pooled to (B, C).

    Parameters
    ----------
    root : the module whose ``named_modules()`` names the layer.
    layer : the layer's name (without the pooling suffix).
    run : ``batch -> anything``; calls the network (for example ``lambda x: model(pixel_values=x)``).
    pooling : one of :data:`POOLINGS`.
    """

    def __init__(self, root: nn.Module, layer: str, run: Callable[[torch.Tensor], object],
                 pooling: str = "auto") -> None:
        super().__init__()
        self.root = root
        self.layer = layer
        self.pooling = pooling
        self._run = run
        self._captured: torch.Tensor | None = None
        find_module(root, layer).register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        self._captured = first_tensor(output)
        raise _StopForward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._captured = None
        with contextlib.suppress(_StopForward):
            self._run(x)
        if self._captured is None:
            raise RuntimeError(f"layer {self.layer!r} did not run during the forward pass")
        out, self._captured = self._captured, None
        return pool_features(out, self.pooling)


class PooledOutput(nn.Module):
    """``run(x)`` pooled to (B, C): the default head for models whose output is already the feature."""

    def __init__(self, model: nn.Module, run: Callable[[torch.Tensor], object] | None = None,
                 pooling: str = "auto") -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling
        self._run = run

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._run(x) if self._run is not None else self.model(x)
        return pool_features(first_tensor(out), self.pooling)
