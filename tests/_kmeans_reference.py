"""A plain float64 Lloyd on 16-bit stored features: the reference the exact 16-bit K-means must equal.

Written independently of the library's bounds and engines: every iteration computes all N × K distances in
float64, takes the smallest (ties, within 1e-10·(‖x‖² + ‖c‖²), to the lowest index), stops at an exact fixed
point, sets each centroid to float32(float64(int64 sum of the values · 2²⁴) · 2⁻²⁴ / count) and re-seeds an
empty cluster with the points farthest from their centroids (largest first, ties to the lowest row).
"""

from __future__ import annotations

import numpy as np
import torch


def nearest(x64: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    c64 = centroids.double()
    xsq = (x64 * x64).sum(1, keepdim=True)
    csq = (c64 * c64).sum(1)
    d = xsq - 2 * x64 @ c64.T + csq
    tied = d <= d.min(1, keepdim=True).values + 1e-10 * (xsq + csq)
    k = centroids.shape[0]
    return torch.where(tied, torch.arange(k), k).min(1).values


def reference_lloyd(x16: torch.Tensor, init: np.ndarray, n_iter: int,
                    early_stop: float | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Labels (N,), centroids (K, D) float32 and iterations done, from initial centroids ``init``; with
    ``early_stop``, also stop (keeping the centroids) once an assignment lowers the float64 objective by at most
    that fraction of the previous one."""
    x64 = x16.double()
    fixed = (x16.float() * 2.0**24).to(torch.int64)
    c = torch.from_numpy(np.asarray(init, np.float32)).clone()
    k = c.shape[0]
    previous = None
    previous_obj = float("inf")
    for it in range(1, n_iter + 1):
        labels = nearest(x64, c)
        if previous is not None and torch.equal(labels, previous):
            return labels.numpy(), c.numpy(), it
        if early_stop is not None:
            obj = float(((x64 - c.double()[labels]) ** 2).sum())
            if previous_obj < float("inf") and previous_obj - obj <= early_stop * previous_obj:
                return labels.numpy(), c.numpy(), it
            previous_obj = obj
        previous = labels
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros((k, x16.shape[1]), dtype=torch.int64).index_add_(0, labels, fixed)
        mean = (sums.double() * 2.0**-24 / counts.clamp_min(1).double().unsqueeze(1)).float()
        new = torch.where((counts > 0).unsqueeze(1), mean, c)
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):
            dist = ((x64 - c.double()[labels]) ** 2).sum(1)
            far = torch.sort(dist, descending=True, stable=True).indices[:len(empty)]
            new[empty] = x16[far].float()
        c = new
    return nearest(x64, c).numpy(), c.numpy(), n_iter


def inertia(x16: torch.Tensor, centroids: np.ndarray, labels: np.ndarray) -> float:
    diff = x16.double() - torch.from_numpy(np.asarray(centroids)).double()[torch.from_numpy(labels)]
    return float((diff * diff).sum())


def greedy_kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator, trials: int) -> np.ndarray:
    """Row indices of greedy k-means++ in float64 numpy (scikit-learn's algorithm, with the library's order of
    draws: one integer, then ``trials`` uniforms per step scaled by the total D²)."""
    x = np.asarray(x, np.float64)

    def d2(i: np.ndarray) -> np.ndarray:
        return ((x[:, None, :] - x[None, i, :]) ** 2).sum(-1)

    chosen = [int(rng.integers(len(x)))]
    nearest_sq = d2(np.array(chosen))[:, 0]
    for _ in range(1, k):
        draws = rng.random(trials) * nearest_sq.sum()
        cand = np.minimum(np.searchsorted(np.cumsum(nearest_sq), draws, side="right"), len(x) - 1)
        trial = np.minimum(nearest_sq[:, None], d2(cand))
        best = int(trial.sum(0).argmin())
        chosen.append(int(cand[best]))
        nearest_sq = trial[:, best]
    return np.array(chosen)
