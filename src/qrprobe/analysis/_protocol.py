"""Shared steps of the analyses: quantize once, then probe many concept sets on the same clusterings.

Analyses that compare concept sets (the group breakdown, the explanations) must probe *the same* clusterings,
so that a difference in score is the concepts' doing. :func:`quantize` runs the engine's standardization and
K-means exactly as :func:`qrprobe.engine.evaluate.evaluate` does (clustering ``r`` uses seed ``seed + r``), and
:func:`probe_all` trains one engine probe per clustering with the same seeds, so a full concept set reproduces
``evaluate``'s scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..concepts.bank import ConceptBank
from ..engine.evaluate import ProbeOutcome, ProtocolConfig, probe_labels
from ..engine.inputs import Features, align, load_features
from ..engine.quantize import KMeans, Standardizer, check_finite
from ..results import summarize


@dataclass
class Quantization:
    """R clusterings of one representation.

    Attributes
    ----------
    labels : (R, N) int64 cluster ids
    centroids : (R, K, D) float32, in standardized space
    seeds : the R seeds (``config.seed + r``)
    inertias : (R,) K-means inertia of each clustering
    mean, scale : (D,) standardization (``scale`` 0 for a constant dimension)
    features : the aligned features (ids, paths, provenance)
    config : the protocol used
    """

    labels: np.ndarray
    centroids: np.ndarray
    seeds: list[int]
    inertias: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    features: Features
    config: ProtocolConfig


def load_inputs(features, concepts: ConceptBank) -> tuple[Features, ConceptBank]:
    """Read FEATURES (array, ``.npy``, store, path) and align the concept rows to them."""
    feats = features if isinstance(features, Features) else load_features(features)
    feats, bank, _ = align(feats, concepts)
    check_finite(feats.array, "FEATURES")
    bank.check_usable()
    return feats, bank


def make_kmeans(config: ProtocolConfig, seed: int, progress: bool = False) -> KMeans:
    """The engine's K-means configured as ``evaluate`` configures it for the clustering with ``seed``."""
    extra = {"init": config.kmeans_init} if hasattr(config, "kmeans_init") else {}
    return KMeans(config.k, n_iter=config.n_iter, n_restarts=config.n_restarts, seed=seed,
                  max_train_points=config.max_train_points, backend=config.kmeans_backend,
                  device=config.device, progress=progress, **extra)


def quantize(feats: Features, config: ProtocolConfig, progress: bool = False) -> Quantization:
    """Standardize ``feats`` and run K-means ``config.n_clusterings`` times (seeds ``seed + r``)."""
    x = feats.array
    make_kmeans(config, config.seed)._check(x.shape[0])
    standardizer = Standardizer().fit(x)
    z = standardizer.transform(x)
    seeds = [config.seed + r for r in range(config.n_clusterings)]
    labels, centroids, inertias = [], [], []
    for s in seeds:
        km = make_kmeans(config, s, progress).fit(z)
        labels.append(km.labels_.astype(np.int64))
        centroids.append(km.cluster_centers_)
        inertias.append(km.inertia_)
    scale = np.where(np.isinf(standardizer.scale_), 0.0, standardizer.scale_)
    return Quantization(np.stack(labels), np.stack(centroids), seeds, np.asarray(inertias),
                        standardizer.mean_, scale, feats, config)


def probe_all(quant: Quantization, bank: ConceptBank, progress: bool = False) -> list[ProbeOutcome]:
    """One engine probe per clustering of ``quant`` on the concepts of ``bank`` (seeds as ``evaluate``)."""
    cfg = quant.config
    return [probe_labels(labels, bank, seed=s, n_classes=cfg.k, probe=cfg.probe, test_fraction=cfg.test_fraction,
                         val_fraction=cfg.val_fraction, device=cfg.device, progress=progress)
            for labels, s in zip(quant.labels, quant.seeds, strict=True)]


def summary_of(outcomes: list[ProbeOutcome]) -> dict[str, dict]:
    """``{metric: {mean, std, values}}`` over the outcomes (population std, as in Result)."""
    return summarize([o.scores for o in outcomes])


def standardize_with(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Apply a saved standardization (``scale`` 0 marks a constant dimension, mapped to 0), float32."""
    mean = np.asarray(mean, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    if x.shape[1] != len(mean):
        from ..errors import QRProbeInputError

        raise QRProbeInputError(
            f"FEATURES have {x.shape[1]} dimensions but the result was computed on {len(mean)}-dimensional "
            "features (transfer needs features of the same model and layer)")
    safe = np.where(scale > 0, scale, np.inf)
    out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, x.shape[0], 65536):
        block = np.asarray(x[start:start + 65536], dtype=np.float64)
        out[start:start + len(block)] = (block - mean) / safe
    return out
