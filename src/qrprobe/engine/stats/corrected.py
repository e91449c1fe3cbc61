"""Chance-corrected scores: each metric minus what the same clustering scores without any information.

A raw score mixes two things: how well the concepts predict the clusters, and how much the clustering's own
shape (how many clusters the test split holds, how unequal their sizes are) gives away for free. Two
representations with the same information about the concepts but different cluster-size distributions get
different raw NMI and top-1. The corrected score removes, per clustering, the part a predictor with no
information would get (``docs/statistics.md`` states the estimand):

==================== =========================================================================================
``nmi_corrected``     NMI − NMI of shuffled predictions (the probe's predictions permuted across test images:
                      ``100·E[MI] / mean(H)`` with ``E[MI]`` AMI's expected mutual information)
``ami``               AMI (already corrected: 0 at chance by construction)
``top1_corrected``    top-1 − top-1 of shuffled predictions, ``100·Σ_c p_true(c)·p_pred(c)`` (Cohen's κ's
                      chance agreement); for a probe that predicts one cluster for every image (one that
                      kept the prior: the largest training cluster) this is the majority baseline
``map_corrected``     mAP − mAP of shuffled scores: for constant scores (a probe that kept the prior) each
                      cluster's AP is its test prevalence (``100/C`` on average); for scores that rank the
                      images, the expected AP of a random ranking, ``(H_n + (P−1)/(n−1)·(n − H_n)) / n`` for a
                      cluster with P of the n test images (``H_n``: the n-th harmonic number)
``mi_corrected_bits`` MI estimate − the MI estimate of the cluster prior the probe starts from (its epoch 0,
                      add-½ smoothed training frequencies): the cross-entropy the concepts save, in bits
==================== =========================================================================================

Each chance level is what the same kind of predictor scores on this test split when the concepts carry no
information: predictions or scores permuted across the test images. A probe that kept the cluster prior scores
exactly 0 on every corrected metric (it predicts the largest training cluster for every image with constant
scores and the prior's cross-entropy; the float rounding between the probe's single-precision prior and this
module's is set to 0). Top-1, its chance level and MI are weighted means over test images (or functions of
weighted counts), so the bootstrap replicates (:mod:`.bootstrap`) recompute them under the same weights as the
raw scores; NMI's and mAP's chance levels are kept at their unweighted values in every replicate (as AMI's
correction term). A corrected score's interval comes from the same replicates as the raw score's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...metrics import TestDetails

#: the corrected counterpart of each headline metric (AMI is its own)
CORRECTED = {"nmi": "nmi_corrected", "ami": "ami", "top1": "top1_corrected", "map": "map_corrected",
             "mi_bits": "mi_corrected_bits"}
#: the corrected metrics that are not raw metrics too
CORRECTED_METRICS = ("nmi_corrected", "top1_corrected", "map_corrected", "mi_corrected_bits")
#: what each corrected metric subtracts
REFERENCES = {"nmi_corrected": "NMI of shuffled predictions", "ami": "expected MI (AMI's own correction)",
              "top1_corrected": "top-1 of shuffled predictions (the majority's for a single predicted cluster)",
              "map_corrected": "mAP of shuffled scores (constant scores: the prevalences)",
              "mi_corrected_bits": "MI estimate of the cluster prior"}
PRIOR_PSEUDOCOUNT = 0.5  # as the probe's epoch 0 (engine.probe.reverse_probe.PRIOR_PSEUDOCOUNT)
_LN2 = float(np.log(2.0))


def corrected_name(metric: str) -> str:
    """The corrected counterpart of ``metric`` (``nmi`` → ``nmi_corrected``); a metric without one unchanged."""
    return CORRECTED.get(metric, metric)


@dataclass(frozen=True)
class ChanceReference:
    """What a predictor without information knows about one clustering: its training clusters.

    ``majority``: the largest training cluster (ties: the lowest id, as ``numpy.argmax``);
    ``log2_prior``: (K,) log₂ of the add-½ smoothed training frequencies (the probe's epoch 0).
    """

    majority: int
    log2_prior: np.ndarray
    kept_prior: bool = False

    @classmethod
    def from_train(cls, train_labels: np.ndarray, n_classes: int, kept_prior: bool = False) -> ChanceReference:
        """``kept_prior``: the probe is the prior itself (its scores are constant; corrected scores are 0)."""
        counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
        smoothed = counts + PRIOR_PSEUDOCOUNT
        return cls(int(np.argmax(counts)), np.log(smoothed / smoothed.sum()) / _LN2, bool(kept_prior))

    def ce_saving_bits(self, details: TestDetails) -> np.ndarray:
        """(n,) per test image: the prior's cross-entropy minus the probe's, in bits (0 for the prior itself)."""
        if self.kept_prior:
            return np.zeros(len(details.y_true))
        return -self.log2_prior[details.y_true] - details.ce_bits

    def map_chance(self, details: TestDetails) -> float:
        """The mAP (×100) of the probe's scores permuted across the test images (see the module docstring)."""
        counts = np.unique(details.y_true, return_counts=True)[1].astype(np.float64)
        n = float(len(details.y_true))
        if self.kept_prior or n < 2:
            return 100.0 / len(counts)
        h_n = float(np.sum(1.0 / np.arange(1, int(n) + 1)))
        return 100.0 * float(np.mean((h_n + (counts - 1.0) / (n - 1.0) * (n - h_n)) / n))


def top1_chance(details: TestDetails, weights: np.ndarray | None = None) -> np.ndarray:
    """Top-1 (×100) of shuffled predictions, ``100·Σ_c p_true(c)·p_pred(c)`` under each column of ``weights``
    (n, b) (None: unweighted), shape (b,)."""
    w = np.ones((len(details.y_true), 1)) if weights is None else np.asarray(weights, dtype=np.float64)
    k = int(max(details.y_true.max(), details.y_pred.max())) + 1
    true = np.zeros((k, w.shape[1]))
    pred = np.zeros((k, w.shape[1]))
    np.add.at(true, details.y_true, w)
    np.add.at(pred, details.y_pred, w)
    total = w.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * (true * pred).sum(axis=0) / total**2


def corrected_scores(details: TestDetails, scores: dict, ref: ChanceReference) -> dict[str, float]:
    """The corrected scores of one scored split (``scores``: its raw scores, ×100 and bits)."""
    y, pred = details.y_true, details.y_pred
    h_true, h_pred = _entropy_nats(y), _entropy_nats(pred)
    norm = (h_true + h_pred) / 2.0
    chance_nmi = 100.0 * details.expected_mi_nats / norm if norm > 0 else 0.0
    return {"nmi_corrected": float(scores["nmi"]) - chance_nmi,
            "top1_corrected": float(scores["top1"]) - float(top1_chance(details)[0]),
            "map_corrected": float(scores["map"]) - ref.map_chance(details),
            "mi_corrected_bits": float(ref.ce_saving_bits(details).mean())}


def _entropy_nats(codes: np.ndarray) -> float:
    p = np.unique(codes, return_counts=True)[1] / len(codes)
    return float(-np.sum(p * np.log(p)))


__all__ = ["CORRECTED", "CORRECTED_METRICS", "REFERENCES", "ChanceReference", "corrected_name",
           "corrected_scores", "top1_chance"]
