"""The faiss K-means backend (``kmeans_backend="faiss"``, needs ``qrprobe[faiss]``): ``faiss.Kmeans`` with the
protocol's iterations, restarts and seed, on float32 features, with faiss's silent sub-sampling (256 points
per centroid) disabled unless ``max_train_points`` asks for a sample."""

from __future__ import annotations

import math

import numpy as np

from ...errors import require
from .result import KMeansResult


def fit_faiss(features: np.ndarray, train_idx: np.ndarray | None, *, k: int, iters: int, restarts: int, seed: int,
              gpu: bool = False, early_stop: float | None = None) -> KMeansResult:
    """Cluster ``features`` (N, D) float32 into ``k`` clusters: ``restarts`` runs of ``iters`` iterations from
    ``seed`` (taken modulo 2³¹), trained on the rows ``train_idx`` (None: all), every row then assigned;
    ``gpu``: on the GPU where faiss has a GPU build; ``early_stop``: faiss's ``early_stop_threshold`` (None:
    faiss's default). Returns a ``KMeansResult``."""
    faiss = require("faiss", "faiss", "the faiss K-means backend")
    features = np.ascontiguousarray(features, dtype=np.float32)
    train = features if train_idx is None else features[train_idx]
    n_train, d = train.shape
    kmeans = faiss.Kmeans(
        d, k, niter=iters, nredo=restarts, seed=int(seed) % 2**31,
        verbose=False, gpu=gpu and hasattr(faiss, "StandardGpuResources"),
        # faiss samples 256·K points unless told otherwise; we train on what we were given
        max_points_per_centroid=math.ceil(n_train / k) + 1,
        min_points_per_centroid=1,
        **({} if early_stop is None else {"early_stop_threshold": float(early_stop)}),
    )
    kmeans.train(train)
    dist, labels = kmeans.index.search(features, 1)
    obj = np.asarray(kmeans.obj) if len(kmeans.obj) else np.array([np.nan])
    return KMeansResult(labels[:, 0].astype(np.int64), np.asarray(kmeans.centroids, dtype=np.float32),
                        float(np.clip(dist[:, 0], 0, None).astype(np.float64).sum()), iters,
                        (float(obj[-1]),), 0, precision="float32")
