"""``evaluate``: R clusterings × (quantize, split, probe, score) → :class:`qrprobe.results.Result`.

Clustering ``r`` uses the seed ``seed + r`` for its K-means initialisations, its split and its probe's shuffle
order, so a run is fully determined by ``seed`` (on the CPU; CUDA's atomic additions in the K-means update may
differ in the last bits between GPU runs).
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .._versions import library_versions
from ..concepts.bank import ConceptBank
from ..errors import QRProbeInputError
from ..features.store import FeatureStore
from ..metrics import score_predictions
from ..results import Result, summarize
from .inputs import Features, align, load_features
from .probe import ProbeConfig, ReverseProbe
from .quantize import KMeans, Standardizer, check_finite
from .split import Split, stratified_split


@dataclass(frozen=True)
class ProtocolConfig:
    """Every parameter of the protocol; the defaults are the paper's (``docs/protocol.md``)."""

    k: int = 1000
    n_clusterings: int = 5
    seed: int = 0
    n_iter: int = 100
    n_restarts: int = 5
    max_train_points: int | None = None
    kmeans_backend: str = "torch"
    kmeans_init: str = "random"
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    device: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.n_clusterings, (int, np.integer)) or self.n_clusterings < 1:
            raise QRProbeInputError(f"--clusterings must be a positive integer, got {self.n_clusterings!r}")
        if isinstance(self.probe, dict):
            object.__setattr__(self, "probe", ProbeConfig(**self.probe))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ProbeOutcome:
    """One labelling probed: its scores, the split, the trained probe and its predictions for all rows."""

    scores: dict
    split: Split
    probe: ReverseProbe
    predictions: np.ndarray


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
    """
    matrix = concepts.matrix if isinstance(concepts, ConceptBank) else sp.csr_matrix(concepts)
    labels = np.asarray(labels, dtype=np.int64)
    if matrix.shape[0] != len(labels):
        raise QRProbeInputError(f"{len(labels)} labels for {matrix.shape[0]} concept rows")
    if labels.min() < 0:
        raise QRProbeInputError("labels must be non-negative integers")
    k = int(n_classes if n_classes is not None else labels.max() + 1)
    split = stratified_split(labels, seed, test_fraction, val_fraction)
    model = ReverseProbe(probe, seed=seed, device=device, progress=progress)
    model.fit(matrix[split.train], labels[split.train], matrix[split.val], labels[split.val], n_classes=k)
    scores = score_predictions(labels[split.test], model.predict_log_proba(matrix[split.test]))
    scores.update(best_epoch=model.best_epoch_, n_train=len(split.train), n_val=len(split.val),
                  n_test=len(split.test), small_clusters=list(split.small_clusters))
    return ProbeOutcome(scores, split, model, model.predict(matrix))


def evaluate(features: np.ndarray | FeatureStore | str | os.PathLike | Features,
             concepts: ConceptBank, *, k: int = 1000, n_clusterings: int = 5, seed: int = 0,
             config: ProtocolConfig | None = None, name: str = "", progress: bool = False,
             keep_arrays: bool = True) -> Result:
    """Quantized reverse probing of one representation.

    Parameters
    ----------
    features : (N, D) array, FeatureStore, path of either, or :class:`~qrprobe.engine.inputs.Features`.
    concepts : ConceptBank with N rows (matched by image id or position, see ``qrprobe.engine.inputs``).
    k, n_clusterings, seed : shortcuts for the same fields of ``config`` (ignored when ``config`` is given).
    config : the full protocol (defaults: the paper's).
    name : label of this representation in tables.
    keep_arrays : keep cluster ids, splits, predictions, probe weights and centroids in the Result.

    Returns
    -------
    Result with per-clustering scores and their mean ± std (population std over clusterings).
    """
    cfg = config or ProtocolConfig(k=k, n_clusterings=n_clusterings, seed=seed)
    feats = features if isinstance(features, Features) else load_features(features)
    feats, bank, matched_by = align(feats, concepts)
    x = feats.array
    check_finite(x, "FEATURES")
    bank.check_usable()
    n = x.shape[0]
    KMeans(cfg.k, n_iter=cfg.n_iter, n_restarts=cfg.n_restarts, backend=cfg.kmeans_backend,
           init=cfg.kmeans_init, max_train_points=cfg.max_train_points)._check(n)

    standardizer = Standardizer().fit(x)
    z = standardizer.transform(x)  # the only N x D array held in memory: x is an array, memory map or shards
    seeds = [cfg.seed + r for r in range(cfg.n_clusterings)]
    per, arrays = [], {name: [] for name in ("clusterings", "splits", "predictions", "coef", "bias", "centroids")}
    for r, s in enumerate(seeds):
        km = KMeans(cfg.k, n_iter=cfg.n_iter, n_restarts=cfg.n_restarts, seed=s,
                    max_train_points=cfg.max_train_points, init=cfg.kmeans_init, backend=cfg.kmeans_backend,
                    device=cfg.device, progress=progress).fit(z)
        outcome = probe_labels(km.labels_, bank, seed=s, n_classes=cfg.k, probe=cfg.probe,
                               test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction,
                               device=cfg.device, progress=progress)
        n_nonempty = len(np.unique(km.labels_))
        per.append({"clustering": r, "seed": s, "k": cfg.k, **outcome.scores, "inertia": km.inertia_,
                    "restart_inertias": list(km.result_.inertias), "kmeans_iterations": km.result_.n_iter,
                    "nonempty_clusters": n_nonempty})
        if progress:
            sc = outcome.scores
            print(f"clustering {r + 1}/{cfg.n_clusterings} (seed {s}): NMI {sc['nmi']:.2f}  "
                  f"top-1 {sc['top1']:.2f}  MI {sc['mi_bits']:.3f} bits", file=sys.stderr, flush=True)
        if keep_arrays:
            arrays["clusterings"].append(km.labels_.astype(np.int32))
            arrays["splits"].append(outcome.split.as_codes(n))
            arrays["predictions"].append(outcome.predictions.astype(np.int32))
            arrays["coef"].append(outcome.probe.coef_)
            arrays["bias"].append(outcome.probe.intercept_)
            arrays["centroids"].append(km.cluster_centers_)

    warnings = _provenance_warnings(bank, feats.provenance)
    for message in warnings:
        print(f"warning: {message}", file=sys.stderr, flush=True)
    result = Result(
        summary=summarize(per), per_clustering=per, config=cfg.to_dict(), seeds=seeds,
        versions=library_versions(), name=name or _default_name(feats.provenance),
        inputs={"features": {**feats.provenance, "n": n, "dim": int(x.shape[1])},
                "concepts": {"source": bank.info.get("source"), "n_concepts": bank.n_concepts,
                             "groups": bank.groups, "nnz": int(bank.matrix.nnz),
                             "content_hash": bank.content_hash()},
                "matched_by": matched_by, "warnings": warnings},
        image_ids=feats.image_ids, paths=feats.paths, concepts=bank.concepts.copy(),
        standardizer={"mean": standardizer.mean_, "scale": np.where(np.isinf(standardizer.scale_), 0.0,
                                                                    standardizer.scale_)},
    )
    if keep_arrays:
        for key, values in arrays.items():
            setattr(result, key, np.stack(values))
    return result


def _provenance_warnings(bank: ConceptBank, provenance: dict) -> list[str]:
    """Warnings about the inputs' provenance: an expert that is the network under test (circularity)."""
    if not provenance.get("model") or not bank.info.get("experts"):
        return []
    from ..experts.label import circularity_warnings

    return circularity_warnings(bank, provenance["model"])


def _default_name(provenance: dict) -> str:
    """The model of a feature store, else the stem of the features file, else ``"features"``."""
    if provenance.get("model"):
        return str(provenance["model"])
    if provenance.get("path"):
        return Path(provenance["path"]).stem
    return "features"


class ReverseProbing:
    """Scikit-learn-style estimator around :func:`evaluate`.

    ``ReverseProbing(k=1000, n_clusterings=5, seed=0, **protocol).fit(features, concepts)`` sets ``result_``
    (a :class:`~qrprobe.results.Result`) and ``summary_``; ``score()`` returns the mean NMI.
    """

    def __init__(self, k: int = 1000, n_clusterings: int = 5, seed: int = 0, *, n_iter: int = 100,
                 n_restarts: int = 5, max_train_points: int | None = None, kmeans_backend: str = "torch",
                 kmeans_init: str = "random", test_fraction: float = 0.2, val_fraction: float = 0.2,
                 probe: ProbeConfig | None = None, device: str = "auto", progress: bool = False) -> None:
        self.k = k
        self.n_clusterings = n_clusterings
        self.seed = seed
        self.n_iter = n_iter
        self.n_restarts = n_restarts
        self.max_train_points = max_train_points
        self.kmeans_backend = kmeans_backend
        self.kmeans_init = kmeans_init
        self.test_fraction = test_fraction
        self.val_fraction = val_fraction
        self.probe = probe
        self.device = device
        self.progress = progress

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("k", "n_clusterings", "seed", "n_iter", "n_restarts",
                                              "max_train_points", "kmeans_backend", "kmeans_init", "test_fraction",
                                              "val_fraction", "probe", "device", "progress")}

    def protocol(self) -> ProtocolConfig:
        params = self.get_params()
        params.pop("progress")
        params["probe"] = params["probe"] or ProbeConfig()
        return ProtocolConfig(**params)

    def fit(self, features, concepts: ConceptBank, name: str = "") -> ReverseProbing:
        self.result_ = evaluate(features, concepts, config=self.protocol(), name=name, progress=self.progress)
        self.summary_ = self.result_.summary
        return self

    def score(self, metric: str = "nmi") -> float:
        return self.result_.mean(metric)


__all__ = ["ProbeOutcome", "ProtocolConfig", "ReverseProbing", "evaluate", "probe_labels"]
