"""How sure a ranking is: paired differences of saved results, adjacent-pair tests, rank agreement of metrics.

Two results pair when they were evaluated on the same images and the same concepts with bootstrap replicates
(``qrprobe evaluate`` stores them in ``replicates.npy``): replicate ``b`` then resampled the same images in
both (:mod:`qrprobe.engine.stats.bootstrap`), so the difference of their replicate values is a bootstrap replicate of
their difference, and :func:`qrprobe.engine.stats.uncertainty.difference_estimate` gives its interval and p-value.
Results on different images or concepts are refused: their replicates resample different things, and a
difference between concept banks is not a difference between representations.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..engine.stats.corrected import CORRECTED, corrected_name
from ..engine.stats.result_statistics import labels_hash
from ..engine.stats.uncertainty import Estimate, difference_estimate, holm
from ..errors import QRProbeInputError
from ..results import HEADLINE, LABELS, Result
from .compare import TIE_TOLERANCE, at_chance

ALPHA = 0.05


def _boot(result: Result) -> dict:
    return (result.statistics or {}).get("bootstrap") or {}


def pairing_problem(a: Result, b: Result, names: tuple[str, str] = ("the first result", "the second result")
                    ) -> str | None:
    """Why ``a`` and ``b`` cannot be compared pairwise, or None when they can."""
    for res, name in zip((a, b), names, strict=True):
        if res.replicates is None or not _boot(res).get("replicates"):
            return (f"{name} has no bootstrap replicates (evaluated with bootstrap=0, or saved before "
                    "intervals existed); evaluate it again to compare it")
    ba, bb = _boot(a), _boot(b)
    if ba.get("scheme") != bb.get("scheme"):
        return f"the results used different resampling schemes ({ba.get('scheme')} vs {bb.get('scheme')})"
    if ba.get("images_hash") != bb.get("images_hash"):
        return ("the results were evaluated on different images: a paired comparison needs the same images, "
                "so that each bootstrap replicate resamples the same images in both")
    ca = (a.inputs.get("concepts") or {}).get("content_hash")
    cb = (b.inputs.get("concepts") or {}).get("content_hash")
    if ca != cb:
        return ("the results use different concept banks: their difference would mix the representations "
                "with the concepts; compare representations on the same concepts")
    return None


def _labels_hash(result: Result, r: int) -> str | None:
    stored = result.per_clustering[r].get("labels_hash") if r < len(result.per_clustering) else None
    if stored is not None:
        return stored
    if result.clusterings is None:
        return None
    return labels_hash(np.asarray(result.clusterings[r]), result.image_ids)


def shared_clusterings(a: Result, b: Result) -> bool:
    """Whether ``a`` and ``b`` were probed on the very same clusterings (e.g. one representation, two concept
    sets): then clustering ``r`` of one pairs with clustering ``r`` of the other."""
    if len(a.seeds) != len(b.seeds):
        return False
    hashes = [(_labels_hash(a, r), _labels_hash(b, r)) for r in range(len(a.seeds))]
    return all(x is not None and x == y for x, y in hashes)


def metric_arrays(result: Result, metric: str, n_replicates: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(values (R,), replicates (R, B))`` of ``metric`` in a result with replicates."""
    order = _boot(result).get("metrics") or []
    if metric not in order:
        raise QRProbeInputError(f"metric {metric!r} has no bootstrap replicates; they cover {order}")
    reps = np.asarray(result.replicates)[:, order.index(metric), :n_replicates]
    return np.asarray(result.summary[metric]["values"], dtype=np.float64), reps


def paired_difference(a: Result, b: Result, metric: str = "nmi", level: float = 0.95) -> Estimate:
    """``a − b`` in ``metric`` with its interval and p-value (two-sided) from their shared replicates.

    Raises :class:`~qrprobe.errors.QRProbeInputError` saying why when the two cannot be paired.
    """
    problem = pairing_problem(a, b)
    if problem:
        raise QRProbeInputError(f"cannot compare the two results: {problem}")
    n_rep = min(_boot(a)["replicates"], _boot(b)["replicates"])
    va, xa = metric_arrays(a, metric, n_rep)
    vb, xb = metric_arrays(b, metric, n_rep)
    return difference_estimate(va, xa, vb, xb, shared_clusterings=shared_clusterings(a, b), level=level)


def chance_level(result: Result, metric: str) -> float:
    """The chance level of ``metric`` in ``result``: its mean minus its chance-corrected mean (NMI: shuffled
    predictions' NMI, …; 0 for AMI); for a corrected metric, its raw counterpart's (what was subtracted); NaN
    for a result saved without corrected scores."""
    metric = next((raw for raw, corrected in CORRECTED.items() if corrected == metric), metric)  # its raw metric
    if metric == "ami":
        return 0.0
    raw = (result.summary.get(metric) or {}).get("mean")
    corrected = (result.summary.get(corrected_name(metric)) or {}).get("mean")
    return np.nan if raw is None or corrected is None else float(raw) - float(corrected)


def _score(result: Result, metric: str) -> float:
    value = (result.summary.get(metric) or {}).get("mean")
    return np.nan if value is None else float(value)


def adjacent_significance(results: Sequence[Result], names: Sequence[str], ranking: Sequence[str],
                          metric: str = "nmi_corrected", level: float = 0.95) -> pd.DataFrame:
    """One row per pair of neighbours in ``ranking`` (names, best first): is the higher one significantly higher?

    ``metric`` is the one that ranks: a chance-corrected metric (``nmi_corrected`` …, the default reading) or a
    raw one. Columns: ``rank`` (of the higher), ``model``, ``next_model``, ``metric``, ``difference`` (higher −
    lower), ``chance_difference`` (the higher's chance level minus the lower's, :func:`chance_level`: with a
    corrected metric, what the correction removed from the gap), ``ci_low``,
    ``ci_high``, ``p_value`` (two-sided), ``p_holm`` (Holm-adjusted over the pairs tested), ``significant``,
    ``significant_holm``, ``clusterings`` (``shared`` or ``independent``) and ``note``. Rules
    (``docs/statistics.md``): a tie (scores within :data:`~qrprobe.analysis.compare.TIE_TOLERANCE`, or both
    results at chance on a corrected metric) is not tested (no p-value, note ``tie``); a raw gap no larger than
    the difference of the two chance levels is never significant (the lead is the chance levels'); a pair is
    significant when ``p`` < 0.05 and neither rule applies.
    """
    by_name = dict(zip(names, results, strict=True))
    corrected = metric in CORRECTED.values()
    rows = []
    for i, (hi, lo) in enumerate(itertools.pairwise(ranking)):
        a, b = by_name[hi], by_name[lo]
        chance_gap = chance_level(a, metric) - chance_level(b, metric)
        row = {"rank": i + 1, "model": hi, "next_model": lo, "metric": metric, "difference": np.nan,
               "chance_difference": chance_gap, "ci_low": np.nan,
               "ci_high": np.nan, "p_value": np.nan, "clusterings": "", "note": "", "_beyond_chance": True}
        gap = _score(a, metric) - _score(b, metric)
        tie = abs(gap) <= TIE_TOLERANCE or (corrected and at_chance(a) and at_chance(b))
        problem = pairing_problem(a, b, (hi, lo))
        if problem is None and metric not in (_boot(a).get("metrics") or []):
            problem = f"no replicates of {metric}"
        if tie:
            row.update(difference=0.0 if corrected and at_chance(a) and at_chance(b) else gap,
                       note="tie: both at chance" if corrected and at_chance(a) and at_chance(b)
                       else "tie: equal scores")
        elif problem:
            row["note"] = problem
        else:
            est = paired_difference(a, b, metric, level)
            row.update(difference=est.mean, ci_low=est.ci_low, ci_high=est.ci_high, p_value=est.p_value,
                       clusterings="shared" if shared_clusterings(a, b) else "independent")
            if not corrected and np.isfinite(chance_gap) and est.mean <= chance_gap:
                row.update(_beyond_chance=False, note=(
                    f"the gap is no larger than the difference of the chance levels ({chance_gap:+.3g}): not "
                    "beyond chance"))
        rows.append(row)
    table = pd.DataFrame(rows, columns=["rank", "model", "next_model", "metric", "difference", "chance_difference",
                                        "ci_low", "ci_high", "p_value", "clusterings", "note", "_beyond_chance"])
    beyond = table.pop("_beyond_chance").astype(bool)
    table.insert(9, "p_holm", holm(table["p_value"].tolist()) if len(table) else [])
    table.insert(10, "significant", (table["p_value"] < ALPHA) & beyond)
    table.insert(11, "significant_holm", (table["p_holm"] < ALPHA) & beyond)
    return table


def rank_agreement(table: pd.DataFrame, metrics: Sequence[str] = HEADLINE) -> pd.DataFrame:
    """Kendall's τ-b between the rankings of the rows of ``table`` (``<metric>_mean`` columns) by each pair of
    metrics: one row and one column per metric (NaN with fewer than 2 models)."""
    from scipy import stats

    cols = [m for m in metrics if f"{m}_mean" in table.columns]
    out = pd.DataFrame(index=[LABELS.get(m, m) for m in cols], columns=[LABELS.get(m, m) for m in cols],
                       dtype=float)
    for m1 in cols:
        for m2 in cols:
            x = pd.to_numeric(table[f"{m1}_mean"], errors="coerce").to_numpy(float)
            y = pd.to_numeric(table[f"{m2}_mean"], errors="coerce").to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            tau = stats.kendalltau(x[ok], y[ok]).statistic if ok.sum() >= 2 else np.nan
            out.loc[LABELS.get(m1, m1), LABELS.get(m2, m2)] = tau
    return out.reset_index(names="metric")


__all__ = ["adjacent_significance", "chance_level", "metric_arrays", "paired_difference", "pairing_problem",
           "rank_agreement", "shared_clusterings"]
