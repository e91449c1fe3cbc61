"""Turn analysis outputs into report sections (tables + figures + thumbnails + notes).

One builder per analysis; each returns a :class:`~qrprobe.report.section.Section`, which an analysis command
saves as a directory and ``qrprobe report`` renders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..results import HEADLINE, Result
from . import figures as F
from .comparison import FLAG_MARK, comparison_section, flagged_names  # noqa: F401  (their old home)
from .section import Block, FigureData, Section, ThumbnailRow
from .tables import METRIC_LABELS, Table
from .thumbnails import DistinctExamples, decode, distinct_thumbnails

_DELTAS = tuple(f"delta_{m}" for m in HEADLINE)


def _metric_columns(df: pd.DataFrame, metrics: Sequence[str] = HEADLINE) -> list[str]:
    return [c for m in metrics for c in (f"{m}_mean", f"{m}_std") if c in df.columns]


# ---------------------------------------------------------------------- breakdown (Fig. 4, Table 3)
def breakdown_section(breakdown, metric: str = "nmi") -> Section:
    """Cumulative bars with/without the label group and the single-group deltas."""
    section = Section("breakdown", f"Concept-group breakdown{_of(breakdown.name)}",
                      "Every probe is trained on the same clusterings; a difference between rows is the concepts' "
                      "doing (paper Fig. 4 and Table 3).", config=breakdown.config)
    cum = breakdown.cumulative
    if len(cum):
        shown = cum[["step", "groups", "with_labels", "n_concepts", *_metric_columns(cum)]]
        section.blocks.append(Block(
            "Cumulative groups",
            f"Groups accumulated in the order {', '.join(breakdown.order)}"
            + (f", with the label group {breakdown.label_group!r} first and without it." if breakdown.label_group
               else "."),
            [Table("breakdown-cumulative", shown, "Cumulative concept groups",
                   "Each row: a probe trained on the groups listed (mean ± std over clusterings).")],
            [FigureData.from_figure(F.breakdown_bars(cum, metric), "breakdown-cumulative",
                                    f"{METRIC_LABELS.get(metric, metric)} for cumulative concept groups")]))
        dropped = cum[cum["mi_drop"]] if "mi_drop" in cum.columns else cum.iloc[:0]
        if len(dropped):
            section.notes.append(
                "⚠ Adding " + ", ".join(f"{g!r}" for g in dropped["step"]) + " lowered the MI estimate by more than "
                "its 95% interval over clusterings. Information cannot fall when concepts are added: the drop is "
                "the probe's (optimisation or overfitting on few training images), not the concepts'.")
    single = breakdown.single
    if len(single):
        cols = ["group", "n_concepts", *_metric_columns(single, (metric,)),
                *_metric_columns(single, _DELTAS)]
        section.blocks.append(Block(
            "Each group on top of the label group",
            "Δ: mean over clusterings of the paired difference to the label group alone (same clustering and "
            "split), ± its std. A group that carries no information about the clusters adds ≈ 0 and can lose "
            "a little on the test split.",
            [Table("breakdown-single", single[cols], "Single groups added to the label group",
                   "Scores with the label group plus one group, and the change against the label group alone.",
                   signed=_DELTAS)],
            [FigureData.from_figure(F.delta_bars(single.iloc[1:], metric), "breakdown-deltas",
                                    f"Δ{METRIC_LABELS.get(metric, metric)} of each group")]
            if len(single) > 1 else []))
    elif breakdown.label_group is None:
        section.notes.append("No label group was given, so no single-group deltas were computed.")
    return section


def redraw_breakdown(section: Section) -> Section:
    """A breakdown section with its bar charts drawn again from its own tables (a section cached by an earlier
    qrprobe keeps its numbers and gets today's figures); other sections, and charts whose table lacks a
    column, are left as they are."""
    if section.kind != "breakdown":
        return section
    tables = {t.name: t.data for t in section.tables()}
    draw = {"breakdown-cumulative": ("breakdown-cumulative", F.breakdown_bars, lambda d: d),
            "breakdown-deltas": ("breakdown-single", F.delta_bars, lambda d: d.iloc[1:])}
    for block in section.blocks:
        for i, fig in enumerate(block.figures):
            if fig.name not in draw or draw[fig.name][0] not in tables:
                continue
            table, function, rows = draw[fig.name]
            metric = next((m for m, label in METRIC_LABELS.items()
                           if fig.caption.removeprefix("Δ").startswith(label + " ")), "nmi")
            try:
                drawn = function(rows(tables[table]), metric)
            except KeyError:
                continue
            block.figures[i] = FigureData.from_figure(drawn, fig.name, fig.caption, fig.embed)
    return section


def _of(name: str) -> str:
    return f" — {name}" if name else ""


# ---------------------------------------------------------------------- K sweep (Fig. 6, 7)
def ksweep_section(table: pd.DataFrame, notes: Sequence[str] = ()) -> Section:
    """K curves of MI and NMI/AMI/top-1: one panel per metric, every model's line on the panel's shared axes
    (paper Fig. 6, 7)."""
    cols = ["model", "k", "clusterings", *_metric_columns(table, ("mi_bits", "cluster_entropy_bits", "nmi", "ami",
                                                                 "top1", "map"))]
    cols = [c for c in cols if c in table.columns]
    fig = F.k_curves(table)
    single = "clusterings" in table.columns and (table["clusterings"] == 1).all()
    spread = ("one clustering per K: no error bars" if single
              else "mean over clusterings, error bars ± std (none where a K has one clustering)")
    return Section("ksweep", "Scores against K",
                   "MI (bits) is a lower bound of I(f_K(x); y(x)); in the paper (Fig. 6, 1.28M images) it grows "
                   "with K. NMI/AMI/top-1 rank models across K (Fig. 7). " + mi_trend_text(table),
                   [Block(tables=[Table("ksweep", table[cols], "Scores against K")],
                          figures=[FigureData.from_figure(fig, "ksweep", f"Scores as K grows, one panel per metric "
                                                                         f"and one line per model ({spread}).")])],
                   list(notes))


def mi_trend_text(table: pd.DataFrame) -> str:
    """What the K-sweep table shows of MI, per model: whether it grows or falls from the smallest to the
    largest K (the text above the figure must say what the figure shows), and why it can fall."""
    if not {"model", "k", "mi_bits_mean"} <= set(table.columns):
        return ""
    grows: list[str] = []
    falls: list[str] = []
    flat: list[str] = []
    for model, rows in table.sort_values("k").groupby("model", sort=False):
        mi = rows["mi_bits_mean"].to_numpy(float)
        ks = rows["k"].to_numpy()
        if len(mi) < 2 or not np.isfinite(mi[[0, -1]]).all():
            continue
        change = f"{model}: {mi[0]:.2f} → {mi[-1]:.2f} bits from K = {ks[0]} to {ks[-1]}"
        tolerance = 0.02 * max(abs(mi[0]), 1e-9)
        (grows if mi[-1] > mi[0] + tolerance else falls if mi[-1] < mi[0] - tolerance else flat).append(change)
    parts = []
    if grows:
        parts.append(f"Here MI grows with K for {'; '.join(grows)}.")
    if flat:
        parts.append(f"It stays about level for {'; '.join(flat)}.")
    if falls:
        parts.append(f"It falls with K for {'; '.join(falls)}: with few images per cluster the probe's held-out "
                     "estimate of MI loses more to estimation error than the finer clusters add (a small "
                     "collection, unlike the paper's).")
    return " ".join(parts)


def merge_ksweeps(sections: Sequence[Section]) -> Section:
    """One K-sweep section from several (e.g. one per model): their ``ksweep`` tables stacked and drawn
    together, so that the models share each metric's axes."""
    tables = [t.data for s in sections for t in s.tables() if t.name == "ksweep" and {"model", "k"} <= set(t.data)]
    notes = list(dict.fromkeys(n for s in sections for n in s.notes))
    if not tables:
        return sections[0]
    table = pd.concat(tables, ignore_index=True).drop_duplicates(["model", "k"]).reset_index(drop=True)
    return ksweep_section(table, notes)


# ---------------------------------------------------------------------- explanations (Fig. 5, 8-11)
def explanation_section(expl, *, title: str | None = None, thumbnail_size: int = 96,
                        export_panels: bool = True, shown_ids: set[str] | None = None) -> Section:
    """One block per explained pair (word cloud, thumbnails of both clusters, concept differences) and one
    per summarised cluster (top concepts, example images).

    ``shown_ids``: ids of the images the report already shows (updated with this section's), so that no image
    appears twice in a report; near-blank images are shown only when a cluster has no others."""
    if expl.added_label:
        heading = title or f"What {expl.added_label} explains beyond {expl.base_label}"
        intro = (f"The purpose here: which clusters {expl.added_label} tells apart that {expl.base_label} alone "
                 f"cannot. Pairs of clusters whose test confusion drops most when {expl.added_label} is added to "
                 f"{expl.base_label} (clustering {expl.clustering}, K = {expl.n_clusters}). Word clouds: the "
                 "concepts whose probe coefficients differ most between the two clusters; blue favours the first "
                 "cluster (a), red the second (b); size ∝ |difference| (paper Fig. 5, 8-11).")
    else:
        heading = title or f"Cluster explanations — {expl.base_label}: the pairs the probe confuses most"
        intro = (f"The purpose here: where the probe trained on all concept groups still fails. The pairs of "
                 f"clusters it confuses most on the test split (clustering {expl.clustering}, K = "
                 f"{expl.n_clusters}), with the concepts that separate them (blue favours cluster a, red "
                 "cluster b), and per-cluster summaries.")
    section = Section("explain", heading, intro, notes=list(expl.notes))
    pairs = expl.pairs_table()
    if len(pairs):
        section.blocks.append(Block("Pairs", tables=[Table("explain-pairs", pairs, "Explained cluster pairs",
                                                           "Pair confusion on the test split (%).", digits=1)]))
    paths = expl.paths
    has_paths = paths is not None and any(bool(p) for p in np.asarray(paths, dtype=object))
    if not has_paths:
        section.notes.append("No image paths are recorded with these results: thumbnails are omitted.")
    missing_total = [0, 0]
    # an image is known by its id (or, without ids, its path): the label of its thumbnail
    keys = expl.image_ids if expl.image_ids is not None else (paths if has_paths else None)
    shown = DistinctExamples(expl.labels, image_ids=keys, shown_ids=shown_ids)

    def thumbs(cluster, rows, caption, colour):
        if not has_paths or not len(rows):
            return []
        items, missing, blank = distinct_thumbnails(shown, cluster, rows, paths, expl.image_ids, thumbnail_size)
        missing_total[0] += missing
        missing_total[1] += len(items)
        if not items:
            return []
        if blank > len(items) / 2:
            caption += " — nearly blank images (faint drawings or flat colour): the cluster has few others"
        return [ThumbnailRow(caption, items, colour)]

    for i, p in enumerate(expl.pairs):
        a, b = p.cluster_a, p.cluster_b
        weights = dict(zip(p.concepts["concept"], p.concepts["difference"], strict=True))
        cloud = F.word_cloud(weights)
        pair_n = p.n_a + p.n_b
        if np.isfinite(p.confusion_added):
            text = (f"Pair confusion {100 * p.confusion_base:.1f}% ({p.confused_base} of {pair_n} test images of "
                    f"the two clusters) with {expl.base_label} → {100 * p.confusion_added:.1f}% "
                    f"({p.confused_added} of {pair_n}) with {expl.added_label} added.")
        else:
            text = (f"Pair confusion {100 * p.confusion_base:.1f}%: {p.confused_base} of the {pair_n} test images "
                    f"of the two clusters ({p.n_a} in cluster {a}, {p.n_b} in cluster {b}) are assigned to the other.")
        if len(p.concepts):
            text += f" Largest coefficient difference: {p.concepts['difference'].abs().max():.3g} (logit units)."
        rows = (thumbs(a, p.rows_a, f"cluster {a} (a)", F.FAVOURS_A)
                + thumbs(b, p.rows_b, f"cluster {b} (b)", F.FAVOURS_B))
        figs = [FigureData.from_figure(cloud, f"pair-{i + 1}-cloud", f"Concepts separating cluster {a} (blue) "
                                                                    f"from cluster {b} (red)")]
        if export_panels:
            images_a = [decode(t.jpeg) for r in rows[:1] for t in r.thumbnails if t.jpeg is not None]
            images_b = [decode(t.jpeg) for r in rows[1:] for t in r.thumbnails if t.jpeg is not None]
            panel = F.pair_figure(weights, images_a[:8], images_b[:8], label_a=f"cluster {a}",
                                  label_b=f"cluster {b}", title=text)
            figs.append(FigureData.from_figure(panel, f"pair-{i + 1}-panel", "Fig. 5-style panel", embed=False))
        concepts = p.concepts.rename(columns={"difference": "coef_difference"})
        section.blocks.append(Block(f"Pair {i + 1}: cluster {a} vs cluster {b}", text,
                                    [Table(f"pair-{i + 1}-concepts", concepts, f"Cluster {a} vs {b}",
                                           "Coefficient difference a − b (logit units); favours: the cluster "
                                           "the concept pushes towards; images with it: how many images carry "
                                           "the concept (−1 where the concept matrix was not available).",
                                           digits=3, signed=("coef_difference",))],
                                    figs, rows))
    if expl.clusters:
        block = Block("Cluster summaries", "Top concepts (coefficient centred over clusters) and the most "
                      "frequent concepts of each cluster, with example images.",
                      [Table("explain-clusters", expl.clusters_table(), "Cluster summaries")])
        for s in expl.clusters:
            block.thumbnail_rows += thumbs(s.cluster, s.rows, f"cluster {s.cluster} ({s.size} images): "
                                                   f"{', '.join(s.top_concepts['concept'].head(4))}", "")
        section.blocks.append(block)
    if missing_total[0]:
        section.notes.append(f"{missing_total[0]} example images could not be read (missing or unreadable "
                             "files): other images of their clusters are shown instead, or an empty box where a "
                             "cluster has none left.")
    if not expl.pairs:
        section.notes.append("No pair of clusters is confused on the test split (or no confusion dropped).")
    return section


# ---------------------------------------------------------------------- single Results (self-labels, D.1)
def result_section(result: Result, kind: str, title: str, intro: str) -> Section:
    """A one-row table of a Result's mean ± std (e.g. self-labels, concepts → labels)."""
    row = {"model": result.name, "k": result.config.get("k"), "repeats": len(result.seeds)}
    for m in HEADLINE:
        if m in result.summary:
            row[f"{m}_mean"] = result.summary[m]["mean"]
            row[f"{m}_std"] = result.summary[m]["std"]
    return Section(kind, title, intro, [Block(tables=[Table(kind, pd.DataFrame([row]), title)])],
                   config=result.config)


def transfer_section(tr, source_summary: dict | None = None) -> Section:
    """Scores of a transferred quantizer + probe, beside the source's own scores when known (Table 7)."""
    metrics = ("top1", "top5", "nmi", "ami", "map", "mi_bits")
    rows = [{"evaluated_on": "target (transfer)", **{f"{m}_{s}": tr.summary[m][s] for m in metrics
                                                      if m in tr.summary for s in ("mean", "std")}}]
    if source_summary:
        rows.append({"evaluated_on": "source (test split)",
                     **{f"{m}_{s}": source_summary[m][s] for m in metrics if m in source_summary
                        for s in ("mean", "std")}})
    table = pd.DataFrame(rows)
    notes = list(tr.notes)
    if tr.dropped_groups:
        notes.append(f"Probes retrained on the source images without {', '.join(tr.dropped_groups)}.")
    return Section("transfer", f"Transfer{_of(tr.name)}",
                   "The source quantizer (standardization + centroids) and probe applied to other images without "
                   "retraining (paper Table 7); scores against the target images' nearest source centroids.",
                   [Block(tables=[Table("transfer", table, "Transfer", "Mean ± std over the source clusterings.")])],
                   notes)


def forward_probe_section(fp, reverse: Result | None = None, top: int = 40) -> Section:
    """Per-concept forward linear probes beside the cluster readout (and the reverse probe's scores)."""
    summary = pd.DataFrame([fp.summary()])
    blocks = [Block("Summary", "Mean over the probed concepts (balanced accuracy and AP, ×100).",
                    [Table("forward-summary", summary, "Forward probes: means")])]
    if reverse is not None:
        blocks[0].tables.append(Table("reverse-summary", pd.DataFrame([{
            f"{m}_{s}": reverse.summary[m][s] for m in HEADLINE if m in reverse.summary for s in ("mean", "std")}]),
            "Reverse probe on the same representation"))
    blocks.append(Block("Per concept", "Sorted by gap (cluster readout − linear), largest first: concepts the "
                        "clusters capture but a linear probe on the features does not come first.",
                        [Table("forward-concepts", fp.table.head(top), "Forward probe per concept",
                               signed=("gap_bacc",))]))
    notes = []
    if fp.skipped:
        notes.append(f"{len(fp.skipped)} concepts skipped (too few positives or negatives).")
    return Section("forward-probe", "Forward linear probes",
                   "Features → concept linear classifiers (paper Fig. 2), beside a readout of the same concept "
                   "from the clusters.", blocks, notes, fp.config)


# ---------------------------------------------------------------------- configuration
#: Settings the notes section already lists (each note once, there): not repeated in the configuration.
_NOTE_SETTINGS = ("inputs.notes", "inputs.flags", "statistics.warnings")


def configuration_section(results: Sequence[Result], names: Sequence[str]) -> Section:
    """The resolved configuration, inputs, seeds and library versions of every Result, as tables: the
    settings every result shares once (setting, value), then those that differ side by side (one column per
    result). Lists read as text, one item a line; the inputs' notes are in the notes section, not here."""
    flat = [_flatten({"config": r.config, "inputs": r.inputs, "seeds": r.seeds, "versions": r.versions})
            for r in results]
    settings = [k for k in dict.fromkeys(k for f in flat for k in f) if k not in _NOTE_SETTINGS]
    texts = [[_setting_text(f[k]) if k in f else "–" for f in flat] for k in settings]
    same = [k for k, t in zip(settings, texts, strict=True) if len(set(t)) == 1]
    differ = [(k, t) for k, t in zip(settings, texts, strict=True) if len(set(t)) > 1]
    tables = []
    if len(results) == 1:
        tables.append(Table("configuration", pd.DataFrame({"setting": settings, "value": [t[0] for t in texts]}),
                            f"Configuration of {names[0]}"))
    else:
        if differ:
            data = {"setting": [k for k, _ in differ]}
            for i, name in enumerate(_unique(names)):
                data[name] = [t[i] for _, t in differ]
            tables.append(Table("configuration", pd.DataFrame(data), "Settings that differ between results"))
        if same:
            values = {k: t[0] for k, t in zip(settings, texts, strict=True)}
            tables.append(Table("configuration-shared", pd.DataFrame({"setting": same,
                                                                     "value": [values[k] for k in same]}),
                                "Settings every result shares"))
    return Section("configuration", "Run configuration", "Everything needed to reproduce each result "
                   "(the inputs' notes are in the notes section).", [Block(tables=tables)])


def _unique(names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        label, i = n, 2
        while label in out or label == "setting":
            label, i = f"{n} ({i})", i + 1
        out.append(label)
    return out


def _setting_text(value) -> str:
    """A setting as text: a list of plain values one item a line, ``null`` as –, anything else JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "–"
    if isinstance(value, list) and all(isinstance(v, (str, int, float, bool)) for v in value):
        return "\n".join(map(str, value)) if any(isinstance(v, str) and len(v) > 20 for v in value) \
            else ", ".join(map(str, value))
    return json.dumps(value)


def _flatten(obj, prefix: str = "") -> dict:
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = obj
    return out
