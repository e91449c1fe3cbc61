"""Loading a local checkpoint into a model, safely and with a report of what matched.

Checkpoints are read with ``torch.load(..., weights_only=True)`` (no arbitrary code runs) or with
safetensors. Training checkpoints are unwrapped (``state_dict``, ``model``, ``state_dict_ema``, ``teacher``,
...) and the chain of wrapper prefixes (``module.``, ``backbone.``, ``encoder_q.``, ``encoder.``, ...) that
matches most of the model's keys is stripped. Keys the model has but the checkpoint lacks (``missing``) and
the reverse (``unexpected``, e.g. a projection head) are reported by name. A checkpoint that shares no key with
the model, or whose shared keys have other shapes, is rejected with :class:`QRProbeInputError` naming them.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import QRProbeInputError

NESTED_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema", "teacher", "student", "net", "network",
               "module", "params")
PREFIXES = ("module.", "backbone.", "encoder_q.", "encoder.", "model.", "base_encoder.", "momentum_encoder.",
            "online_network.", "trunk.", "visual.", "_orig_mod.")
_SHOWN = 10


@dataclass
class LoadReport:
    """What a checkpoint load did (also written to the store's manifest under ``weights``)."""

    path: str
    sha256: str
    target: str = "model"
    nested_key: str = ""
    stripped_prefixes: list[str] = field(default_factory=list)
    n_loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def as_dict(self, limit: int = 100) -> dict:
        out = asdict(self)
        out["n_missing"], out["n_unexpected"] = len(self.missing), len(self.unexpected)
        out["missing"], out["unexpected"] = self.missing[:limit], self.unexpected[:limit]
        return out


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file (first 16 characters)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """Read a checkpoint file and return ``(flat state dict of tensors, nested key used)``."""
    path = Path(path)
    if not path.is_file():
        raise QRProbeInputError(f"--weights: checkpoint {str(path)!r} not found")
    if path.suffix == ".safetensors":
        from ..errors import require

        st = require("safetensors.torch", "vision", "reading .safetensors checkpoints")
        obj = st.load_file(str(path), device="cpu")
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise QRProbeInputError(
                f"--weights {str(path)!r}: cannot be read as a weights-only PyTorch checkpoint "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Only tensors and "
                "plain containers are loaded, for safety; re-save the file with `torch.save(model.state_dict())`"
            ) from None
    nested = ""
    while isinstance(obj, Mapping) and not _is_state_dict(obj):
        key = next((k for k in NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            raise QRProbeInputError(f"--weights {str(path)!r}: no state dict found (top-level keys: "
                                    f"{sorted(map(str, obj))[:_SHOWN]}; expected tensors or one of {NESTED_KEYS})")
        nested = f"{nested}.{key}" if nested else key
        obj = obj[key]
    if isinstance(obj, nn.Module):  # pragma: no cover - weights_only never returns a module
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise QRProbeInputError(f"--weights {str(path)!r}: expected a state dict, found {type(obj).__name__}")
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}, nested


def _is_state_dict(obj: Mapping) -> bool:
    values = list(obj.values())
    return bool(values) and sum(isinstance(v, torch.Tensor) for v in values) >= max(1, len(values) // 2)


def strip_prefixes(state: dict[str, torch.Tensor], model_keys: set[str], max_depth: int = 3
                   ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Strip the chain of known wrapper prefixes (at most ``max_depth``, e.g. ``module.`` then
    ``encoder_q.``) that matches most of ``model_keys``; the shortest chain wins a tie.

    Keys without the stripped prefixes (e.g. a MoCo ``encoder_k.`` copy next to ``encoder_q.``) are dropped.
    """

    def search(current: dict[str, torch.Tensor], chain: list[str], depth: int):
        best = (_overlap(current, model_keys), -len(chain), chain, current)
        if depth == 0:
            return best
        for prefix in PREFIXES:
            candidate = {k[len(prefix):]: v for k, v in current.items() if k.startswith(prefix)}
            if candidate:
                found = search(candidate, [*chain, prefix], depth - 1)
                if found[:2] > best[:2]:
                    best = found
        return best

    _, _, chain, stripped = search(state, [], max_depth)
    return stripped, chain


def _overlap(state: Mapping[str, torch.Tensor], model_keys: set[str]) -> int:
    return sum(k in model_keys for k in state)


def load_checkpoint(model: nn.Module | Sequence[tuple[str, nn.Module]], path: str | os.PathLike, *,
                    strict: bool = False) -> LoadReport:
    """Load the checkpoint at ``path`` into ``model`` and report what matched.

    Parameters
    ----------
    model : the module, or candidate ``(name, module)`` targets (e.g. a CLIP model and its image tower);
        the one sharing most keys with the checkpoint is loaded.
    path : ``.pt``/``.pth``/``.bin``/``.ckpt`` (read weights-only) or ``.safetensors``.
    strict : also reject missing and unexpected keys.

    Raises
    ------
    QRProbeInputError
        No key in common, shape mismatches (named), or with ``strict`` any missing/unexpected key.
    """
    targets = [("model", model)] if isinstance(model, nn.Module) else list(model)
    state, nested = read_state_dict(path)
    if not state:
        raise QRProbeInputError(f"--weights {str(path)!r}: the checkpoint holds no tensors")
    best: tuple | None = None
    for name, module in targets:
        model_state = module.state_dict()
        candidate, stripped = strip_prefixes(state, set(model_state))
        score = _overlap(candidate, set(model_state))
        if best is None or score > best[0]:
            best = (score, name, module, model_state, candidate, stripped)
    assert best is not None  # targets is never empty
    score, target, module, model_state, candidate, stripped = best
    if score == 0:
        raise QRProbeInputError(
            f"--weights {str(path)!r} does not fit the model: no parameter name in common. "
            f"Checkpoint keys: {_show(sorted(state))}; model keys: {_show(sorted(model_state))}")
    mismatched = [f"{k} (checkpoint {tuple(v.shape)}, model {tuple(model_state[k].shape)})"
                  for k, v in candidate.items() if k in model_state and v.shape != model_state[k].shape]
    if mismatched:
        raise QRProbeInputError(f"--weights {str(path)!r} does not fit the model: {len(mismatched)} "
                                f"shape mismatch(es): {_show(mismatched)}")
    missing = [k for k in model_state if k not in candidate and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in candidate if k not in model_state]
    if strict and (missing or unexpected):
        raise QRProbeInputError(f"--weights {str(path)!r}: missing keys {_show(missing)}; "
                                f"unexpected keys {_show(unexpected)}")
    to_load = {k: v for k, v in candidate.items() if k in model_state}
    module.load_state_dict(to_load, strict=False)
    report = LoadReport(str(path), file_sha256(path), target, nested, stripped, len(to_load), missing, unexpected)
    if missing:
        warnings.warn(f"--weights {str(path)!r}: {len(missing)} model parameter(s) not in the checkpoint keep "
                      f"their initial values: {_show(missing)}", stacklevel=2)
    return report


def _show(names: Sequence[str]) -> str:
    head = ", ".join(names[:_SHOWN])
    return f"{head}, ... ({len(names)} in all)" if len(names) > _SHOWN else (head or "none")
