"""The outcome of one K-means clustering (:class:`KMeansResult`), shared by every K-means path (torch, faiss,
distributed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KMeansResult:
    """One clustering: ``labels`` (N,) int64, ``centroids`` (K, D) float32, ``inertia`` (sum of squared
    distances of all N points to their centroid), ``n_iter`` of the kept restart, ``inertias`` of all
    restarts, ``n_empty_reseeded`` over all restarts, ``precision`` the features were stored in."""

    labels: np.ndarray
    centroids: np.ndarray
    inertia: float
    n_iter: int
    inertias: tuple[float, ...]
    n_empty_reseeded: int
    precision: str = "float32"


__all__ = ["KMeansResult"]
