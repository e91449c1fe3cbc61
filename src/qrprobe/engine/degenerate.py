"""Degenerate results: numbers that look like scores but measure nothing, refused or flagged.

A reverse-probing score is only meaningful when there are several clusters to tell apart, concepts that vary
across images, and a test split that holds several clusters. Constant features give one cluster, which NMI,
top-1 and mAP all rate 100 %; a concept present in every image teaches the probe nothing. So:

- refused (:class:`~qrprobe.errors.QRProbeInputError`), because no meaningful number exists:
  a clustering with a single non-empty cluster (:func:`check_quantization`, before any probe is trained), a
  concept matrix none of whose columns varies (``ConceptBank.check_usable``), test splits that each hold a
  single cluster (:func:`result_flags`);
- flagged (:class:`Flag`, level ``"warning"``; recorded in ``results.json`` under ``inputs.flags``, their
  messages also under ``inputs.warnings``, printed by the CLI and shown by the report): fewer non-empty
  clusters than K, one cluster holding ≥ 20 % of the images and ≥ 5× its fair share 1/K (at most 75 %), a
  probe that kept the cluster prior, a top-1 mostly made of its majority baseline, fewer than two test images per
  cluster, a negative mutual-information estimate (the probe does worse than the cluster sizes alone), an
  undefined score, a score whose spread over clusterings is as large as its mean ("NMI 26.76 ± 26.76",
  :func:`spread_flag`);
- noted (level ``"note"``, recorded only): concepts present in every image or in none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..concepts.bank import ConceptBank
from ..errors import QRProbeInputError

#: A cluster holding at least this share of the images, and at least :data:`DOMINANT_FAIR_MULTIPLE` times its
#: fair share 1/K (capped at :data:`DOMINANT_CAP` for small K), makes top-1 and mAP reward predicting it: the
#: majority predictor alone scores its share (:func:`dominant_threshold`).
DOMINANT_SHARE = 0.2
DOMINANT_FAIR_MULTIPLE = 5.0
DOMINANT_CAP = 0.75
#: top-1 is flagged when the majority predictor's top-1 reaches this fraction of it (at least half of the score
#: is what predicting the largest cluster for every image gets) and the probe closes less than
#: :data:`MAJORITY_GAIN` of the gap from the majority's top-1 to 100.
MAJORITY_FRACTION = 0.5
MAJORITY_GAIN = 0.25
PRIOR_KEPT = "probe kept the cluster prior: the concepts predict nothing beyond cluster sizes"
#: Fewer test images than this per non-empty cluster leave most clusters unscored or scored on one image.
MIN_TEST_PER_CLUSTER = 2
_HEADLINE = ("nmi", "ami", "top1", "map", "mi_bits")


@dataclass(frozen=True)
class Flag:
    """One finding about a result: a stable ``code``, its ``level`` (``warning`` or ``note``), a message for
    people, and the clusterings (0-based) it concerns (empty: the result as a whole)."""

    code: str
    level: str
    message: str
    clusterings: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {"code": self.code, "level": self.level, "message": self.message,
                "clusterings": list(self.clusterings)}


def _which(rows: Sequence[int], total: int) -> str:
    if len(rows) == total:
        return "every clustering" if total > 1 else "the clustering"
    return "clustering" + ("s " if len(rows) > 1 else " ") + ", ".join(str(r) for r in rows)


def dominant_threshold(k: int) -> float:
    """The share of the images above which the largest of ``k`` clusters is flagged as dominant:
    ``max(20 %, min(5/K, 75 %))`` (K = 1000 or 50: 20 %; K = 10: 50 %; K = 4: 75 %)."""
    return max(DOMINANT_SHARE, min(DOMINANT_FAIR_MULTIPLE / k, DOMINANT_CAP))


def check_quantization(labels: np.ndarray, scale: np.ndarray, seeds: Sequence[int]) -> None:
    """Refuse clusterings with a single non-empty cluster: every score of them is 100 % or undefined.

    ``labels`` (R, N) cluster ids; ``scale`` (D,) the standardization's scale (0 for a constant dimension).
    """
    for r, row in enumerate(np.asarray(labels)):
        if np.unique(row).size < 2:
            why = ("every image has the same feature vector (all dimensions are constant)"
                   if not np.any(np.asarray(scale) > 0) else "the features hold a single distinct point")
            raise QRProbeInputError(
                f"FEATURES: K-means put all {row.size} images in one cluster (clustering {r}, seed {seeds[r]}): "
                f"{why}; no reverse-probing score is meaningful (NMI, top-1 and mAP of a single cluster are "
                "100 % by definition)")


def concept_flags(bank: ConceptBank) -> list[Flag]:
    """A note on concepts that cannot inform the probe: present in every image, or in none."""
    counts = np.asarray(bank.matrix.getnnz(axis=0)).ravel()
    always, never = np.flatnonzero(counts == bank.n_images), np.flatnonzero(counts == 0)
    if not len(always) and not len(never):
        return []
    names = bank.display_names()
    parts = []
    if len(always):
        parts.append(f"{len(always)} present in every image (e.g. {[names[i] for i in always[:3]]})")
    if len(never):
        parts.append(f"{len(never)} present in none")
    return [Flag("constant_concepts", "note", f"{len(always) + len(never)} of {bank.n_concepts} concepts carry no "
                 f"information about these images: {'; '.join(parts)}")]


def clustering_flags(labels: np.ndarray, k: int) -> list[Flag]:
    """Warnings about the clusterings ``labels`` (R, N): empty clusters, one dominant cluster."""
    labels = np.asarray(labels)
    total = labels.shape[0]
    empty, dominant, shares = [], [], []
    for r, row in enumerate(labels):
        counts = np.bincount(row, minlength=k)
        if np.count_nonzero(counts) < k:
            empty.append((r, int(np.count_nonzero(counts))))
        share = counts.max() / row.size
        if share >= dominant_threshold(k):
            dominant.append(r)
            shares.append(share)
    flags = []
    if empty:
        fewest = min(m for _, m in empty)
        flags.append(Flag(
            "empty_clusters", "warning",
            f"only {fewest} of K={k} clusters are non-empty in {_which([r for r, _ in empty], total)}: the features "
            "hold fewer distinct points than K, so the scores describe fewer clusters than asked for",
            tuple(r for r, _ in empty)))
    if dominant:
        flags.append(Flag(
            "dominant_cluster", "warning",
            f"one cluster holds {max(shares):.0%} of the images ({max(shares) * k:.0f}× its fair share 1/K, K={k}) "
            f"in {_which(dominant, total)}: predicting it for every image already scores that share of top-1; read "
            "top-1 against its chance level (top-1 − chance) and its majority baseline", tuple(dominant)))
    return flags


def check_test_splits(per_clustering: Sequence[dict], test_clusters: Sequence[int]) -> None:
    """Raise :class:`QRProbeInputError` when every test split holds a single cluster (no score exists)."""
    total = len(per_clustering)
    single = [r for r, c in enumerate(test_clusters) if c < 2]
    if single and len(single) == total:
        raise QRProbeInputError(
            f"the test split of {_which(single, total)} holds a single cluster ({per_clustering[0].get('n_test')} "
            "test images): there is nothing to tell apart and no score is meaningful; use more images or a "
            "smaller K")


def _majority_dominates(top1: float, majority: float) -> bool:
    """Whether most of a top-1 is the majority predictor's: it reaches :data:`MAJORITY_FRACTION` of the score, and
    the probe closes less than :data:`MAJORITY_GAIN` of the gap from the majority to 100."""
    return majority >= MAJORITY_FRACTION * top1 and top1 - majority < MAJORITY_GAIN * (100.0 - majority)


def probe_flags(per_clustering: Sequence[dict]) -> list[Flag]:
    """Warnings about what the probes learned: a probe that kept the cluster prior (``probe_kept_prior``: model
    selection kept epoch 0), one that predicts a single cluster (``predicted_clusters``), and a top-1 mostly made of
    its majority baseline (``top1_baseline``; :data:`MAJORITY_FRACTION`)."""
    total = len(per_clustering)
    flags = []
    kept = [r for r, row in enumerate(per_clustering) if row.get("probe_kept_prior")]
    if kept:
        flags.append(Flag("prior_kept", "warning", f"{PRIOR_KEPT} (in {_which(kept, total)}); its scores are "
                          "chance levels" + (", shown as 'at chance'" if len(kept) == total else ""), tuple(kept)))
    single = [r for r, row in enumerate(per_clustering)
              if r not in kept and row.get("predicted_clusters", 2) <= 1]
    if single:
        flags.append(Flag("single_prediction", "warning",
                          f"the probe predicts one cluster for every test image in {_which(single, total)}: NMI and "
                          "top-1 are at their chance levels (only mAP and MI see its scores)", tuple(single)))
    low = [r for r, row in enumerate(per_clustering) if r not in kept and "top1_baseline" in row
           and np.isfinite(row["top1_baseline"]) and _majority_dominates(row["top1"], row["top1_baseline"])]
    if low:
        top1 = np.mean([per_clustering[r]["top1"] for r in low])
        base = np.mean([per_clustering[r]["top1_baseline"] for r in low])
        flags.append(Flag("top1_majority", "warning",
                          f"top-1 ({top1:.1f}) is mostly its majority baseline ({base:.1f}: the largest cluster "
                          f"predicted for every image) in {_which(low, total)}: it measures cluster sizes more than "
                          "the concepts; read top-1 − majority", tuple(low)))
    return flags


def score_flags(per_clustering: Sequence[dict], test_clusters: Sequence[int], nonempty: Sequence[int]) -> list[Flag]:
    """Warnings about the scores: tiny or single-cluster test splits, a negative MI estimate, undefined values.

    ``per_clustering``: the scores of each clustering (with ``n_test`` and ``mi_bits``); ``test_clusters``:
    how many clusters each test split holds; ``nonempty``: how many clusters each clustering has.
    Raises :class:`QRProbeInputError` when every test split holds a single cluster.
    """
    total = len(per_clustering)
    check_test_splits(per_clustering, test_clusters)
    single = [r for r, c in enumerate(test_clusters) if c < 2]
    flags = []
    if single:
        flags.append(Flag("test_single_cluster", "warning",
                          f"the test split of {_which(single, total)} holds a single cluster: its scores are not "
                          "meaningful", tuple(single)))
    few = [r for r, row in enumerate(per_clustering)
           if int(row.get("n_test", 0)) < MIN_TEST_PER_CLUSTER * nonempty[r]]
    if few:
        n_test = min(int(per_clustering[r].get("n_test", 0)) for r in few)
        flags.append(Flag("few_test_images", "warning",
                          f"the test split has {n_test} images for {max(nonempty[r] for r in few)} clusters in "
                          f"{_which(few, total)}: most clusters are scored on one image or none, so the scores "
                          "are unreliable; use more images or a smaller K", tuple(few)))
    mi = [float(row["mi_bits"]) for row in per_clustering if np.isfinite(row.get("mi_bits", np.nan))]
    if mi and np.mean(mi) < 0:
        flags.append(Flag("negative_mi", "warning",
                          f"the mutual-information estimate is negative ({np.mean(mi):.3f} bits on average): the "
                          "probe predicts the clusters worse than their sizes alone do, so the concepts show no "
                          "measurable information about them"))
    unstable = spread_flag(per_clustering)
    if unstable is not None:
        flags.append(unstable)
    undefined = sorted({m for row in per_clustering for m in _HEADLINE if m in row and not np.isfinite(row[m])})
    if undefined:
        flags.append(Flag("undefined_score", "warning", f"undefined (NaN) values of {', '.join(undefined)}"))
    return flags


def spread_flag(per_clustering: Sequence[dict]) -> Flag | None:
    """A warning when a headline score varies across the clusterings as much as its mean (std ≥ mean > 0, as
    "NMI 26.76 ± 26.76"): the clusterings disagree so much that the mean describes none of them. None with a
    single clustering (no spread) or when every score is steadier than that."""
    if len(per_clustering) < 2:
        return None
    shaky = []
    for m in _HEADLINE:
        values = np.asarray([float(row[m]) for row in per_clustering if m in row], dtype=float)
        if len(values) < 2 or not np.all(np.isfinite(values)):
            continue
        mean, std = float(values.mean()), float(values.std())
        if mean > 0 and std >= mean:
            shaky.append(f"{m} {mean:.3g} ± {std:.3g}")
    if not shaky:
        return None
    return Flag("spread_as_large_as_mean", "warning",
                f"the scores vary across the {len(per_clustering)} clusterings as much as their mean "
                f"({'; '.join(shaky)}): the clusterings disagree, so the mean describes none of them; use more "
                "images, more clusterings or a smaller K")


def result_flags(labels: np.ndarray, k: int, per_clustering: Sequence[dict], test_clusters: Sequence[int],
                 bank: ConceptBank) -> list[Flag]:
    """Every flag of a result: clusterings (``labels`` (R, N), ``k``), scores and concepts (see the module
    docstring). Raises :class:`QRProbeInputError` where no meaningful number exists."""
    labels = np.asarray(labels)
    nonempty = [int(np.unique(row).size) for row in labels]
    return [*clustering_flags(labels, k), *score_flags(per_clustering, test_clusters, nonempty),
            *probe_flags(per_clustering), *concept_flags(bank)]


def warning_messages(flags: Sequence[Flag]) -> list[str]:
    """The messages of the warning-level flags (what ``inputs.warnings`` lists and the CLI prints)."""
    return [f.message for f in flags if f.level == "warning"]


__all__ = ["DOMINANT_CAP", "DOMINANT_FAIR_MULTIPLE", "DOMINANT_SHARE", "MAJORITY_FRACTION", "MAJORITY_GAIN",
           "MIN_TEST_PER_CLUSTER", "PRIOR_KEPT", "Flag", "check_quantization", "check_test_splits",
           "clustering_flags", "concept_flags", "dominant_threshold", "probe_flags", "result_flags", "score_flags",
           "spread_flag", "warning_messages"]
