"""Model comparison (paper Table 2) and its correlation with an external score (paper Fig. 3).

:func:`compare_results` ranks several Results by a metric and lists mean ± std and the 95% interval of each
headline metric, with optional external columns (e.g. each model's linear-probe accuracy) joined by model name
from a user table (:func:`read_external`); :func:`chance_table` lists each result's chance levels and
baselines. :func:`fit_line` fits ``y = slope·x + intercept`` by least squares and reports the Pearson and
Spearman correlations, for the Fig. 3 scatter. Whether neighbours in the ranking differ significantly, and
how well the metrics' rankings agree, is :mod:`qrprobe.analysis.significance`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..concepts.bank import read_table
from ..engine.stats.corrected import CORRECTED, corrected_name
from ..errors import QRProbeInputError
from ..results import HEADLINE, Result

_KEY_COLUMNS = ("model", "name", "representation")
#: two scores closer than this (in the metric's units) are a tie: same rank, no order, no test
TIE_TOLERANCE = 1e-6


def at_chance(result: Result) -> bool:
    """Whether every probe of ``result`` kept the cluster prior (the ``prior_kept`` flag covers every
    clustering): its scores are chance levels, shown as "at chance"."""
    kept = ((result.statistics or {}).get("prior_kept"))
    if kept is None:
        kept = [r for r, row in enumerate(result.per_clustering) if row.get("probe_kept_prior")]
    return len(result.seeds) > 0 and len(kept) == len(result.seeds)


def has_corrected(results: Sequence[Result], metric: str = "nmi") -> bool:
    """Whether every result has the chance-corrected counterpart of ``metric`` (results saved by a qrprobe
    older than the corrected scores have none: their comparison falls back to the raw scores)."""
    return all(corrected_name(metric) in r.summary for r in results)


def ranking_metric(metric: str, raw: bool = False) -> str:
    """The column a comparison ranks by: ``metric``'s chance-corrected counterpart (``nmi`` →
    ``nmi_corrected``), or ``metric`` itself with ``raw``."""
    return metric if raw else corrected_name(metric)


def listed_metrics(metrics: Sequence[str], raw: bool = False) -> list[str]:
    """The metric columns of a comparison: the corrected counterparts first (unless ``raw``), then the raw
    metrics (AMI, its own corrected counterpart, once)."""
    corrected = [] if raw else [corrected_name(m) for m in metrics]
    return list(dict.fromkeys([*corrected, *metrics]))


def tie_ranks(values: Sequence[float], tolerance: float = TIE_TOLERANCE) -> list[int]:
    """Competition ranks ("1, 2, 2, 4") of ``values`` already sorted best first: a value within ``tolerance``
    of the one before it shares its rank. NaN values get the ranks after every number, untied."""
    ranks: list[int] = []
    for i, v in enumerate(values):
        prev = values[i - 1] if i else np.nan
        tied = i > 0 and np.isfinite(v) and np.isfinite(prev) and abs(v - prev) <= tolerance
        ranks.append(ranks[-1] if tied else i + 1)
    return ranks


def result_name(result: Result, fallback: str = "") -> str:
    """The label of a Result in tables: its ``name``, else ``fallback`` (e.g. its directory name)."""
    return str(result.name or fallback or "result")


def compare_results(results: Sequence[Result], names: Sequence[str] | None = None, *,
                    external: pd.DataFrame | None = None, external_columns: Sequence[str] | None = None,
                    keys: Sequence[str] | None = None, sort_by: str = "nmi",
                    metrics: Sequence[str] = HEADLINE, intervals: bool = True, raw: bool = False) -> pd.DataFrame:
    """A ranked comparison table, one row per Result, ranked by chance-corrected scores (``raw``: the paper's
    raw scores).

    Parameters
    ----------
    results : the Results to compare.
    names : their labels (default: each Result's ``name``); must be unique.
    external : optional table with a ``model`` column (names as in ``names``) and numeric columns.
    external_columns : which columns of ``external`` to add (default: all but ``model``).
    keys : the names matched against ``external``'s ``model`` column (default: ``names``); e.g. the model
        name when ``names`` also say which K.
    sort_by : metric ranking the rows (descending mean): its chance-corrected counterpart
        (:mod:`qrprobe.engine.stats.corrected`: ``nmi`` ranks by ``nmi_corrected``), or itself with ``raw``.
    metrics : the metrics listed, as ``<metric>_mean`` / ``<metric>_std`` columns, each preceded by its corrected
        counterpart (``nmi_corrected_mean`` …) unless ``raw``.
    intervals : also ``<metric>_ci_low`` / ``<metric>_ci_high``, the 95% interval of each result (NaN for results
        saved without one).
    raw : rank by the raw scores and list only them (also when some result has no corrected scores:
        :func:`has_corrected`).

    Returns
    -------
    DataFrame with ``rank`` (equal for ties: scores within :data:`TIE_TOLERANCE`, or both results at chance when
    ranked by corrected scores), ``model``, ``k``, ``clusterings``, ``at_chance`` (every probe kept the cluster
    prior), ``ranked_by``, the metric columns and the external columns (NaN where a model is absent from
    ``external``).
    """
    if not results:
        raise QRProbeInputError("no results to compare")
    names = [result_name(r) for r in results] if names is None else [str(n) for n in names]
    if len(names) != len(results):
        raise QRProbeInputError(f"{len(names)} names for {len(results)} results")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise QRProbeInputError(f"results must have distinct names to be compared; repeated: {dup}; name them "
                                "(evaluate(..., name='…'), names=[…] of qrprobe.compare, or result directories "
                                "with distinct names)")
    keys = names if keys is None else [str(k) for k in keys]
    if len(keys) != len(results):
        raise QRProbeInputError(f"{len(keys)} keys for {len(results)} results")
    if sort_by not in metrics:
        raise QRProbeInputError(f"--sort-by: unknown metric {sort_by!r}; expected one of {list(metrics)}")
    raw = raw or not has_corrected(results, sort_by)
    by = ranking_metric(sort_by, raw)
    rows = []
    for name, key, res in zip(names, keys, results, strict=True):
        row = {"model": name, "_key": key, "k": res.config.get("k"), "clusterings": len(res.seeds),
               "at_chance": at_chance(res), "ranked_by": by}
        for m in listed_metrics(metrics, raw):
            entry = res.summary.get(m)
            row[f"{m}_mean"] = np.nan if entry is None or entry["mean"] is None else float(entry["mean"])
            row[f"{m}_std"] = np.nan if entry is None or entry["std"] is None else float(entry["std"])
            if intervals:
                for bound in ("ci_low", "ci_high"):
                    value = (entry or {}).get(bound)
                    row[f"{m}_{bound}"] = np.nan if value is None else float(value)
        rows.append(row)
    table = pd.DataFrame(rows)
    if external is not None:
        table = _join_external(table, external, external_columns)
    table = table.drop(columns="_key")
    key = table[f"{by}_mean"].to_numpy(float).copy()
    if by in CORRECTED.values():
        key[table["at_chance"].to_numpy(bool)] = 0.0  # at chance: exactly the chance level, tied with each other
    table = table.assign(_order=key).sort_values(["_order", "model"], ascending=[False, True], kind="stable",
                                                 na_position="last")
    table.insert(0, "rank", tie_ranks(table["_order"].tolist()))
    return table.drop(columns="_order").reset_index(drop=True)


def chance_table(results: Sequence[Result], names: Sequence[str], metrics: Sequence[str] = HEADLINE
                 ) -> pd.DataFrame:
    """Chance levels beside the scores, one row per result: for each metric its mean, the null's mean
    (``<m>_null``: concepts shuffled across images), the difference ``<m>_above_null`` with its p-value
    ``<m>_above_null_p``, the baseline ``<m>_baseline`` and the chance-corrected score ``<m>_vs_chance`` (what the
    comparison ranks by; ``docs/statistics.md``); NaN where a result has none.
    """
    rows = []
    for name, res in zip(names, results, strict=True):
        row: dict[str, Any] = {"model": name}
        for m in metrics:
            entry = res.summary.get(m) or {}
            for key, col in (("mean", m), ("null_mean", f"{m}_null"), ("above_null", f"{m}_above_null"),
                             ("above_null_p", f"{m}_above_null_p"), ("baseline", f"{m}_baseline")):
                value = entry.get(key)
                row[col] = np.nan if value is None else float(value)
            value = (res.summary.get(corrected_name(m)) or {}).get("mean")
            row[f"{m}_vs_chance"] = np.nan if value is None else float(value)
        rows.append(row)
    return pd.DataFrame(rows)


def _join_external(table: pd.DataFrame, external: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    key = next((c for c in _KEY_COLUMNS if c in external.columns), None)
    if key is None:
        raise QRProbeInputError(
            f"external table: needs a column naming the models ({' or '.join(_KEY_COLUMNS)}); "
            f"found {list(external.columns)}")
    ext = external.rename(columns={key: "_key"})
    columns = [c for c in ext.columns if c != "_key"] if columns is None else list(columns)
    missing = [c for c in columns if c not in ext.columns]
    if missing:
        raise QRProbeInputError(f"external table: no column(s) {missing}; it has {list(external.columns)}")
    ext = ext[["_key", *columns]].copy()
    ext["_key"] = ext["_key"].astype(str)
    if ext["_key"].duplicated().any():
        raise QRProbeInputError(f"external table: model {ext['_key'][ext['_key'].duplicated()].iloc[0]!r} "
                                "is listed twice")
    for c in columns:
        values = pd.to_numeric(ext[c].replace({"": np.nan, "—": np.nan, "-": np.nan}), errors="coerce")
        bad = values.isna() & ext[c].notna() & ~ext[c].astype(str).isin(["", "—", "-", "nan"])
        if bad.any():
            raise QRProbeInputError(
                f"external table: column {c!r} must hold numbers; found {ext[c][bad].iloc[0]!r}")
        ext[c] = values
    clash = [c for c in columns if c in table.columns]
    if clash:
        raise QRProbeInputError(f"external table: column(s) {clash} clash with the comparison's own columns")
    return table.merge(ext, on="_key", how="left")


def read_external(path: str | os.PathLike, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a user table (CSV/TSV/parquet) with a ``model`` column and numeric score columns."""
    table = read_table(Path(path))
    key = next((c for c in _KEY_COLUMNS if c in table.columns), None)
    if key is None:
        raise QRProbeInputError(
            f"--external {str(path)!r}: needs a column naming the models ({' or '.join(_KEY_COLUMNS)}); "
            f"found {list(table.columns)}")
    if columns is not None:
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise QRProbeInputError(f"--external-column: {str(path)!r} has no column(s) {missing}; "
                                    f"it has {list(table.columns)}")
    return table


@dataclass(frozen=True)
class LineFit:
    """Least-squares line ``y = slope·x + intercept`` over ``n`` points, with Pearson r and Spearman rho."""

    x: str
    y: str
    slope: float
    intercept: float
    pearson_r: float
    spearman_rho: float
    n: int

    def as_row(self) -> dict:
        return {"x": self.x, "y": self.y, "n": self.n, "slope": self.slope, "intercept": self.intercept,
                "pearson_r": self.pearson_r, "spearman_rho": self.spearman_rho}


def fit_line(table: pd.DataFrame, x: str, y: str = "top1_mean") -> LineFit:
    """Fit ``y`` against ``x`` over the rows where both are finite (at least 2 are needed for a line)."""
    for col in (x, y):
        if col not in table.columns:
            raise QRProbeInputError(f"no column {col!r} to correlate; columns are {list(table.columns)}")
    xs = pd.to_numeric(table[x], errors="coerce").to_numpy(float)
    ys = pd.to_numeric(table[y], errors="coerce").to_numpy(float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    n = len(xs)
    if n < 2 or np.ptp(xs) == 0:
        return LineFit(x, y, float("nan"), float("nan"), float("nan"), float("nan"), n)
    slope, intercept = np.polyfit(xs, ys, 1)
    from scipy import stats

    if np.ptp(ys) == 0:
        r = rho = float("nan")
    else:
        r = float(stats.pearsonr(xs, ys)[0])
        rho = float(stats.spearmanr(xs, ys)[0])
    return LineFit(x, y, float(slope), float(intercept), r, rho, n)
