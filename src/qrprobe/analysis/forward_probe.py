"""Forward linear probes (paper Fig. 2): features → concept, beside the reverse probe's view.

A forward probe is a linear classifier from the (standardized) features to one binary concept, or to the
ground-truth labels. The paper's Fig. 2 contrasts it with reverse probing: a concept that is not linearly
separable in feature space (an XOR of two directions) defeats the forward probe, yet the clusters of the
representation may each be pure in it, so the reverse probe still explains the clusters.

To show where the two views disagree, every concept also gets a *cluster readout*: predict the concept of a
test image from the share of training images of its cluster that show it (the quantized representation read
out with no linearity constraint). ``gap_bacc`` = cluster readout − forward linear balanced accuracy; a large
positive gap marks a concept the clusters capture but a linear probe on the features does not.

Decided details: per-concept split stratified on the concept (``test_fraction``, seeded); scikit-learn
``LogisticRegression`` with balanced class weights; balanced accuracy at probability 0.5 for the linear probe
and at the concept's training base rate for the cluster readout; AP from ``qrprobe.metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..concepts.bank import ConceptBank
from ..engine.kmeans.quantize import Standardizer
from ..engine.protocol import prepare_inputs
from ..errors import QRProbeInputError
from ..metrics import adjusted_mutual_info, average_precision, normalized_mutual_info, top1_accuracy


@dataclass
class ForwardProbe:
    """Per-concept forward-probe scores.

    ``table`` columns: ``concept``, ``group``, ``frequency`` (share of images), ``linear_bacc``,
    ``linear_ap`` and, with clusterings, ``cluster_bacc``, ``cluster_ap``, ``gap_bacc`` (all ×100).
    ``skipped``: concepts left out for having fewer than ``min_positives`` positives or negatives.
    """

    table: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Mean of each score column over the probed concepts."""
        cols = [c for c in ("linear_bacc", "linear_ap", "cluster_bacc", "cluster_ap", "gap_bacc")
                if c in self.table.columns]
        return {c: float(self.table[c].mean()) for c in cols}


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    y = np.asarray(y, bool)
    pred = np.asarray(pred, bool)
    return 50.0 * (float(pred[y].mean()) + float((~pred[~y]).mean()))


def _stratified_holdout(y: np.ndarray, test_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean test mask with ``test_fraction`` of the positives and of the negatives."""
    test = np.zeros(len(y), bool)
    for value in (0, 1):
        idx = np.flatnonzero(y == value)
        m = max(1, round(len(idx) * test_fraction))
        test[rng.choice(idx, m, replace=False)] = True
    return test


def forward_probe(features, concepts: ConceptBank, *, clusterings: np.ndarray | None = None,
                  groups: Sequence[str] | None = None, max_concepts: int | None = None, min_positives: int = 5,
                  test_fraction: float = 0.2, seed: int = 0, c: float = 1.0, max_iter: int = 500) -> ForwardProbe:
    """Forward linear probe for each concept, with the cluster readout beside it.

    Parameters
    ----------
    features : (N, D) array, FeatureStore or path.
    concepts : ConceptBank with N rows.
    clusterings : optional (N,) or (R, N) cluster ids of the same images (e.g. ``Result.clusterings``); the
        cluster readout uses the first clustering.
    groups : probe only these concept groups. max_concepts : probe at most this many (most frequent first).
    min_positives : skip concepts with fewer positives (or negatives) than this.
    test_fraction, seed : the held-out share per concept and the seed of its draw.
    c, max_iter : inverse L2 strength and iterations of the logistic regression.

    Returns
    -------
    ForwardProbe
    """
    from sklearn.linear_model import LogisticRegression

    inputs = prepare_inputs(features, concepts)
    feats, bank = inputs.features, inputs.concepts
    if groups is not None:
        bank = bank.select_groups(groups)
    z = Standardizer().fit_transform(feats.array)
    labels = None
    if clusterings is not None:
        labels = np.asarray(clusterings)
        labels = labels[0] if labels.ndim == 2 else labels
        if len(labels) != z.shape[0]:
            raise QRProbeInputError(f"clusterings cover {len(labels)} images, the features {z.shape[0]}")
    matrix = bank.matrix.tocsc()
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    n = z.shape[0]
    usable = (counts >= min_positives) & (n - counts >= min_positives)
    order = np.flatnonzero(usable)
    order = order[np.argsort(-counts[order], kind="stable")]
    if max_concepts is not None:
        order = order[:max_concepts]
    skipped = [bank.names[j] for j in np.flatnonzero(~usable)]
    rows = []
    for j in order:
        y = matrix[:, int(j)].toarray().ravel().astype(bool)
        rng = np.random.default_rng([seed, int(j)])
        test = _stratified_holdout(y, test_fraction, rng)
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=max_iter)
        clf.fit(z[~test], y[~test])
        score = clf.decision_function(z[test])
        row = {"concept": bank.names[j], "group": bank.concepts["group"].iloc[j], "frequency": 100 * counts[j] / n,
               "linear_bacc": _balanced_accuracy(y[test], score > 0),
               "linear_ap": 100 * average_precision(y[test], score)}
        if labels is not None:
            k = int(labels.max()) + 1
            pos = np.bincount(labels[~test], weights=y[~test].astype(float), minlength=k)
            tot = np.bincount(labels[~test], minlength=k)
            base = float(y[~test].mean())
            share = np.where(tot > 0, pos / np.maximum(tot, 1), base)[labels[test]]
            row["cluster_bacc"] = _balanced_accuracy(y[test], share > base)
            row["cluster_ap"] = 100 * average_precision(y[test], share)
            row["gap_bacc"] = row["cluster_bacc"] - row["linear_bacc"]
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(table) and "gap_bacc" in table.columns:
        table = table.sort_values("gap_bacc", ascending=False, kind="stable").reset_index(drop=True)
    config = {"groups": None if groups is None else list(groups), "max_concepts": max_concepts,
              "min_positives": min_positives, "test_fraction": test_fraction, "seed": seed, "C": c,
              "max_iter": max_iter, "cluster_readout": labels is not None}
    return ForwardProbe(table, skipped, config)


def forward_probe_labels(features, labels: Sequence, *, test_fraction: float = 0.2, seed: int = 0,
                         c: float = 1.0, max_iter: int = 500) -> dict[str, float]:
    """Multinomial linear probe from standardized features to ``labels`` (N,): top-1, NMI, AMI on a held-out
    split (stratified by label where possible), ×100."""
    from sklearn.linear_model import LogisticRegression

    from ..engine.inputs import load_features
    from .self_labels import encode_labels

    x = load_features(features).array
    codes, _ = encode_labels(labels)
    if len(codes) != x.shape[0]:
        raise QRProbeInputError(f"{len(codes)} labels for {x.shape[0]} feature rows")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(codes), bool)
    for value in np.unique(codes):
        idx = np.flatnonzero(codes == value)
        m = round(len(idx) * test_fraction)
        if m:
            test[rng.choice(idx, m, replace=False)] = True
    z = Standardizer().fit_transform(x)
    clf = LogisticRegression(C=c, max_iter=max_iter).fit(z[~test], codes[~test])
    pred = clf.predict(z[test])
    return {"top1": 100 * top1_accuracy(codes[test], pred), "nmi": 100 * normalized_mutual_info(codes[test], pred),
            "ami": 100 * adjusted_mutual_info(codes[test], pred), "n_test": int(test.sum())}
