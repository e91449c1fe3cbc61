"""One clustering of 16-bit stored features by exact Lloyd: the restarts, the lowest inertia kept, and with a
training sample every row assigned exactly to the kept centroids (:func:`fit_exact`).

Each restart is a :class:`~qrprobe.engine.kmeans.exact.BoundedLloyd` made by the :class:`~.stored.Stored` copy
(which shares its norms and distance engine across restarts and clusterings)."""

from __future__ import annotations

from typing import cast

import numpy as np
import torch

from .lloyd import initial_centroids
from .result import KMeansResult
from .stored import Stored


def fit_exact(stored: Stored, train_idx: np.ndarray | None, *, k: int, iters: int, restarts: int,
              init: str | np.ndarray, rng: np.random.Generator, bar=None,
              on_restart=None, early_stop: float | None = None,
              restart_screen: int | None = None) -> tuple[KMeansResult, list]:
    """Exact Lloyd on ``stored`` (16-bit), ``restarts`` times from ``init`` (``"random"``, ``"k-means++"`` or a
    (K, D) array), ``iters`` iterations at most each, on the rows ``train_idx`` (None: all). ``rng`` draws the
    initial centroids; ``bar`` is advanced per iteration; ``on_restart(i)`` is called before restart ``i``;
    ``early_stop``: stop on an objective plateau (:meth:`~.exact.BoundedLloyd.run`).

    ``restart_screen`` T (None: off, the paper's schedule): every restart runs T iterations and only the one
    with the lowest inertia then goes on, from its centroids, to ``iters`` in all — its labels and centroids are
    those it would reach uninterrupted (Lloyd's next step depends only on the centroids), but a restart that
    would have overtaken it later is not seen. ``inertias`` then holds each restart's inertia at T (the kept
    one's final inertia in its place).

    Returns the clustering of every row (the lowest-inertia restart; with a training sample, every row then
    assigned exactly to its centroids) and, per restart, the work of each assignment pass (benchmarks).
    """
    screen = restart_screen if restart_screen and restarts > 1 and restart_screen < iters else None
    x, dev = stored.x, stored.x.device
    rows = (torch.arange(x.shape[0], device=dev) if train_idx is None
            else torch.from_numpy(train_idx).to(dev))
    best: tuple | None = None
    inertias, total_reseeded, work = [], 0, []
    best_restart = 0
    for restart in range(restarts):
        if on_restart is not None:
            on_restart(restart)
        if isinstance(init, np.ndarray) or init == "random":
            x_pick = x if train_idx is None else _RowView(x, rows)
            # a _RowView has the shape and row indexing that random initialisation reads
            start = initial_centroids(cast(torch.Tensor, x_pick), k, init, rng)
        else:
            start = initial_centroids(x if train_idx is None else x[rows], k, init, rng)
        run = stored.lloyd(k, None if train_idx is None else rows)
        centroids, n_done, n_reseeded = run.run(start.to(dev), screen or iters, bar, early_stop)
        work.append(run.stats)
        total_reseeded += n_reseeded
        inertia = run.inertia()
        inertias.append(inertia)
        if best is None or inertia < best[0]:
            best = (inertia, centroids, n_done, run.labels)
            best_restart = restart
        del run
    assert best is not None  # restarts >= 1
    inertia, centroids, n_done, labels = best
    if screen is not None and n_done == screen:  # the kept restart goes on (one that stopped earlier is final)
        run = stored.lloyd(k, None if train_idx is None else rows)
        centroids, more, n_reseeded = run.run(centroids, iters - screen, bar, early_stop)
        work.append(run.stats)
        total_reseeded += n_reseeded
        inertia, n_done, labels = run.inertia(), screen + more, run.labels
        inertias[best_restart] = inertia
        del run
    if train_idx is not None:
        every = stored.lloyd(k)
        labels = every.assign_all(centroids)
        inertia = stored.lloyd(k).inertia_of(centroids, labels)
    result = KMeansResult(labels.cpu().numpy(), centroids.cpu().numpy().astype(np.float32), inertia, n_done,
                          tuple(inertias), total_reseeded, precision=stored.precision)
    return result, work


def assign_exact(stored: Stored, centroids: torch.Tensor) -> torch.Tensor:
    """The exact nearest centroid (K, D) float32 of every stored row, (N,) int64 (one full pass)."""
    return stored.lloyd(centroids.shape[0]).assign_all(centroids)


class _RowView:
    """Rows ``rows`` of ``x`` seen as an array for drawing initial points (shape and row indexing only)."""

    def __init__(self, x: torch.Tensor, rows: torch.Tensor) -> None:
        self.x, self.rows = x, rows
        self.shape = (len(rows), x.shape[1])
        self.device = x.device

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.x[self.rows[idx]]


__all__ = ["assign_exact", "fit_exact"]
