"""The labelling as a chunked job (:class:`qrprobe.chunks.ChunkJob`): what one planned batch is on each backend,
and each finished chunk handed to the run, which keeps it in the resumable work folder.

Locally, decoding threads and this process label the planned batches (:func:`~.label_chunk.label_planned`);
on Ray, decoding tasks and expert actors do (:mod:`.label_ray`). Either way a batch comes back as the dict of
chunk-relative rows that :func:`~.label_chunk.chunk_arrays` puts together, in plan order, so the bank is the
same.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..chunks import Add, Backend, PlannedBatch
from ..raycluster import ActorPool
from .base import Expert
from .label_chunk import chunk_arrays, label_planned
from .label_report import LabelReport


class LabelJob:
    """Label the chunks still to do of ``source`` with ``experts`` (built and prepared on the driver).

    ``factory()`` builds the experts again inside a Ray actor; ``offsets`` (len(experts) + 1,) are their first
    columns; ``finished(chunk, arrays)`` receives each finished chunk (in the order they complete); ``report``
    and ``bar`` (images) are updated as batches come in.
    """

    def __init__(self, experts: Sequence[Expert], offsets: np.ndarray, factory: Callable[[], list], source, *,
                 chunk_size: int, batch_size: int, workers: int, max_side: int | None, save_scores: bool,
                 report: LabelReport, bar, finished: Callable[[int, dict], None]) -> None:
        self.experts, self.offsets, self.factory, self.source = experts, offsets, factory, source
        self.chunk_size, self.size, self.workers, self.max_side = chunk_size, batch_size, workers, max_side
        self.save_scores, self.report, self.bar, self.finished = save_scores, report, bar, finished
        self.plan: list[PlannedBatch] = []

    def batch_size(self, backend: Backend) -> int:
        return self.size

    def begin(self, backend: Backend, plan: list[PlannedBatch]) -> None:
        self.plan = plan

    def run_local(self, plan: list[PlannedBatch], add: Add) -> None:
        """Chunk after chunk: decoding threads one batch ahead, the experts in this process."""
        loader = self.source.loader(self.max_side)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            numbered = list(enumerate(plan))
            for chunk, group in itertools.groupby(numbered, key=lambda item: item[1][0]):
                batches = [(b, rows) for b, (_, rows) in group]
                label_planned(batches, chunk * self.chunk_size, self.experts, self.offsets, self.source, loader,
                              pool, self.report, self.save_scores, add)

    def ray_decoder(self):
        from .label_ray import DecodeImages

        return DecodeImages(self.source.loader(self.max_side))

    def ray_actor(self, pool: ActorPool) -> tuple[type, dict]:
        from .label_ray import LabelBatches

        source = self.source
        return LabelBatches, {"factory": self.factory, "image_ids": list(source.image_ids),
                              "labels": None if source.labels is None else list(source.labels),
                              "threads": pool.threads, "save_scores": self.save_scores}

    def from_ray(self, out: dict) -> tuple[int, dict]:
        from .label_ray import batch_from_ray

        chunk = self.plan[int(out["batch"])][0]
        return batch_from_ray(out, chunk * self.chunk_size, self.experts, self.report)

    def received(self, b: int, batch: dict) -> None:
        self.report.images_this_run += len(batch["good"])
        self.bar.update(len(self.plan[b][1]))

    def commit(self, chunk: int, batches: list[dict]) -> None:
        lo = chunk * self.chunk_size
        n_rows = min(len(self.source), lo + self.chunk_size) - lo
        self.finished(chunk, chunk_arrays(n_rows, int(self.offsets[-1]), batches, self.save_scores))
