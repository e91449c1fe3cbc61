"""The one chunk runner of the artifacts built chunk by chunk: the feature store (extraction) and the concept bank
(labelling).

::

    chunks still to do  --plan_batches-->  planned batches (chunk, rows), never across a chunk
        --backend, local or ray-->  each planned batch's result, in any order
        --ChunkAssembler-->  a chunk's results, in plan order  --job.commit-->  the resumable work folder

Chunk ``c`` holds input rows ``[c * S, (c + 1) * S)`` (``S`` the chunk size), cut into batches of the batch
size. The backend is the one switch between this process and a Ray cluster:

- ``local``: the job's own loop in this process (DataLoader workers for extraction, decoding threads for
  labelling), batch after batch;
- ``ray`` (:mod:`qrprobe.raycluster`): each planned batch is one Ray row, decoded in a CPU task (the job's
  decoder) and computed in an actor of a pool (the job's actor class); results come back in any order.

Both compute exactly the planned batches, so an artifact's bytes depend on the plan, not on the backend. A
chunk is committed (by the job: :class:`~qrprobe._workdir.ChunkedWorkDir` underneath) as soon as all its
batches are in, so a killed run loses at most the chunks in flight. A job (:class:`ChunkJob`) says what a
planned batch is, locally and on Ray, and how a chunk is committed; :func:`run_chunks` does the rest.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .raycluster import ActorPool, RayOptions, stream
from .schema import param

#: Where the work runs: ``local`` (this process) or ``ray`` (a Ray actor pool).
BACKENDS = ("local", "ray")

#: A planned batch: its chunk and its input rows (consecutive, inside the chunk).
PlannedBatch = tuple[int, list[int]]
#: ``add(b, result)``: planned batch ``b`` (its index in the plan) gave ``result``.
Add = Callable[[int, Any], None]


def backend_param() -> Any:
    """The ``backend`` field of a chunked job's config (extraction, labelling): the same flag and key in both."""
    return param("local", "local: decode and run the model in this process; ray: decode in Ray CPU tasks and run "
                 "the model in a Ray actor pool (GPU or CPU), same output", choices=BACKENDS, key=False, study=False)


def plan_batches(chunks: Sequence[int], n: int, chunk_size: int, batch_size: int) -> list[PlannedBatch]:
    """``(chunk, rows)`` batches covering the given chunks of ``n`` rows; a batch never crosses a chunk boundary."""
    plan = []
    for c in chunks:
        start, stop = c * chunk_size, min(n, (c + 1) * chunk_size)
        for b in range(start, stop, batch_size):
            plan.append((c, list(range(b, min(stop, b + batch_size)))))
    return plan


class ChunkAssembler:
    """Collects the results of a plan's batches, in any order, and hands each chunk's results (in plan order) to
    ``commit(chunk, results)`` as soon as all its batches are in."""

    def __init__(self, plan: Sequence[PlannedBatch], commit: Callable[[int, list], None]) -> None:
        self.plan, self.commit = plan, commit
        self.expected: dict[int, int] = {}
        for chunk, _ in plan:
            self.expected[chunk] = self.expected.get(chunk, 0) + 1
        self.pending: dict[int, dict[int, Any]] = {}

    def add(self, b: int, result: Any) -> None:
        chunk = self.plan[b][0]
        got = self.pending.setdefault(chunk, {})
        got[b] = result
        if len(got) == self.expected[chunk]:
            self.commit(chunk, [got[i] for i in sorted(got)])
            del self.pending[chunk]


@dataclass
class Backend:
    """Where a run computes its batches: ``name`` (``local`` or ``ray``); with Ray, the connected ``ray`` module,
    its ``options`` and the actor ``pool`` for ``device`` (resolved when first asked for)."""

    name: str
    ray: Any = None
    options: RayOptions | None = None
    device: str = "auto"

    @functools.cached_property
    def pool(self) -> ActorPool:
        from .raycluster import resolve_pool

        if self.ray is None or self.options is None:
            raise RuntimeError("the local backend has no actor pool")  # a bug: only a Ray job asks
        return resolve_pool(self.ray, self.options, self.device)


@contextlib.contextmanager
def open_backend(name: str, ray: RayOptions | None = None, device: str = "auto") -> Iterator[Backend]:
    """The backend ``name``; ``ray`` joins or starts a Ray runtime (:func:`qrprobe.raycluster.ray_session`),
    stopped again on exit when it was started here."""
    if name == "local":
        yield Backend("local", device=device)
        return
    from .raycluster import ray_session

    options = ray or RayOptions()
    with ray_session(options) as ray_module:
        yield Backend("ray", ray_module, options, device)


class ChunkJob(Protocol):
    """What a chunked job gives the runner. A result is whatever the job makes of one planned batch."""

    def batch_size(self, backend: Backend) -> int:
        """Rows per planned batch on ``backend``."""

    def begin(self, backend: Backend, plan: list[PlannedBatch]) -> None:
        """Called once the plan is known (progress bars, counts), before any batch runs."""

    def run_local(self, plan: list[PlannedBatch], add: Add) -> None:
        """The local backend: compute every planned batch here, calling ``add(b, result)`` for each."""

    def ray_decoder(self) -> Callable[[dict], dict]:
        """The Ray backend's CPU task: ``{"batch", "start", "stop"}`` → a decoded batch (picklable)."""

    def ray_actor(self, pool: ActorPool) -> tuple[type, dict]:
        """The Ray backend's actor class and its constructor's keyword arguments."""

    def from_ray(self, row: dict) -> tuple[int, Any]:
        """An actor's output row → ``(b, result)``, the same result as the local backend's for batch ``b``."""

    def received(self, b: int, result: Any) -> None:
        """Batch ``b`` is in (progress, counts; raise to stop the run), before its chunk may be committed."""

    def commit(self, chunk: int, results: list) -> None:
        """All batches of ``chunk`` are in (``results`` in plan order): make it durable."""


def run_chunks(job: ChunkJob, chunks: Sequence[int], n: int, chunk_size: int, *, backend: str = "local",
               ray: RayOptions | None = None, device: str = "auto") -> list[PlannedBatch]:
    """Compute ``chunks`` (of ``n`` rows, ``chunk_size`` each) with ``job`` on ``backend``; return the plan run."""
    with open_backend(backend, ray, device) as where:
        plan = plan_batches(chunks, n, chunk_size, job.batch_size(where))
        job.begin(where, plan)
        if not plan:
            return plan
        assembler = ChunkAssembler(plan, job.commit)

        def add(b: int, result: Any) -> None:
            job.received(b, result)
            assembler.add(b, result)

        if where.ray is None:
            job.run_local(plan, add)
            return plan
        items = [{"batch": b, "start": rows[0], "stop": rows[-1] + 1} for b, (_, rows) in enumerate(plan)]
        actor, kwargs = job.ray_actor(where.pool)
        for row in stream(where.ray, items, job.ray_decoder(), actor, kwargs, where.pool,
                          decode_cpus=where.pool.decode_cpus,
                          images_per_item=max(len(rows) for _, rows in plan)):
            add(*job.from_ray(row))
    return plan


__all__ = ["BACKENDS", "Add", "Backend", "ChunkAssembler", "ChunkJob", "PlannedBatch", "backend_param", "open_backend",
           "plan_batches", "run_chunks"]
