"""The cached stages of a study: extract (per model), label (per expert), evaluate (per model).

Each stage item lives in a directory named by a hash of everything it depends on (``cache.stage_key``); a
complete directory is reused, so re-running a study only computes what changed. A stage writes under a
temporary name or keeps a resumable work folder, so a killed run never leaves a complete-looking item.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..concepts.bank import ConceptBank
from ..engine.config import ProtocolConfig
from ..errors import QRProbeInputError
from ..features.store import FeatureStore
from ..progress import StageCounter
from ..results import Result
from ..schema import identity
from .cache import file_identity, slug, stage_key
from .config import ModelSpec, StudyConfig

Log = Callable[..., None]  # log(stage, item, reused, seconds, path)


class StageMissing(QRProbeInputError):
    """A stage item that had to be there already is not: its job has not run (or not finished)."""

    def __init__(self, stage: str, item: str, path: Path) -> None:
        super().__init__(f"{stage} {item}: {path} is not there yet (the job that makes it has not finished; "
                         "run the study again)")
        self.stage, self.item, self.path = stage, item, path


@dataclass
class ImageSet:
    """An image collection of the study: the source, the hash that keys its stages, its label table."""

    source: object
    key: str
    labels: str | None = None

    @classmethod
    def open(cls, spec: str, labels: str | None = None) -> ImageSet:
        from ..images import open_images

        source = open_images(spec)
        if len(source) == 0:
            raise QRProbeInputError(f"images: no images found in {spec!r}")
        return cls(source, source.inputs_hash(), labels)


@dataclass
class StageContext:
    """What every stage needs: the study, its output folder, which stages to recompute, progress and the log."""

    study: StudyConfig
    out: Path
    log: Log
    force: frozenset[str] = field(default_factory=frozenset)
    progress: bool = True
    echo: Callable[[str], None] = print
    images_key: str = ""  # the hash of the study's own images (transfer targets are other images)
    #: stages whose items on the study's own images must already exist (a job's inputs, made by other jobs)
    reuse_only: frozenset[str] = field(default_factory=frozenset)
    check_only: bool = False  # compute nothing: a missing item raises StageMissing (which items are done?)
    #: the run's ``[stage i/n]`` counter (None: items are not counted, e.g. one study job)
    counter: StageCounter | None = None

    def begin(self, kind: str, name: str) -> int:
        """Announce the next item of stage ``kind`` (``[stage i/n] name``); returns a mark for :meth:`end`."""
        if self.counter is not None:
            self.counter.begin(kind, name)
        return len(self._entries())

    def end(self, kind: str, mark: int) -> None:
        """The item begun at ``mark`` is finished (computed when any of its log entries since was not reused)."""
        if self.counter is not None:
            self.counter.end(kind, any(not e["reused"] for e in self._entries()[mark:]))

    def _entries(self) -> list[dict]:
        outcome = getattr(self.log, "outcome", None)  # the run's log entries, where the log keeps them
        return outcome.log if outcome is not None else []

    def fresh(self, stage: str, path: Path) -> None:
        """Remove ``path`` when ``stage`` is forced, so that it is recomputed."""
        if stage in self.force and path.exists():
            shutil.rmtree(path)

    def may_compute(self, stage: str, images_key: str, item: str, path: Path) -> None:
        """Raise :class:`StageMissing` when the missing item ``path`` may not be computed here."""
        if self.check_only or (stage in self.reuse_only and images_key == self.images_key):
            raise StageMissing(stage, item, path)


def remove_orphans(folder: Path, marker: str) -> None:
    """Remove the hidden work folders of ``folder`` whose name contains ``marker`` (``.partial``, ``.pass-``):
    once a stage is complete, any left is the work of a killed run for items the study no longer has."""
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(".") and marker in entry.name and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)


def _stage_value(f: dataclasses.Field, value: Any) -> tuple[str, Any]:
    """How a stage key records a key field of a study spec: a file by its path, size and modification time."""
    return f.name, file_identity(value) if f.metadata.get("file") else value


def extract_key(model: ModelSpec, images_key: str) -> str:
    """The extract stage's key of ``model`` on the images ``images_key``: its fields marked ``key`` (the MODEL
    string and the extraction's key fields that a study states: ``qrprobe.features.config.ExtractConfig``)."""
    return stage_key({**identity(model, value=_stage_value), "images": images_key})


def _extract_path(ctx: StageContext, model: ModelSpec, images: ImageSet) -> Path:
    return ctx.out / "features" / f"{slug(model.name)}-{extract_key(model, images.key)}"


def extract_together_stage(ctx: StageContext, models: list[ModelSpec], images: ImageSet) -> dict[str, float]:
    """Extract in one pass the models whose stores on ``images`` are missing (two or more; the study's
    ``extract_together``), each image read and decoded once (:func:`qrprobe.features.extract_together`);
    returns the seconds of each model computed, for :func:`extract_stage` to log. Fewer than two: nothing."""
    from ..features.extract_shared import extract_together

    todo = []
    for m in models:
        if not m.model or (m.features and images.key == ctx.images_key):
            continue
        path = _extract_path(ctx, m, images)
        ctx.fresh("extract", path)
        if not (path / "manifest.json").is_file():
            ctx.may_compute("extract", images.key, m.name, path)
            todo.append((m, path))
    if len(todo) < 2:
        return {}
    t = time.perf_counter()
    extract_together([(m.model, path, m.extraction(device=ctx.study.device, progress=ctx.progress))
                      for m, path in todo], images.source)
    seconds = (time.perf_counter() - t) / len(todo)
    return {m.name: seconds for m, _ in todo}


def extract_stage(ctx: StageContext, model: ModelSpec, images: ImageSet,
                  together: dict[str, float] | None = None) -> FeatureStore:
    """The feature store of ``model`` on ``images`` (computed, resumed or reused; or the store the study names).
    ``together``: the models just computed by :func:`extract_together_stage` (logged as computed)."""
    from ..features.extract import extract

    if model.features and images.key == ctx.images_key:
        store = FeatureStore.open(model.features)
        ctx.log("extract", model.name, True, 0.0, Path(model.features))
        return store

    if not model.model:
        raise QRProbeInputError(f"models.{model.name}: only a feature store is given (`features`), so it cannot be "
                                f"extracted on other images; give `model` too")
    path = _extract_path(ctx, model, images)
    if together and model.name in together:
        ctx.log("extract", model.name, False, together[model.name], path)
        return FeatureStore.open(path)
    ctx.fresh("extract", path)
    done = (path / "manifest.json").is_file()
    if not done:
        ctx.may_compute("extract", images.key, model.name, path)
    t = time.perf_counter()
    store = FeatureStore.open(path) if done else extract(
        model.model, images.source, path, model.extraction(device=ctx.study.device, progress=ctx.progress))
    ctx.log("extract", model.name, done, time.perf_counter() - t, path)
    return store


def expert_key(spec, images: ImageSet, labelling) -> str:
    """The label stage's key of the expert ``spec`` on ``images``: the expert, its options and files, and the
    study's ``labelling:`` fields marked ``key`` (``qrprobe.experts.label_config.LabelConfig``)."""
    return stage_key({"name": spec.name, "kind": spec.kind, "group": spec.group, "options": spec.options,
                      "weights": file_identity(spec.weights), "images": images.key,
                      "labels": file_identity(images.labels) if (spec.kind or spec.name) == "labels" else None,
                      **identity(labelling, value=_stage_value)})


def expert_paths(ctx: StageContext, images: ImageSet) -> dict[str, Path]:
    """Where each expert's concept bank on ``images`` lives (named by its key)."""
    return {e.name: ctx.out / "concepts" / f"{slug(e.name)}-{expert_key(e, images, ctx.study.labelling)}"
            for e in ctx.study.experts}


def shared_forward_pass(spec, options: dict, stores: dict[str, FeatureStore] | None) -> FeatureStore | None:
    """The study's feature store from which the expert ``spec`` (with ``options``) can take its network's
    output instead of running the network again (an ``imagenet`` expert whose network is a model of the study:
    :func:`qrprobe.experts.imagenet.shares_forward_pass`), or None."""
    from ..experts.imagenet import DEFAULT_MODEL, shares_forward_pass

    if (spec.kind or spec.name) != "imagenet" or spec.weights or options.get("weights") or not stores:
        return None
    if options.get("model", DEFAULT_MODEL) != DEFAULT_MODEL:
        return None
    size = options.get("image_size")
    return next((s for s in stores.values() if shares_forward_pass(s.manifest, size)), None)


def label_experts(ctx: StageContext, images: ImageSet, experts: list,
                  stores: dict[str, FeatureStore] | None = None) -> None:
    """Label ``images`` with those of ``experts`` (specs) whose banks are missing, in one pass; one bank each.

    ``stores``: the study's feature stores on these images; an expert whose network is one of the models reads
    that model's stored output instead of a second forward pass (:func:`shared_forward_pass`)."""
    from ..experts.label import run_labelling
    from ..experts.registry import expert_class, expert_parameters

    paths = expert_paths(ctx, images)
    for e in experts:
        ctx.fresh("label", paths[e.name])
    missing = [e for e in experts if not (paths[e.name] / "manifest.json").is_file()]
    for e in experts:
        if e not in missing:
            ctx.log("label", e.name, True, 0.0, paths[e.name])
    if not missing:
        return
    ctx.may_compute("label", images.key, ", ".join(e.name for e in missing), paths[missing[0].name])
    options = {e.name: dict(e.options) for e in missing}
    for e in missing:
        if "device" in expert_parameters(expert_class(e.kind or e.name)):
            options[e.name].setdefault("device", ctx.study.device)  # torch experts follow the study's device
        if (e.kind or e.name) == "labels" and images.labels and "table" not in options[e.name]:
            options[e.name]["table"] = images.labels
        shared = shared_forward_pass(e, options[e.name], stores)
        if shared is not None:
            options[e.name]["features"] = str(shared.path)
            if ctx.progress:
                ctx.echo(f"[label] {e.name}: the network's output is computed from the stored features of "
                         f"{shared.path.name} (one forward pass for both)")
    work = ctx.out / "concepts" / f".pass-{stage_key(sorted(str(paths[e.name]) for e in missing))}"
    labelled = run_labelling(
        images.source, [e.name for e in missing], output=work, options=options,
        groups={e.name: e.group for e in missing if e.group},
        weights={e.name: e.weights for e in missing if e.weights},
        kinds={e.name: e.kind for e in missing if e.kind},
        config=ctx.study.labelling.labelling(progress=ctx.progress, overwrite=False))
    seconds = labelled.report.seconds
    for e in missing:
        mask = (labelled.bank.concepts["expert"] == e.name).to_numpy()
        part = labelled.bank.select_columns(mask)
        part.info = {**labelled.bank.info,
                     "experts": [x for x in labelled.bank.info.get("experts", []) if x.get("name") == e.name]}
        part.save(paths[e.name], overwrite=True)
        ctx.log("label", e.name, False, float(seconds.get(e.name, 0.0)), paths[e.name])
    if seconds.get("decode") and ctx.progress:
        ctx.echo(f"[label] decoding images (not hidden by the experts): {seconds['decode']:.1f} s")
    shutil.rmtree(work, ignore_errors=True)


def label_stage(ctx: StageContext, images: ImageSet, stores: dict[str, FeatureStore] | None = None) -> ConceptBank:
    """The study's concept bank on ``images``: one cached bank per expert, concatenated (``stores``: the
    models' feature stores on ``images``, see :func:`label_experts`)."""
    label_experts(ctx, images, list(ctx.study.experts), stores)
    paths = expert_paths(ctx, images)
    banks = _study_names([ConceptBank.load(paths[e.name]) for e in ctx.study.experts])
    if images.key == ctx.images_key:  # the study's own images: add the banks it names
        banks += [study_concepts(path, images) for path in ctx.study.concepts]
        for path in ctx.study.concepts:
            ctx.log("label", Path(path).name, True, 0.0, Path(path))
    return _concat_by_id(banks, ctx)


def study_concepts(path: str, images: ImageSet) -> ConceptBank:
    """A bank of the study's ``concepts:`` list: a concept-bank folder (``qrprobe label``), or a table
    (CSV/TSV/Parquet, columns ``image_id, concept[, group]``) whose ids are those of the study's images (rows
    of images the table does not name have no concept)."""
    if Path(path).is_dir():
        return ConceptBank.load(path)
    import numpy as np

    from ..engine.inputs import load_concepts

    source: Any = images.source
    ids = np.asarray(list(source.image_ids), dtype=object)
    return load_concepts(path, image_ids=ids)


def _study_names(banks: list[ConceptBank]) -> list[ConceptBank]:
    """The experts' banks with concept names made unique across all the study's experts (``"red (color)"``
    where two experts name a concept ``red``), whichever experts were labelled together."""
    import pandas as pd

    from ..experts.label_setup import unique_concept_names

    if not banks:
        return banks
    table = unique_concept_names(pd.concat([b.concepts for b in banks], ignore_index=True))
    out, start = [], 0
    for b in banks:
        names = table.iloc[start:start + b.n_concepts].reset_index(drop=True)
        out.append(ConceptBank(b.matrix, names, b.image_ids, b.info))
        start += b.n_concepts
    return out


def _concat_by_id(banks: list[ConceptBank], ctx: StageContext) -> ConceptBank:
    """Banks side by side; banks made elsewhere are re-ordered to the first bank's image ids (explicitly: an
    image missing from one bank is dropped, with a warning)."""
    from ..engine.inputs import intersect_banks

    if len(banks) > 1 and any(b.image_ids is None or not _same_ids(b, banks[0]) for b in banks[1:]):
        banks, dropped = intersect_banks(banks)
        if dropped:
            ctx.echo(f"warning: concept banks: {dropped} image(s) not in every bank are left out")
    return ConceptBank.concat(banks)


def _same_ids(a: ConceptBank, b: ConceptBank) -> bool:
    import numpy as np

    return a.image_ids is not None and b.image_ids is not None and np.array_equal(
        np.asarray(a.image_ids).astype(str), np.asarray(b.image_ids).astype(str))


def matched_inputs(ctx: StageContext, store: FeatureStore, bank: ConceptBank, what: str):
    """The store's features and the bank's rows for the images both have; what is dropped is logged."""
    from ..engine.inputs import intersect_rows, load_features

    feats, rows, dropped = intersect_rows(load_features(store), bank)
    if dropped.n_dropped:
        ctx.echo(f"warning: {what}: " + dropped.message(f"the features of {what}", "the concept bank"))
    return feats, rows, dropped


def evaluate_stage(ctx: StageContext, model: ModelSpec, store: FeatureStore, bank: ConceptBank, bank_hash: str,
                   protocol: ProtocolConfig) -> tuple[Path, Result]:
    """``evaluate`` of one model (cached by its features, the concept bank and the protocol)."""
    from ..engine.evaluate import evaluate

    key = stage_key({"features": store.manifest.get("content_hash"), "concepts": bank_hash,
                     "protocol": protocol.to_dict()})
    path = ctx.out / "results" / f"{slug(model.name)}-{key}"
    ctx.fresh("evaluate", path)
    t = time.perf_counter()
    if (path / "results.json").is_file():
        from ..engine.evaluate import print_warnings

        result = Result.load(path)
        print_warnings(result, ctx.progress)  # the same warnings as when it was computed
        ctx.log("evaluate", model.name, True, time.perf_counter() - t, path)
        return path, result
    ctx.may_compute("evaluate", ctx.images_key, model.name, path)
    feats, rows, dropped = matched_inputs(ctx, store, bank, model.name)
    result = evaluate(feats, rows, protocol, name=model.name, progress=ctx.progress)
    if dropped.n_dropped:
        result.inputs["dropped_rows"] = {"from_features": dropped.dropped_from_features,
                                         "from_concepts": dropped.dropped_from_concepts}
    result.save(path)
    ctx.log("evaluate", model.name, False, time.perf_counter() - t, path)
    return path, result


__all__ = ["ImageSet", "StageContext", "StageMissing", "evaluate_stage", "expert_key", "expert_paths", "extract_key",
           "extract_stage", "extract_together_stage", "label_experts", "label_stage", "matched_inputs",
           "remove_orphans"]
