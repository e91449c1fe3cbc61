"""The object every model adapter returns: a frozen image encoder with its own preprocessing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from torch import nn

from .preprocess import describe_preprocess

_Module = TypeVar("_Module", bound=nn.Module)


@dataclass
class Representation:
    """A frozen representation ``f``: images -> (B, dim) feature vectors.

    Attributes
    ----------
    spec : the canonical model name (``"timm:resnet50"``, ``"efficientnet-lite0"``, ...).
    encoder : preprocessed batch (B, 3, H, W) -> features (B, dim); an ``nn.Module`` (moved to the device
        and run in inference mode) or a plain callable (an ONNX session) that handles devices itself.
    preprocess : PIL RGB image -> float tensor of a fixed shape (picklable, runs in loader workers).
    layer : which features, e.g. ``"pool"`` (pooled penultimate output), ``"cls"`` ([CLS] token of the last
        block), ``"layer3:avg"``.
    dim : feature dimension D.
    model : the underlying network (None for classical representations and exported graphs).
    info : provenance for the manifest: adapter, pretrained weights, checkpoint report, ...
    channels_last : run the encoder in the channels-last memory format (faster convolutions on CPUs);
        set by adapters for networks where it was verified.
    """

    spec: str
    encoder: nn.Module | Callable[[torch.Tensor], torch.Tensor]
    preprocess: Callable
    layer: str
    dim: int
    model: nn.Module | None = None
    info: dict = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    channels_last: bool = False

    @property
    def preprocessing(self) -> dict:
        """JSON-able description of :attr:`preprocess`."""
        return describe_preprocess(self.preprocess)

    def to(self, device: str | torch.device) -> Representation:
        """Move the encoder to ``device`` (in place) and return self."""
        if isinstance(self.encoder, nn.Identity):  # features computed in the loader: nothing to move
            self.device = torch.device("cpu")
            return self
        self.device = torch.device(device)
        if isinstance(self.encoder, nn.Module):
            self.encoder.to(self.device)
            if self.channels_last:
                self.encoder.to(memory_format=torch.channels_last)
        elif hasattr(self.encoder, "to"):
            self.encoder.to(self.device)
        return self

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Features of a preprocessed batch: (B, ...) -> float32 (B, dim), on :attr:`device`."""
        with torch.inference_mode():
            if isinstance(self.encoder, nn.Module):
                images = images.to(self.device, non_blocking=True)
                if self.channels_last and images.ndim == 4:
                    images = images.contiguous(memory_format=torch.channels_last)
            out = self.encoder(images)
        if out.ndim != 2 or out.shape[1] != self.dim:
            raise RuntimeError(f"{self.spec}: encoder returned shape {tuple(out.shape)}, expected (B, {self.dim})")
        return out.float()

    def describe(self) -> dict:
        """What a feature store's manifest records about the representation."""
        return {"model": self.spec, "layer": self.layer, "dim": self.dim,
                "preprocessing": self.preprocessing, "model_info": self.info}

    def __repr__(self) -> str:
        return f"Representation({self.spec!r}, layer={self.layer!r}, dim={self.dim})"


def probe_dim(encoder: nn.Module | Callable, preprocess: Callable) -> int:
    """Feature dimension, found by encoding one grey 256 x 256 image on the CPU."""
    from PIL import Image

    sample = preprocess(Image.new("RGB", (256, 256), (128, 128, 128)))[None]
    with torch.inference_mode():
        out = encoder(sample)
    if out.ndim != 2:
        raise RuntimeError(f"encoder output has shape {tuple(out.shape)}; expected (B, D)")
    return int(out.shape[1])


def freeze(model: _Module) -> _Module:
    """Evaluation mode and no gradients: the representation is frozen."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
