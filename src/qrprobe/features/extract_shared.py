"""Several models extracted together: each image read once and decoded once for all of them.

:func:`extract_together` takes the extractions of a study (one ``(model, out, ExtractConfig)`` each, on the
same images) and runs those that can share a pass in one DataLoader loop: the loader workers read each file
once, decode it once per distinct JPEG reduction the models' transforms need (once in all when they resize to
the same size, as the paper's models do) and apply every model's transform
(:class:`~qrprobe.images.dataset.SharedImageDataset`); this process encodes each batch with every model and
commits each model's chunks to its own store. Every store is exactly the store :func:`~.extract.run_extraction`
writes alone (same configuration hash, same bytes): the same plan of batches, the same decoded pixels per
transform, the same encoder calls.

Extractions share a pass when they run locally with the same chunk size, batch size, row limit, device and
decoding margin; the others (the Ray backend, a lone configuration) run one by one. Reused stores are reused
and interrupted ones resumed, each on its own.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any

from .._atomic import writing
from ..chunks import Add, Backend, PlannedBatch, run_chunks
from ..images import open_images
from ..progress import note
from .batches import PlanSampler, encode_batch, loader_workers, prefetch_batches
from .config import ExtractConfig
from .extract import (
    ExtractionStats,
    FeatureStore,
    PreparedExtraction,
    cpu_threads,
    finish_extraction,
    prepare_extraction,
    run_prepared,
)
from .extract_job import ExtractionJob

#: One extraction of a study: the model (MODEL string or Representation), the store's folder, its config.
Extraction = tuple[Any, "str | os.PathLike", ExtractConfig]


class SharedExtractionJob:
    """The extractions of one shared pass as one job of the chunk runner (:class:`qrprobe.chunks.ChunkJob`).

    The plan covers the union of the chunks the extractions still have to do; a planned batch's result is a
    dict ``{extraction index: that extraction's batch result}`` for the extractions that need the batch's chunk,
    each exactly what :class:`~.extract_job.ExtractionJob` makes of it alone.
    """

    def __init__(self, jobs: Sequence[ExtractionJob], todos: Sequence[Sequence[int]], workers: int | None,
                 decode_margin: float) -> None:
        self.jobs, self.todos = list(jobs), [set(t) for t in todos]
        self.workers, self.decode_margin = workers, decode_margin
        self.index: list[dict[int, int]] = [{} for _ in self.jobs]  # shared batch -> the job's own batch
        self.start = time.perf_counter()

    def batch_size(self, backend: Backend) -> int:
        return self.jobs[0].batch_size(backend)

    def begin(self, backend: Backend, plan: list[PlannedBatch]) -> None:
        for j, job in enumerate(self.jobs):
            own: list[PlannedBatch] = []
            for b, (chunk, rows) in enumerate(plan):
                if chunk in self.todos[j]:
                    self.index[j][b] = len(own)
                    own.append((chunk, rows))
            job.begin(backend, own)
        self.start = time.perf_counter()

    def run_local(self, plan: list[PlannedBatch], add: Add) -> None:
        """Read and decode in DataLoader workers once for every model, encode here with each model."""
        from torch.utils.data import DataLoader

        from ..images.dataset import SharedImageDataset, collate_shared

        jobs = self.jobs
        batch_size = jobs[0].stats.batch_size
        n_workers = loader_workers(self.workers, jobs[0].source)
        dataset = SharedImageDataset(jobs[0].source, [job.rep.preprocess for job in jobs], self.decode_margin)
        loader = DataLoader(dataset, batch_sampler=PlanSampler(plan), num_workers=n_workers,
                            collate_fn=collate_shared, pin_memory=any(j.rep.device.type == "cuda" for j in jobs),
                            prefetch_factor=prefetch_batches(batch_size) if n_workers else None,
                            persistent_workers=False)
        for b, per_model in enumerate(loader):
            out = {}
            for j, (rows, batch, failures) in enumerate(per_model):
                if b not in self.index[j]:
                    continue
                feats, problem = encode_batch(jobs[j].rep, batch, jobs[j].dtype) if batch is not None else (None, None)
                out[j] = (rows.tolist(), feats, failures, problem)
            add(b, out)

    def received(self, b: int, result: dict) -> None:
        for j, part in result.items():
            self.jobs[j].received(self.index[j][b], part)

    def commit(self, chunk: int, batches: Sequence[dict]) -> None:
        for j, job in enumerate(self.jobs):
            if chunk in self.todos[j]:
                job.commit(chunk, [batch[j] for batch in batches])

    # the Ray backend runs each extraction on its own (extract_together never groups Ray extractions)
    def ray_decoder(self):  # pragma: no cover - not reachable
        raise NotImplementedError("shared extraction runs locally")

    def ray_actor(self, pool):  # pragma: no cover - not reachable
        raise NotImplementedError("shared extraction runs locally")

    def from_ray(self, out: dict):  # pragma: no cover - not reachable
        raise NotImplementedError("shared extraction runs locally")


def _group_key(prep: PreparedExtraction) -> tuple | None:
    """Extractions with equal keys can share a pass; None: this one runs alone (Ray)."""
    config = prep.config
    if config.backend != "local":
        return None
    return (config.chunk_size, prep.job.requested_batch_size, config.limit, str(prep.job.rep.device),
            float(config.decode_margin), config.workers, config.threads)


def extract_together(extractions: Sequence[Extraction], images) -> list[tuple[FeatureStore, ExtractionStats]]:
    """Extract several models' features over the same images, each image read and decoded once for all of them.

    Parameters
    ----------
    extractions : ``(model, out, config)`` per model: a MODEL string or a ready
        :class:`~qrprobe.models.Representation`, the store's folder and its :class:`~.config.ExtractConfig`.
    images : the image collection (anything :func:`qrprobe.images.open_images` takes); listed once.

    Returns
    -------
    ``(store, stats)`` per extraction, in order; each store identical to what
    :func:`~.extract.run_extraction` writes for that extraction alone.
    """
    with contextlib.ExitStack() as locks:  # every output's lock held from the start, as run_extraction's
        for _, out, _ in extractions:
            locks.enter_context(writing(out, "out"))
        return _extract_together(extractions, images)


def _extract_together(extractions: Sequence[Extraction], images) -> list[tuple[FeatureStore, ExtractionStats]]:
    source = open_images(images)  # listed once; each extraction selects its rows (limit) from it
    results: list[tuple[FeatureStore, ExtractionStats] | None] = [None] * len(extractions)
    prepared: dict[int, PreparedExtraction] = {}
    for i, (model, out, config) in enumerate(extractions):
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        prep = prepare_extraction(model, source, out, config)
        if isinstance(prep, PreparedExtraction):
            prepared[i] = prep
        else:
            results[i] = prep
    groups: dict[tuple, list[int]] = {}
    for i, prep in prepared.items():
        key = _group_key(prep)
        groups.setdefault(key if key is not None else ("alone", i), []).append(i)
    for members in groups.values():
        if len(members) == 1:
            results[members[0]] = run_prepared(prepared[members[0]])
            continue
        preps = [prepared[i] for i in members]
        _run_shared(preps)
        for i, prep in zip(members, preps, strict=True):
            results[i] = finish_extraction(prep)
    return [r for r in results if r is not None]


def _run_shared(preps: Sequence[PreparedExtraction]) -> None:
    first = preps[0]
    config = first.config
    todo = sorted(set().union(*(p.todo for p in preps)))
    shared = SharedExtractionJob([p.job for p in preps], [p.todo for p in preps], config.workers,
                                 config.decode_margin)
    try:
        with cpu_threads(config, first.job.rep, first.source):
            run_chunks(shared, todo, len(first.source), config.chunk_size, backend="local", device=config.device)
    finally:
        seconds = time.perf_counter() - shared.start
        for p in preps:
            if p.job.bar is not None:
                p.job.bar.close()
            p.stats.seconds = seconds
    n_images = max((p.stats.n_encoded_now for p in preps), default=0)
    if n_images:
        note(f"extract: {len(preps)} models together, each image read and decoded once: {n_images} images in "
             f"{seconds:.1f} s", config.progress)


__all__ = ["Extraction", "SharedExtractionJob", "extract_together"]
