"""Tables of results, rendered as CSV, JSON, Markdown and LaTeX.

A :class:`Table` wraps a :class:`pandas.DataFrame` whose numeric columns keep full precision (CSV and JSON
are for machines). Columns named ``<metric>_mean`` / ``<metric>_std`` are merged into one ``mean ± std``
column in the human views (Markdown, LaTeX, HTML). Every text cell is escaped for its target format, because
concept names, model names and paths come from user files.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_write_text
from ..errors import QRProbeInputError
from ..results import format_metric, markdown_cell

# Display names of the metrics qrprobe reports (``mi_bits`` etc. are not ×100).
METRIC_LABELS = {
    "nmi": "NMI",
    "ami": "AMI",
    "top1": "Top-1",
    "top5": "Top-5",
    "map": "mAP",
    "mi_bits": "MI (bits)",
    "cluster_entropy_bits": "H(cluster) (bits)",
    "cross_entropy_bits": "CE (bits)",
    "mi_ratio": "MI / H",
    "nmi_corrected": "NMI − chance",
    "top1_corrected": "Top-1 − chance",
    "map_corrected": "mAP − chance",
    "mi_corrected_bits": "MI − prior (bits)",
}
AT_CHANCE = "at chance"  # what a score of a result whose every probe kept the cluster prior shows

TABLE_FORMATS = ("csv", "json", "md", "tex")

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
# Symbols that qrprobe's own captions and headers use, typeset without extra packages.
_LATEX_UNICODE = {"±": r"$\pm$", "Δ": r"$\Delta$", "−": "-", "×": r"$\times$", "–": "--", "—": "---",
                  "→": r"$\rightarrow$", "←": r"$\leftarrow$", "≈": r"$\approx$", "∝": r"$\propto$",
                  "ρ": r"$\rho$", "≥": r"$\geq$", "≤": r"$\leq$", "…": r"\dots{}"}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIALS))


def latex_escape(text: object) -> str:
    """Escape LaTeX special characters so ``text`` typesets literally (``±`` becomes ``$\\pm$`` etc.)."""
    escaped = _LATEX_RE.sub(lambda m: _LATEX_SPECIALS[m.group(0)], str(text))
    for char, command in _LATEX_UNICODE.items():
        escaped = escaped.replace(char, command)
    return escaped


markdown_escape = markdown_cell  # one escaping rule for every Markdown table (results.md, ranking.md, reports)


def slugify(text: str) -> str:
    """A file-name-safe version of ``text`` (letters, digits, ``-`` and ``_``)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-").lower()
    return slug or "table"


@dataclass
class Table:
    """A named table of results.

    Attributes
    ----------
    name : str
        Short identifier, used for file names (``<name>.csv`` ...).
    data : pandas.DataFrame
        The values; numeric columns at full precision. ``<m>_mean`` / ``<m>_std`` pairs are shown as one
        ``mean ± std`` column in the human-readable views.
    title : str
        One-line heading.
    caption : str
        What the table shows and how the numbers were obtained.
    digits : int
        Decimals shown in the human-readable views.
    signed : tuple of str
        Columns shown with an explicit sign (deltas such as ΔNMI).
    """

    name: str
    data: pd.DataFrame
    title: str = ""
    caption: str = ""
    digits: int = 2
    signed: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.data, pd.DataFrame):
            raise QRProbeInputError(f"table {self.name!r}: data must be a pandas DataFrame")
        self.data = self.data.reset_index(drop=True)

    # ------------------------------------------------------------------ human-readable view
    def display_frame(self) -> pd.DataFrame:
        """The table as strings: numbers rounded (:meth:`number`), metric columns renamed, and each
        ``<m>_mean`` merged with its ``<m>_std`` (``mean ± std``; no ``± std`` on a row of a single clustering,
        which has no spread) and its ``<m>_ci_low`` / ``<m>_ci_high`` (``[low, high]`` on a second line)."""
        df = self.data
        single = _single_clustering_rows(df)
        row_metric = df["metric"].tolist() if "metric" in df.columns else [None] * len(df)
        out: dict[str, list[str]] = {}
        done: set[str] = set()
        for col in df.columns:
            if col in done:
                continue
            base = col[:-5] if col.endswith("_mean") else ""
            if base and f"{base}_std" in df.columns:
                parts = [f"{base}_{p}" for p in ("std", "ci_low", "ci_high") if f"{base}_{p}" in df.columns]
                out[_column_label(base)] = [self._estimate(df, i, base, bool(single[i])) for i in range(len(df))]
                done.update({col, *parts})
            else:
                out[_column_label(col)] = [self._cell(v, col, m) for v, m in zip(df[col], row_metric, strict=True)]
                done.add(col)
        return pd.DataFrame(out, columns=list(out))

    def text_columns(self) -> list[bool]:
        """For each column of :meth:`display_frame`: whether it holds text (left-aligned) rather than numbers."""
        return [_is_text_column(self.data, c) for c in _source_columns(self.data)]

    def number(self, value: float, column: str, signed: bool = False, row_metric: object = None) -> str:
        """One number of ``column`` as shown: a metric's value with its metric's decimals
        (:func:`qrprobe.results.metric_digits`, the rule of every table and figure; the metric is the column's,
        else the row's ``metric`` cell), a p-value with 3 decimals (``<0.001`` below), anything else with the
        table's ``digits``."""
        if not math.isfinite(value):
            return "–"
        if _is_p_value(column):
            return "<0.001" if value < 0.001 else f"{value:.3f}"
        metric = metric_of(column) or (row_metric if row_metric in METRIC_LABELS else None)
        if metric is not None:
            return format_metric(value, metric, signed)
        value = value if round(value, self.digits) != 0 else 0.0  # no "-0.00" for a tiny negative
        return f"{value:{'+' if signed else ''}.{self.digits}f}"

    def _estimate(self, df: pd.DataFrame, row: int, base: str, single: bool) -> str:
        if "at_chance" in df.columns and bool(df["at_chance"].iloc[row]):
            return AT_CHANCE  # the probe kept the cluster prior: no number with a zero-width interval
        text = self._cell(df[f"{base}_mean"].iloc[row], base)
        std = df[f"{base}_std"].iloc[row]
        if not single and not _isnan(std) and text != "–":
            text += f" ± {self.number(float(std), base)}"
        if f"{base}_ci_low" in df.columns and f"{base}_ci_high" in df.columns:
            low, high = df[f"{base}_ci_low"].iloc[row], df[f"{base}_ci_high"].iloc[row]
            if not (_isnan(low) or _isnan(high)):
                text += f"\n[{self.number(float(low), base)}, {self.number(float(high), base)}]"
        return text

    def _cell(self, value: object, column: str, row_metric: object = None) -> str:
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else "no"
        if isinstance(value, (int, np.integer)):
            return f"{int(value):+d}" if column in self.signed else str(int(value))
        if isinstance(value, (float, np.floating)):
            return self.number(float(value), column, column in self.signed, row_metric)
        if value is None:
            return "–"
        if column == "metric" and value in METRIC_LABELS:
            return METRIC_LABELS[str(value)]
        if column == "ranked_by":  # a metric's field name, shown as the metric's header is
            return _column_label(str(value))
        return str(value)

    # ------------------------------------------------------------------ renderers
    def to_csv(self) -> str:
        """Full-precision CSV (one header row)."""
        return self.data.to_csv(index=False)

    def to_json(self) -> str:
        """JSON object with ``name``, ``title``, ``caption``, ``columns`` and ``rows`` (records)."""
        records = json.loads(self.data.to_json(orient="records", double_precision=15))
        payload = {"name": self.name, "title": self.title, "caption": self.caption,
                   "digits": self.digits, "signed": list(self.signed),
                   "columns": [str(c) for c in self.data.columns], "rows": records}
        return json.dumps(payload, indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table, preceded by the title and followed by the caption."""
        disp = self.display_frame()
        lines = []
        if self.title:
            lines += [f"**{markdown_escape(self.title)}**", ""]
        header = [markdown_escape(c) for c in disp.columns]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| " + " | ".join("---" for _ in header) + " |")
        for row in disp.itertuples(index=False):
            lines.append("| " + " | ".join(markdown_escape(v) for v in row) + " |")
        if self.caption:
            lines += ["", markdown_escape(self.caption)]
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        """A ``table`` environment with a ``tabular`` (booktabs rules), every cell LaTeX-escaped."""
        disp = self.display_frame()
        align = "".join("l" if text else "r" for text in self.text_columns())
        align = align or "l"
        lines = [r"\begin{table}[t]", r"\centering"]
        if self.caption or self.title:
            lines.append(r"\caption{" + latex_escape(self.caption or self.title) + "}")
        lines.append(r"\label{tab:" + slugify(self.name) + "}")
        lines.append(r"\begin{tabular}{" + align + "}")
        lines.append(r"\toprule")
        lines.append(" & ".join(latex_escape(c) for c in disp.columns) + r" \\")
        lines.append(r"\midrule")
        for row in disp.itertuples(index=False):
            lines.append(" & ".join(latex_escape(" ".join(str(v).split("\n"))) for v in row) + r" \\")
        lines.append(r"\bottomrule")
        lines += [r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines) + "\n"

    def render(self, fmt: str) -> str:
        """Render in one of :data:`TABLE_FORMATS`."""
        renderers = {"csv": self.to_csv, "json": self.to_json, "md": self.to_markdown, "tex": self.to_latex}
        if fmt not in renderers:
            raise QRProbeInputError(f"unknown table format {fmt!r}; expected one of {list(renderers)}")
        return renderers[fmt]()

    def save(self, directory: str | os.PathLike, formats: tuple[str, ...] = TABLE_FORMATS) -> list[Path]:
        """Write ``<directory>/<name>.<fmt>`` for every format (each file atomically); return the paths."""
        directory = Path(directory)
        paths = []
        for fmt in formats:
            path = directory / f"{slugify(self.name)}.{fmt}"
            atomic_write_text(path, self.render(fmt))
            paths.append(path)
        return paths

    @classmethod
    def from_json(cls, text: str) -> Table:
        """Rebuild a table written by :meth:`to_json`."""
        payload = json.loads(text)
        data = pd.DataFrame(payload["rows"], columns=payload["columns"])
        return cls(payload["name"], data, payload.get("title", ""), payload.get("caption", ""),
                   int(payload.get("digits", 2)), tuple(payload.get("signed", ())))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Table:
        """Read a table's ``.json`` file."""
        path = Path(path)
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except (OSError, KeyError, ValueError) as exc:
            raise QRProbeInputError(f"{str(path)!r}: not a qrprobe table JSON file ({exc})") from exc


def _isnan(value: Any) -> bool:
    try:
        return value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        return False


_SUFFIX_LABELS = {"_null": " null", "_above_null": " − null", "_above_null_p": " − null: p", "_baseline": " baseline"}


def metric_of(column: str) -> str | None:
    """The metric a column holds (``nmi`` for ``nmi_mean``, ``delta_nmi_std``, ``nmi_ci_low``, ``nmi_null`` …),
    or None for a column that is not a metric's."""
    name = column.removeprefix("delta_")
    for metric in sorted(METRIC_LABELS, key=len, reverse=True):
        if name == metric or name.startswith(metric + "_"):
            return metric
    return None


def _is_p_value(column: str) -> bool:
    return column in ("p_value", "p_holm") or column.endswith("_p")


def _single_clustering_rows(df: pd.DataFrame) -> np.ndarray:
    """Rows whose means come from one clustering (a ``clusterings`` or ``repeats`` column equal to 1): their
    std is 0 by construction, not a measured spread."""
    single = np.zeros(len(df), dtype=bool)
    for col in ("clusterings", "repeats"):
        if col in df.columns:
            single |= pd.to_numeric(df[col], errors="coerce").to_numpy(float) == 1
    return single


_LONG_LABELS = {"above_null": "− null", "above_null_p": "p (− null)",  # columns of one-row-per-metric tables
                "next_model": "next model", "ci_low": "95% low", "ci_high": "95% high", "p_value": "p",
                "p_holm": "p (Holm)", "significant": "p < 0.05", "significant_holm": "Holm p < 0.05",
                # the explanations' tables
                "cluster_a": "cluster a", "cluster_b": "cluster b", "n_test_a": "test images a",
                "n_test_b": "test images b", "confusion": "confusion (%)", "confused": "confused images",
                "confusion_base": "confusion, base (%)", "confused_base": "confused, base",
                "confusion_added": "confusion, added (%)", "confused_added": "confused, added", "drop": "drop (pp)",
                "favours_a": "concepts favouring a", "favours_b": "concepts favouring b",
                "coef_difference": "coefficient difference",
                "support": "images with it", "top_concepts": "top concepts", "frequent_concepts": "frequent concepts",
                # the breakdown's, the K sweep's and the comparison's
                "n_concepts": "concepts", "with_labels": "with labels", "k": "K", "n_images": "images",
                "chance_difference": "Δ chance", "vs_chance": "vs chance", "at_chance": "at chance",
                "ranked_by": "ranked by"}


def _column_label(column: str) -> str:
    """The human header of a column: the metric's name, a known field's label, else the field name with
    spaces for underscores (CSV and JSON keep the field names)."""
    column = str(column)
    if column in _LONG_LABELS:
        return _LONG_LABELS[column]
    if column in METRIC_LABELS:
        return METRIC_LABELS[column]
    if column.startswith("delta_") and column[6:] in METRIC_LABELS:
        return "Δ" + METRIC_LABELS[column[6:]]
    metric = metric_of(column)
    if metric is not None and column[len(metric):] in _SUFFIX_LABELS:
        return METRIC_LABELS[metric] + _SUFFIX_LABELS[column[len(metric):]]
    return column.replace("_", " ")


def _source_columns(df: pd.DataFrame) -> list[str]:
    """The columns of ``df`` that survive :meth:`Table.display_frame` (std columns merged away)."""
    cols = []
    for col in df.columns:
        if col.endswith("_std") and f"{col[:-4]}_mean" in df.columns:
            continue
        cols.append(col)
    return cols


def _is_text_column(df: pd.DataFrame, column: str) -> bool:
    return not pd.api.types.is_numeric_dtype(df[column]) or pd.api.types.is_bool_dtype(df[column])
