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
``top1_corrected``    top-1 − the majority predictor's top-1 (the largest training cluster)
``map_corrected``     mAP − the mAP of constant scores (each cluster's AP is its test prevalence: ``100/C``)
``mi_corrected_bits`` MI estimate − the MI estimate of the cluster prior the probe starts from (its epoch 0,
                      add-½ smoothed training frequencies): the cross-entropy the concepts save, in bits
==================== =========================================================================================

A probe that kept the cluster prior scores exactly 0 on every corrected metric (up to float rounding): it
predicts the majority cluster for every image, which has no mutual information with the truth and the
majority's top-1, constant scores and the prior's cross-entropy. Every quantity is a weighted mean over test
images (or a function of weighted counts), so the bootstrap replicates (:mod:`.bootstrap`) recompute them
under the same weights as the raw scores; a corrected score's interval comes from the same replicates.
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
              "top1_corrected": "top-1 of the majority cluster", "map_corrected": "mAP of constant scores",
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

    @classmethod
    def from_train(cls, train_labels: np.ndarray, n_classes: int) -> ChanceReference:
        counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
        smoothed = counts + PRIOR_PSEUDOCOUNT
        return cls(int(np.argmax(counts)), np.log(smoothed / smoothed.sum()) / _LN2)

    def top1_gain(self, details: TestDetails) -> np.ndarray:
        """(n,) per test image: correct by the probe (0/1) minus correct by the majority predictor (0/1)."""
        y = details.y_true
        return (y == details.y_pred).astype(np.float64) - (y == self.majority).astype(np.float64)

    def ce_saving_bits(self, details: TestDetails) -> np.ndarray:
        """(n,) per test image: the prior's cross-entropy minus the probe's, in bits."""
        return -self.log2_prior[details.y_true] - details.ce_bits


def corrected_scores(details: TestDetails, scores: dict, ref: ChanceReference) -> dict[str, float]:
    """The corrected scores of one scored split (``scores``: its raw scores, ×100 and bits)."""
    y, pred = details.y_true, details.y_pred
    h_true, h_pred = _entropy_nats(y), _entropy_nats(pred)
    norm = (h_true + h_pred) / 2.0
    chance_nmi = 100.0 * details.expected_mi_nats / norm if norm > 0 else 0.0
    return {"nmi_corrected": float(scores["nmi"]) - chance_nmi,
            "top1_corrected": 100.0 * float(ref.top1_gain(details).mean()),
            "map_corrected": float(scores["map"]) - 100.0 / len(np.unique(y)),
            "mi_corrected_bits": float(ref.ce_saving_bits(details).mean())}


def _entropy_nats(codes: np.ndarray) -> float:
    p = np.unique(codes, return_counts=True)[1] / len(codes)
    return float(-np.sum(p * np.log(p)))


__all__ = ["CORRECTED", "CORRECTED_METRICS", "REFERENCES", "ChanceReference", "corrected_name",
           "corrected_scores"]
