"""The extraction's parameters: the one schema of ``qrprobe extract``'s flags, a study's ``models:`` keys, the
keyword parameters of :func:`~qrprobe.features.extract.extract` and the feature store's identity.

:class:`ExtractConfig` is a frozen dataclass of :func:`qrprobe.schema.param` fields. From it:

- ``qrprobe extract``'s flags (``--`` + the field name; ``group`` is the flag's group in ``--help``);
- a study's model keys: the fields with ``study=True`` (``qrprobe.study.config.ModelSpec``);
- the keyword parameters of :func:`~qrprobe.features.extract.run_extraction` and ``extract`` (their signature
  is made from it);
- the feature store's configuration hash and a study's extract-stage key: the fields marked ``key``. The
  fields of the ``model`` group build the model; with a ready :class:`~qrprobe.models.Representation` they are
  not used (and not part of the hash).

A new parameter is one field here (and the code that uses it); the flag, the study key, the signature and
the keys follow.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..chunks import backend_param
from ..raycluster import RayOptions
from ..schema import int_at_least, optional_int_at_least, param, parse_int_at_least, validate

DEFAULT_CHUNK_SIZE = 8192
#: Reduced-size JPEG decoding keeps at least this many times the transform's resize target (qrprobe.images.reduce).
DEFAULT_DECODE_MARGIN = 2.0
DEFAULT_DTYPE = "float32"  # one default for the CLI, studies and the API; float16 halves large stores
#: Default images per forward pass. On CPUs small batches are faster (activations stay in cache and large
#: allocations are not re-faulted for every layer). On the 2-core development machine (CPU time per image)
#: EfficientNet-Lite0 ran 1.7-3.4x faster with batches of 4 than of 64, ResNet-50 1.4x faster than with 16,
#: ViT-B/16 as fast as with 16 (and 3x slower with batches of 1).
GPU_BATCH_SIZE = 64
CPU_BATCH_SIZE = 4
CLASSICAL_BATCH_SIZE = 256
MODEL, RUN = "model", "run"  # the flag groups; MODEL fields build the model


def parse_rgb(text: str) -> tuple[float, float, float]:
    """``"0.5,0.5,0.5"`` (or space-separated) → three floats; the CLI's type of ``--mean`` / ``--std``."""
    try:
        values = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected three numbers, got {text!r}") from exc
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers (R,G,B), got {text!r}")
    return values[0], values[1], values[2]


def parse_preprocess(text: str) -> str | dict:
    """A preset name, or a JSON mapping of the transform's settings; the CLI's type of ``--preprocess``."""
    if not text.lstrip().startswith("{"):
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a preset name or a JSON mapping, got {text!r} ({exc})") from exc


def _preprocess_check(spec: Any) -> str | None:
    if spec is None:  # the models layer imports torch: only for a stated transform
        return None
    from ..models.preprocess import preprocess_check

    return preprocess_check(spec)


def _preprocess_described(spec: Any) -> dict:
    from ..models.preprocess import parse_preprocess as parse

    return parse(spec).describe()


def _margin(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value == 0 or 1 <= value <= 64)
    return None if ok else "0 (decode in full) or a number from 1 to 64"


def _rgb(value: Any) -> str | None:
    ok = value is None or (isinstance(value, tuple) and len(value) == 3
                           and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                   for v in value))
    return None if ok else "three finite numbers (R, G, B), or none"


def _rgb_std(value: Any) -> str | None:
    """A normalisation std divides the pixels: each of the three must be a finite number above 0 (a 0 makes
    every feature NaN or infinite)."""
    if _rgb(value) is not None or (value is not None and not all(v > 0 for v in value)):
        return "three finite numbers (R, G, B) above 0, or none"
    return None


@dataclass(frozen=True)
class ExtractConfig:
    """How a model's features are extracted (``qrprobe extract --help``; defaults as there)."""

    layer: str | None = param(
        None, "intermediate layer (module name, optional pooling: 'layer3', 'blocks.6:cls', 'features.5:max'), "
        "globally pooled", shown="the paper's features", key=True, group=MODEL)
    weights: str | None = param(
        None, "local checkpoint (.pth/.pt/.safetensors), loaded weights-only; prefixes such as module., backbone., "
        "encoder_q. are stripped; implies no download", metavar="PATH", file=True,
        shown="the library's pretrained weights", key=True, group=MODEL)
    strict_weights: bool = param(False, "fail when the checkpoint has missing or unexpected keys",
                                 shown="report them", switch=True, key=False, group=MODEL)
    pretrained: bool = param(True, "use the library's pretrained weights (false: random initialisation)",
                             switch="random weights instead of downloading the library's pretrained ones",
                             key=True, group=MODEL)
    image_size: int | None = param(None, "override the input size (centre crop N, resize N/0.875)",
                                   check=optional_int_at_least(1), metavar="N", shown="the model's", key=True,
                                   group=MODEL)
    preprocess: str | dict[str, Any] | None = param(
        None, "the transform the model was trained/evaluated with: a preset (imagenet, imagenet-bicubic) or JSON "
        "{\"resize\": 256, \"crop\": 224, \"interpolation\": \"bicubic\", \"mean\": [...], \"std\": [...]}",
        check=_preprocess_check, metavar="SPEC", shown="the model family's own", parse=parse_preprocess,
        canonical=_preprocess_described, key="if_set", group=MODEL)
    mean: tuple[float, ...] | None = param(None, "override normalisation mean", check=_rgb, metavar="R,G,B",
                                           shown="the model's", parse=parse_rgb, study=False, key=True, group=MODEL)
    std: tuple[float, ...] | None = param(None, "override normalisation std", check=_rgb_std, metavar="R,G,B",
                                          shown="the model's", parse=parse_rgb, study=False, key=True, group=MODEL)
    decode_margin: float = param(
        DEFAULT_DECODE_MARGIN, "reduced-size JPEG decoding: a large JPEG is decoded at 1/2, 1/4 or 1/8 of its size "
        "keeping at least this many times the pixels the model's transform resizes to, then resized from the exact "
        "box (0: always decode in full; 2: the transform's output within 0.2/255 on average of the full decode's, "
        "~3x faster on camera photos; 4: within 0.02/255); see docs/extraction.md", check=_margin, metavar="X",
        key="if_set", group=RUN)
    batch_size: int | None = param(
        None, "images per forward pass", check=optional_int_at_least(1),
        shown=f"{GPU_BATCH_SIZE} on a GPU, {CPU_BATCH_SIZE} on the CPU, where small batches run faster, "
        f"{CLASSICAL_BATCH_SIZE} for classical representations", key=False, group=RUN)
    device: str = param("auto", "auto (a GPU when present), cpu, cuda or cuda:N", study=False, key=False, group=RUN)
    dtype: str = param(DEFAULT_DTYPE, "storage type of the features (computation is float32; float16 halves the "
                       "store for large collections)", choices=("float16", "float32"), key=True, group=RUN)
    workers: int | None = param(None, "image-decoding worker processes", check=optional_int_at_least(0),
                                shown="one per spare CPU core, at most 8; none (decoding in-process) for images of "
                                "≤ 256 × 256 pixels", study=False, key=False, group=RUN)
    threads: int | None = param(
        None, "torch CPU threads for the model; on a machine shared with other jobs, fewer threads avoid stalls",
        check=optional_int_at_least(1), shown="one per core left free by the loader workers (at least 1)",
        parse=parse_int_at_least(1), study=False, key=False, group=RUN)
    chunk_size: int = param(DEFAULT_CHUNK_SIZE, "images per shard and per resume step", check=int_at_least(1),
                            study=False, key=True, group=RUN)
    limit: int | None = param(None, "extract only the first N images", check=optional_int_at_least(1), metavar="N",
                              shown="all", study=False, key=False, group=RUN)
    backend: str = backend_param()
    ray: RayOptions | None = param(None, "how the Ray backend uses Ray (qrprobe.raycluster.RayOptions)",
                                   shown="a local Ray runtime", cli=False, study=False, key=False)
    overwrite: bool = param(False, "replace an existing store that qrprobe wrote", cli=False, study=False, key=False)
    progress: bool = param(True, "progress bars and lines", cli=False, study=False, key=False)

    def __post_init__(self) -> None:
        for name in ("mean", "std"):  # any sequence → a tuple; an empty one means none
            value = getattr(self, name)
            if isinstance(value, Sequence) and not isinstance(value, str):
                object.__setattr__(self, name, tuple(value) or None)
        object.__setattr__(self, "pretrained", bool(self.pretrained))
        validate(self)


__all__ = ["CLASSICAL_BATCH_SIZE", "CPU_BATCH_SIZE", "DEFAULT_CHUNK_SIZE", "DEFAULT_DECODE_MARGIN", "DEFAULT_DTYPE",
           "GPU_BATCH_SIZE", "MODEL", "RUN", "ExtractConfig", "parse_preprocess", "parse_rgb"]
