"""The comparison section (paper Table 2 and Fig. 3) and how sure its ranking is.

One section for ``qrprobe compare`` and ``qrprobe report`` alike: the ranked table (mean ± std and the 95%
interval of each metric, flagged results marked), the external scores against top-1 (the Fig. 3 scatter and
its correlation only with at least :data:`MIN_SCATTER_POINTS` models; fewer are listed as numbers), for each
pair of neighbours in the ranking the paired difference and its significance, Kendall's τ between the
metrics' rankings and the chance levels. The statistics are computed by :mod:`qrprobe.analysis.significance`
and :func:`qrprobe.analysis.compare.chance_table`; this module only lays them out. Every caption names the
metric that ranks the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..analysis.compare import chance_table, compare_results, fit_line, has_corrected, ranking_metric
from ..analysis.significance import adjacent_significance, rank_agreement
from ..errors import ParameterError
from ..results import HEADLINE, LABELS, Result, metric_digits
from . import figures as F
from .section import Block, FigureData, Section
from .tables import Table

FLAG_MARK = "⚠"
MIN_SCATTER_POINTS = 3  # a line through 2 points fits exactly and its r is ±1 whatever the data


def flagged_names(results: Sequence[Result], names: Sequence[str]) -> list[str]:
    """The names of the results with warning flags (``inputs.flags``: a degenerate clustering, an unreliable
    test split, a negative MI estimate ...; see ``qrprobe.engine.degenerate``)."""
    return [n for r, n in zip(results, names, strict=True)
            if any(f.get("level") == "warning" for f in r.inputs.get("flags", []))]


def check_external_matched(table: pd.DataFrame, columns: Sequence[str], keys: Sequence[str]) -> None:
    """Refuse an external table none of whose rows names a compared model (every external value would be
    empty): ``table`` is the comparison with the external ``columns`` joined, ``keys`` the models' names."""
    if columns and table[list(columns)].isna().all(axis=None):
        raise ParameterError("external", f"no row of the table names a compared model ({', '.join(map(str, keys))}); "
                             "its 'model' column must hold these names")


def unmatched_note(external: pd.DataFrame, keys: Sequence[str]) -> str | None:
    """A warning when some models have no external row *and* some external rows name no model (a misspelt
    name, most likely); None when every row was used: a model the table does not list simply has no value."""
    key = next((c for c in ("model", "name", "representation") if c in external.columns), None)
    if key is None:
        return None
    rows = [str(v) for v in external[key]]
    unused = [r for r in rows if r not in set(keys)]
    missing = [k for k in keys if k not in set(rows)]
    if unused and missing:
        return (f"No external value for: {', '.join(missing)}; the external table's rows "
                f"{', '.join(unused)} name no compared model (names must match exactly).")
    return None


def comparison_from_results(results: Sequence[Result], names: Sequence[str], keys: Sequence[str], *,
                            external: pd.DataFrame | None = None, external_columns: Sequence[str] | None = None,
                            sort_by: str = "nmi", raw: bool = False) -> Section:
    """The whole comparison section of ``results`` (display ``names``; ``keys`` match ``external``'s rows),
    ranked by the chance-corrected counterpart of ``sort_by`` (``raw``: by ``sort_by`` itself)."""
    notes = []
    legacy = [n for r, n in zip(results, names, strict=True) if not has_corrected([r], sort_by)]
    if legacy and not raw:
        raw = True
        notes.append(f"{', '.join(legacy)}: saved without chance-corrected scores (evaluated by an older qrprobe), "
                     "so the models are ranked by raw scores; evaluate again to rank them by what the concepts "
                     "explain beyond chance.")
    table = compare_results(results, names, external=external, external_columns=external_columns, keys=keys,
                            sort_by=sort_by, raw=raw)
    notes += [f"{n}: {w}" for r, n in zip(results, names, strict=True) for w in r.inputs.get("warnings", [])]
    fit = x_column = None
    if external is not None:
        extra = [c for c in table.columns if c not in compare_results(results, names, raw=raw).columns]
        check_external_matched(table, extra, keys)
        if extra:
            x_column = extra[0]
            fit = fit_line(table, x_column, "top1_mean")
            note = unmatched_note(external, keys)
            notes += [note] if note else []
    section = comparison_section(table, fit=fit, x_column=x_column, notes=notes, sort_by=sort_by,
                                 flagged=flagged_names(results, names), raw=raw)
    section.blocks.extend(significance_blocks(results, names, table, sort_by, raw=raw))
    return section


def comparison_section(table: pd.DataFrame, *, fit=None, x_column: str | None = None,
                       notes: Sequence[str] = (), sort_by: str = "nmi", flagged: Sequence[str] = (),
                       raw: bool = False) -> Section:
    """Ranked comparison (``compare_results`` output) and, with ``fit`` (a LineFit) and an external column, the
    Fig. 3 scatter (or, with fewer than :data:`MIN_SCATTER_POINTS` models, their values as a table).
    Rows of ``flagged`` models are marked, with a note saying why (their warnings are among ``notes``)."""
    label = LABELS.get(ranking_metric(sort_by, raw), sort_by)
    if flagged:
        table = table.assign(model=[f"{m} {FLAG_MARK}" if m in set(flagged) else m for m in table["model"]])
        notes = [f"{FLAG_MARK} marks results whose scores are degenerate or unreliable; the warnings below say "
                 "why.", *notes]
    single = "clusterings" in table.columns and (table["clusterings"] == 1).all()
    spread = "score of one clustering" if single else "mean ± std over clusterings"
    reading = ("the paper's raw scores (--raw): a raw score also counts what the clustering's shape gives away "
               "for free, so compare it with the chance levels below" if raw else
               "chance-corrected scores: each score minus what the same clustering scores without information "
               "(NMI, top-1 and mAP of the predictions shuffled across test images, MI − cluster prior; "
               "AMI is corrected already), so representations with different cluster sizes compare fairly; the "
               "raw scores follow (--raw ranks by them)")
    at_chance = "at_chance" in table.columns and bool(table["at_chance"].any())
    block = Block(tables=[Table("comparison", table, f"Model comparison, ranked by {label}",
                                f"Reverse-probing scores on the test split, {spread}, and below each its 95% "
                                "interval (test images and clustering seeds; docs/statistics.md) where the "
                                f"result has one. NMI, AMI, top-1 and mAP ×100, MI in bits; ranked by {label}: "
                                f"{reading}. Equal ranks are ties."
                                + (" 'at chance': every probe kept the cluster prior, so the concepts predict "
                                   "nothing beyond cluster sizes." if at_chance else ""))])
    section = Section("comparison", "Model comparison",
                      f"Ranking of the representations by {label} (paper Table 2).", [block], list(notes))
    if fit is not None and x_column is not None:
        section.blocks.append(_external_block(table, fit, x_column))
    return section


def _external_block(table: pd.DataFrame, fit, x_column: str) -> Block:
    """Fig. 3: reverse-probe top-1 against the external score, as a scatter with its least-squares line and
    correlations when at least :data:`MIN_SCATTER_POINTS` models have a value, else as a table of values."""
    xs = pd.to_numeric(table[x_column], errors="coerce").to_numpy(float)
    rows = table[np.isfinite(xs) & np.isfinite(table["top1_mean"].to_numpy(float))]
    without = [m for m in table["model"] if m not in set(rows["model"])]
    lacking = f" No {x_column} value for {', '.join(without)}." if without else ""
    title = f"Top-1 against {x_column}"
    if fit.n >= MIN_SCATTER_POINTS and np.isfinite(fit.slope):
        fig = F.comparison_scatter(rows[x_column], rows["top1_mean"], list(rows["model"]), slope=fit.slope,
                                   intercept=fit.intercept, r=fit.pearson_r, xlabel=x_column)
        return Block(title, f"Least-squares line over {fit.n} models; Pearson r = {fit.pearson_r:.2f}, Spearman "
                            f"ρ = {fit.spearman_rho:.2f} (paper Fig. 3).{lacking}",
                     [Table("correlation", pd.DataFrame([fit.as_row()]), title, digits=2)],
                     [FigureData.from_figure(fig, "comparison-scatter", f"Reverse-probe top-1 against {x_column}")])
    shown = rows[["model", x_column, "top1_mean", "top1_std", *(["clusterings"] if "clusterings" in rows else [])]]
    return Block(title, f"{fit.n} of {len(table)} models have a value of {x_column}: a line and a correlation "
                        f"need at least {MIN_SCATTER_POINTS} (through 2 points any line fits exactly and r = ±1), so "
                        f"the values are listed instead of the paper's Fig. 3 scatter.{lacking}",
                 [Table("external-values", shown.reset_index(drop=True), title)])


def significance_blocks(results: Sequence[Result], names: Sequence[str], table: pd.DataFrame,
                        sort_by: str, raw: bool = False) -> list[Block]:
    """Adjacent-pair tests, rank agreement and chance levels, as report blocks (on the chance-corrected
    counterpart of ``sort_by`` unless ``raw``)."""
    metric = ranking_metric(sort_by, raw)
    label = LABELS.get(metric, metric)
    ranking = table["model"].tolist()
    pairs = adjacent_significance(results, names, ranking, metric)
    blocks = []
    if len(pairs):
        tested = pairs["p_value"].notna()
        text = (f"Each model against the next one in the ranking by {label}: the paired difference in {label} "
                f"(higher − lower) with its 95% interval and two-sided p-value, from bootstrap replicates over the "
                f"same test images and the clustering seeds (docs/statistics.md). {int(pairs['significant'].sum())}"
                f" of {int(tested.sum())} tested pairs differ at the 5% level "
                f"({int(pairs['significant_holm'].sum())} after Holm's correction over the pairs).")
        ties = pairs["note"].str.startswith("tie").sum()
        if ties:
            text += f" {int(ties)} pair(s) are ties (equal scores or both at chance): not tested, not ordered."
        if raw:
            text += (" A raw gap no larger than the difference of the two models' chance levels (chance_difference) "
                     "is never called significant.")
        if not tested.all():
            text += " Untested pairs say why in the note column."
        blocks.append(Block(f"Is each step of the ranking by {label} significant?", text, [
            Table("comparison-adjacent", pairs, f"Adjacent pairs in the ranking by {label}",
                  f"Difference in {label} between neighbours, 95% interval, p-value (Holm-adjusted beside it).",
                  digits=metric_digits(metric), signed=("difference", "chance_difference"))]))
    if len(ranking) >= 2:
        tau = rank_agreement(table, [ranking_metric(m, raw) for m in HEADLINE])
        blocks.append(Block("Do the metrics rank the models alike?",
                            f"Kendall's τ-b between the rankings of the {len(ranking)} models by each pair of "
                            "metrics (1: the same order; 0: unrelated; −1: reversed).",
                            [Table("comparison-rank-agreement", tau, "Rank agreement between metrics (Kendall τ)",
                                   "Kendall's τ-b between rankings by the row and column metrics.", digits=2)]))
    chance = chance_long(chance_table(results, names), ranking)
    if chance.drop(columns=["model", "metric"]).notna().any().any():
        blocks.append(Block("Chance levels and baselines",
                            "Each score beside its chance level (the same protocol on concepts shuffled across "
                            "images) and a baseline that needs no probe (NMI/AMI: shuffled predictions; top-1: "
                            "the largest cluster; mAP: constant scores; MI: the cluster prior). vs chance: the "
                            "chance-corrected score the ranking uses (the score minus its chance level: shuffled "
                            "predictions for NMI and top-1, shuffled scores for mAP, the prior for MI; AMI itself; "
                            "docs/statistics.md §5a).",
                            [Table("comparison-chance", chance, "Chance levels and baselines",
                                   f"Models in the order of the ranking by {label}; null: concepts shuffled across "
                                   "images; − null: the difference, with its p-value; baseline: no probe.")]))
    return blocks


def chance_long(chance: pd.DataFrame, ranking: Sequence[str]) -> pd.DataFrame:
    """:func:`~qrprobe.analysis.compare.chance_table` (one row per model, five columns per metric) as one row
    per model and metric (``model, metric, value, null, above_null, above_null_p, baseline``), models in
    ``ranking`` order: as wide as five numbers, so it fits a page."""
    rows = []
    for model in ranking:
        wide = chance.loc[chance["model"] == model].iloc[0]
        for metric in [c for c in chance.columns if f"{c}_null" in chance.columns]:
            rows.append({"model": model, "metric": metric, "value": wide[metric], "null": wide[f"{metric}_null"],
                         "above_null": wide[f"{metric}_above_null"], "above_null_p": wide[f"{metric}_above_null_p"],
                         "baseline": wide[f"{metric}_baseline"], "vs_chance": wide.get(f"{metric}_vs_chance", np.nan)})
    return pd.DataFrame(rows, columns=["model", "metric", "value", "null", "above_null", "above_null_p", "baseline",
                                       "vs_chance"])


__all__ = ["FLAG_MARK", "MIN_SCATTER_POINTS", "chance_long", "check_external_matched", "comparison_from_results",
           "comparison_section", "flagged_names", "significance_blocks", "unmatched_note"]
