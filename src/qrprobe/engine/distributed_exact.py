"""Sharded Lloyd on 16-bit stored rows with the single-device exact path's machinery: Yinyang bounds and the
fast engines (:class:`~qrprobe.engine.kmeans_exact.BoundedLloyd`) on each process' rows, with the steps that
see every row made global (:mod:`qrprobe.engine.distributed`).

Each process runs the single-device assignment passes on its own rows: a row's label, and its bounds, depend
only on the row and the centroids, so they are the labels the single-device run gives that row. What needs all
rows goes through ``torch.distributed``: the int64 cluster sums and counts (summed; exact in any order), whether
any row moved (the fixed point), and the rows farthest from their centroids (re-seeding empty clusters:
gathered, then ranked by distance, ties to the lower row, as one process ranks them). Every process then holds
the same centroids, computed with the single-device formula, and the result equals
``KMeans(precision="float16" | "bfloat16")`` on all rows from the same start, bit for bit.
"""

from __future__ import annotations

import contextlib

import torch

from .kmeans_bounds import make_groups, one_thread
from .kmeans_exact import BoundedLloyd
from .kmeans_sums import SCALE_BITS, CentroidSums


class ShardedBoundedLloyd(BoundedLloyd):
    """:class:`BoundedLloyd` on this process' rows, its Lloyd loop made global through ``comm``
    (:class:`~qrprobe.engine.distributed.Collectives`); ``start``: the global index of the first row."""

    def __init__(self, *args, comm, start: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.comm, self.start = comm, int(start)

    def _global_centroids(self, sums: CentroidSums) -> tuple[torch.Tensor, torch.Tensor]:
        total = self.comm.sum_(sums.sums.clone())
        counts = self.comm.sum_(sums.counts.clone())
        mean = (total.double() * 2.0**-SCALE_BITS / counts.clamp_min(1).double().unsqueeze(1)).float()
        return torch.where((counts > 0).unsqueeze(1), mean, self.c), counts

    def run(self, init: torch.Tensor, n_iter: int, bar=None) -> tuple[torch.Tensor, int, int]:
        """Lloyd from ``init`` (K, D) float32 on every process' rows; the single-device loop with global sums,
        fixed point and re-seeding. Returns the centroids, the iterations done and the clusters re-seeded;
        ``self.labels`` holds this process' final assignment."""
        from .distributed import _farthest

        self.slot_ids = make_groups(init, self.engine.width)
        self._set_centroids(init.float())
        sums = CentroidSums(self.x, self.k, kernel=getattr(self.engine, "kernel", None))
        quiet = one_thread if self.x.device.type == "cpu" else contextlib.nullcontext
        n_reseeded, it, fixed = 0, 0, False
        for it in range(1, n_iter + 1):
            if it == 1:
                self._full()
                sums.reset(self.rows, self.labels)
            else:
                moved = self._bounded(drift)  # noqa: F821 - set at the end of the previous iteration
                n_moved = torch.tensor([len(moved)], device=self.x.device)
                if int(self.comm.sum_(n_moved).item()) == 0:
                    fixed = True  # a fixed point on every process: centroids would not move again
                    break
                sums.move(self.rows[moved], self.previous, self.labels[moved])
            with quiet():
                centroids, counts = self._global_centroids(sums)
            empty = torch.nonzero(counts == 0).flatten()
            if len(empty):
                centroids[empty] = _farthest(self.x, self.start, self.own_sq_dist(), len(empty), self.comm)
                n_reseeded += len(empty)
            with quiet():
                drift = (centroids.double() - self.c.double()).norm(dim=1)
                self._set_centroids(centroids)
        if not fixed:
            self._bounded(drift)  # the assignment to the final centroids
        return self.c, it, n_reseeded


__all__ = ["ShardedBoundedLloyd"]
