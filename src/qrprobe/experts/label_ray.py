"""The Ray backend of the labelling: decoding in CPU tasks, every expert in an actor pool (GPU or CPU).

:func:`label_with_ray` labels the chunks a run still needs on a Ray cluster. Each planned batch of the local
loop (``batch_size`` rows of one chunk) is one Ray row: a CPU task reads and decodes its images through the
source's picklable loader (the same :func:`~.label_chunk.decode_row` as the local threads); an actor builds
the experts once and runs all of them on the batch (:func:`~.label_chunk.label_batch`, as the local loop
does); the driver puts each chunk together with :func:`~.label_chunk.chunk_arrays` once all its batches are
back and hands it to the run, which commits it to the resumable work folder. So the bank is the one the local
backend writes: same rows, concepts, ids and configuration key.

Decoded images and label blocks travel as ``.npz`` bytes (:func:`pack`): images of different sizes and the
experts' optional scores then need no special column types.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..raycluster import RayOptions, resolve_pool, stream
from .label_chunk import chunk_arrays, decode_row, label_batch


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


def label_with_ray(ray, factory: Callable[[], list], experts: Sequence, source, chunks: Sequence[int],
                   chunk_size: int, batch_size: int, max_side: int | None, save_scores: bool, options: RayOptions,
                   report, bar, finished: Callable[[int, dict], None]) -> None:
    """Label ``chunks`` of ``source`` on the connected Ray cluster; ``finished(chunk, arrays)`` receives each
    chunk (in the order they complete). ``factory()`` builds the experts inside an actor; ``experts`` are the
    driver's own (their names and concept counts); ``report`` and ``bar`` are updated as batches come back."""
    n = len(source)
    plan = [(k, start, min(n, (k + 1) * chunk_size, start + batch_size))
            for k in chunks for start in range(k * chunk_size, min(n, (k + 1) * chunk_size), batch_size)]
    if not plan:
        return
    pool = resolve_pool(ray, options, "auto")
    expected: dict[int, int] = {}
    for k, _, _ in plan:
        expected[k] = expected.get(k, 0) + 1
    n_concepts = sum(len(e.concepts) for e in experts)
    pending: dict[int, dict[int, dict]] = {}
    actor_kwargs = {"factory": factory, "image_ids": list(source.image_ids),
                    "labels": None if source.labels is None else list(source.labels), "threads": pool.threads,
                    "save_scores": save_scores}
    items = [{"batch": b, "start": start, "stop": stop} for b, (_, start, stop) in enumerate(plan)]
    for out in stream(ray, items, DecodeImages(source.loader(max_side)), LabelBatches, actor_kwargs, pool,
                      decode_cpus=options.decode_cpus, images_per_item=batch_size):
        b = int(out["batch"])
        k, start, stop = plan[b]
        result = unpack(out["labelled"])
        lo = k * chunk_size
        pending.setdefault(k, {})[b] = {
            "good": (result["rows"] - lo).tolist(), "block": result["block"],
            "scores": {j: result[f"scores_{j}"] for j in range(len(experts)) if f"scores_{j}" in result},
            "failed_rows": (result["failed_rows"] - lo).tolist(), "failed_reasons": result["failed_reasons"].tolist()}
        report.images_this_run += len(result["rows"])
        report.seconds["decode"] += float(result["decode_seconds"])
        for e, seconds in zip(experts, result["expert_seconds"].tolist(), strict=True):
            report.seconds[e.name] += seconds
        bar.update(stop - start)
        if len(pending[k]) == expected[k]:
            got = pending.pop(k)
            batches = [got[i] for i in sorted(got)]
            finished(k, chunk_arrays(min(n, lo + chunk_size) - lo, n_concepts, batches, save_scores))
