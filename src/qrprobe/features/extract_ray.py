"""The Ray backend of the extraction: decoding in CPU tasks, the model in an actor pool (GPU or CPU).

:func:`qrprobe.chunks.run_chunks` runs the extraction's plan (:mod:`.batches`) on a Ray cluster with these: each
planned batch is one Ray row; a CPU task (:class:`DecodeBatch`) reads, decodes and preprocesses its images
through the source's picklable :class:`~qrprobe.images.dataset.ImageDataset` (the same code as the local
backend's DataLoader workers); an actor of the pool (:class:`EncodeBatches`) builds the representation once
and encodes each planned batch as it is; the driver hands the results to the same
:class:`~.batches.ExtractionJob` as the local backend, which commits each chunk to the resumable store. Hence
the same ids, order, shards, manifest and content hash as ``backend="local"``.
"""

from __future__ import annotations

import json

import numpy as np

from ..raycluster import column
from .batches import encode_batch


class DecodeBatch:
    """``{"batch", "start", "stop"}`` → the planned batch decoded and preprocessed (a Ray task's work)::

        batch   its index in the plan
        rows    int64 (B,), the decodable rows, in order
        pixels  float32 (B, ...) preprocessed images (shape (0,) when none could be decoded)
        failures  JSON list of [row, reason]
    """

    def __init__(self, dataset) -> None:
        self.dataset = dataset  # an ImageDataset: the loader and the model's preprocessing, picklable

    def __call__(self, item: dict) -> dict:
        from ..images.dataset import collate_skipping

        items = [self.dataset[row] for row in range(int(item["start"]), int(item["stop"]))]
        rows, images, failures = collate_skipping(items)
        pixels = images.numpy() if images is not None else np.zeros((0,), np.float32)
        return {"batch": int(item["batch"]), "rows": rows.numpy(), "pixels": pixels,
                "failures": json.dumps(failures)}


class EncodeBatches:
    """An actor of the pool: builds the representation once, then encodes each decoded planned batch on its own
    (the model sees the local backend's batches, whatever Ray's blocks are)."""

    def __init__(self, factory, device: str, threads: int, dtype: str) -> None:
        import torch

        from ..device import resolve_device

        torch.set_num_threads(threads)
        self.rep = factory()
        self.rep.to(resolve_device(device))
        self.dtype = dtype

    def __call__(self, block: dict) -> dict:
        import torch

        features, problems = [], []
        for pixels in block["pixels"]:
            pixels = np.array(pixels)  # writable: Ray's buffers are read-only
            if len(pixels) == 0:
                features.append(np.zeros((0, self.rep.dim), self.dtype))
                problems.append("")
                continue
            feats, problem = encode_batch(self.rep, torch.from_numpy(pixels), self.dtype)
            features.append(feats)
            problems.append(problem or "")
        return {"batch": np.asarray(block["batch"]), "rows": column(list(block["rows"])),
                "features": column(features), "problem": np.asarray(problems, dtype=object),
                "failures": np.asarray(block["failures"], dtype=object)}
