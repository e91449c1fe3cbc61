"""The faiss K-means backend (``kmeans_backend="faiss"``, needs ``qrprobe[faiss]``): ``faiss.Kmeans`` with the
protocol's iterations, restarts and seed, on float32 features, with faiss's silent sub-sampling (256 points
per centroid) disabled unless ``max_train_points`` asks for a sample."""

from __future__ import annotations

import math

import numpy as np

from ...device import resolve_device
from ...errors import require
from .result import KMeansResult


def fit_faiss(km, features: np.ndarray, train_idx: np.ndarray | None):
    """Cluster ``features`` (N, D) float32 with the parameters of ``km`` (a :class:`~qrprobe.engine.kmeans.quantize.
    KMeans`); ``train_idx`` rows train (None: all). Returns a ``KMeansResult``."""
    faiss = require("faiss", "faiss", "the faiss K-means backend")
    features = np.ascontiguousarray(features, dtype=np.float32)
    train = features if train_idx is None else features[train_idx]
    n_train, d = train.shape
    kmeans = faiss.Kmeans(
        d, km.n_clusters, niter=km.n_iter, nredo=km.n_restarts, seed=int(km.seed) % 2**31,
        verbose=False, gpu=resolve_device(km.device).type == "cuda" and hasattr(faiss, "StandardGpuResources"),
        # faiss samples 256·K points unless told otherwise; we train on what we were given
        max_points_per_centroid=math.ceil(n_train / km.n_clusters) + 1,
        min_points_per_centroid=1,
    )
    kmeans.train(train)
    dist, labels = kmeans.index.search(features, 1)
    obj = np.asarray(kmeans.obj) if len(kmeans.obj) else np.array([np.nan])
    return KMeansResult(labels[:, 0].astype(np.int64), np.asarray(kmeans.centroids, dtype=np.float32),
                        float(np.clip(dist[:, 0], 0, None).astype(np.float64).sum()), km.n_iter,
                        (float(obj[-1]),), 0, precision="float32")
