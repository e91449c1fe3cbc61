"""``run_study``: extract → label → evaluate → analyses → report, each stage cached by its inputs.

Layout of the output directory::

    study.resolved.json            the validated config with every default filled in
    features/<model>-<key>/        feature stores (key: model spec, weights, images)
    concepts/<expert>-<key>/       one concept bank per expert (key: expert spec, images, label table)
    results/<model>-<key>/         evaluate() results (key: features hash, concept-bank hash, protocol)
    analyses/<analysis>-<model>-<key>/   report sections
    report.html, report/           the HTML report and its figures and tables (key: everything above)
    ranking.md                     the comparison table printed at the end

A killed run leaves no complete-looking stage behind (each stage is written under a temporary name or keeps
its own resumable work folder), so running the same command again picks up where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

from .._atomic import atomic_write_text, check_writable, clean_stale_in
from ..engine.kmeans.memo import reuse_clusterings
from ..errors import QRProbeInputError
from ..progress import StageCounter, format_seconds, note, once
from ..results import Result, markdown_table
from .analyses import StudyState, analyses_stage, analysis_items
from .cache import file_identity, slug, stage_key
from .checks import RESOLVED, check_layout
from .config import StudyConfig
from .lock import study_lock
from .stages import (
    ImageSet,
    StageContext,
    evaluate_stage,
    extract_stage,
    extract_together_stage,
    label_stage,
    remove_orphans,
)

STAGES = ("extract", "label", "evaluate", "analyses", "report")
T = TypeVar("T")


@dataclass
class StudyOutcome:
    """What a run did: output paths, the ranking table, and per stage whether it ran or was reused."""

    output: Path
    results: dict[str, Path] = field(default_factory=dict)
    analyses: list[Path] = field(default_factory=list)
    report: Path | None = None
    ranking: str = ""
    log: list[dict] = field(default_factory=list)

    def ran(self, stage: str) -> list[str]:
        """Names of the items of ``stage`` that were computed (not reused) in this run."""
        return [e["item"] for e in self.log if e["stage"] == stage and not e["reused"]]


class _Log:
    """Records each stage item in the outcome and, when ``show``, prints it (the time measured per item)."""

    def __init__(self, outcome: StudyOutcome, echo: Callable[[str], None], show: bool = True) -> None:
        self.outcome = outcome
        self.echo = echo
        self.show = show

    def __call__(self, stage: str, item: str, reused: bool, seconds: float, path: Path | None = None) -> None:
        self.outcome.log.append({"stage": stage, "item": item, "reused": reused, "seconds": round(seconds, 2),
                                 "path": str(path) if path else None})
        if self.show:
            self.echo(f"[{stage}] {item}: {'reused' if reused else f'done in {format_seconds(seconds)}'}")


def default_output(config_path: Path | None, study: StudyConfig) -> Path:
    if study.output:
        return Path(study.output)
    base = config_path.parent if config_path else Path.cwd()
    return base / f"{slug(study.name)}-out"


def expand_force(force: Collection[str]) -> tuple[str, ...]:
    """The stages ``force`` names (``"all"``: every stage), checked."""
    unknown = [s for s in force if s not in (*STAGES, "all")]
    if unknown:
        raise QRProbeInputError(f"--force: unknown stage(s) {unknown}; stages are {', '.join(STAGES)}, or all")
    return STAGES if "all" in force else tuple(dict.fromkeys(force))


def study_context(study: StudyConfig, out: Path, outcome: StudyOutcome, images: ImageSet, *,
                  force: Sequence[str] = (), progress: bool = True, echo: Callable[[str], None] | None = None,
                  reuse_only: Collection[str] = (), check_only: bool = False) -> StageContext:
    """The :class:`StageContext` of a run, a study job (``reuse_only``: the stages made by other jobs) or a
    check of what is done (``check_only``)."""
    force = expand_force(force)
    echo = echo or _print_line
    return StageContext(study, out, _Log(outcome, echo, progress), frozenset(force), progress, echo, images.key,
                        frozenset(reuse_only), check_only)


def _print_line(text: str) -> None:
    note(text)  # above any open progress bar on a terminal


def stage_kinds(study: StudyConfig, ctx: StageContext) -> list[str]:
    """The stage of every item of a whole run, in run order (the labelling pass counts as one item)."""
    kinds = ["extract"] * len(study.models) + (["label"] if study.experts else [])
    kinds += ["evaluate"] * len(study.models) + ["analyses"] * len(analysis_items(ctx))
    return kinds + (["report"] if study.report.enabled else [])


def run_study(study: StudyConfig, *, output: str | Path | None = None, force: Sequence[str] = (),
              progress: bool = True, echo: Callable[[str], None] | None = None,
              reuse_only: Collection[str] = ()) -> StudyOutcome:
    """Run (or resume) a study; only stages whose inputs changed, or that ``force`` names, are computed.

    ``reuse_only``: stages that must already be complete (the study's last job, after the others): a missing
    item of these raises :class:`~qrprobe.study.stages.StageMissing` instead of being computed.
    """
    out = Path(output) if output is not None else default_output(None, study)
    check_layout(study, out)
    check_writable(out / RESOLVED)
    # the same clustering is computed once per run; a note (the battery's) or warning is printed once per run
    with study_lock(out), reuse_clusterings(), once():
        return _run_locked(study, out, force, progress, echo, reuse_only)


def _run_locked(study: StudyConfig, out: Path, force: Sequence[str], progress: bool,
                echo: Callable[[str], None] | None, reuse_only: Collection[str]) -> StudyOutcome:
    for folder in (out, *(out / sub for sub in ("features", "concepts", "results", "analyses"))):
        clean_stale_in(folder)  # temporaries of a killed run
    images = ImageSet.open(study.images.source, study.images.labels)
    outcome = StudyOutcome(out)
    ctx = study_context(study, out, outcome, images, force=force, progress=progress, echo=echo,
                        reuse_only=reuse_only)
    atomic_write_text(out / RESOLVED, json.dumps(study.to_dict(), indent=2, default=str))
    ctx.counter = StageCounter(stage_kinds(study, ctx), enabled=progress, emit=ctx.echo)

    together = extract_together_stage(ctx, study.models, images) if study.extract_together else {}
    stores = {m.name: _counted(ctx, "extract", m.name, partial(extract_stage, ctx, m, images, together))
              for m in study.models}
    remove_orphans(out / "features", ".partial")  # work folders of models the study no longer has
    experts = ", ".join(e.name for e in study.experts)
    bank = (_counted(ctx, "label", experts, lambda: label_stage(ctx, images, stores)) if study.experts
            else label_stage(ctx, images, stores))
    remove_orphans(out / "concepts", ".pass-")  # labelling passes of a killed run whose experts changed
    protocol = study.protocol_config()
    bank_hash = bank.content_hash()  # once: it is part of every downstream stage key
    results = {m.name: _counted(ctx, "evaluate", m.name,
                                partial(evaluate_stage, ctx, m, stores[m.name], bank, bank_hash, protocol))
               for m in study.models}
    outcome.results = {name: path for name, (path, _) in results.items()}
    outcome.analyses = analyses_stage(ctx, StudyState(stores, results, bank, bank_hash, protocol))
    outcome.ranking = _ranking([res for _, res in results.values()], study)
    atomic_write_text(out / "ranking.md", outcome.ranking + "\n")
    if study.report.enabled:
        outcome.report = _counted(ctx, "report", "", lambda: report_stage(ctx, outcome))
    atomic_write_text(out / "run-log.json", json.dumps(outcome.log, indent=2))
    return outcome


def _counted(ctx: StageContext, kind: str, name: str, run: Callable[[], T]) -> T:
    """``run()`` as the next ``[stage i/n]`` item."""
    mark = ctx.begin(kind, f"{kind} {name}".strip())
    value = run()
    ctx.end(kind, mark)
    return value


def _ranking(results: list[Result], study: StudyConfig) -> str:
    """The comparison table, best first by the chance-corrected counterpart of the report's ``sort_by`` metric
    (as the report's), with the raw scores below it in the same order."""
    from ..analysis.compare import compare_results, ranking_metric
    from ..report.tables import Table
    from ..results import HEADLINE, LABELS

    metric = study.report.sort_by
    table = compare_results(results, sort_by=metric, intervals=False)
    by = str(table["ranked_by"].iloc[0])
    shown = [ranking_metric(m, raw=by == metric) for m in HEADLINE]
    cols = ["rank", "model", *[f"{m}_{p}" for m in shown for p in ("mean", "std")], "at_chance"]
    ranked = Table("ranking", table[cols]).to_markdown()
    by_name = {r.name: r for r in results}
    raw = markdown_table([by_name[m] for m in table["model"]])
    return (f"{ranked}\n\n(ranked by {LABELS.get(by, by)}"
            + ("" if by == metric else ": each score minus what the same clustering scores without information")
            + f"; mean ± std over {study.protocol.clusterings} clusterings; 'at chance': every probe kept the cluster "
              f"prior)\n\nRaw scores (the paper's reading), in the same order:\n\n{raw}")


def _notes_section(study: StudyConfig, out: Path) -> Path:
    """The study's own notes (e.g. why K is what it is) as a report section."""
    from ..report.section import Section

    path = out / "analyses" / f"notes-{stage_key(study.notes)}"
    if not (path / "section.json").is_file():
        Section(kind="notes", title=f"About this study: {study.name}", notes=list(study.notes)).save(path)
    return path


def _report_key(study: StudyConfig, outcome: StudyOutcome, out: Path) -> tuple[list[Path], str]:
    """The report's inputs and its cache key."""
    inputs = [*outcome.results.values(), *outcome.analyses]
    if study.notes:
        inputs.append(out / "analyses" / f"notes-{stage_key(study.notes)}")
    external = _external(study)
    key = stage_key({"inputs": [str(p) for p in inputs], "written": [_written(p) for p in inputs],
                     "report": study.report,
                     "external": None if external is None else external.to_dict("records"), "notes": study.notes})
    return inputs, key


def _written(path: Path) -> dict | None:
    """When an input of the report was written: an analysis recomputed (``--force analyses``) keeps its
    directory name, so the name alone would let a stale report be reused."""
    for name in ("results.json", "section.json"):
        if (path / name).is_file():
            return file_identity(path / name)
    return None


def _external(study: StudyConfig):
    """The models' external scores as a table (None when no model has any)."""
    import pandas as pd

    rows = [{"model": m.name, **m.external} for m in study.models if m.external]
    return pd.DataFrame(rows) if rows else None


def report_done(study: StudyConfig, outcome: StudyOutcome, out: Path) -> bool:
    """Whether ``report.html`` is there and was built from exactly these results and analyses."""
    marker = out / "report" / "key.txt"
    return (out / "report.html").is_file() and marker.is_file() and marker.read_text() == _report_key(
        study, outcome, out)[1]


def report_stage(ctx: StageContext, outcome: StudyOutcome) -> Path:
    """The HTML report of the results and analyses (reused when built from the same ones)."""
    from ..report.build import build_report

    study, out = ctx.study, ctx.out
    html = out / "report.html"
    t = time.perf_counter()
    if "report" not in ctx.force and report_done(study, outcome, out):
        ctx.log("report", "report.html", True, 0.0, html)
        return html
    ctx.may_compute("report", ctx.images_key, "report.html", html)
    if study.notes:
        _notes_section(study, out)
    inputs, key = _report_key(study, outcome, out)
    figures = out / "report"  # replaced atomically by the export (only when an earlier export made it)
    build_report(inputs, html, external=_external(study), figures_dir=figures,
                 title=study.report.title or f"qrprobe study: {study.name}", explain_pairs=study.report.pairs,
                 sort_by=study.report.sort_by)
    (figures / "key.txt").write_text(key)
    ctx.log("report", "report.html", False, time.perf_counter() - t, html)
    return html
