"""The `compare` analysis: the ranked table, and how sure the ranking is.

Beside the ranked comparison (paper Table 2) and the Fig. 3 scatter, the section lists, for each pair of
neighbours in the ranking, the paired difference in the ranking metric with its 95% interval and p-value
(:func:`qrprobe.analysis.significance.adjacent_significance`), Kendall's τ between the rankings by NMI, AMI,
top-1, mAP and MI, and each result's chance levels and baselines. Every caption names the ranking metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..analysis.compare import chance_table, compare_results, fit_line
from ..analysis.significance import adjacent_significance, rank_agreement
from ..report.build import check_external_matched
from ..report.section import Block, Section
from ..report.sections import comparison_section, flagged_names
from ..report.tables import Table
from ..results import LABELS, Result


def comparison(results: Sequence[Result], names: Sequence[str], keys: Sequence[str], *,
               external: pd.DataFrame | None, external_columns: Sequence[str] | None, sort_by: str) -> Section:
    """The comparison section of ``results`` (display ``names``; ``keys`` match the external table)."""
    table = compare_results(results, names, external=external, external_columns=external_columns, keys=keys,
                            sort_by=sort_by)
    fit = x_column = None
    if external is not None:
        extra = [c for c in table.columns if c not in compare_results(results, names).columns]
        check_external_matched(table, extra, keys)
        if extra:
            x_column = extra[0]
            fit = fit_line(table, x_column, "top1_mean")
    notes = [f"{n}: {w}" for r, n in zip(results, names, strict=True) for w in r.inputs.get("warnings", [])]
    section = comparison_section(table, fit=fit, x_column=x_column, notes=notes, sort_by=sort_by,
                                 flagged=flagged_names(results, names))
    section.blocks.extend(significance_blocks(results, names, table, sort_by))
    return section


def significance_blocks(results: Sequence[Result], names: Sequence[str], table: pd.DataFrame,
                        sort_by: str) -> list[Block]:
    """Adjacent-pair tests, rank agreement and chance levels, as report blocks."""
    label = LABELS.get(sort_by, sort_by)
    ranking = table["model"].tolist()
    pairs = adjacent_significance(results, names, ranking, sort_by)
    blocks = []
    if len(pairs):
        tested = pairs["p_value"].notna()
        text = (f"Each model against the next one in the ranking by {label}: the paired difference in {label} "
                f"(higher − lower) with its 95% interval and two-sided p-value, from bootstrap replicates over the "
                f"same test images and the clustering seeds (docs/statistics.md). {int(pairs['significant'].sum())}"
                f" of {int(tested.sum())} tested pairs differ at the 5% level "
                f"({int(pairs['significant_holm'].sum())} after Holm's correction over the pairs).")
        if not tested.all():
            text += " Untested pairs say why in the note column."
        blocks.append(Block(f"Is each step of the ranking by {label} significant?", text, [
            Table("comparison-adjacent", pairs, f"Adjacent pairs in the ranking by {label}",
                  f"Difference in {label} between neighbours, 95% interval, p-value (Holm-adjusted beside it).",
                  digits=3, signed=("difference",))]))
    if len(ranking) >= 2:
        tau = rank_agreement(table)
        blocks.append(Block("Do the metrics rank the models alike?",
                            f"Kendall's τ-b between the rankings of the {len(ranking)} models by each pair of "
                            "metrics (1: the same order; 0: unrelated; −1: reversed).",
                            [Table("comparison-rank-agreement", tau, "Rank agreement between metrics (Kendall τ)",
                                   "Kendall's τ-b between rankings by the row and column metrics.", digits=2)]))
    chance = chance_table(results, names)
    chance = chance.set_index("model").loc[ranking].reset_index()
    if chance.drop(columns="model").notna().any().any():
        blocks.append(Block("Chance levels and baselines",
                            "Each score beside its chance level (the same protocol on concepts shuffled across "
                            "images) and a baseline that needs no probe (NMI/AMI: shuffled predictions; top-1: "
                            "the largest cluster; mAP: constant scores; MI: the cluster prior).",
                            [Table("comparison-chance", chance, "Chance levels and baselines",
                                   f"Rows in the order of the ranking by {label}; _null: concepts shuffled across "
                                   "images; _above_null: the difference and its p-value; _baseline: no probe.",
                                   digits=2)]))
    return blocks


__all__ = ["comparison", "significance_blocks"]
