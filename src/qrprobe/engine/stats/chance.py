"""Chance levels: the permutation null, simple baselines, and when the test split is too small to mean much.

- **Null** (:func:`null_outcomes`): the same protocol on concepts shuffled across images. The clusterings and
  splits are reused; only the probe is trained again, on concept rows permuted by a seeded permutation, so
  every association between concepts and clusters is destroyed while the concepts' frequencies, the cluster
  sizes and the probe's schedule stay as they were. Its scores are what the protocol reports when the
  concepts carry no information about the clusters (including what training noise and overfitting add).
- **Baselines** (:func:`baselines`), without training: the majority-cluster predictor (top-1: the share of
  the largest training cluster among the test images; mAP: constant scores, so each cluster's AP is its test
  prevalence), the cluster prior (cross-entropy of the add-½ smoothed training cluster frequencies, the probe's
  epoch 0, hence the MI estimate of a probe that ignores the concepts), and shuffled predictions (NMI and AMI
  of the probe's predictions permuted across test images: the expected value over all permutations, which is
  AMI's correction term; it is 0 for AMI by construction).
- **Small samples** (:func:`small_sample_warnings`): see ``docs/statistics.md`` for the thresholds and why.
"""

from __future__ import annotations

import time

import numpy as np

from ...concepts.bank import ConceptBank
from ...metrics import TestDetails
from ...progress import scope
from ..protocol import ProbeOutcome, Quantization, probe_labels
from .corrected import PRIOR_PSEUDOCOUNT

_LN2 = float(np.log(2.0))
NULL_STREAM = 0x5EED_0001  # entropy added to the clustering seed for the permutations of the null
NMI_CHANCE_LIMIT = 10.0  # NMI points of chance level above which NMI is flagged
MIN_TEST_PER_CLUSTER = 10  # test images per cluster below which per-cluster metrics (mAP) are flagged

BASELINE_KINDS = {
    "nmi": "shuffled predictions", "nmi_geometric": "shuffled predictions", "nmi_max": "shuffled predictions",
    "ami": "shuffled predictions", "top1": "majority cluster", "map": "majority cluster (constant scores)",
    "mi_bits": "cluster prior", "cross_entropy_bits": "cluster prior", "mi_ratio": "cluster prior",
}


def null_permutation(n: int, seed: int, repeat: int) -> np.ndarray:
    """The permutation of the ``n`` concept rows used by null repeat ``repeat`` of the clustering with ``seed``."""
    return np.random.default_rng([int(seed), NULL_STREAM, int(repeat)]).permutation(n)


def null_outcomes(quant: Quantization, concepts: ConceptBank, repeats: int,
                  progress: bool = False) -> tuple[list[list[ProbeOutcome]], float]:
    """Probe every clustering of ``quant`` ``repeats`` times on concept rows shuffled across images.

    Returns ``(outcomes[r][j], seconds)``: clustering ``r``, repeat ``j``, with the clustering's split and probe
    seed; and the wall-clock time spent.
    """
    cfg = quant.config
    start = time.perf_counter()
    matrix = concepts.matrix
    out = []
    for r, (labels, s) in enumerate(zip(quant.labels, quant.seeds, strict=True)):
        runs = []
        for j in range(repeats):
            shuffled = matrix[null_permutation(matrix.shape[0], s, j)]
            with scope(f"null probe {j + 1}/{repeats}, clustering {r + 1}/{len(quant.seeds)}"):
                runs.append(probe_labels(labels, shuffled, seed=s, n_classes=quant.k, probe=cfg.probe,
                                         test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction,
                                         device=cfg.device, progress=progress))
        out.append(runs)
    return out, time.perf_counter() - start


def _entropy_nats(codes: np.ndarray) -> float:
    p = np.unique(codes, return_counts=True)[1] / len(codes)
    return float(-np.sum(p * np.log(p)))


def baselines(details: TestDetails, train_labels: np.ndarray, n_classes: int) -> dict[str, float]:
    """The baselines of one scored split (see the module docstring), keyed as the metrics (×100, bits)."""
    y, pred = details.y_true, details.y_pred
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    majority = int(np.argmax(counts))
    prior = (counts + PRIOR_PSEUDOCOUNT) / (counts + PRIOR_PSEUDOCOUNT).sum()  # the probe's epoch 0
    h_true, h_pred = _entropy_nats(y), _entropy_nats(pred)
    e = details.expected_mi_nats
    out = {"top1": 100.0 * float(np.mean(y == majority)), "map": 100.0 / len(np.unique(y))}
    with np.errstate(divide="ignore"):
        ce = float(-np.mean(np.log(prior[y]))) / _LN2
    h_bits = h_true / _LN2
    out.update(cross_entropy_bits=ce, mi_bits=h_bits - ce,
               mi_ratio=100.0 * (h_bits - ce) / h_bits if h_bits > 0 else float("nan"))
    for name, norm in (("nmi", (h_true + h_pred) / 2), ("nmi_geometric", np.sqrt(h_true * h_pred)),
                       ("nmi_max", max(h_true, h_pred))):
        out[name] = 100.0 * e / norm if norm > 0 else float("nan")
    out["ami"] = 0.0
    return out


def small_sample_warnings(summary: dict, per_clustering: list[dict]) -> list[tuple[str, str]]:
    """``(metric, message)`` for each metric the test split is too small to support (``docs/statistics.md``)."""
    out = []
    n_test = np.mean([r["n_test"] for r in per_clustering])
    present = np.mean([r.get("test_clusters", r.get("nonempty_clusters", 0)) or 1 for r in per_clustering])
    per_cluster = n_test / present
    nmi = summary.get("nmi", {})
    chance = nmi.get("baseline")
    if chance is not None and np.isfinite(chance) and chance >= NMI_CHANCE_LIMIT:
        out.append(("nmi", f"NMI: shuffled predictions already score {chance:.1f} (of {nmi['mean']:.1f}); with "
                           f"{per_cluster:.0f} test images per cluster the information between two labellings "
                           f"is inflated by ≈ (K−1)(C−1)/(2n) nats; read NMI against this chance level, or AMI"))
    if per_cluster < MIN_TEST_PER_CLUSTER:
        out.append(("map", f"mAP: {per_cluster:.1f} test images per cluster (fewer than "
                           f"{MIN_TEST_PER_CLUSTER}): each cluster's AP rests on a handful of positives"))
    return out


__all__ = ["BASELINE_KINDS", "MIN_TEST_PER_CLUSTER", "NMI_CHANCE_LIMIT", "baselines", "null_outcomes",
           "null_permutation", "small_sample_warnings"]
