"""The statistics of one evaluation: intervals, chance levels, baselines and small-sample warnings.

:func:`result_statistics` turns the probes of every clustering (and, when the protocol asks for them, the
probes of the permutation null) into the fields that :func:`qrprobe.engine.evaluate.assemble_result` adds to a
Result: per-clustering ``<metric>_null`` and ``<metric>_baseline``, per-metric ``ci_low`` / ``ci_high`` /
``null_mean`` / ``above_null`` / ``baseline`` in the summary, the replicate arrays and the ``statistics``
block (``docs/CONTRACTS.md`` lists every field, ``docs/statistics.md`` says how to read them).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ...metrics import TestDetails
from ..protocol import ProbeOutcome, Quantization
from .bootstrap import REPLICATE_METRICS, SCHEME, image_keys, images_fingerprint, split_replicates
from .chance import BASELINE_KINDS, baselines, small_sample_warnings
from .corrected import CORRECTED_METRICS, REFERENCES, ChanceReference, corrected_scores
from .uncertainty import difference_estimate, mean_estimate

LEVEL = 0.95
# the range a metric can take: intervals are clipped to it (a t interval over few clusterings can overshoot)
RANGES = {"nmi": (0.0, 100.0), "nmi_geometric": (0.0, 100.0), "nmi_max": (0.0, 100.0), "ami": (-np.inf, 100.0),
          "top1": (0.0, 100.0), "map": (0.0, 100.0), "cluster_entropy_bits": (0.0, np.inf),
          "cross_entropy_bits": (0.0, np.inf), "mi_ratio": (-np.inf, 100.0), "mi_bits": (-np.inf, np.inf)}
NULL_METHOD = ("the same clusterings, splits and probe schedule, with the concept rows permuted across images "
               "(a seeded permutation per clustering and repeat)")
INTERVAL_METHOD = ("mean ± t·se, se² = variance of the clustering mean under a Poisson bootstrap of the test "
                   "images + between-clustering variance beyond what test sampling explains (docs/statistics.md)")


@dataclass
class Statistics:
    """What :func:`result_statistics` adds to a Result (see the module docstring)."""

    per_clustering: list[dict]
    summary: dict[str, dict]
    info: dict
    replicates: np.ndarray | None = None
    null_replicates: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)


def labels_hash(labels: np.ndarray, image_ids: np.ndarray | None) -> str:
    """A fingerprint of one clustering, independent of the row order (rows sorted by image id): two results
    with equal fingerprints were probed on the same clustering."""
    labels = np.asarray(labels, dtype=np.int64)
    if image_ids is not None:
        labels = labels[np.argsort(np.asarray(image_ids).astype(str), kind="stable")]
    return hashlib.sha256(labels.tobytes()).hexdigest()[:16]


def _finite_or_none(value):
    """Non-finite numbers as None, as results.json stores them (a normal quantile's df is None), so that a
    saved and loaded Result has the same summary."""
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _details(outcome: ProbeOutcome) -> TestDetails:
    """The per-image test quantities that every probe outcome of the protocol records."""
    if outcome.details is None:
        raise ValueError("a probe outcome without its test details (made outside probe_labels?)")
    return outcome.details


def _own(ref: ChanceReference, outcome: ProbeOutcome) -> ChanceReference:
    """The clustering's reference with whether ``outcome``'s probe (e.g. a null repeat's) kept the prior."""
    return replace(ref, kept_prior=kept_prior(outcome))


def _mean_scores(outcomes: list[ProbeOutcome], ref: ChanceReference) -> dict[str, float]:
    scores = [{**o.scores, **corrected_scores(_details(o), o.scores, _own(ref, o))} for o in outcomes]
    return {m: float(np.mean([s[m] for s in scores])) for m in REPLICATE_METRICS}


def kept_prior(outcome: ProbeOutcome) -> bool:
    """Whether a probe learned nothing: model selection on the validation split kept the cluster prior (epoch
    0), so every score is a chance level (its corrected scores are 0)."""
    return bool(getattr(outcome.probe, "selected_prior_", False))


def result_statistics(quant: Quantization, image_ids: np.ndarray | None, outcomes: list[ProbeOutcome],
                      nulls: list[list[ProbeOutcome]] | None = None, null_seconds: float = 0.0, *,
                      n_replicates: int = 0, level: float = LEVEL) -> Statistics:
    """Intervals, null, baselines and warnings of one evaluation.

    Parameters
    ----------
    quant : the clusterings probed; image_ids : (N,) ids of their rows, or None (rows keyed by position).
    outcomes : one probe per clustering; nulls : per clustering, the probes on shuffled concepts (or None).
    null_seconds : time the null took; n_replicates : bootstrap replicates (0: no intervals).
    """
    start = time.perf_counter()
    n = quant.labels.shape[1]
    keys = image_keys(image_ids, n) if n_replicates else None
    per, reps, null_reps = [], [], []
    for r, outcome in enumerate(outcomes):
        d, split = _details(outcome), outcome.split
        ref = ChanceReference.from_train(quant.labels[r][split.train], quant.k, kept_prior(outcome))
        extra = {"test_clusters": len(np.unique(d.y_true)), "labels_hash": labels_hash(quant.labels[r], image_ids),
                 "predicted_clusters": len(np.unique(d.y_pred)), "probe_kept_prior": kept_prior(outcome),
                 **corrected_scores(d, outcome.scores, ref)}
        base = baselines(d, quant.labels[r][split.train], quant.k)
        extra.update({f"{m}_baseline": v for m, v in base.items()})
        if keys is not None:
            reps.append(split_replicates(d, keys[split.test], n_replicates, outcome.scores["map"], reference=ref))
        if nulls:
            runs = nulls[r]
            extra.update({f"{m}_null": v for m, v in _mean_scores(runs, ref).items()})
            if keys is not None:
                null_reps.append(np.mean([split_replicates(_details(o), keys[o.split.test], n_replicates,
                                                           o.scores["map"], reference=_own(ref, o)) for o in runs],
                                          axis=0))
        per.append({k: _finite_or_none(v) for k, v in extra.items()})
    replicates = np.stack(reps) if reps else None
    null_replicates = np.stack(null_reps) if null_reps else None
    scores = [{**o.scores, **e} for o, e in zip(outcomes, per, strict=True)]
    at_chance = all(e["probe_kept_prior"] for e in per)
    summary = {}
    for i, m in enumerate(REPLICATE_METRICS):
        values = np.array([s[m] for s in scores], dtype=np.float64)
        x = replicates[:, i, :] if replicates is not None else None
        entry: dict = {}
        if m in CORRECTED_METRICS:  # the raw metrics' mean, std and values come from results.summarize
            entry.update(mean=float(values.mean()), std=float(values.std()), values=values.tolist(),
                         reference=REFERENCES[m])
        if at_chance:
            entry["at_chance"] = True
        if x is not None:
            est = mean_estimate(values, x, level)
            low, high = RANGES.get(m, (-np.inf, np.inf))
            entry.update(ci_low=float(np.clip(est.ci_low, low, high)), ci_high=float(np.clip(est.ci_high, low, high)),
                         se=est.se, se_images=est.se_images, se_seeds=est.se_seeds, df=est.df)
        if nulls:
            null_values = np.array([s[f"{m}_null"] for s in scores], dtype=np.float64)
            diff = difference_estimate(values, x, null_values,
                                       null_replicates[:, i, :] if null_replicates is not None else None,
                                       shared_clusterings=True, level=level)
            entry.update(null_mean=float(null_values.mean()), null_std=float(null_values.std()),
                         null_values=null_values.tolist(), above_null=diff.mean)
            if x is not None:
                entry.update(above_null_ci_low=diff.ci_low, above_null_ci_high=diff.ci_high,
                             above_null_p=diff.p_value)
        if m in BASELINE_KINDS:
            base_values = np.array([s[f"{m}_baseline"] for s in scores], dtype=np.float64)
            entry.update(baseline=float(base_values.mean()), baseline_kind=BASELINE_KINDS[m])
        summary[m] = {k: _finite_or_none(v) for k, v in entry.items()}
    warnings = []
    for metric, message in small_sample_warnings(
            {m: {**e, "mean": float(np.mean([s[m] for s in scores]))} for m, e in summary.items()},
            [{**o.scores, **e} for o, e in zip(outcomes, per, strict=True)]):
        summary[metric]["warning"] = message
        warnings.append(message)
    info: dict[str, Any] = {"level": level, "intervals": INTERVAL_METHOD,
            "bootstrap": {"replicates": int(n_replicates), "scheme": SCHEME, "metrics": list(REPLICATE_METRICS),
                          "keys": "image_id" if image_ids is not None else "position",
                          "images_hash": images_fingerprint(keys) if keys is not None else None},
            "null": {"repeats": len(nulls[0]) if nulls else 0, "seconds": float(null_seconds),
                     "method": NULL_METHOD if nulls else None},
            "baselines": dict(BASELINE_KINDS), "corrected": dict(REFERENCES), "warnings": warnings,
            "prior_kept": [r for r, e in enumerate(per) if e["probe_kept_prior"]]}
    info["bootstrap"]["seconds"] = time.perf_counter() - start
    return Statistics(per, summary, info, replicates, null_replicates, warnings)


__all__ = ["LEVEL", "RANGES", "Statistics", "labels_hash", "result_statistics"]
