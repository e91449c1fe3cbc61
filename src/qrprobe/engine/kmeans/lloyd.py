"""Plain float32 Lloyd: the K-means of ``kmeans_precision="float32"`` (bit for bit the results of earlier
releases) and the reference the exact 16-bit path is tested against.

Every iteration computes all N × K distances as ``‖c‖² − 2 x·c`` with one float32 matrix product per chunk of
rows (at most 256 MiB of distances alive), then moves every centroid to the float32 mean of its points.
"""

from __future__ import annotations

import math

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
          x_sq: torch.Tensor, early_stop: float | None = None) -> tuple[torch.Tensor, int, int]:
    """Run Lloyd from ``init`` (K, D); return centroids, iterations done, empty clusters re-seeded.

    ``early_stop``: stop once an assignment lowers the objective (sum of squared distances, float64) by at
    most this fraction of the previous one, keeping the centroids it was made with (faiss's
    ``early_stop_threshold``); None: only at an exact fixed point."""
    k = init.shape[0]
    centroids = init.clone()
    previous = None
    previous_obj = math.inf
    n_reseeded = 0
    it = 0
    for it in range(1, n_iter + 1):  # noqa: B007 - ``it`` is returned
        labels, dist = assign(x, centroids, chunk, x_sq)
        if bar is not None:
            bar.update(1)
        if previous is not None and torch.equal(labels, previous):
            break  # exact fixed point: centroids would not move again
        if early_stop is not None:
            obj = float(dist.double().sum())
            if previous_obj < math.inf and previous_obj - obj <= early_stop * previous_obj:
                break  # objective plateau
            previous_obj = obj
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


def local_trials(k: int) -> int:
    """Candidates drawn per step of greedy k-means++: ``2 + ⌊ln K⌋``, scikit-learn's choice (Arthur &
    Vassilvitskii 2007 suggest O(log K))."""
    return 2 + int(np.log(k))


def kmeans_plus_plus(x: torch.Tensor, k: int, rng: np.random.Generator, chunk: int = 65536,
                     trials: int | None = None) -> torch.Tensor:
    """Greedy k-means++ seeding, as scikit-learn's ``kmeans_plusplus``: the first centre is a uniform random row;
    each next one is the best of ``trials`` candidates (default :func:`local_trials`) drawn with probability
    proportional to D², the squared distance to the nearest centre chosen so far — the candidate that leaves
    the smallest total D² is kept. ``trials=1`` is plain k-means++ (D² sampling).

    ``x`` (N, D) float32, or 16-bit (converted ``chunk`` rows at a time). Distances are float32 products,
    accumulated as float64 D². The random draws, in order: one integer (the first row), then per step
    ``trials`` uniform numbers in [0, 1) scaled by the total D². Returns (k, D) float32.
    """
    n = x.shape[0]
    trials = local_trials(k) if trials is None else trials
    x_sq = torch.cat([(b.float() ** 2).sum(1) for b in torch.split(x, chunk)]) if n else x.new_zeros(0).float()

    def sq_dist_to(rows: torch.Tensor) -> torch.Tensor:
        """(N, len(rows)) float64 squared distances of every row to the rows ``rows``."""
        centres = x[rows].float()
        c_sq = (centres * centres).sum(1)
        parts = [x_sq[s:s + chunk].unsqueeze(1) - 2 * (x[s:s + chunk].float() @ centres.T) + c_sq
                 for s in range(0, n, chunk)]
        return torch.cat(parts).clamp_min_(0).double()

    chosen = [int(rng.integers(n))]
    nearest = sq_dist_to(torch.tensor(chosen, device=x.device))[:, 0]
    potential = float(nearest.sum())
    for _ in range(1, k):
        if potential > 0:
            cumulative = torch.cumsum(nearest, 0)
            draws = torch.from_numpy(rng.random(trials) * potential).to(cumulative)
            cand = torch.searchsorted(cumulative, draws, right=True).clamp_max_(n - 1)
        else:  # every row already sits on a centre: any row will do
            cand = torch.from_numpy(rng.integers(n, size=trials)).to(x.device)
        # candidate rows of zero weight can only be drawn at the float edge; they would leave D² unchanged
        trial = torch.minimum(nearest.unsqueeze(1), sq_dist_to(cand))  # (N, trials)
        pots = trial.sum(0)
        best = int(pots.argmin())
        chosen.append(int(cand[best]))
        nearest, potential = trial[:, best].contiguous(), float(pots[best])
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
              rng: np.random.Generator, chunk: int, bar, on_restart=None,
              early_stop: float | None = None) -> tuple[np.ndarray, np.ndarray, float,
                                                                                   int, tuple[float, ...], int]:
    """Float32 Lloyd on ``x_all`` (N, D) float32 (rows ``train_idx`` for training, None: all): ``restarts`` runs of
    at most ``iters`` iterations (``early_stop``: as :func:`lloyd`).

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
        centroids, n_done, n_reseeded = lloyd(x_train, init_c, iters, chunk, bar, train_sq, early_stop)
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
