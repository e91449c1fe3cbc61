"""One planned batch through the model, shared by the extraction's local backend (:mod:`.extract_job`) and its
Ray backend (:mod:`.extract_ray`), so both write the same store.

A *plan* (:func:`qrprobe.chunks.plan_batches`) is the list of ``(chunk, rows)`` batches of an extraction: chunk
``c`` holds input rows ``[c * S, (c + 1) * S)``, cut into batches of the batch size that never cross a chunk.
Both backends encode exactly these batches; the store's bytes depend on the plan, not on the backend.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from ..chunks import PlannedBatch
from .config import CPU_BATCH_SIZE, GPU_BATCH_SIZE


class GivenRepresentation:
    """A picklable factory returning a ready :class:`~qrprobe.models.Representation` (a Ray actor gets a
    copy of it)."""

    def __init__(self, rep) -> None:
        self.rep = rep

    def __call__(self):
        return self.rep


def default_batch_size(device) -> int:
    """Images per forward pass when none is given: 64 on a GPU, 4 on the CPU."""
    return GPU_BATCH_SIZE if str(getattr(device, "type", device)) != "cpu" else CPU_BATCH_SIZE


#: images of at most this many pixels on average (over the first SMALL_IMAGE_SAMPLE of a collection) are decoded in
#: the extracting process: decoding a 96 × 96 JPEG costs ~1% of EfficientNet-Lite0's forward pass, and a loader
#: worker would hold a core the model could use (the demo's clip-art: 17.7 s in-process vs 20.5–28.2 s with one
#: worker on 2 cores, benchmarks/RESULTS.md)
SMALL_IMAGE_PIXELS = 256 * 256
SMALL_IMAGE_SAMPLE = 8


def default_workers(source=None) -> int:
    """Loader worker processes: one per spare core, at most 8 (0 on a single-core machine), and none when
    ``source`` (an :class:`~qrprobe.images.ImageSource`) holds small images (:func:`small_images`)."""
    if source is not None and small_images(source):
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def loader_workers(workers: int | None, source=None) -> int:
    """The loader worker processes of an extraction: ``workers`` when given, else :func:`default_workers` of
    ``source``."""
    return default_workers(source) if workers is None else int(workers)


def small_images(source) -> bool:
    """Whether the first :data:`SMALL_IMAGE_SAMPLE` readable images of ``source`` have at most
    :data:`SMALL_IMAGE_PIXELS` pixels on average (sizes read from the file headers, nothing decoded); False when
    none can be read. The answer is kept on the source."""
    cached = getattr(source, "_small_images", None)
    if cached is not None:
        return bool(cached)
    import io

    from PIL import Image

    pixels = []
    for row in range(min(len(source), SMALL_IMAGE_SAMPLE)):
        try:
            with Image.open(io.BytesIO(source.read_bytes(row))) as image:
                pixels.append(image.size[0] * image.size[1])
        except Exception:  # an unreadable file is the extraction's to report, not this estimate's
            continue
    small = bool(pixels) and sum(pixels) / len(pixels) <= SMALL_IMAGE_PIXELS
    with contextlib.suppress(AttributeError):  # a source that takes no new attributes is asked again next time
        source._small_images = small
    return small


def default_threads(workers: int) -> int:
    """Torch threads for the model on the CPU when none is given: one per core the loader workers leave free
    (at least one). Two threads beside a busy decoding worker on two cores made OpenMP wait on a descheduled
    thread and dropped EfficientNet-Lite0 from 50-78 to 3-8 images/s (benchmarks/RESULTS.md)."""
    return max(1, (os.cpu_count() or 1) - max(0, int(workers)))


def encode_batch(rep, batch, dtype: str) -> tuple[np.ndarray, str | None]:
    """Encode one batch (B, ...) tensor; returns the (B, D) features in the storage ``dtype`` and ``None``, or
    what is wrong with them (not finite, or out of the float16 range)."""
    import torch

    feats = rep.encode(batch)
    stored = feats.to(torch.float16 if dtype == "float16" else torch.float32)
    problem = None
    if not bool(torch.isfinite(stored).all()):
        problem = ("exceed the float16 range; use --dtype float32" if bool(torch.isfinite(feats).all())
                   else "are not finite (NaN or inf)")
    return stored.cpu().numpy(), problem


class PlanSampler:
    """A batch sampler replaying a precomputed plan (kept picklable and deterministic)."""

    def __init__(self, plan: list[PlannedBatch]) -> None:
        self.plan = plan

    def __iter__(self) -> Iterator[list[int]]:
        return (rows for _, rows in self.plan)

    def __len__(self) -> int:
        return len(self.plan)


def prefetch_batches(batch_size: int) -> int:
    """Batches each loader worker keeps ready: about 64 images, at least 2 batches (small CPU batches would
    otherwise leave the model waiting for the next one)."""
    return max(2, 64 // batch_size)
