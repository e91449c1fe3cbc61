"""``qrprobe.compare(results)``: the `compare` analysis from Python, what ``qrprobe compare`` prints and writes,
as DataFrames (:class:`Comparison`), through the same registry entry (:mod:`qrprobe.workflow.analyses`)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import QRProbeInputError
from ..report.section import Section
from ..results import Result
from .analysis_io import AnalysisInputs, model_name


@dataclass
class Comparison:
    """The comparison of several results, as ``qrprobe compare`` makes it.

    Attributes
    ----------
    frame : the ranked table (paper Table 2): ``rank``, ``model``, ``k``, ``clusterings``, each headline metric's
        ``<metric>_mean``, ``_std``, ``_ci_low``, ``_ci_high``, and the external columns if any
    significance : each model against the next in the ranking: the paired difference in the ranking metric,
        its 95% interval and p-values (Holm-adjusted too); empty with one result
    rank_agreement : Kendall's τ-b between the rankings by each pair of metrics (None with one result)
    chance : each score beside its chance level and baseline (long format), or None without statistics
    tables : every table of the section by name (``comparison``, ``comparison-adjacent`` …)
    section : the report section itself (``section.save(dir)`` writes what ``qrprobe compare --out`` writes)
    """

    frame: pd.DataFrame
    significance: pd.DataFrame
    rank_agreement: pd.DataFrame | None
    chance: pd.DataFrame | None
    tables: dict[str, pd.DataFrame]
    section: Section

    def __repr__(self) -> str:
        return f"Comparison of {len(self.frame)} results:\n{self.frame.to_string(index=False, max_cols=12)}"


def compare(results: Sequence[Result | str | os.PathLike], names: Sequence[str] | None = None, *,
            external: pd.DataFrame | str | os.PathLike | None = None,
            external_columns: Sequence[str] | None = None, sort_by: str = "nmi", raw: bool = False) -> Comparison:
    """Compare results as ``qrprobe compare`` does: ranked table, adjacent-pair significance, rank agreement.

    Parameters
    ----------
    results : Results or result directories (two or more for the significance tables).
    names : their labels (default: each result's ``name``, else its features' model, else its directory's name);
        must be distinct.
    external : a table (DataFrame or CSV/Parquet path) with a ``model`` column and external scores (Fig. 3).
    external_columns, sort_by : as the CLI's ``--external-columns``, ``--sort-by`` (the ranking uses the
        chance-corrected counterpart of ``sort_by``, docs/statistics.md §5a).
    raw : as ``--raw``: rank, test and correlate by the paper's raw scores.

    Raises :class:`~qrprobe.errors.QRProbeInputError` when two results would carry the same name (saying how to
    name them) or an input cannot be read.
    """
    from ..analysis.compare import read_external
    from . import specs
    from .analyses import run_analysis

    loaded = [r if isinstance(r, Result) else Result.load(r) for r in results]
    if not loaded:
        raise QRProbeInputError("results: nothing to compare (give a list of Results or result directories)")
    if names is not None:
        if len(names) != len(loaded):
            raise QRProbeInputError(f"names: {len(names)} names for {len(loaded)} results")
        labels = [str(n) for n in names]
    else:
        labels = [model_name(r) or (f"result {i + 1}" if isinstance(given, Result) else Path(given).name)
                  for i, (r, given) in enumerate(zip(loaded, results, strict=True))]
    repeated = sorted({n for n in labels if labels.count(n) > 1})
    if repeated:
        raise QRProbeInputError(
            f"results must have distinct names to be compared; {', '.join(map(repr, repeated))} names more than "
            "one. Name them: qrprobe.compare(results, names=['a', 'b', …]), or evaluate(..., name='resnet50') "
            "when making each result (result.name = '…' renames one)")
    inputs = AnalysisInputs(results=[dataclasses.replace(r, name=n) for r, n in zip(loaded, labels, strict=True)],
                            result_keys=labels)
    if isinstance(external, (str, os.PathLike)):
        external = read_external(external, external_columns)
    inputs.external = external
    spec = specs.CompareSpec(sort_by=sort_by, raw=raw,
                             external_columns=list(external_columns) if external_columns else None)
    section = run_analysis("compare", inputs, spec).section
    assert section is not None  # compare makes a section, never a Result
    tables = {t.name: t.data for t in section.tables()}
    return Comparison(frame=tables["comparison"], significance=tables.get("comparison-adjacent", pd.DataFrame()),
                      rank_agreement=tables.get("comparison-rank-agreement"), chance=tables.get("comparison-chance"),
                      tables=tables, section=section)


__all__ = ["Comparison", "compare"]
