"""Helpers shared by the torch experts: batching images through a preprocessing, loading weights, running a model
in chunks (the device is resolved by :func:`qrprobe.device.resolve_device`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import QRProbeInputError, require


def torch_module():
    """Import torch (a core dependency) lazily."""
    return require("torch", "vision", "model-based experts")


def preprocess_batch(images: Sequence[np.ndarray], preprocess: Callable):
    """Stack ``preprocess(PIL image)`` of every RGB array into a (B, 3, H, W) float tensor."""
    from PIL import Image

    torch = torch_module()
    return torch.stack([preprocess(Image.fromarray(im)) for im in images])


def load_weights_into(model, path: str | os.PathLike, expert: str, architecture: str) -> dict:
    """Load a checkpoint strictly into ``model``; a file for another architecture is an input error.

    Returns the load report (path, sha256, keys) for the bank's manifest.
    """
    from ..models.checkpoint import load_checkpoint

    try:
        report = load_checkpoint(model, path, strict=True)
    except QRProbeInputError as exc:
        raise QRProbeInputError(f"expert {expert!r} ({architecture}): {exc}") from None
    return report.as_dict(limit=10)


def run_batched(model, x, batch_size: int, device: str):
    """Forward ``x`` (B, ...) through ``model`` in chunks under inference mode; returns a CPU float32 tensor."""
    torch = torch_module()
    outs = []
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            out = model(x[start:start + batch_size].to(device))
            if isinstance(out, dict):
                out = out["out"]
            outs.append(out.float().cpu())
    return torch.cat(outs)
