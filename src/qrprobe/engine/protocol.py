"""The one protocol path: read and match the inputs → quantize → split → probe → score.

Every user of the protocol goes through these functions: :func:`qrprobe.engine.evaluate.evaluate`, every
analysis (breakdown, explanations, K sweep, transfer's retraining, self-labels, concepts → labels) and the
study runner. Clusterings are computed once (:func:`quantize`) and can be probed with any number of concept
sets (:func:`probe_all`), so that a difference between concept sets is the concepts' doing alone.

Seeds: clustering ``r`` uses ``config.seed + r`` for its K-means initialisations, its split and its probe's
shuffle order, so a run is fully determined by ``config.seed`` (on the CPU).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .._files import reading
from ..concepts.bank import ConceptBank
from ..errors import QRProbeInputError
from ..features.store import FeatureStore
from ..metrics import TestDetails, score_details
from ..progress import format_seconds, note, scope
from ..results import summarize
from .config import ProbeConfig, ProtocolConfig
from .degenerate import check_quantization
from .inputs import Features, align, load_features
from .kmeans.quantize import KMeansResult, check_finite, fit_clusterings
from .probe.reverse_probe import ReverseProbe
from .probe.split import Split, stratified_split

FeaturesLike = np.ndarray | FeatureStore | str | os.PathLike | Features


@dataclass
class Inputs:
    """Features and concepts with matched rows; ``matched_by`` is ``"image_id"`` or ``"position"``."""

    features: Features
    concepts: ConceptBank
    matched_by: str


def prepare_inputs(features: FeaturesLike, concepts: ConceptBank) -> Inputs:
    """Read FEATURES (array, ``.npy``, store, path), match the concept rows to them and check both.

    Raises :class:`~qrprobe.errors.QRProbeInputError` before any work when the inputs cannot be used.
    """
    feats = features if isinstance(features, Features) else load_features(features)
    feats, bank, matched_by = align(feats, concepts)
    check_finite(feats.array, "FEATURES")
    bank.check_usable()
    return Inputs(feats, bank, matched_by)


@dataclass
class Quantization:
    """R clusterings of one representation (the output of :func:`quantize`).

    Attributes
    ----------
    labels : (R, N) int64 cluster ids
    kmeans : the R K-means results (centroids (K, D) float32 in standardized space, inertias, iterations)
    seeds : the R seeds (``config.seed + r``)
    mean, scale : (D,) float64 standardization (``scale`` 0 for a constant dimension)
    features : the features clustered (ids, paths, provenance)
    config : the protocol used
    """

    labels: np.ndarray
    kmeans: list[KMeansResult]
    seeds: list[int]
    mean: np.ndarray
    scale: np.ndarray
    features: Features
    config: ProtocolConfig

    @property
    def k(self) -> int:
        """K, the number of clusters of each clustering (the probe's number of classes)."""
        return self.config.kmeans.k

    @property
    def centroids(self) -> np.ndarray:
        """(R, K, D) float32 centroids in standardized space."""
        return np.stack([km.centroids for km in self.kmeans])

    @property
    def inertias(self) -> np.ndarray:
        return np.asarray([km.inertia for km in self.kmeans])


def quantize(features: Features, config: ProtocolConfig, progress: bool = False) -> Quantization:
    """Standardize ``features`` once and run K-means ``config.clusterings`` times (seeds ``seed + r``)."""
    seeds = [config.seed + r for r in range(config.clusterings)]
    standardizer, runs = fit_clusterings(features.array, config.kmeans, seeds=seeds, device=config.device,
                                         progress=progress)
    labels = np.stack([np.asarray(km.labels, dtype=np.int64) for km in runs])
    scale = np.where(np.isinf(standardizer.scale_), 0.0, standardizer.scale_)
    check_quantization(labels, scale, seeds)  # a single cluster: refused before any probe is trained
    return Quantization(labels, runs, seeds, standardizer.mean_, scale, features, config)


def read_quantization(path: str | os.PathLike, features, config=None):
    """The clusterings in ``path`` (written by ``python -m qrprobe.engine.kmeans.distributed.run``) as a
    :class:`Quantization` of ``features`` (the same feature store or array, path or
    :class:`~qrprobe.engine.inputs.Features`).

    ``config``: the protocol for the probing (default: the paper's); its ``clusterings``, ``seed`` and K-means
    fields ``k``, ``iters``, ``restarts``, ``kmeans_precision`` are replaced by the file's.
    """
    feats = features if isinstance(features, Features) else load_features(features)
    with reading(path, "clusterings (.npz written by qrprobe.engine.kmeans.distributed.run)"), \
            np.load(path, allow_pickle=False) as z:
        saved = {name: z[name] for name in z.files}
    labels, centroids = saved["labels"], saved["centroids"]
    if labels.shape[1] != feats.array.shape[0]:
        raise QRProbeInputError(f"{path}: clusterings of {labels.shape[1]} rows, the features have "
                                f"{feats.array.shape[0]}")
    precision = str(saved["precision"])
    config = config or ProtocolConfig()
    kmeans = dataclasses.replace(config.kmeans, k=int(centroids.shape[1]), iters=int(saved["iters"]),
                                 restarts=int(saved["restarts"]), kmeans_precision=precision)
    config = dataclasses.replace(config, kmeans=kmeans, clusterings=len(labels), seed=int(saved["seed"]))
    runs = [KMeansResult(labels[r], centroids[r], float(saved["inertia"][r]), int(saved["n_iter"][r]),
                         (float(saved["inertia"][r]),), 0, precision) for r in range(len(labels))]
    seeds = [config.seed + r for r in range(len(labels))]
    return Quantization(labels, runs, seeds, saved["mean"], saved["scale"], feats, config)


@dataclass
class ProbeOutcome:
    """One labelling probed: its scores, the split, the trained probe, its predictions for all rows and the
    per-image quantities of the test split (``details``, for bootstrap replicates and baselines)."""

    scores: dict
    split: Split
    probe: ReverseProbe
    predictions: np.ndarray = field(repr=False)
    details: TestDetails | None = field(default=None, repr=False)


def probe_labels(labels: np.ndarray, concepts: ConceptBank | sp.csr_matrix, *, seed: int = 0,
                 n_classes: int | None = None, probe: ProbeConfig | None = None, test_fraction: float = 0.2,
                 val_fraction: float = 0.2, device: str = "auto", progress: bool = False) -> ProbeOutcome:
    """Split one labelling, train the reverse probe on it and score it on the test split.

    This is one clustering's worth of the protocol for any labelling: K-means clusters, a model's own
    pseudo-labels (self-labels, paper Table 6) or ground-truth classes (concepts → labels, App. D.1).

    Parameters
    ----------
    labels : (N,) int, class ids in ``0 … n_classes-1``.
    concepts : ConceptBank or CSR matrix, (N, M) binary.
    seed : seed of the split and of the probe's shuffle order.
    n_classes : K (default: ``labels.max() + 1``).
    probe : the probe's schedule (default: the paper's).
    """
    matrix = concepts.matrix if isinstance(concepts, ConceptBank) else sp.csr_matrix(concepts)
    labels = np.asarray(labels, dtype=np.int64)
    if matrix.shape[0] != len(labels):
        raise QRProbeInputError(f"{len(labels)} labels for {matrix.shape[0]} concept rows")
    if len(labels) == 0 or labels.min() < 0:
        raise QRProbeInputError("labels must be a non-empty array of non-negative integers")
    k = int(n_classes if n_classes is not None else labels.max() + 1)
    split = stratified_split(labels, seed, test_fraction, val_fraction)
    model = ReverseProbe(probe, seed=seed, device=device, progress=progress)
    model.fit(matrix[split.train], labels[split.train], matrix[split.val], labels[split.val], n_classes=k)
    metric_scores, details = score_details(labels[split.test], model.predict_log_proba(matrix[split.test]))
    scores = {**metric_scores, "best_epoch": model.best_epoch_, "n_concepts_kept": model.n_concepts_kept_,
              "n_train": len(split.train),
              "n_val": len(split.val), "n_test": len(split.test), "small_clusters": list(split.small_clusters)}
    return ProbeOutcome(scores, split, model, model.predict(matrix), details)


def probe_all(quant: Quantization, concepts: ConceptBank, progress: bool = False) -> list[ProbeOutcome]:
    """One probe per clustering of ``quant`` on ``concepts`` (rows as ``quant.features``), seeds as the
    clusterings'."""
    cfg = quant.config
    outcomes = []
    for r, (labels, s) in enumerate(zip(quant.labels, quant.seeds, strict=True)):
        what = f"probe K={quant.k}, clustering {r + 1}/{len(quant.seeds)} (seed {s})"
        t = time.perf_counter()
        with scope(what):
            outcome = probe_labels(labels, concepts, seed=s, n_classes=quant.k, probe=cfg.probe,
                                   test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction,
                                   device=cfg.device, progress=progress)
        sc = outcome.scores
        note(f"{what}: NMI {sc['nmi']:.2f}  top-1 {sc['top1']:.2f}  MI {sc['mi_bits']:.3f} bits, "
                       f"in {format_seconds(time.perf_counter() - t)}", progress)
        outcomes.append(outcome)
    return outcomes


def summary_of(outcomes: list[ProbeOutcome]) -> dict[str, dict]:
    """``{metric: {mean, std, values}}`` over the outcomes (population std, as in Result)."""
    return summarize([o.scores for o in outcomes])


__all__ = ["Inputs", "ProbeOutcome", "Quantization", "prepare_inputs", "probe_all", "probe_labels", "quantize",
           "read_quantization", "summary_of"]
