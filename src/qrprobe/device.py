"""Choice of the torch device: the one resolver of the whole package (engine, extraction, experts)."""

from __future__ import annotations

import torch

from .errors import QRProbeInputError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks the first CUDA GPU when present, else the CPU; other names are checked."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise QRProbeInputError(f"--device: unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise QRProbeInputError(f"--device {device}: CUDA is not available on this machine")
    return dev
