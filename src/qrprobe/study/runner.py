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
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .._atomic import atomic_write_text
from ..concepts.bank import ConceptBank
from ..errors import QRProbeInputError
from ..results import Result, markdown_table
from .cache import file_identity, slug, stage_key
from .config import ModelSpec, StudyConfig

STAGES = ("extract", "label", "evaluate", "analyses", "report")


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
    def __init__(self, outcome: StudyOutcome, echo: Callable[[str], None]) -> None:
        self.outcome = outcome
        self.echo = echo

    def __call__(self, stage: str, item: str, reused: bool, seconds: float, path: Path | None = None) -> None:
        self.outcome.log.append({"stage": stage, "item": item, "reused": reused, "seconds": round(seconds, 2),
                                 "path": str(path) if path else None})
        self.echo(f"[{stage}] {item}: {'reused' if reused else f'done in {seconds:.1f} s'}")


def default_output(config_path: Path | None, study: StudyConfig) -> Path:
    if study.output:
        return Path(study.output)
    base = config_path.parent if config_path else Path.cwd()
    return base / f"{slug(study.name)}-out"


def run_study(study: StudyConfig, *, output: str | Path | None = None, force: Sequence[str] = (),
              progress: bool = True, echo: Callable[[str], None] | None = None) -> StudyOutcome:
    """Run (or resume) a study; only stages whose inputs changed, or that ``force`` names, are computed."""
    unknown = [s for s in force if s not in STAGES]
    if unknown:
        raise QRProbeInputError(f"--force: unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
    echo = echo or (lambda text: print(text, file=sys.stderr, flush=True))
    out = Path(output) if output is not None else default_output(None, study)
    out.mkdir(parents=True, exist_ok=True)
    outcome = StudyOutcome(out)
    log = _Log(outcome, echo)

    from ..images import open_images

    source = open_images(study.images.source)
    if len(source) == 0:
        raise QRProbeInputError(f"images: no images found in {study.images.source!r}")
    images_key = source.inputs_hash()
    atomic_write_text(out / "study.resolved.json", json.dumps(study.to_dict(), indent=2, default=str))

    stores = {m.name: _extract(m, study, source, images_key, out, "extract" in force, progress, log)
              for m in study.models}
    bank = _label(study, source, images_key, out, "label" in force, progress, log)
    protocol = study.protocol_config()
    bank_hash = bank.content_hash()  # once: it is part of every downstream stage key
    results = {m.name: _evaluate(m, stores[m.name], bank, bank_hash, protocol, out, "evaluate" in force,
                                 progress, log)
               for m in study.models}
    outcome.results = {name: path for name, (path, _) in results.items()}
    outcome.analyses = _analyses(study, stores, bank, bank_hash, protocol, out, "analyses" in force, progress,
                                 log)
    loaded = [res for _, res in results.values()]
    outcome.ranking = _ranking(loaded, study)
    atomic_write_text(out / "ranking.md", outcome.ranking + "\n")
    if study.report.enabled:
        outcome.report = _report(study, outcome, out, "report" in force, log)
    atomic_write_text(out / "run-log.json", json.dumps(outcome.log, indent=2))
    return outcome


# ------------------------------------------------------------------------------------------------ stages
def _extract(model: ModelSpec, study: StudyConfig, source, images_key: str, out: Path, force: bool,
             progress: bool, log: _Log):
    from ..features.extract import extract
    from ..features.store import FeatureStore

    key_items = {"model": model.model, "weights": file_identity(model.weights), "layer": model.layer,
                 "pretrained": model.pretrained, "dtype": model.dtype, "image_size": model.image_size,
                 "images": images_key}
    if model.preprocess is not None:  # only when stated: the keys of earlier runs stay valid
        key_items["preprocess"] = model.preprocess
    key = stage_key(key_items)
    path = out / "features" / f"{slug(model.name)}-{key}"
    if force and path.exists():
        shutil.rmtree(path)
    done = (path / "manifest.json").is_file()
    t = time.perf_counter()
    options = {"layer": model.layer, "weights": model.weights, "pretrained": model.pretrained,
               "device": study.device, "dtype": model.dtype, "progress": progress}
    if model.batch_size:
        options["batch_size"] = model.batch_size
    if model.image_size:
        options["image_size"] = model.image_size
    if model.preprocess is not None:
        options["preprocess"] = model.preprocess
    store = FeatureStore.open(path) if done else extract(model.model, source, path, **options)
    log("extract", model.name, done, time.perf_counter() - t, path)
    return store


def _expert_key(spec, study: StudyConfig, images_key: str) -> str:
    return stage_key({"name": spec.name, "kind": spec.kind, "group": spec.group, "options": spec.options,
                      "weights": file_identity(spec.weights), "images": images_key,
                      "labels": file_identity(study.images.labels) if (spec.kind or spec.name) == "labels" else None})


def _label(study: StudyConfig, source, images_key: str, out: Path, force: bool, progress: bool,
           log: _Log) -> ConceptBank:
    from ..experts.label import run_labelling

    paths = {e.name: out / "concepts" / f"{slug(e.name)}-{_expert_key(e, study, images_key)}" for e in study.experts}
    if force:
        for p in paths.values():
            shutil.rmtree(p, ignore_errors=True)
    missing = [e for e in study.experts if not (paths[e.name] / "manifest.json").is_file()]
    for e in study.experts:
        if e not in missing:
            log("label", e.name, True, 0.0, paths[e.name])
    if missing:
        from ..experts.registry import expert_class, expert_parameters

        options = {e.name: dict(e.options) for e in missing}
        for e in missing:
            if "device" in expert_parameters(expert_class(e.kind or e.name)):
                options[e.name].setdefault("device", study.device)  # torch experts follow the study's device
            if (e.kind or e.name) == "labels" and study.images.labels and "table" not in options[e.name]:
                options[e.name]["table"] = study.images.labels
        work = out / "concepts" / f".pass-{stage_key(sorted(str(paths[e.name]) for e in missing))}"
        t = time.perf_counter()
        labelled = run_labelling(
            source, [e.name for e in missing], output=work, options=options,
            groups={e.name: e.group for e in missing if e.group},
            weights={e.name: e.weights for e in missing if e.weights},
            kinds={e.name: e.kind for e in missing if e.kind}, progress=progress, overwrite=False)
        seconds = time.perf_counter() - t
        for e in missing:
            mask = (labelled.bank.concepts["expert"] == e.name).to_numpy()
            part = labelled.bank.select_columns(mask)
            part.info = {**labelled.bank.info,
                         "experts": [x for x in labelled.bank.info.get("experts", []) if x.get("name") == e.name]}
            part.save(paths[e.name], overwrite=True)
            log("label", e.name, False, seconds / len(missing), paths[e.name])
        shutil.rmtree(work, ignore_errors=True)
    return ConceptBank.concat([ConceptBank.load(paths[e.name]) for e in study.experts])


def _evaluate(model: ModelSpec, store, bank: ConceptBank, bank_hash: str, protocol, out: Path, force: bool,
              progress: bool, log: _Log) -> tuple[Path, Result]:
    from ..engine.evaluate import evaluate
    from ..engine.inputs import load_features

    key = stage_key({"features": store.manifest.get("content_hash"), "concepts": bank_hash,
                     "protocol": protocol.to_dict()})
    path = out / "results" / f"{slug(model.name)}-{key}"
    if force and path.exists():
        shutil.rmtree(path)
    t = time.perf_counter()
    if (path / "results.json").is_file():
        result = Result.load(path)
        log("evaluate", model.name, True, time.perf_counter() - t, path)
        return path, result
    feats, bank_rows = _common_rows(load_features(store), bank)
    result = evaluate(feats, bank_rows, config=protocol, name=model.name, progress=progress)
    result.save(path)
    log("evaluate", model.name, False, time.perf_counter() - t, path)
    return path, result


def _common_rows(feats, bank: ConceptBank):
    """Keep the images both stages could read (an image may fail to decode in one of them)."""
    import numpy as np

    from ..engine.inputs import Features

    common = np.intersect1d(feats.image_ids.astype(str), bank.image_ids.astype(str))
    if len(common) == len(feats.image_ids) == bank.n_images:
        return feats, bank
    if len(common) == 0:
        raise QRProbeInputError("the feature store and the concept banks share no image ids")
    keep_f = np.flatnonzero(np.isin(feats.image_ids.astype(str), common))
    array = np.asarray(feats.array)[keep_f]
    order = {i: r for r, i in enumerate(bank.image_ids)}
    feats = Features(array, feats.image_ids[keep_f], None if feats.paths is None else feats.paths[keep_f],
                     feats.provenance)
    return feats, bank.select_rows(np.array([order[i] for i in feats.image_ids]))


def _analyses(study: StudyConfig, stores: dict, bank: ConceptBank, bank_hash: str, protocol, out: Path,
              force: bool, progress: bool, log: _Log) -> list[Path]:
    from ..engine.inputs import load_features

    spec = study.analyses
    made: list[Path] = []
    jobs = []
    if spec.breakdown is not None:
        jobs.append(("breakdown", spec.breakdown))
    if spec.explain is not None:
        jobs.append(("explain", spec.explain))
    if spec.ksweep is not None and spec.ksweep.k:
        jobs.append(("ksweep", spec.ksweep))
    for kind, cfg in jobs:
        for model in study.models:
            if cfg.models is not None and model.name not in cfg.models:
                continue
            store = stores[model.name]
            key = stage_key({"kind": kind, "spec": cfg, "features": store.manifest.get("content_hash"),
                             "concepts": bank_hash, "protocol": protocol.to_dict()})
            path = out / "analyses" / f"{kind}-{slug(model.name)}-{key}"
            if force and path.exists():
                shutil.rmtree(path)
            t = time.perf_counter()
            if not (path / "section.json").is_file():
                feats, rows = _common_rows(load_features(store), bank)
                _run_analysis(kind, cfg, feats, rows, protocol, model.name, progress).save(path)
                log("analyses", f"{kind} {model.name}", False, time.perf_counter() - t, path)
            else:
                log("analyses", f"{kind} {model.name}", True, 0.0, path)
            made.append(path)
    return made


def _run_analysis(kind: str, cfg, feats, bank: ConceptBank, protocol, name: str, progress: bool):
    from ..report import sections

    if kind == "breakdown":
        from ..analysis.breakdown import group_breakdown

        result = group_breakdown(feats, bank, order=cfg.order, label_group=cfg.label_group, config=protocol,
                                 name=name, progress=progress)
        section = sections.breakdown_section(result)
    elif kind == "explain":
        from ..analysis.explain import explain_groups

        result = explain_groups(feats, bank, cfg.base, cfg.added, config=protocol, top_pairs=cfg.pairs,
                                progress=progress)
        section = sections.explanation_section(result, title=f"What separates clusters of {name}")
    else:
        from ..analysis.ksweep import k_sweep

        config = protocol if cfg.clusterings is None else replace(protocol, clusterings=cfg.clusterings)
        section = sections.ksweep_section(k_sweep(feats, bank, cfg.k, config=config, name=name,
                                                  progress=progress).table)
    section.title = f"{section.title} — {name}" if name not in section.title else section.title
    return section


def _ranking(results: list[Result], study: StudyConfig) -> str:
    """The comparison table, best first by the report's ``sort_by`` metric."""
    metric = study.report.sort_by
    order = sorted(results, key=lambda r: -r.summary[metric]["mean"])
    return markdown_table(order) + f"\n\n(ranked by {metric}; mean ± std over {study.protocol.clusterings} clusterings)"


def _notes_section(study: StudyConfig, out: Path) -> Path:
    """The study's own notes (e.g. why K is what it is) as a report section."""
    from ..report.section import Section

    path = out / "analyses" / f"notes-{stage_key(study.notes)}"
    if not (path / "section.json").is_file():
        Section(kind="notes", title=f"About this study: {study.name}", notes=list(study.notes)).save(path)
    return path


def _report(study: StudyConfig, outcome: StudyOutcome, out: Path, force: bool, log: _Log) -> Path:
    import pandas as pd

    from ..report.build import build_report

    inputs = [*outcome.results.values(), *outcome.analyses]
    if study.notes:
        inputs.append(_notes_section(study, out))
    rows = [{"model": m.name, **m.external} for m in study.models if m.external]
    external = pd.DataFrame(rows) if rows else None
    key = stage_key({"inputs": [str(p) for p in inputs], "report": study.report,
                     "external": None if external is None else external.to_dict("records"), "notes": study.notes})
    html = out / "report.html"
    marker = out / "report" / "key.txt"
    t = time.perf_counter()
    if not force and html.is_file() and marker.is_file() and marker.read_text() == key:
        log("report", "report.html", True, 0.0, html)
        return html
    figures = out / "report"
    if figures.exists():
        shutil.rmtree(figures)
    build_report(inputs, html, external=external, figures_dir=figures,
                 title=study.report.title or f"qrprobe study: {study.name}", explain_pairs=study.report.pairs,
                 sort_by=study.report.sort_by)
    marker.write_text(key)
    log("report", "report.html", False, time.perf_counter() - t, html)
    return html
