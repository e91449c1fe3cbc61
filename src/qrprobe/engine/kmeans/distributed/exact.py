"""Sharded Lloyd on 16-bit stored rows with the single-device exact path's machinery: Yinyang bounds and the
fast engines (:class:`~qrprobe.engine.kmeans.exact.BoundedLloyd`) on each process' rows, with the steps that
see every row made global (:mod:`qrprobe.engine.kmeans.distributed.sharded`).

Each process runs the single-device assignment passes on its own rows: a row's label, and its bounds, depend
only on the row and the centroids, so they are the labels the single-device run gives that row. What needs all
rows goes through ``torch.distributed``: the int64 cluster sums and counts (summed; exact in any order), whether
any row moved (the fixed point), and the rows farthest from their centroids (re-seeding empty clusters:
gathered, then ranked by distance, ties to the lower row, as one process ranks them). Every process then holds
the same centroids, computed with the single-device formula, and the result equals
``KMeans(kmeans_precision="float16" | "bfloat16")`` on all rows from the same start, bit for bit.
"""

from __future__ import annotations

import copy

import torch

from ..exact import BoundedLloyd
from ..sums import CentroidSums
from .collectives import farthest_rows


class ShardedBoundedLloyd(BoundedLloyd):
    """:class:`BoundedLloyd` on this process' rows (all of them, in order: ``rows`` = 0 … n_local − 1), its steps
    that look at every row made global through ``comm`` (:class:`~.collectives.Collectives`);
    ``start``: the global index of the first row. The Lloyd loop itself is the single-device one."""

    def __init__(self, *args, comm, start: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.comm, self.start = comm, int(start)

    def _any_moved(self, moved: torch.Tensor) -> bool:
        n_moved = torch.tensor([len(moved)], device=self.x.device)
        return int(self.comm.sum_(n_moved).item()) > 0

    def _means(self, sums: CentroidSums) -> tuple[torch.Tensor, torch.Tensor]:
        every = copy.copy(sums)  # this process' sums object, holding the sums over all processes
        every.sums = self.comm.sum_(sums.sums.clone())
        every.counts = self.comm.sum_(sums.counts.clone())
        return every.centroids(self.c), every.counts

    def _farthest(self, m: int) -> torch.Tensor:
        return farthest_rows(self.x, self.start, self.own_sq_dist(), m, self.comm)  # rows 0 … n_local − 1


__all__ = ["ShardedBoundedLloyd"]
