"""What the processes of a sharded K-means share: the collective operations (:class:`Collectives`) and the
choice of the rows farthest from their centroids over every process (:func:`farthest_rows`), used by the
float32 sharded Lloyd (:mod:`.sharded`) and the exact 16-bit one (:mod:`.exact`)."""

from __future__ import annotations

import math

import torch


class Collectives:
    """The few collective operations Lloyd needs, on ``group`` (default: the whole world); with
    ``torch.distributed`` not initialised, one process and no communication."""

    def __init__(self, group=None) -> None:
        self.dist = torch.distributed if torch.distributed.is_available() and torch.distributed.is_initialized() \
            else None
        self.group = group
        self.world = self.dist.get_world_size(group) if self.dist else 1
        self.rank = self.dist.get_rank(group) if self.dist else 0

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """In-place sum over processes (integers here: the order of additions cannot matter)."""
        if self.dist:
            self.dist.all_reduce(t, op=self.dist.ReduceOp.SUM, group=self.group)
        return t

    def max_(self, t: torch.Tensor) -> torch.Tensor:
        if self.dist:
            self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX, group=self.group)
        return t

    def broadcast_(self, t: torch.Tensor, src: int = 0) -> torch.Tensor:
        """In place: process ``src``'s ``t`` on every process (bit for bit)."""
        if self.dist:
            self.dist.broadcast(t, src=src, group=self.group)
        return t

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Every process' ``t`` (same shape everywhere), stacked in rank order: (world, *t.shape)."""
        if not self.dist:
            return t.unsqueeze(0)
        out = [torch.empty_like(t) for _ in range(self.world)]
        self.dist.all_gather(out, t.contiguous(), group=self.group)
        return torch.stack(out)



def farthest_rows(x: torch.Tensor, start: int, dist: torch.Tensor, m: int, comm: Collectives) -> torch.Tensor:
    """The ``m`` rows (over all processes) farthest from their centroids (``dist``: this process' rows ``x``,
    global rows ``start …``), farthest first (ties: lower row), as (m, D) float32."""
    order = torch.sort(dist, descending=True, stable=True).indices[:m]  # farthest first, then the lower row
    take = len(order)
    keys = torch.full((m,), -math.inf, dtype=torch.float64, device=x.device)
    rows = torch.full((m,), -1, dtype=torch.int64, device=x.device)
    vecs = torch.zeros((m, x.shape[1]), dtype=torch.float32, device=x.device)
    keys[:take], rows[:take], vecs[:take] = dist[order], order + start, x[order].float()
    keys, rows, vecs = comm.gather(keys).flatten(), comm.gather(rows).flatten(), comm.gather(vecs).flatten(0, 1)
    by_row = torch.sort(rows, stable=True).indices
    best = by_row[torch.sort(keys[by_row], descending=True, stable=True).indices][:m]
    return vecs[best]


__all__ = ["Collectives", "farthest_rows"]
