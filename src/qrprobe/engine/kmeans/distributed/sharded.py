"""K-means across processes: Lloyd on rows sharded over processes (GPUs or CPUs), through ``torch.distributed``.

Each process holds a contiguous slice of the N standardized rows (its *shard*) in the protocol's storage
precision (``kmeans_precision``, :mod:`qrprobe.engine.kmeans.standardize`); only centroids (K × D), per-cluster sums
and counts, and a few scalars travel, by ``all_reduce`` (NCCL between GPUs, gloo between CPU processes). One
process, without ``torch.distributed``, runs the same code.

**What "exact" means here.** For the same initial centroids, labels, centroids, inertia and iteration count are
the same, bit for bit, whatever the number of processes and however the rows are split: nothing depends on an
order of floating-point additions across rows.

- A point's label is its exact nearest centroid, as in the single-device 16-bit path (ties within
  ``TIE_REL · (‖x‖² + ‖c‖²)`` to the lowest index, :func:`~qrprobe.engine.kmeans.bounds.pick_lowest`), so it
  depends on the point and the centroids only. 16-bit shards run that path itself on their rows (Yinyang
  bounds, its engines: :mod:`qrprobe.engine.kmeans.distributed.exact`); float32 shards multiply every row with every
  centroid in float32 (:func:`assign`) with a proven error bound (``γ_{D+2} (2‖x‖‖c‖ + ‖c‖²)``, any summation
  order, plus the last rounding) and settle the rows the bounds leave undecided with float64 distances.
- Cluster sums are int64 (associative, in an all-reduce as in GPU atomics): 16-bit values are multiples of
  2⁻²⁴, summed exactly as on one device (:mod:`qrprobe.engine.kmeans.sums`); float32 values are rounded to
  multiples of ``2^-S``, ``S`` as large as int64 allows (about 35 bits for 1.28M rows of values below 64). A
  centroid is ``float32(float64(sum) · 2^-S / count)``, the single-device formula.
- Empty clusters are re-seeded with the rows farthest from their centroids by float64 distance (ties: the
  lower row); the inertia sums those distances in int64 fixed point.

So with 16-bit storage (the protocol's choice at ImageNet scale) the result is the single-device exact
K-means' (``KMeans(kmeans_precision="float16")``: labels, centroids, iterations; the inertia to rounding). With
float32 storage it is a float64 Lloyd's, which the single-device float32 path (float32 sums, whose rounding
depends on the order of the rows, and on atomic scheduling on a GPU) follows wherever float32 did not mistake
a near-tie; the centroids are within one float32 rounding of the exact means.

Run it under ``torchrun`` on a feature store with ``python -m qrprobe.engine.kmeans.distributed.run`` (docs/scale.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ....errors import QRProbeInputError
from ..bounds import pick_lowest
from ..lloyd import chunk_rows as _chunk_rows
from ..result import KMeansResult
from ..sums import SCALE_BITS, check_sum_range
from .collectives import Collectives, farthest_rows

#: float32 unit roundoff; matrix products in TF32 (``torch.set_float32_matmul_precision("high")`` on CUDA)
#: round to 10 fraction bits instead of 23, and the error bounds use that.
_U32, _UTF32 = 2.0**-24, 2.0**-11


class Shard:
    """This process' rows ``x`` (n_local, D) (float32, float16 or bfloat16), global rows ``start …`` of
    ``n_total``, with what every iteration reuses: exact squared row norms (float64) and float32 upper bounds of
    the norms, computed once."""

    def __init__(self, x: torch.Tensor, start: int, n_total: int, chunk: int) -> None:
        d = max(1, x.shape[1])
        self.x, self.start, self.n_total = x, int(start), int(n_total)
        self.chunk = max(1, min(chunk, 2**26 // d))  # rows per product block: its float32 copy ≤ 256 MiB
        self.small = max(1, 2**23 // d)  # rows per float64 block: ≤ 64 MiB
        self.xsq = torch.cat([b.double().square().sum(dim=1) for b in torch.split(x, self.small)]) if len(x) \
            else torch.zeros(0, dtype=torch.float64, device=x.device)
        self.norm = (self.xsq.sqrt() * (1 + 2.0**-20)).float()  # rounded up

    def __len__(self) -> int:
        return self.x.shape[0]

    def exact_sq(self, rows: torch.Tensor, c64: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Float64 ``‖x‖² − 2 x·c + ‖c‖²`` of local ``rows`` to centroids ``ids`` (pairs), as the single-device
        exact path computes it."""
        dots = (self.x[rows].double() * c64[ids]).sum(dim=1)
        return self.xsq[rows] - 2 * dots + c64[ids].square().sum(dim=1)


def assign(shard: Shard, centroids: torch.Tensor) -> torch.Tensor:
    """The exact nearest centroid of each row of the shard, (n_local,) int64: float32 distances with their
    error bounds, float64 distances where the bounds leave more than one candidate (ties: the lowest index)."""
    x, d, chunk = shard.x, shard.x.shape[1], shard.chunk
    u = _UTF32 if x.is_cuda and torch.get_float32_matmul_precision() != "highest" else _U32
    # |computed − exact| of ‖c‖² − 2 x·c ≤ γ_{D+2} (2‖x‖‖c‖ + ‖c‖²) for any summation order, plus the last
    # rounding (u times at most the same), bounded with the largest centroid norm; (1 + 8u): the bound's own
    # roundings
    gamma = ((d + 2) * u / (1 - (d + 2) * u) + 2 * u) * (1 + 8 * u)
    c64 = centroids.double()
    c_sq64 = c64.square().sum(dim=1)
    c_max = float(c_sq64.max().sqrt()) if len(c_sq64) else 0.0
    c_sq, c32 = c_sq64.float(), centroids.float()
    labels = torch.empty(len(shard), dtype=torch.int64, device=x.device)
    count = torch.int16 if len(centroids) < 2**15 else torch.int32  # candidates per row (summing bools is fast)
    for start in range(0, len(shard), chunk):
        block = x[start:start + chunk].float()  # exact for 16-bit storage
        dist = torch.addmm(c_sq, block, c32.T, beta=1.0, alpha=-2.0)  # ‖c‖² − 2 x·c, float32
        norms = shard.norm[start:start + chunk]
        reach = 2 * gamma * (1 + 4 * u) * (2 * norms * c_max + c_max**2) + 1e-30  # both distances' bounds
        best, idx = dist.min(dim=1)
        candidates = dist <= (best + reach)[:, None]
        labels[start:start + chunk] = idx
        unsure = torch.nonzero(candidates.sum(dim=1, dtype=count) > 1).flatten()
        if len(unsure):
            owner, ids = torch.nonzero(candidates[unsure], as_tuple=True)
            rows = start + unsure[owner]
            exact = shard.exact_sq(rows, c64, ids)
            labels[start + unsure] = pick_lowest(owner, ids, exact, shard.xsq[rows] + c_sq64[ids], len(unsure))
    return labels


def own_distances(shard: Shard, centroids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Float64 squared distance of each row to its centroid, (n_local,)."""
    c64 = centroids.double()
    return torch.cat([shard.exact_sq(rows, c64, labels[rows])
                      for rows in torch.arange(len(shard), device=shard.x.device).split(shard.small)]) \
        if len(shard) else torch.zeros(0, dtype=torch.float64, device=shard.x.device)


def _scale_bits(n_total: int, max_abs: float) -> int:
    """The most fraction bits with which ``n_total`` values of magnitude ≤ ``max_abs`` sum within int64
    (at least 16: coarser steps would move the centroids visibly)."""
    bits = int(min(60, math.floor(62 - math.log2(max(1.0, n_total * max(max_abs, 2.0**-60))))))
    if bits < 16:
        raise QRProbeInputError(f"{n_total} rows with values up to {max_abs:.3g} leave {bits} fraction bits for exact "
                                "cluster sums; K-means expects standardized features")
    return bits


def _global_max(values: torch.Tensor, comm: Collectives) -> float:
    local = values.abs().max().double().reshape(1) if values.numel() else \
        torch.zeros(1, dtype=torch.float64, device=values.device)
    return float(comm.max_(local).item())


class _ClusterSums:
    """Integer sums (K, D) and counts (K,) of the rows per cluster, over every process. This process' own sums
    are kept and updated by the rows whose label changed only (integer sums: the same as summing afresh)."""

    def __init__(self, shard: Shard, k: int, comm: Collectives) -> None:
        self.shard, self.k, self.comm = shard, k, comm
        top = _global_max(shard.x, comm)
        if shard.x.dtype == torch.float32:
            self.bits = _scale_bits(shard.n_total, top)
        else:  # 16-bit values: exact multiples of 2^-24, summed as the single-device path sums them
            check_sum_range(shard.n_total, top)
            self.bits = SCALE_BITS
        self.local = torch.zeros((k, shard.x.shape[1]), dtype=torch.int64, device=shard.x.device)
        self.labels: torch.Tensor | None = None

    def _add(self, rows: torch.Tensor, labels: torch.Tensor, sign: int) -> None:
        chunk = self.shard.small
        for s in range(0, len(rows), chunk):
            fixed = torch.round(self.shard.x[rows[s:s + chunk]].double() * 2.0**self.bits).to(torch.int64)
            self.local.index_add_(0, labels[s:s + chunk], fixed if sign > 0 else -fixed)

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
        mean = (sums.double() * 2.0**-self.bits / counts.clamp_min(1).double().unsqueeze(1)).float()
        return torch.where((counts > 0).unsqueeze(1), mean, previous), counts


def lloyd(shard: Shard, init: torch.Tensor, n_iter: int, comm: Collectives | None = None
          ) -> tuple[torch.Tensor, int, int]:
    """Lloyd from ``init`` (K, D) float32 on every process' shard. Stops early only at an exact fixed point (no
    label changed anywhere); an empty cluster is re-seeded with one of the points farthest from their
    centroids. Returns the centroids, the iterations done and the number of empty clusters re-seeded."""
    comm = comm or Collectives()
    k = init.shape[0]
    sums = _ClusterSums(shard, k, comm)
    centroids, previous, reseeded, it = init.float().clone(), None, 0, 0
    for it in range(1, n_iter + 1):  # noqa: B007 - ``it`` is returned
        labels = assign(shard, centroids)
        changed = torch.ones(1, device=shard.x.device) if previous is None else \
            (labels != previous).any().float().reshape(1)
        if not bool(comm.max_(changed).item()):
            break  # a fixed point on every process: the centroids would not move again
        previous = labels
        updated, counts = sums.centroids(labels, centroids)
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):
            dist = own_distances(shard, centroids, labels)
            updated[empty] = farthest_rows(shard.x, shard.start, dist, len(empty), comm)
            reseeded += len(empty)
        centroids = updated
    return centroids, it, reseeded


def total_distance(dist: torch.Tensor, n_total: int, comm: Collectives) -> float:
    """Sum over all processes of float64 squared distances ``dist`` (each rounded to a multiple of 2^-S and
    summed in int64, so that the order of addition cannot matter): the inertia."""
    dist = dist.clamp_min(0)
    bits = min(60, math.floor(62 - math.log2(max(1.0, n_total * max(_global_max(dist, comm), 2.0**-60)))))
    total = torch.round(dist * 2.0**bits).to(torch.int64).sum().reshape(1)
    return float(comm.sum_(total).item()) * 2.0**-bits


def initial_rows(x: torch.Tensor, start: int, rows: np.ndarray, comm: Collectives) -> torch.Tensor:
    """Global rows ``rows`` (K,) as float32 centroids (K, D), from every process' rows ``x`` (global rows
    ``start …``): each contributes the rows it holds (a sum with zeros everywhere else, exact)."""
    out = torch.zeros((len(rows), x.shape[1]), dtype=torch.float32, device=x.device)
    local = (rows >= start) & (rows < start + x.shape[0])
    where = torch.from_numpy(np.flatnonzero(local)).to(x.device)
    out[where] = x[torch.from_numpy(rows[local] - start).to(x.device)].float()
    return comm.sum_(out).add_(0.0)  # + 0.0 everywhere: −0.0 becomes +0.0 with one process as with several


def sharded_kmeans(x: torch.Tensor, k: int, *, row_start: int, n_total: int, n_iter: int = 100,
                   n_restarts: int = 5, seed: int = 0, init: np.ndarray | None = None, chunk: int | None = None,
                   group=None) -> KMeansResult:
    """K-means of all processes' rows, the lowest-inertia result of ``n_restarts``; every process calls it with
    its own rows ``x`` (n_local, D) — standardized, in the storage precision (float32, float16 or bfloat16) —
    global rows ``row_start …`` of ``n_total``.

    Initial centroids: ``init`` (K, D) if given (then every restart is the same), else K distinct rows drawn by
    ``numpy.random.default_rng(seed).choice(n_total, K, replace=False)`` per restart, the draw of the
    single-device torch backend (:class:`~qrprobe.engine.kmeans.quantize.KMeans`). Returns a
    :class:`~qrprobe.engine.kmeans.quantize.KMeansResult` whose ``labels`` are this process' rows' (the centroids,
    inertias and counts are the same on every process).
    """
    comm = Collectives(group)
    rng = np.random.default_rng(seed)
    sixteen = x.dtype in (torch.float16, torch.bfloat16)
    fit = _exact_16bit(x, k, row_start, n_total, comm) if sixteen else \
        _full_products(Shard(x, row_start, n_total, _chunk_rows(chunk, k)), comm)
    best: tuple | None = None
    inertias, reseeded = [], 0
    with torch.inference_mode():
        for _ in range(n_restarts):
            if init is not None:
                start = torch.as_tensor(np.asarray(init, dtype=np.float32), device=x.device)
            else:
                start = initial_rows(x, row_start, rng.choice(n_total, k, replace=False), comm)
            centroids, n_done, n_reseeded, labels, inertia = fit(start, n_iter)
            reseeded += n_reseeded
            inertias.append(inertia)
            if best is None or inertia < best[0]:
                best = (inertia, centroids, n_done, labels)
    assert best is not None  # n_restarts >= 1
    inertia, centroids, n_done, labels = best
    precision = {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(x.dtype, "float32")
    return KMeansResult(labels.cpu().numpy(), centroids.cpu().numpy(), inertia, n_done, tuple(inertias),
                               reseeded, precision)


def _full_products(shard: Shard, comm: Collectives):
    """One restart on float32 rows: every row against every centroid in each iteration."""
    def fit(start: torch.Tensor, n_iter: int):
        centroids, n_done, n_reseeded = lloyd(shard, start, n_iter, comm)
        labels = assign(shard, centroids)
        return centroids, n_done, n_reseeded, labels, total_distance(own_distances(shard, centroids, labels),
                                                                     shard.n_total, comm)
    return fit


def _exact_16bit(x: torch.Tensor, k: int, row_start: int, n_total: int, comm: Collectives):
    """One restart on 16-bit rows: the single-device exact path (Yinyang bounds, its engines) on this process'
    rows, its sums, fixed point and re-seeding made global (:mod:`qrprobe.engine.kmeans.distributed.exact`)."""
    from ..stored import Stored
    from .exact import ShardedBoundedLloyd

    precision = "float16" if x.dtype == torch.float16 else "bfloat16"
    stored = Stored(x.contiguous(), precision)
    check_sum_range(n_total, _global_max(stored.x, comm))
    rows = torch.arange(x.shape[0], device=x.device)
    xsq, row_err, engine = stored.sq_norms(), stored.row_err(k), stored.engine(k)

    def fit(start: torch.Tensor, n_iter: int):
        run = ShardedBoundedLloyd(stored.x, rows, xsq, engine, k, row_err, comm=comm, start=row_start)
        centroids, n_done, n_reseeded = run.run(start, n_iter)
        return centroids, n_done, n_reseeded, run.labels, total_distance(run.own_sq_dist(), n_total, comm)
    return fit


def shard_bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of process ``rank`` when ``n`` rows are split as evenly as possible."""
    return rank * n // world, (rank + 1) * n // world


__all__ = ["Collectives", "Shard", "assign", "lloyd", "own_distances", "shard_bounds",
           "sharded_kmeans", "total_distance"]
