"""K-means across processes: Lloyd on rows sharded over processes (GPUs or CPUs), through ``torch.distributed``.

Each process holds a contiguous slice of the N standardized rows (its *shard*); only centroids (K × D) and
per-cluster sums and counts travel, by ``all_reduce`` (NCCL between GPUs, gloo between CPU processes). One
process, without ``torch.distributed``, runs the same code: that is the single-device result every sharding
reproduces.

**What "exact" means here.** For the same initial centroids, the labels, centroids, inertia and iteration
count are the same, bit for bit, whatever the number of processes and however the rows are split, because no
result depends on an order of floating-point additions across rows:

- a point's label depends only on that point and the centroids. Its float32 distances ``‖c‖² − 2 x·c`` (one
  matrix product per block of rows) come with a proven error bound (``γ_{D+2} (2‖x‖‖c‖ + ‖c‖²)``, valid for
  any order of summation, plus the last rounding); every centroid within the bounds of the best is a
  candidate, and a point with more than one candidate is settled by float64 distances to its candidates
  (equal float64 distances go to the lowest centroid index). So the label is the nearest centroid, not
  float32's guess of it, whichever block the row was computed in;
- cluster sums are integers: every standardized value is rounded to a multiple of ``2^-S`` (``S`` as large as
  int64 allows for these N and values, about 35 bits for 1.28M rows of 2048 values below 64) and summed in
  int64, which is associative; a centroid is ``float32(float64(sum) · 2^-S / count)``. It differs from the
  exact mean by at most ``2^-(S+1)``, i.e. by at most one float32 rounding;
- inertia and the points that re-seed empty clusters use each point's squared distance to its centroid
  (float32 differences, squares summed in float64, row by row); inertia is summed in int64 fixed point too,
  and the farthest points are ranked by distance, then row.

So the result is not bit for bit that of the single-process float32 ``KMeans`` (whose float32 running sums
depend on the order of the rows and, on a GPU, on the scheduling of atomic additions); it is the same Lloyd
path wherever float32 did not mistake a near-tie and its means agree to a float32 rounding. The tests check
the labels against a float64 Lloyd from the same centroids and against ``KMeans``.

Run it under ``torchrun`` on a feature store with ``python -m qrprobe.engine.distributed_run`` (docs/scale.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import QRProbeInputError
from .quantize import _chunk_rows

#: float32 unit roundoff; matrix products in TF32 (``torch.set_float32_matmul_precision("high")`` on CUDA)
#: round to 10 fraction bits instead of 23, and the error bounds use that.
_U32, _UTF32 = 2.0**-24, 2.0**-11


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


@dataclass(frozen=True)
class ShardedKMeansResult:
    """One clustering of sharded rows: this process' ``labels`` (n_local,) int64, the ``centroids`` (K, D)
    float32, ``inertia`` (all N rows, float64 distances), ``n_iter`` of the kept restart, ``inertias`` of all
    restarts, ``n_empty_reseeded`` over all restarts; the same on every process (labels: for its rows)."""

    labels: np.ndarray
    centroids: np.ndarray
    inertia: float
    n_iter: int
    inertias: tuple[float, ...]
    n_empty_reseeded: int


def row_norm_bounds(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """An upper bound of each row's Euclidean norm, (N,) float32 (the float32 norm enlarged by its error)."""
    grow = 1 + (x.shape[1] + 4) * _U32 * 2
    return torch.cat([b.square().sum(dim=1).sqrt() * grow for b in torch.split(x, chunk)]) if len(x) \
        else x.new_zeros(0)


def assign(x: torch.Tensor, centroids: torch.Tensor, chunk: int, x_norm: torch.Tensor | None = None
           ) -> torch.Tensor:
    """The nearest centroid of each row of ``x`` (N, D) float32, (N,) int64: float32 distances with their error
    bounds, float64 distances where the bounds leave more than one candidate, the lowest index on a tie.
    ``x_norm``: :func:`row_norm_bounds` of ``x`` (computed here when not given)."""
    d = x.shape[1]
    if x_norm is None:
        x_norm = row_norm_bounds(x, chunk)
    u = _UTF32 if x.is_cuda and torch.get_float32_matmul_precision() != "highest" else _U32
    # |computed − exact| of ‖c‖² − 2 x·c ≤ γ_{D+2} (2‖x‖‖c‖ + ‖c‖²) for any summation order, plus the last
    # rounding (u times at most the same), bounded with the largest centroid norm; (1 + 8u): the bound's own
    # roundings
    gamma = ((d + 2) * u / (1 - (d + 2) * u) + 2 * u) * (1 + 8 * u)
    c64 = centroids.double()
    c_sq64 = c64.square().sum(dim=1)
    c_max = float(c_sq64.max().sqrt()) if len(c_sq64) else 0.0
    c_sq = c_sq64.float()
    labels = torch.empty(x.shape[0], dtype=torch.int64, device=x.device)
    count = torch.int16 if len(centroids) < 2**15 else torch.int32  # candidates per row (summing bools is fast)
    for start in range(0, x.shape[0], chunk):
        block = x[start:start + chunk]
        dist = torch.addmm(c_sq, block, centroids.T, beta=1.0, alpha=-2.0)  # ‖c‖² − 2 x·c, float32
        norms = x_norm[start:start + chunk]
        reach = 2 * gamma * (1 + 4 * u) * (2 * norms * c_max + c_max**2) + 1e-30  # both distances' bounds
        best, idx = dist.min(dim=1)
        candidates = dist <= (best + reach)[:, None]
        labels[start:start + chunk] = idx
        unsure = torch.nonzero(candidates.sum(dim=1, dtype=count) > 1).flatten()
        if len(unsure):
            labels[start + unsure] = _settle(block[unsure], c64, candidates[unsure])
    return labels


def _settle(rows: torch.Tensor, c64: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """For each row, the candidate centroid at the smallest float64 distance (lowest index on a tie)."""
    row, col = torch.nonzero(candidates, as_tuple=True)  # row-major: for each row, candidates by index
    dist = (rows.double()[row] - c64[col]).square().sum(dim=1)
    order = torch.sort(dist, stable=True).indices  # by distance, then (stable) by index
    order = order[torch.sort(row[order], stable=True).indices]  # grouped by row, best first
    first = torch.ones_like(order, dtype=torch.bool)
    first[1:] = row[order][1:] != row[order][:-1]
    return col[order][first]


def point_distances(x: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor, chunk: int) -> torch.Tensor:
    """Squared distance of each row to its centroid, (N,) float64: float32 differences, their squares summed
    in float64 (each row on its own: the same whichever process or block holds it)."""
    return torch.cat([(x[s:s + chunk] - centroids[labels[s:s + chunk]]).square().sum(dim=1, dtype=torch.float64)
                      for s in range(0, x.shape[0], chunk)]) if len(x) else x.new_zeros(0, dtype=torch.float64)


def _fixed_sum(values: torch.Tensor, scale_bits: int, comm: Collectives) -> float:
    """Σ over all processes of float64 ``values``, each rounded to a multiple of 2^-scale_bits (int64)."""
    total = torch.round(values * 2.0**scale_bits).to(torch.int64).sum().reshape(1)
    return float(comm.sum_(total).item()) * 2.0**-scale_bits


def _scale_bits(n_total: int, max_abs: float) -> int:
    """The most fraction bits with which ``n_total`` values of magnitude ≤ ``max_abs`` sum within int64
    (at least 16: coarser steps would move the centroids visibly)."""
    bits = int(min(60, math.floor(62 - math.log2(max(1.0, n_total * max(max_abs, 2.0**-60))))))
    if bits < 16:
        raise QRProbeInputError(f"{n_total} rows with values up to {max_abs:.3g} leave {bits} fraction bits for exact "
                                "cluster sums; K-means expects standardized features")
    return bits


class _ClusterSums:
    """Integer sums (K, D) and counts (K,) of the rows per cluster, over every process. This process' own sums
    are kept and updated by the rows whose label changed only (integer sums: the same as summing afresh)."""

    def __init__(self, x: torch.Tensor, k: int, n_total: int, chunk: int, comm: Collectives) -> None:
        self.x, self.k, self.chunk, self.comm = x, k, chunk, comm
        local_max = x.abs().max().double().reshape(1) if len(x) else torch.zeros(1, dtype=torch.float64,
                                                                                  device=x.device)
        self.bits = _scale_bits(n_total, float(comm.max_(local_max).item()))
        self.local = torch.zeros((k, x.shape[1]), dtype=torch.int64, device=x.device)
        self.labels: torch.Tensor | None = None

    def _add(self, rows: torch.Tensor, labels: torch.Tensor, sign: int) -> None:
        for s in range(0, len(rows), self.chunk):
            part = rows[s:s + self.chunk]
            fixed = torch.round(self.x[part].double() * 2.0**self.bits).to(torch.int64)
            self.local.index_add_(0, labels[s:s + self.chunk], fixed if sign > 0 else -fixed)

    def centroids(self, labels: torch.Tensor, previous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """New centroids for ``labels`` (empty clusters keep ``previous``) and the global counts (K,)."""
        if self.labels is None:
            self._add(torch.arange(len(labels), device=labels.device), labels, +1)
        else:
            moved = torch.nonzero(labels != self.labels).flatten()
            self._add(moved, self.labels[moved], -1)
            self._add(moved, labels[moved], +1)
        self.labels = labels.clone()
        sums = self.comm.sum_(self.local.clone())
        counts = self.comm.sum_(torch.bincount(labels, minlength=self.k))
        out = previous.clone()
        full = counts > 0
        out[full] = (sums[full].double() * 2.0**-self.bits / counts[full, None].double()).float()
        return out, counts


def _farthest(x: torch.Tensor, dist: torch.Tensor, row_start: int, m: int, comm: Collectives) -> torch.Tensor:
    """The ``m`` rows (over all processes) farthest from their centroids, farthest first (ties: lower row),
    as (m, D) float32."""
    order = torch.sort(-dist, stable=True).indices[:m]  # local rows, farthest first, then lower row
    take = len(order)
    keys = torch.full((m,), -math.inf, dtype=torch.float64, device=x.device)
    rows = torch.full((m,), -1, dtype=torch.int64, device=x.device)
    vecs = torch.zeros((m, x.shape[1]), dtype=x.dtype, device=x.device)
    keys[:take], rows[:take], vecs[:take] = dist[order], order + row_start, x[order]
    keys, rows, vecs = comm.gather(keys).flatten(), comm.gather(rows).flatten(), comm.gather(vecs).flatten(0, 1)
    by_row = torch.sort(rows, stable=True).indices
    best = by_row[torch.sort(-keys[by_row], stable=True).indices][:m]
    return vecs[best]


def lloyd(x: torch.Tensor, init: torch.Tensor, n_iter: int, *, row_start: int, n_total: int,
          chunk: int | None = None, comm: Collectives | None = None) -> tuple[torch.Tensor, int, int]:
    """Lloyd from ``init`` (K, D) on this process' rows ``x`` (n_local, D) float32 (global rows
    ``row_start …``; ``n_total`` over all processes). Stops early only at an exact fixed point (no label changed
    anywhere); an empty cluster is re-seeded with one of the points farthest from their centroids. Returns the
    centroids, the iterations done and the number of empty clusters re-seeded."""
    comm = comm or Collectives()
    k = init.shape[0]
    chunk = _chunk_rows(chunk, k)
    sums = _ClusterSums(x, k, n_total, chunk, comm)
    x_norm = row_norm_bounds(x, chunk)
    centroids, previous, reseeded, it = init.clone(), None, 0, 0
    for it in range(1, n_iter + 1):  # noqa: B007 - ``it`` is returned
        labels = assign(x, centroids, chunk, x_norm)
        changed = torch.ones(1, device=x.device) if previous is None else \
            (labels != previous).any().float().reshape(1)
        if not bool(comm.max_(changed).item()):
            break  # a fixed point on every process: the centroids would not move again
        previous = labels
        updated, counts = sums.centroids(labels, centroids)
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):
            dist = point_distances(x, centroids, labels, chunk)
            updated[empty] = _farthest(x, dist, row_start, len(empty), comm)
            reseeded += len(empty)
        centroids = updated
    return centroids, it, reseeded


def inertia_of(x: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor, n_total: int, chunk: int,
               comm: Collectives) -> float:
    """Sum over all processes of the float64 squared distances of the rows to their centroids."""
    dist = point_distances(x, centroids, labels, chunk)
    local_max = dist.max().reshape(1) if len(dist) else torch.zeros(1, dtype=torch.float64, device=x.device)
    return _fixed_sum(dist, _scale_bits(n_total, float(comm.max_(local_max).item())), comm)


def initial_rows(x: torch.Tensor, rows: np.ndarray, row_start: int, comm: Collectives) -> torch.Tensor:
    """Global rows ``rows`` (K,) as centroids (K, D): each process contributes the rows it holds (a sum with
    zeros everywhere else, exact)."""
    out = torch.zeros((len(rows), x.shape[1]), dtype=x.dtype, device=x.device)
    local = (rows >= row_start) & (rows < row_start + x.shape[0])
    where = torch.from_numpy(np.flatnonzero(local)).to(x.device)
    out[where] = x[torch.from_numpy(rows[local] - row_start).to(x.device)]
    return comm.sum_(out).add_(0.0)  # + 0.0 everywhere: −0.0 becomes +0.0 with one process as with several


def sharded_kmeans(x: torch.Tensor, k: int, *, row_start: int, n_total: int, n_iter: int = 100,
                   n_restarts: int = 5, seed: int = 0, init: np.ndarray | None = None, chunk: int | None = None,
                   group=None) -> ShardedKMeansResult:
    """K-means of all processes' rows, the lowest-inertia result of ``n_restarts``; every process calls it with
    its own rows ``x`` (n_local, D) float32, global rows ``row_start …`` of ``n_total``.

    Initial centroids: ``init`` (K, D) if given (then every restart is the same), else K distinct rows drawn by
    ``numpy.random.default_rng(seed).choice(n_total, K, replace=False)`` per restart, the draw of the
    single-process torch backend (:class:`~qrprobe.engine.quantize.KMeans`).
    """
    comm = Collectives(group)
    chunk = _chunk_rows(chunk, k)
    rng = np.random.default_rng(seed)
    best, inertias, reseeded = None, [], 0
    with torch.inference_mode():
        for _ in range(n_restarts):
            if init is not None:
                start = torch.as_tensor(np.asarray(init, dtype=np.float32), device=x.device)
            else:
                start = initial_rows(x, rng.choice(n_total, k, replace=False), row_start, comm)
            centroids, n_done, n_reseeded = lloyd(x, start, n_iter, row_start=row_start, n_total=n_total,
                                                  chunk=chunk, comm=comm)
            reseeded += n_reseeded
            labels = assign(x, centroids, chunk)
            inertia = inertia_of(x, centroids, labels, n_total, chunk, comm)
            inertias.append(inertia)
            if best is None or inertia < best[0]:
                best = (inertia, centroids, n_done, labels)
    inertia, centroids, n_done, labels = best
    return ShardedKMeansResult(labels.cpu().numpy(), centroids.cpu().numpy(), inertia, n_done, tuple(inertias),
                               reseeded)


def shard_bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of process ``rank`` when ``n`` rows are split as evenly as possible."""
    return rank * n // world, (rank + 1) * n // world


__all__ = ["Collectives", "ShardedKMeansResult", "assign", "inertia_of", "lloyd", "shard_bounds",
           "sharded_kmeans"]
