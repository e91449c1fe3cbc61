"""Plain float32 Lloyd: the K-means of ``kmeans_precision="float32"`` (bit for bit the results of earlier
releases) and the reference the exact 16-bit path is tested against.

Every iteration computes all N × K distances as ``‖c‖² − 2 x·c`` with one float32 matrix product per chunk of
rows (at most 256 MiB of distances alive), then moves every centroid to the float32 mean of its points.
"""

from __future__ import annotations

import numpy as np
import torch

CHUNK_BYTES = 256 * 2**20  # bound on one chunk's distance block


def chunk_rows(rows: int | None, k: int) -> int:
    """Rows per distance block: ``rows`` if given, else as many as fit :data:`CHUNK_BYTES` of float32 × K."""
    return rows or max(1024, CHUNK_BYTES // (4 * k))


def row_norms(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """Squared norm of each row, (N,) float32, computed in chunks."""
    return torch.cat([(b * b).sum(dim=1) for b in torch.split(x, chunk)]) if len(x) else x.new_zeros(0)


def assign(x: torch.Tensor, centroids: torch.Tensor, chunk: int,
           x_sq: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of each row: labels (N,) int64 and squared distances (N,) float32.

    ``x_sq`` are the rows' squared norms (computed here when not given; pass them to reuse across iterations).
    """
    if x_sq is None:
        x_sq = row_norms(x, chunk)
    c_sq = (centroids * centroids).sum(dim=1)
    labels = torch.empty(x.shape[0], dtype=torch.int64, device=x.device)
    dist = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
    for start in range(0, x.shape[0], chunk):
        block = x[start:start + chunk]
        # ||x||² − 2 x·c + ||c||², minimised over c; ||x||² is added back for the distance itself
        d = torch.addmm(c_sq, block, centroids.T, beta=1.0, alpha=-2.0)
        best, idx = d.min(dim=1)
        del d  # one distance block alive at a time
        labels[start:start + chunk] = idx
        dist[start:start + chunk] = (best + x_sq[start:start + chunk]).clamp_min_(0)
    return labels, dist


def lloyd(x: torch.Tensor, init: torch.Tensor, n_iter: int, chunk: int, bar,
          x_sq: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Run Lloyd from ``init`` (K, D); return centroids, iterations done, empty clusters re-seeded."""
    k = init.shape[0]
    centroids = init.clone()
    previous = None
    n_reseeded = 0
    it = 0
    for it in range(1, n_iter + 1):  # noqa: B007 - ``it`` is returned
        labels, dist = assign(x, centroids, chunk, x_sq)
        if bar is not None:
            bar.update(1)
        if previous is not None and torch.equal(labels, previous):
            break  # exact fixed point: centroids would not move again
        previous = labels
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        empty = torch.nonzero(counts == 0).flatten()
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty].unsqueeze(1).to(sums.dtype)
        if len(empty):
            # re-seed each empty cluster with one of the points farthest from its centroid
            far = torch.topk(dist, len(empty)).indices
            centroids[empty] = x[far]
            n_reseeded += len(empty)
    if bar is not None:
        bar.update(n_iter - it)
    return centroids, it, n_reseeded


def kmeans_plus_plus(x: torch.Tensor, k: int, rng: np.random.Generator, chunk: int = 65536) -> torch.Tensor:
    """k-means++ seeding: each next centre drawn with probability proportional to D², the squared distance to
    the nearest centre chosen so far. ``x`` (N, D) float32, or 16-bit (converted ``chunk`` rows at a time).
    Returns (k, D) float32."""
    n = x.shape[0]
    if x.dtype == torch.float32:
        x_sq = (x * x).sum(dim=1)

        def sq_dist_to(row: int) -> torch.Tensor:
            return (x_sq - 2 * x @ x[row] + x_sq[row]).clamp_min_(0)
    else:
        def sq_dist_to(row: int) -> torch.Tensor:
            centre = x[row].float()
            parts = []
            for s in range(0, n, chunk):
                b = x[s:s + chunk].float()
                parts.append((b * b).sum(1) - 2 * b @ centre + centre @ centre)
            return torch.cat(parts).clamp_min_(0)

    chosen = [int(rng.integers(n))]
    nearest = sq_dist_to(chosen[0])
    for _ in range(1, k):
        weights = nearest.double().cpu().numpy()
        total = weights.sum()
        nxt = int(rng.choice(n, p=weights / total)) if total > 0 else int(rng.integers(n))
        chosen.append(nxt)
        nearest = torch.minimum(nearest, sq_dist_to(nxt))
    return x[torch.tensor(chosen, device=x.device)].float().clone()


def initial_centroids(x: torch.Tensor, k: int, init, rng: np.random.Generator) -> torch.Tensor:
    """K initial centroids (K, D) float32 on ``x``'s device: an array given, k-means++, or K distinct random rows."""
    if isinstance(init, np.ndarray):
        return torch.from_numpy(np.asarray(init, dtype=np.float32)).to(x.device)
    if init == "k-means++":
        return kmeans_plus_plus(x, k, rng)
    idx = rng.choice(x.shape[0], k, replace=False)
    return x[torch.from_numpy(idx).to(x.device)].float()


def fit_plain(x_all: torch.Tensor, train_idx: np.ndarray | None, *, k: int, iters: int, restarts: int, init,
              rng: np.random.Generator, chunk: int, bar, on_restart=None) -> tuple[np.ndarray, np.ndarray, float,
                                                                                   int, tuple[float, ...], int]:
    """Float32 Lloyd on ``x_all`` (N, D) float32 (rows ``train_idx`` for training, None: all): ``restarts`` runs of
    at most ``iters`` iterations.

    Returns labels (N,), centroids (K, D), inertia, iterations of the kept restart, all restarts' inertias and
    the number of empty clusters re-seeded.
    """
    dev = x_all.device
    x_train = x_all if train_idx is None else x_all[torch.from_numpy(train_idx).to(dev)]
    train_sq = row_norms(x_train, chunk)
    best: tuple | None = None
    inertias = []
    total_reseeded = 0
    for restart in range(restarts):
        if on_restart is not None:
            on_restart(restart)
        init_c = initial_centroids(x_train, k, init, rng)
        centroids, n_done, n_reseeded = lloyd(x_train, init_c, iters, chunk, bar, train_sq)
        total_reseeded += n_reseeded
        labels, dist = assign(x_train, centroids, chunk, train_sq)
        inertia = float(dist.double().sum())
        inertias.append(inertia)
        if best is None or inertia < best[0]:
            best = (inertia, centroids, n_done, labels, dist)
        del labels, dist
    assert best is not None  # restarts >= 1
    _, centroids, n_done, labels, dist = best
    if train_idx is not None:  # the kept restart's final assignment already covers every point otherwise
        labels, dist = assign(x_all, centroids, chunk)
    return (labels.cpu().numpy(), centroids.cpu().numpy().astype(np.float32), float(dist.double().sum()), n_done,
            tuple(inertias), total_reseeded)
