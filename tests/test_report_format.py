"""One precision rule for every place a score is shown, single clusterings without a fake spread, and names
that cannot break a table (Markdown, LaTeX) whatever they hold."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from qrprobe.analysis.compare import compare_results
from qrprobe.report.tables import Table, metric_of
from qrprobe.results import HEADLINE, format_mean_std, format_metric, markdown_table, metric_digits

HOSTILE = "a|b \\ c_d & e% <x> $f$ #1 {g} ~^"


def test_metric_digits_and_format() -> None:
    assert [metric_digits(m) for m in HEADLINE] == [2, 2, 2, 2, 3]
    assert metric_digits("delta_mi_bits") == 3
    assert metric_digits("cluster_entropy_bits") == 3
    assert format_metric(1.23456, "mi_bits") == "1.235"
    assert format_metric(46.3649, "nmi") == "46.36"
    assert format_metric(0.5, "delta_nmi", signed=True) == "+0.50"
    assert format_metric(None, "nmi") == format_metric(float("nan"), "nmi") == "–"
    assert format_metric(-1e-6, "mi_bits") == "0.000"
    assert format_metric(-0.002, "nmi") == "0.00"


def test_metric_of_columns() -> None:
    assert metric_of("mi_bits_mean") == "mi_bits"
    assert metric_of("delta_mi_bits_std") == "mi_bits"
    assert metric_of("nmi_ci_low") == "nmi"
    assert metric_of("top1_above_null_p") == "top1"
    assert metric_of("n_concepts") is None
    assert metric_of("model") is None


def test_terminal_and_report_show_the_same_numbers(evaluated) -> None:
    """results.md / ranking.md (markdown_table) and the report's comparison table print every metric alike."""
    _, result = evaluated("full")
    md = markdown_table([result], intervals=True)
    shown = Table("comparison", compare_results([result], ["m"])).display_frame().iloc[0]
    for metric, label in (("nmi", "NMI"), ("mi_bits", "MI (bits)"), ("top1", "Top-1"), ("map", "mAP")):
        cell = shown[label]
        first, interval = cell.split("\n")
        assert first == format_mean_std(result.summary[metric], metric)
        assert f"{first} {interval}" in md  # the same text, interval included
        decimals = len(first.split(" ± ")[0].split(".")[1])
        assert decimals == metric_digits(metric)


def test_single_clustering_has_no_spread_and_no_interval_when_none() -> None:
    data = pd.DataFrame({"model": ["one", "three"], "clusterings": [1, 3],
                         "nmi_mean": [40.0, 50.0], "nmi_std": [0.0, 1.25],
                         "nmi_ci_low": [np.nan, 47.5], "nmi_ci_high": [np.nan, 52.5],
                         "mi_bits_mean": [1.5, 1.25], "mi_bits_std": [0.0, 0.0625]})
    disp = Table("t", data).display_frame()
    assert disp["NMI"].tolist() == ["40.00", "50.00 ± 1.25\n[47.50, 52.50]"]
    assert disp["MI (bits)"].tolist() == ["1.500", "1.250 ± 0.062"]
    entry = {"mean": 40.0, "std": 0.0, "values": [40.0]}
    assert format_mean_std(entry, "nmi") == "40.00"
    assert format_mean_std({**entry, "values": [39.0, 41.0], "std": 1.0}, "nmi") == "40.00 ± 1.00"


def test_p_values_and_plain_numbers() -> None:
    data = pd.DataFrame({"model": ["a", "b"], "p_value": [0.0004, 0.0123], "difference": [1.5, -0.25],
                         "nmi_above_null_p": [0.5, 0.00001]})
    disp = Table("t", data, digits=2, signed=("difference",)).display_frame()
    assert disp["p"].tolist() == ["<0.001", "0.012"]
    assert disp["NMI − null: p"].tolist() == ["0.500", "<0.001"]
    assert disp["difference"].tolist() == ["+1.50", "-0.25"]


@pytest.mark.parametrize("name", [HOSTILE, "x|y", "line\nbreak", "back\\slash|"])
def test_markdown_table_survives_hostile_names(name: str, evaluated) -> None:
    _, result = evaluated("full")
    md = markdown_table([dataclasses.replace(result, name=name), result])
    lines = md.splitlines()
    assert len(lines) == 4  # header, rule, two rows: a line break in a name does not add a row
    columns = [line.replace("\\\\", "").replace("\\|", "").count("|") for line in lines]
    assert len(set(columns)) == 1  # every row has as many cell separators as the header
    assert "<x>" not in md


def test_report_tables_survive_hostile_names() -> None:
    data = pd.DataFrame({"model": [HOSTILE, "plain"], "clusterings": [3, 3], "nmi_mean": [1.0, 2.0],
                         "nmi_std": [0.1, 0.2], "nmi_ci_low": [0.5, 1.5], "nmi_ci_high": [1.5, 2.5]})
    table = Table("hostile", data, "Title | with _ & %", "Caption $ # ~")
    md = table.to_markdown().splitlines()
    rows = [line for line in md if line.startswith("|")]
    assert len({line.replace("\\\\", "").replace("\\|", "").count("|") for line in rows}) == 1
    tex = table.to_latex()
    body = [line for line in tex.splitlines() if line.endswith(r"\\")]
    assert all(line.replace(r"\&", "").count("&") == 2 for line in body)  # 3 columns on every row
    assert r"a\textbar{}b \textbackslash{} c\_d \& e\% \textless{}x\textgreater{} \$f\$ \#1 \{g\}" in tex
    assert "\n[" not in tex  # the interval's line break is a space in LaTeX


def test_a_rows_metric_sets_its_decimals() -> None:
    """Long tables (one row per model and metric, e.g. the chance levels) print each row with its metric's
    decimals, and name the metric as everywhere else."""
    data = pd.DataFrame({"model": ["a", "a"], "metric": ["nmi", "mi_bits"], "value": [46.361, 1.71849],
                         "above_null_p": [0.0004, 0.25]})
    disp = Table("t", data).display_frame()
    assert disp["value"].tolist() == ["46.36", "1.718"]
    assert disp["metric"].tolist() == ["NMI", "MI (bits)"]
    assert disp["p (− null)"].tolist() == ["<0.001", "0.250"]


def test_chance_levels_as_one_row_per_model_and_metric(evaluated) -> None:
    from qrprobe.analysis.compare import chance_table
    from qrprobe.report.comparison import chance_long

    _, full = evaluated("full")
    _, labels = evaluated("labels")
    wide = chance_table([full, labels], ["x", "y"])
    long = chance_long(wide, ["y", "x"])
    assert long["model"].tolist()[:5] == ["y"] * 5
    assert len(long) == 2 * len(HEADLINE)
    row = long[(long["model"] == "x") & (long["metric"] == "mi_bits")].iloc[0]
    source = wide.set_index("model").loc["x"]
    assert row["value"] == source["mi_bits"]
    assert row["baseline"] == source["mi_bits_baseline"]
    assert row["above_null_p"] == source["mi_bits_above_null_p"] or np.isnan(row["above_null_p"])
