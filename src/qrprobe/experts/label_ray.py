"""The Ray backend of the labelling: decoding in CPU tasks, every expert in an actor pool (GPU or CPU).

:func:`qrprobe.chunks.run_chunks` labels the chunks a run still needs on a Ray cluster with these. Each planned
batch of the local loop (``batch_size`` rows of one chunk) is one Ray row: a CPU task (:class:`DecodeImages`)
reads and decodes its images through the source's picklable loader (the same :func:`~.label_chunk.decode_row`
as the local threads); an actor (:class:`LabelBatches`) builds the experts once and runs all of them on the
batch (:func:`~.label_chunk.label_batch`, as the local loop does); the driver turns each result into the local
loop's batch (:func:`batch_from_ray`), and the labelling job (:mod:`.label_job`) puts each chunk together with
:func:`~.label_chunk.chunk_arrays` once all its batches are back and commits it to the resumable work folder.
So the bank is the one the local backend writes: same rows, concepts, ids and configuration key.

Decoded images and label blocks travel as ``.npz`` bytes (:func:`pack`): images of different sizes and the
experts' optional scores then need no special column types.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence

import numpy as np

from .label_chunk import decode_row, label_batch


def pack(arrays: dict[str, np.ndarray]) -> bytes:
    """Arrays → ``.npz`` bytes (no pickles)."""
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def unpack(payload: bytes) -> dict[str, np.ndarray]:
    """``.npz`` bytes → arrays."""
    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


class DecodeImages:
    """``{"batch", "start", "stop"}`` → ``{"batch", "decoded"}``, where ``decoded`` packs ``rows`` (int64, the
    decodable rows), ``image_I`` (RGB uint8 (H, W, 3), one per decodable row), ``failed_rows`` and
    ``failed_reasons``; a Ray task's work."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def __call__(self, item: dict) -> dict:
        t = time.perf_counter()
        rows = range(int(item["start"]), int(item["stop"]))
        decoded = [(row, *decode_row(self.loader, row)) for row in rows]
        good = [(row, image) for row, image, _ in decoded if image is not None]
        arrays = {f"image_{i}": image for i, (_, image) in enumerate(good)}
        arrays["rows"] = np.asarray([row for row, _ in good], dtype=np.int64)
        arrays["failed_rows"] = np.asarray([row for row, image, _ in decoded if image is None], dtype=np.int64)
        arrays["failed_reasons"] = np.asarray([reason for _, image, reason in decoded if image is None], dtype=str)
        arrays["decode_seconds"] = np.asarray(time.perf_counter() - t)
        return {"batch": int(item["batch"]), "decoded": pack(arrays)}


class LabelBatches:
    """An actor of the pool: builds and prepares the experts once, then labels each decoded batch."""

    def __init__(self, factory: Callable[[], list], image_ids: list[str], labels: list[str] | None, threads: int,
                 save_scores: bool) -> None:
        import torch

        torch.set_num_threads(threads)
        self.experts = factory()
        for e in self.experts:
            e.prepare(image_ids, labels)
        self.offsets = np.concatenate([[0], np.cumsum([len(e.concepts) for e in self.experts])]).astype(np.int64)
        self.image_ids = image_ids
        self.save_scores = save_scores

    def __call__(self, block: dict) -> dict:
        out = []
        for payload in block["decoded"]:
            decoded = unpack(payload)
            rows = decoded["rows"].tolist()
            seconds: dict[str, float] = {}
            images = [decoded[f"image_{i}"] for i in range(len(rows))]
            labelled, scores = label_batch(self.experts, self.offsets, images, [str(self.image_ids[r]) for r in rows],
                                           self.save_scores, seconds)
            result = {"block": labelled, "rows": decoded["rows"], "failed_rows": decoded["failed_rows"],
                      "failed_reasons": decoded["failed_reasons"], "decode_seconds": decoded["decode_seconds"],
                      "expert_seconds": np.asarray([seconds.get(e.name, 0.0) for e in self.experts])}
            result.update({f"scores_{j}": values for j, values in scores.items()})
            out.append(pack(result))
        return {"batch": np.asarray(block["batch"]), "labelled": np.asarray(out, dtype=object)}


def batch_from_ray(out: dict, lo: int, experts: Sequence, report) -> tuple[int, dict]:
    """An actor's output row → ``(b, batch)``, the batch as the local loop gives it (rows relative to the chunk
    starting at row ``lo``: :func:`~.label_chunk.chunk_arrays`); the decoding and expert seconds go into
    ``report`` (``experts``: the driver's, for their names)."""
    result = unpack(out["labelled"])
    batch = {"good": (result["rows"] - lo).tolist(), "block": result["block"],
             "scores": {j: result[f"scores_{j}"] for j in range(len(experts)) if f"scores_{j}" in result},
             "failed_rows": (result["failed_rows"] - lo).tolist(), "failed_reasons": result["failed_reasons"].tolist()}
    report.seconds["decode"] += float(result["decode_seconds"])
    for e, seconds in zip(experts, result["expert_seconds"].tolist(), strict=True):
        report.seconds[e.name] += seconds
    return int(out["batch"]), batch
