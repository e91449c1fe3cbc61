"""Assemble a report from Result directories and analysis directories (``qrprobe report``).

Each input is either a Result directory (``results.json``: from ``qrprobe evaluate``, ``self-labels``,
``concepts-to-labels``, ``ksweep``) or an analysis directory (``section.json``: from ``breakdown``,
``explain``, ``transfer``, ``forward-probe`` ...). From the Results the report makes the comparison table (with
external columns and the Fig. 3 scatter when a user table is given), the K curves when a model was evaluated
at several K, the explanations of each Result's most confused cluster pairs and the run configuration; the
analysis directories are shown as they are, each once, in the order of :func:`arrange` (notes first, as the
paper reads). A part that cannot be made (no arrays, no image paths, a single K) is left out with a note
saying why.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .._atomic import writing
from ..analysis.compare import read_external
from ..analysis.explain import explain_result
from ..analysis.ksweep import k_sweep_table
from ..errors import QRProbeInputError
from ..results import Result
from .comparison import check_external_matched, comparison_from_results  # noqa: F401  (its old home)
from .html import export_sections, write_html
from .notes import input_notes_section
from .section import Section
from .sections import (
    configuration_section,
    explanation_section,
    ksweep_section,
    merge_ksweeps,
    redraw_breakdown,
)
from .thumbnails import remove_repeated_thumbnails


def load_report_inputs(paths: Sequence[str | os.PathLike]) -> tuple[list[Result], list[str], list[Section]]:
    """Read every input directory; returns the Results, their display names and the analysis sections."""
    results, dirs, sections = [], [], []
    seen: set[Path] = set()
    for p in paths:
        path = Path(p)
        if path.exists() and path.resolve() in seen:
            continue  # the same directory named twice is one input
        seen.add(path.resolve())
        if (path / "results.json").is_file():
            results.append(Result.load(path))
            dirs.append(path.name)
        elif (path / "section.json").is_file():
            sections.append(Section.load(path))
        elif not path.exists():
            raise QRProbeInputError(f"RESULTS: not found: {str(path)!r}")
        else:
            raise QRProbeInputError(f"RESULTS: {str(path)!r} is neither a result directory (results.json) nor a "
                                    "qrprobe analysis directory (section.json)")
    return results, display_names(results, dirs), sections


def display_names(results: Sequence[Result], dirs: Sequence[str]) -> list[str]:
    names = [r.name or d for r, d in zip(results, dirs, strict=True)]
    if len(set(names)) < len(names):  # the same model at several K: say which K
        names = [f"{n} (K={r.config.get('k')})" if names.count(n) > 1 else n
                 for n, r in zip(names, results, strict=True)]
    if len(set(names)) < len(names):
        names = [f"{n} [{d}]" if names.count(n) > 1 else n for n, d in zip(names, dirs, strict=True)]
    return names


def _curve_labels(results: Sequence[Result], keys: Sequence[str]) -> list[str]:
    """One K curve per model and concept set: a model probed with several concept sets gets one curve each."""
    concepts = [r.inputs.get("concepts", {}) for r in results]
    hashes = [c.get("content_hash") for c in concepts]
    labels = []
    for key, c in zip(keys, concepts, strict=True):
        concept_sets = {h for k, h in zip(keys, hashes, strict=True) if k == key}
        groups = c.get("groups") or []
        labels.append(f"{key} ({' + '.join(map(str, groups))})" if len(concept_sets) > 1 and groups else key)
    return labels


def _has_arrays(result: Result) -> bool:
    return all(getattr(result, n) is not None for n in ("clusterings", "splits", "predictions", "coef", "concepts"))


def result_sections(results: Sequence[Result], names: Sequence[str], *, external: pd.DataFrame | None = None,
                    external_columns: Sequence[str] | None = None, explain_pairs: int = 4, sort_by: str = "nmi",
                    raw: bool = False, thumbnail_size: int = 96, comparison: bool = True,
                    shown_ids: set[str] | None = None) -> list[Section]:
    """Comparison (unless ``comparison`` is False: one was given), K curves and explanations made from
    Results (see the module docstring). ``shown_ids``: ids of images the report shows elsewhere; the
    explanations show other images (the set is updated)."""
    shown_ids = set() if shown_ids is None else shown_ids
    sections: list[Section] = []
    if not results:
        return sections
    keys = [r.name or n for r, n in zip(results, names, strict=True)]
    if comparison:
        sections.append(comparison_from_results(results, names, keys, external=external,
                                                external_columns=external_columns, sort_by=sort_by, raw=raw))
    sweep = k_sweep_table(results, _curve_labels(results, keys))
    sweep = sweep.drop_duplicates(["model", "k"]).reset_index(drop=True)  # the same run given twice
    multi_k = sweep.groupby("model")["k"].nunique()
    if (multi_k > 1).any():
        keep = sweep["model"].isin(multi_k[multi_k > 1].index)
        sections.append(ksweep_section(sweep[keep].reset_index(drop=True)))

    if explain_pairs > 0:
        for res, name in zip(results, names, strict=True):
            if not _has_arrays(res):
                sections.append(Section("explain", f"Cluster explanations — {name}", notes=[
                    "This result was saved without its arrays (clusterings, splits, predictions, probe "
                    "coefficients, concept table): no explanations can be made."]))
                continue
            expl = explain_result(res, top_pairs=explain_pairs)
            expl.base_label = name
            sections.append(explanation_section(expl, thumbnail_size=thumbnail_size, shown_ids=shown_ids))
    return sections


def report_sections(results: Sequence[Result], names: Sequence[str], analyses: Sequence[Section], *,
                    external: pd.DataFrame | None = None, external_columns: Sequence[str] | None = None,
                    explain_pairs: int = 4, sort_by: str = "nmi", raw: bool = False) -> list[Section]:
    """Every section of a report on ``results`` and ``analyses``, each once, in the order of
    :func:`arrange`. A comparison is made from the results only when none was given among the analyses, and a
    made section with the title of a given one (the same explanations) is left out."""
    given = {s.kind for s in analyses}
    # the given sections' images, in report order: the explanations made here show others
    shown = remove_repeated_thumbnails(sorted(analyses, key=lambda s: _ORDER.get(s.kind, 4)))
    made = result_sections(results, names, external=external, external_columns=external_columns,
                           explain_pairs=explain_pairs, sort_by=sort_by, raw=raw,
                           comparison="comparison" not in given, shown_ids=shown)
    titles = {s.title for s in analyses}
    made = [s for s in made if s.title not in titles]
    return arrange([*analyses, *made], results, names)


_ORDER = {"notes": 0, "comparison": 1, "ksweep": 2, "breakdown": 3, "explain": 5, "configuration": 6}


def arrange(sections: Sequence[Section], results: Sequence[Result], names: Sequence[str]) -> list[Section]:
    """Report order, as the paper reads: the notes first (the study's own, then what the inputs say about
    themselves: how they differ from the paper, flags, small-sample warnings), the comparison, the K curves
    (every model's in one section), the concept-group breakdown, the other analyses, the explanations and
    last the run configuration."""
    sections = [redraw_breakdown(s) for s in sections]
    sweeps = [s for s in sections if s.kind == "ksweep"]
    if len(sweeps) > 1:
        first = sections.index(sweeps[0])
        sections = [s for s in sections if s.kind != "ksweep"]
        sections.insert(first, merge_ksweeps(sweeps))
    inputs = input_notes_section(results, names)
    if inputs is not None:
        sections.append(inputs)
    if results:
        sections.append(configuration_section(results, names))
    ordered = sorted(sections, key=lambda s: _ORDER.get(s.kind, 4))  # stable: given analyses before made ones
    remove_repeated_thumbnails(ordered)  # no image twice in a report
    return ordered


def assemble(paths: Sequence[str | os.PathLike], *, external: str | os.PathLike | pd.DataFrame | None = None,
             external_columns: Sequence[str] | None = None, explain_pairs: int = 4,
             sort_by: str = "nmi", raw: bool = False) -> list[Section]:
    """All sections of a report on ``paths`` (Result and analysis directories), in report order."""
    results, names, analyses = load_report_inputs(paths)
    if not results and not analyses:
        raise QRProbeInputError("RESULTS: give at least one result or analysis directory")
    ext = None
    if external is not None:
        ext = external if isinstance(external, pd.DataFrame) else read_external(external, external_columns)
    return report_sections(results, names, analyses, external=ext, external_columns=external_columns,
                           explain_pairs=explain_pairs, sort_by=sort_by, raw=raw)


def build_report(paths: Sequence[str | os.PathLike], output: str | os.PathLike, *,
                 external: str | os.PathLike | pd.DataFrame | None = None,
                 external_columns: Sequence[str] | None = None, figures_dir: str | os.PathLike | None = None,
                 title: str = "qrprobe report", explain_pairs: int = 4, sort_by: str = "nmi",
                 raw: bool = False) -> Path:
    """Write the self-contained HTML report on ``paths`` to ``output`` (and every figure/table under
    ``figures_dir`` when given). Nothing is written unless every part was made."""
    with writing(output, "output"):  # the lock, before any work
        sections = assemble(paths, external=external, external_columns=external_columns,
                            explain_pairs=explain_pairs, sort_by=sort_by, raw=raw)
        n_results = sum(1 for p in paths if (Path(p) / "results.json").is_file())
        subtitle = (f"{n_results} result(s), {len(paths) - n_results} analysis director"
                    f"{'y' if len(paths) - n_results == 1 else 'ies'}")
        if figures_dir is not None:
            export_sections(sections, figures_dir)
        return write_html(sections, output, title=title, subtitle=subtitle)


def report(items: Sequence[Result | Section | str | os.PathLike], output: str | os.PathLike, *,
           names: Sequence[str] | None = None, external: pd.DataFrame | None = None,
           external_columns: Sequence[str] | None = None, figures_dir: str | os.PathLike | None = None,
           title: str = "qrprobe report", explain_pairs: int = 4, sort_by: str = "nmi",
           raw: bool = False) -> Path:
    """Library entry point: a report on Results, Sections and/or directories (mixed freely)."""
    with writing(output, "output"):  # the lock, before any work
        return _report(items, output, names, external, external_columns, figures_dir, title, explain_pairs,
                       sort_by, raw)


def _report(items, output, names, external, external_columns, figures_dir, title, explain_pairs,
            sort_by, raw=False) -> Path:
    results: list[Result] = []
    result_names: list[str] = []
    analyses: list[Section] = []
    paths = [p for p in items if isinstance(p, (str, os.PathLike))]
    if paths:
        r, n, s = load_report_inputs(paths)
        results += r
        result_names += n
        analyses += s
    for item in items:
        if isinstance(item, Result):
            results.append(item)
            result_names.append(item.name or f"result {len(results)}")
        elif isinstance(item, Section):
            analyses.append(item)
    if names is not None:
        if len(names) != len(results):
            raise QRProbeInputError(f"{len(names)} names for {len(results)} results")
        result_names = list(names)
    sections = report_sections(results, result_names, analyses, external=external,
                               external_columns=external_columns, explain_pairs=explain_pairs, sort_by=sort_by,
                               raw=raw)
    if figures_dir is not None:
        export_sections(sections, figures_dir)
    return write_html(sections, output, title=title)
