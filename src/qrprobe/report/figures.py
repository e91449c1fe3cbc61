"""The report's figures, drawn with matplotlib (no pyplot state, Agg rendering) and saved as PNG + PDF.

Every function returns a :class:`matplotlib.figure.Figure`; :func:`save_figure` writes it, and
:func:`figure_png` gives the PNG bytes that the HTML report embeds. Text that comes from users (concept and
model names) goes through :func:`plain_text` so matplotlib never interprets it as mathtext.
"""

from __future__ import annotations

import io
import os
import textwrap
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import require
from .tables import METRIC_LABELS, slugify

FIGURE_FORMATS = ("png", "pdf")
FAVOURS_A = "#1f5fa8"  # blue: concepts that favour the first cluster of a pair (as in the paper's Fig. 8-11)
FAVOURS_B = "#c0392b"  # red: concepts that favour the second cluster
_SERIES_COLOURS = ("#1f5fa8", "#e07b39", "#3a9a5b", "#c0392b", "#7d5ba6", "#8c6d31", "#d16ba5", "#5f6b6d")


def _figure(width: float, height: float):
    mpl_figure = require("matplotlib.figure", "report", "the report's figures")
    return mpl_figure.Figure(figsize=(width, height), dpi=100, layout="constrained")


def plain_text(text: object) -> str:
    """``text`` with ``$`` escaped, so matplotlib draws it literally instead of as mathtext."""
    return str(text).replace("$", r"\$")


def figure_png(fig, dpi: int = 110) -> bytes:
    """The figure rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_figure(fig, directory: str | os.PathLike, name: str,
                formats: Sequence[str] = FIGURE_FORMATS, dpi: int = 150) -> list[Path]:
    """Write ``<directory>/<name>.png`` and ``.pdf`` (each through a temporary file and a rename)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        final = directory / f"{slugify(name)}.{fmt}"
        tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            fig.savefig(tmp, format=fmt, dpi=dpi)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        paths.append(final)
    return paths


# ---------------------------------------------------------------------- model comparison (Fig. 3)
def comparison_scatter(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, labels: Sequence[str], *,
                       slope: float | None = None, intercept: float | None = None,
                       r: float | None = None, xlabel: str = "external score",
                       ylabel: str = "reverse-probe top-1 (%)"):
    """Scatter of one point per model with the fitted line ``y = slope·x + intercept`` (Fig. 3)."""
    fig = _figure(5.5, 4.2)
    ax = fig.add_subplot()
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    for i, (xi, yi, label) in enumerate(zip(x, y, labels, strict=True)):
        ax.scatter([xi], [yi], color=_SERIES_COLOURS[i % len(_SERIES_COLOURS)], s=36, zorder=3)
        ax.annotate(plain_text(label), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if slope is not None and intercept is not None and np.isfinite(slope):
        xs = np.linspace(np.nanmin(x), np.nanmax(x), 50)
        fit = f"fit: y = {slope:.2f}x {'+' if intercept >= 0 else '−'} {abs(intercept):.2f}"
        if r is not None and np.isfinite(r):
            fit += f"   (Pearson r = {r:.2f})"
        ax.plot(xs, slope * xs + intercept, "--", color="#555555", lw=1.2, label=fit)
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", fontsize=8, frameon=False)
    ax.set_xlabel(plain_text(xlabel))
    ax.set_ylabel(plain_text(ylabel))
    ax.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------------- group breakdown (Fig. 4, Table 3)
def breakdown_bars(cumulative: pd.DataFrame, metric: str = "nmi"):
    """Bars of ``metric`` for each cumulative step, with and without the label group (Fig. 4).

    ``cumulative`` has columns ``step`` (the group added at that step), ``with_labels`` (bool) and
    ``<metric>_mean`` / ``<metric>_std``.
    """
    fig = _figure(6.5, 3.8)
    ax = fig.add_subplot()
    steps = list(pd.unique(cumulative["step"]))
    variants = [v for v in (True, False) if (cumulative["with_labels"] == v).any()]
    width = 0.8 / max(len(variants), 1)
    for j, variant in enumerate(variants):
        rows = cumulative[cumulative["with_labels"] == variant].set_index("step")
        xs, ys, es = [], [], []
        for i, step in enumerate(steps):
            if step in rows.index:
                xs.append(i + (j - (len(variants) - 1) / 2) * width)
                ys.append(float(rows.loc[step, f"{metric}_mean"]))
                es.append(float(rows.loc[step, f"{metric}_std"]))
        label = "with label group" if variant else "without label group"
        ax.bar(xs, ys, width, yerr=es, capsize=2, label=label, color=_SERIES_COLOURS[j])
    ticks = [plain_text(s if i == 0 else f"+{s}") for i, s in enumerate(steps)]
    ax.set_xticks(range(len(steps)), ticks, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title("Cumulative concept groups", fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def delta_bars(deltas: pd.DataFrame, metric: str = "nmi"):
    """Bars of ``delta_<metric>_mean`` (± ``_std``) for each group added on top of the label group (Table 3)."""
    fig = _figure(5.5, 3.4)
    ax = fig.add_subplot()
    values = deltas[f"delta_{metric}_mean"].to_numpy(float)
    errors = deltas[f"delta_{metric}_std"].to_numpy(float) if f"delta_{metric}_std" in deltas else None
    colours = [FAVOURS_A if v >= 0 else FAVOURS_B for v in values]
    ax.bar(range(len(values)), values, yerr=errors, capsize=2, color=colours)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(values)), [plain_text(g) for g in deltas["group"]], rotation=20, ha="right",
                  fontsize=8)
    ax.set_ylabel("Δ" + METRIC_LABELS.get(metric, metric))
    ax.set_title("Each group added on top of the label group", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


# ---------------------------------------------------------------------- K sweep (Fig. 6, 7)
def k_curves(sweep: pd.DataFrame, metrics: Sequence[str] = ("mi_bits", "nmi", "ami", "top1")):
    """One panel per metric, ``<metric>_mean`` against ``k`` (log scale, ticks at the swept K), every ``model``'s
    line on the panel's axes (paper Fig. 6, 7); error bars (± ``<metric>_std``) only where a point averages
    several clusterings (``clusterings`` > 1). The legend sits below the panels."""
    metrics = [m for m in metrics if f"{m}_mean" in sweep.columns]
    fig = _figure(3.2 * max(len(metrics), 1), 3.6)
    axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
    models = list(pd.unique(sweep["model"])) if "model" in sweep.columns else [""]
    ks = sorted(pd.unique(sweep["k"]))
    for ax, metric in zip(axes, metrics, strict=False):
        for i, model in enumerate(models):
            rows = (sweep if model == "" else sweep[sweep["model"] == model]).sort_values("k")
            std = rows[f"{metric}_std"].to_numpy(float) if f"{metric}_std" in rows.columns else None
            if std is not None and "clusterings" in rows.columns:
                std = np.where(rows["clusterings"].to_numpy() > 1, std, np.nan)
            has_spread = std is not None and np.isfinite(std).any()
            ax.errorbar(rows["k"], rows[f"{metric}_mean"], yerr=std if has_spread else None, marker="o", ms=4,
                        capsize=2, color=_SERIES_COLOURS[i % len(_SERIES_COLOURS)],
                        label=plain_text(model) or None)
        if len(ks) > 1 and min(ks) > 0:
            ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel("K (clusters)")
        ax.set_title(METRIC_LABELS.get(metric, metric), fontsize=10)
        ax.grid(alpha=0.3)
    if len(models) > 1 or models[0]:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=min(len(models), 4),
                   fontsize=8, frameon=False)
    return fig


# ---------------------------------------------------------------------- explanations (Fig. 5, 8-11)
def word_cloud(weights: Mapping[str, float], *, title: str = "", width: int = 480, height: int = 260,
               seed: int = 0):
    """A word cloud of signed weights: size ∝ |weight|, blue for positive (first cluster), red for negative.

    Uses the ``wordcloud`` package when installed, else a simple matplotlib layout of the same words.
    """
    fig = _figure(width / 100, height / 100 + (0.3 if title else 0))
    ax = fig.add_subplot()
    ax.set_axis_off()
    if title:
        ax.set_title(plain_text(title), fontsize=9)
    words = {str(k): float(v) for k, v in weights.items() if np.isfinite(v) and v != 0}
    if not words:
        ax.text(0.5, 0.5, "(no concepts)", ha="center", va="center", color="#777777")
        return fig
    try:
        import wordcloud as wc_module
    except ImportError:
        wc_module = None
    if wc_module is not None:
        sign = {w: v > 0 for w, v in words.items()}

        def colour(word, **_kwargs):
            return FAVOURS_A if sign.get(word, True) else FAVOURS_B

        cloud = wc_module.WordCloud(width=width, height=height, background_color="white", random_state=seed,
                                    prefer_horizontal=0.95, color_func=colour, collocations=False,
                                    relative_scaling=1.0, min_font_size=6,
                                    regexp=None, normalize_plurals=False, max_words=len(words))
        cloud.generate_from_frequencies({w: abs(v) for w, v in words.items()})
        ax.imshow(cloud.to_array(), interpolation="bilinear")
        return fig
    _simple_cloud(ax, words)
    return fig


def _simple_cloud(ax, words: Mapping[str, float]) -> None:
    """Lay words out in rows, largest first, font size ∝ |weight| (fallback without ``wordcloud``)."""
    ordered = sorted(words.items(), key=lambda kv: -abs(kv[1]))[:30]
    top = abs(ordered[0][1])
    x, y, row_h = 0.02, 0.92, 0.0
    for word, value in ordered:
        size = 8 + 16 * abs(value) / top
        w = 0.011 * size * len(word) / 10 + 0.03
        if x + w > 0.98:
            x, y = 0.02, y - max(row_h, 0.08)
            row_h = 0.0
        if y < 0.05:
            break
        ax.text(x, y, plain_text(word), fontsize=size, va="top", color=FAVOURS_A if value > 0 else FAVOURS_B,
                transform=ax.transAxes)
        x += w
        row_h = max(row_h, size / 160)


def coefficient_bars(concepts: Sequence[str], differences: Sequence[float], *, label_a: str = "cluster a",
                     label_b: str = "cluster b", title: str = ""):
    """Horizontal bars of signed coefficient differences (positive favours ``label_a``)."""
    diffs = np.asarray(differences, float)
    fig = _figure(5.0, 0.3 * max(len(diffs), 3) + 1.0)
    ax = fig.add_subplot()
    order = np.arange(len(diffs))[::-1]
    ax.barh(range(len(diffs)), diffs[order], color=[FAVOURS_A if d > 0 else FAVOURS_B for d in diffs[order]])
    ax.set_yticks(range(len(diffs)), [plain_text(concepts[i]) for i in order], fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"coefficient difference  (← {plain_text(label_b)} | {plain_text(label_a)} →)", fontsize=8)
    if title:
        ax.set_title(plain_text(title), fontsize=9)
    return fig


def thumbnail_mosaic(images: Sequence, columns: int, cell: int = 96, gap: int = 4) -> np.ndarray:
    """One (rows·(cell + gap) − gap, columns·(cell + gap) − gap, 3) uint8 white canvas with the ``images`` (PIL
    images or (h, w[, 3]) uint8 arrays, each fitted into a ``cell`` × ``cell`` pixel square keeping its aspect,
    or ``None`` for a missing file: a grey square) in row-major order. One ``imshow`` of it replaces one axes
    per thumbnail, which made the report's figures its slowest part."""
    image = require("PIL.Image", "report", "thumbnails")
    n = max(len(images), 1)
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    canvas = np.full((rows * (cell + gap) - gap, columns * (cell + gap) - gap, 3), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        top, left = (i // columns) * (cell + gap), (i % columns) * (cell + gap)
        if img is None:
            canvas[top:top + cell, left:left + cell] = 0xDD
            continue
        thumb = (img if isinstance(img, image.Image) else image.fromarray(np.asarray(img))).convert("RGB")
        thumb.thumbnail((cell, cell), image.Resampling.BICUBIC)
        w, h = thumb.size
        y, x = top + (cell - h) // 2, left + (cell - w) // 2
        canvas[y:y + h, x:x + w] = np.asarray(thumb)
    return canvas


def _draw_mosaic(ax, images: Sequence, columns: int, cell: int = 96, gap: int = 4) -> None:
    """Show :func:`thumbnail_mosaic` of ``images`` on ``ax``, with "missing" written over a missing file."""
    ax.set_axis_off()
    ax.imshow(thumbnail_mosaic(images, columns, cell, gap), interpolation="antialiased")
    columns = max(1, min(columns, max(len(images), 1)))
    for i, img in enumerate(images):
        if img is None:
            x, y = (i % columns) * (cell + gap) + cell / 2, (i // columns) * (cell + gap) + cell / 2
            ax.text(x, y, "missing", ha="center", va="center", fontsize=7)


def thumbnail_strip(images: Sequence, *, title: str = "", columns: int = 6):
    """A grid of thumbnails (PIL images or ``None`` for a missing file, drawn as an empty grey box)."""
    n = max(len(images), 1)
    rows = int(np.ceil(n / columns))
    fig = _figure(1.2 * min(n, columns), 1.2 * rows + (0.3 if title else 0))
    _draw_mosaic(fig.add_subplot(), images, columns)
    if title:
        fig.suptitle(plain_text(title), fontsize=9)
    return fig


def pair_figure(weights: Mapping[str, float], images_a: Sequence, images_b: Sequence, *,
                label_a: str, label_b: str, title: str = "", columns: int = 4):
    """Fig. 5-style panel: thumbnails of cluster a (left), the word cloud, thumbnails of cluster b (right)."""
    fig = _figure(10.0, 3.2)
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 1.3, 1])
    for slot, images, label, colour in ((0, images_a, label_a, FAVOURS_A), (2, images_b, label_b, FAVOURS_B)):
        ax = fig.add_subplot(grid[0, slot])
        ax.set_axis_off()
        ax.set_title(plain_text(label), color=colour, fontsize=9)
        if images:
            _draw_mosaic(ax, images, columns)
        else:
            ax.text(0.5, 0.5, "(no images)", ha="center", va="center", color="#777777", transform=ax.transAxes)
    ax = fig.add_subplot(grid[0, 1])
    ax.set_axis_off()
    cloud = word_cloud(weights, width=520, height=300)
    ax.imshow(_figure_array(cloud))
    if title:  # wrapped to the panel's width (10 in at 10 pt: about 120 characters a line), never clipped
        fig.suptitle(plain_text(textwrap.fill(title, 120)), fontsize=10)
    return fig


def _figure_array(fig) -> np.ndarray:
    image = require("PIL.Image", "report", "thumbnails")
    return np.asarray(image.open(io.BytesIO(figure_png(fig, dpi=100))).convert("RGB"))
