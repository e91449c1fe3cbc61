"""The extraction as a chunked job (:class:`qrprobe.chunks.ChunkJob`): what one planned batch is on each backend,
and each finished chunk committed to the resumable store (:class:`~.store.FeatureStoreWriter`).

Locally, DataLoader workers decode and preprocess the planned batches and this process encodes them
(:mod:`.batches`); on Ray, decoding tasks and encoder actors do (:mod:`.extract_ray`). Either way each batch
comes back as ``(rows, features, failures, problem)`` and the chunk's batches are committed in plan order, so
the store is the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import numpy as np

from ..chunks import Add, Backend, PlannedBatch
from ..errors import QRProbeInputError
from ..images import ImageSource
from ..progress import Bar
from ..progress import bar as progress_bar
from ..raycluster import ActorPool
from .batches import PlanSampler, default_batch_size, encode_batch, loader_workers, prefetch_batches
from .store import FeatureStoreWriter


class ExtractionJob:
    """The extraction of the chunks still to do into ``writer`` (a :class:`~qrprobe.chunks.ChunkJob`).

    A batch's result is ``(rows, features, failures, problem)``: ``features`` (len(rows), D) for the decodable
    ``rows``; ``failures`` lists ``(row, reason)`` of the others; ``problem`` (or None) says why its features
    cannot be stored. ``stats`` (an :class:`~qrprobe.features.extract.ExtractionStats`) counts the encoded and
    skipped images and records the batch size and device; ``bar`` (images) is drawn from :meth:`begin` on.
    ``decode_margin``: reduced-size JPEG decoding (:mod:`qrprobe.images.reduce`; 0: full decoding).
    """

    def __init__(self, writer: FeatureStoreWriter, source: ImageSource, rep, factory, dtype: str,
                 batch_size: int | None, workers: int | None, stats, progress: bool,
                 decode_margin: float = 0.0) -> None:
        self.writer, self.source, self.rep, self.factory, self.dtype = writer, source, rep, factory, dtype
        self.decode_margin = decode_margin
        self.requested_batch_size, self.workers, self.stats, self.progress = batch_size, workers, stats, progress
        self.bar: Bar | None = None
        self.plan: list[PlannedBatch] = []
        self.start = time.perf_counter()

    # ------------------------------------------------------------------ the plan
    def batch_size(self, backend: Backend) -> int:
        device = backend.pool.device if backend.ray is not None else self.rep.device.type
        return self.requested_batch_size or default_batch_size(device)

    def begin(self, backend: Backend, plan: list[PlannedBatch]) -> None:
        self.plan = plan
        self.stats.batch_size = self.batch_size(backend)
        self.stats.device = (f"ray: {backend.pool.size} actor(s) on {backend.pool.device}" if backend.ray is not None
                             else str(self.rep.device))
        self.bar = progress_bar(sum(len(rows) for _, rows in plan), f"extract {self.rep.spec}", enabled=self.progress,
                                unit="img", leave=True)
        self.start = time.perf_counter()

    # ------------------------------------------------------------------ the local backend
    def run_local(self, plan: list[PlannedBatch], add: Add) -> None:
        """Decode and preprocess in DataLoader workers, encode here, batch after batch."""
        from torch.utils.data import DataLoader

        from ..images.dataset import ImageDataset, collate_skipping

        rep, batch_size = self.rep, self.stats.batch_size
        n_workers = loader_workers(self.workers, self.source)
        dataset = ImageDataset(self.source, rep.preprocess, self.decode_margin)
        loader = DataLoader(dataset, batch_sampler=PlanSampler(plan),
                            num_workers=n_workers, collate_fn=collate_skipping, pin_memory=rep.device.type == "cuda",
                            prefetch_factor=prefetch_batches(batch_size) if n_workers else None,
                            persistent_workers=False)
        for b, (rows, batch, failures) in enumerate(loader):
            feats, problem = encode_batch(rep, batch, self.dtype) if batch is not None else (None, None)
            add(b, (rows.tolist(), feats, failures, problem))

    # ------------------------------------------------------------------ the Ray backend
    def ray_decoder(self):
        from ..images.dataset import ImageDataset
        from .extract_ray import DecodeBatch

        return DecodeBatch(ImageDataset(self.source, self.rep.preprocess, self.decode_margin))

    def ray_actor(self, pool: ActorPool) -> tuple[type, dict]:
        from .extract_ray import EncodeBatches

        return EncodeBatches, {"factory": self.factory, "device": pool.device, "threads": pool.threads,
                               "dtype": self.dtype}

    def from_ray(self, out: dict) -> tuple[int, tuple]:
        failures = [(int(row), str(reason)) for row, reason in json.loads(out["failures"])]
        return int(out["batch"]), (np.asarray(out["rows"]).tolist(), np.asarray(out["features"]), failures,
                                    str(out["problem"]) or None)

    # ------------------------------------------------------------------ results
    def received(self, b: int, result: tuple) -> None:
        rows, _, failures, problem = result
        rows = [int(r) for r in rows]
        if problem:
            raise QRProbeInputError(f"{self.rep.spec}: features of {self.source.image_ids[rows[0]]!r} "
                                    f"and its batch {problem}")
        self.stats.n_encoded_now += len(rows)
        assert self.bar is not None
        self.bar.update(len(self.plan[b][1]))
        if failures:
            self.bar.set_postfix(skipped=self.stats.n_skipped + len(failures), refresh=False)

    def commit(self, chunk: int, batches: Sequence[tuple]) -> None:
        source = self.source
        rows = [int(r) for batch_rows, _, _, _ in batches for r in batch_rows]
        parts = [f for batch_rows, f, _, _ in batches if len(batch_rows)]
        feats = np.concatenate(parts) if parts else np.zeros((0, self.rep.dim), self.dtype)
        skipped = [{"image_id": source.image_ids[row], "path": source.paths[row], "reason": reason}
                   for _, _, failures, _ in batches for row, reason in failures]
        labels = None if source.labels is None else [source.labels[r] for r in rows]
        self.writer.commit_chunk(chunk, feats, [source.image_ids[r] for r in rows],
                                 [source.paths[r] for r in rows], labels, skipped)
        self.stats.n_skipped += len(skipped)
