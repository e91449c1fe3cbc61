"""A study as a graph of stage items, each a job that a scheduler can run by itself.

The items: ``extract`` one per model, ``label`` one per expert, ``evaluate`` one per model (after its
extraction and every labelling), ``analyses`` one per analysis and model (after every evaluation), and
``report`` (after everything: the ranking, the run log and the HTML report). :func:`run_item` runs one item
as a pure function of (study config, output folder, item): it reads its inputs from the content-hashed stage
directories (which must exist: :class:`~.stages.StageMissing` otherwise) and writes its own, so the stage
directories stay the single source of truth. :func:`finished_items` tells, without computing anything, which
items a (re)submission can skip.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .analyses import StudyState, analyses_stage, analysis_items
from .config import StudyConfig
from .runner import STAGES, StudyOutcome, expand_force, report_done, run_study, study_context
from .stages import ImageSet, StageMissing, evaluate_stage, expert_paths, extract_stage, label_experts, label_stage

_T = TypeVar("_T")


@dataclass(frozen=True)
class StageItem:
    """One job of a study: its ``stage``, the model/expert/analysis ``name`` and, for per-model analyses, the
    ``model``."""

    stage: str
    name: str = ""
    model: str | None = None

    @property
    def label(self) -> str:
        """``"evaluate ResNet-50"``, ``"analyses breakdown ResNet-50"``, ``"report"``."""
        return " ".join(part for part in (self.stage, self.name, self.model) if part)


def study_items(study: StudyConfig) -> list[tuple[StageItem, list[StageItem]]]:
    """Every item of the study with the items it depends on, in an order where dependencies come first."""
    images_probe = _probe_context(study)
    extracts = [StageItem("extract", m.name) for m in study.models]
    labels = [StageItem("label", e.name) for e in study.experts]
    evaluates = [StageItem("evaluate", m.name) for m in study.models]
    analyses = [StageItem("analyses", kind.name, model.name if model else None)
                for kind, _, model in analysis_items(images_probe)]
    graph: list[tuple[StageItem, list[StageItem]]] = [(item, []) for item in extracts + labels]
    graph += [(item, [extract, *labels]) for item, extract in zip(evaluates, extracts, strict=True)]
    upstream = [*extracts, *labels, *evaluates]
    graph += [(item, upstream) for item in analyses]
    graph.append((StageItem("report"), [*upstream, *analyses]))
    return graph


def _probe_context(study: StudyConfig):
    """A context good for listing the analysis items (no images opened, nothing run)."""
    from .stages import StageContext

    return StageContext(study, Path("."), lambda *args: None, check_only=True)


def run_item(study: StudyConfig, output: str | Path, item: StageItem, *, force: Collection[str] = (),
             progress: bool = False, echo: Callable[[str], None] | None = None) -> list[dict]:
    """Run one item of the study (a job's work); returns its log entries (stage, item, reused, seconds, path).

    The item's inputs, made by the items it depends on, must be complete; only the item's own stage may
    compute (``force``: recompute it even if complete, when it names the item's stage).
    """
    out = Path(output)
    own_force = [s for s in expand_force(force) if s == item.stage]
    others = frozenset(STAGES) - {item.stage}
    if item.stage == "report":
        return run_study(study, output=out, force=own_force, progress=progress, echo=echo, reuse_only=others).log
    outcome = StudyOutcome(out)
    images = ImageSet.open(study.images.source, study.images.labels)
    ctx = study_context(study, out, outcome, images, force=own_force, progress=progress, echo=echo,
                        reuse_only=others)
    models = {m.name: m for m in study.models}
    if item.stage == "extract":
        extract_stage(ctx, models[item.name], images)
    elif item.stage == "label":
        label_experts(ctx, images, [e for e in study.experts if e.name == item.name])
    elif item.stage == "evaluate":
        store = extract_stage(ctx, models[item.name], images)
        bank = label_stage(ctx, images)
        evaluate_stage(ctx, models[item.name], store, bank, bank.content_hash(), study.protocol_config())
    elif item.stage == "analyses":
        analyses_stage(ctx, _state(ctx, images), only=(item.name, item.model))
    else:
        raise ValueError(f"unknown stage {item.stage!r}")
    return outcome.log


def _state(ctx, images: ImageSet) -> StudyState:
    """The finished extract, label and evaluate stages as the analyses stage takes them."""
    stores = {m.name: extract_stage(ctx, m, images) for m in ctx.study.models}
    bank = label_stage(ctx, images)
    bank_hash, protocol = bank.content_hash(), ctx.study.protocol_config()
    results = {m.name: evaluate_stage(ctx, m, stores[m.name], bank, bank_hash, protocol) for m in ctx.study.models}
    return StudyState(stores, results, bank, bank_hash, protocol)


def finished_items(study: StudyConfig, output: str | Path, force: Collection[str] = ()) -> set[StageItem]:
    """The items whose output is complete and current, so that a (re)submission skips them: computed from the
    stage directories alone (nothing is run). An item is unfinished when its stage is in ``force`` or when
    an item it depends on is unfinished."""
    out = Path(output)
    outcome = StudyOutcome(out)
    images = ImageSet.open(study.images.source, study.images.labels)
    ctx = study_context(study, out, outcome, images, progress=False, echo=lambda text: None, check_only=True)
    done: set[StageItem] = set()

    def check(item: StageItem, step: Callable[[], _T]) -> _T | None:
        try:
            value = step()
        except StageMissing:
            return None
        done.add(item)
        return value

    stores = {m.name: check(StageItem("extract", m.name), functools.partial(extract_stage, ctx, m, images))
              for m in study.models}
    paths = expert_paths(ctx, images)
    for e in study.experts:
        if (paths[e.name] / "manifest.json").is_file():
            done.add(StageItem("label", e.name))
    if all(StageItem("label", e.name) in done for e in study.experts):
        bank = label_stage(ctx, images)
        bank_hash, protocol = bank.content_hash(), study.protocol_config()
        for m in study.models:
            store = stores[m.name]
            if store is not None:
                check(StageItem("evaluate", m.name),
                      functools.partial(evaluate_stage, ctx, m, store, bank, bank_hash, protocol))
    if all(StageItem("evaluate", m.name) in done for m in study.models):
        state = _state(ctx, images)
        outcome.results = {name: path for name, (path, _) in state.results.items()}
        for kind, _, model in analysis_items(ctx):
            item = StageItem("analyses", kind.name, model.name if model else None)
            made = check(item, functools.partial(analyses_stage, ctx, state,
                                                 only=(kind.name, model.name if model else None)))
            outcome.analyses.extend(made or [])
    items = study_items(study)
    if all(item in done for item, _ in items[:-1]) and (
            not study.report.enabled or report_done(study, outcome, out)) and (out / "ranking.md").is_file():
        done.add(StageItem("report"))
    finished: set[StageItem] = set()
    for item, deps in items:  # dependencies first: an item after an unfinished one is unfinished
        if item in done and item.stage not in force and all(d in finished for d in deps):
            finished.add(item)
    return finished


__all__ = ["StageItem", "finished_items", "run_item", "study_items"]
