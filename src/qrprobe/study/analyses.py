"""The analyses stage of a study: every analysis of the registry that the study's ``analyses:`` names.

Dispatch goes through :func:`qrprobe.workflow.analyses.run_analysis`, exactly as the CLI's; this module only
supplies each analysis' inputs from the study's stages (feature stores, the concept bank, the results) and
caches each output in ``analyses/<kind>-<model>-<key>/`` (key: the analysis options, the inputs' hashes and
the protocol). Transfer extracts and labels its target images as further cached stage items.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pandas as pd

from ..concepts.bank import ConceptBank
from ..engine.config import ProtocolConfig
from ..results import Result
from ..workflow.analyses import ANALYSES, AnalysisInputs, AnalysisKind, run_analysis
from .cache import file_identity, slug, stage_key
from .config import ModelSpec
from .stages import ImageSet, StageContext, extract_stage, label_stage, matched_inputs


@dataclasses.dataclass
class StudyState:
    """What the earlier stages produced: stores and results per model name, the bank and its hash."""

    stores: dict
    results: dict[str, tuple[Path, Result]]
    bank: ConceptBank
    bank_hash: str
    protocol: ProtocolConfig


def _external(ctx: StageContext) -> pd.DataFrame | None:
    rows = [{"model": m.name, **m.external} for m in ctx.study.models if m.external]
    return pd.DataFrame(rows) if rows else None


def _payload(ctx: StageContext, kind: AnalysisKind, spec, state: StudyState, model: ModelSpec | None
             ) -> tuple[dict, tuple | None]:
    """What one analysis item depends on (its cache key), from hashes and paths only; and, for an analysis of
    other images (transfer), those images and the model's feature store on them (extracted here if needed)."""
    payload: dict = {"kind": kind.name, "spec": spec.to_dict(), "protocol": state.protocol.to_dict(),
                     "concepts": state.bank_hash}
    target = None
    if model is not None:
        payload["features"] = state.stores[model.name].manifest.get("content_hash")
        payload["result"] = str(state.results[model.name][0])
    if "results" in kind.needs:
        payload["results"] = [path.name for path, _ in state.results.values()]
        external = _external(ctx)
        payload["external"] = None if external is None else external.to_dict("records")
    if "target" in kind.needs and model is not None:
        images = ImageSet.open(spec.images, spec.labels)
        store = extract_stage(ctx, model, images)
        payload["target"] = [store.manifest.get("content_hash"), images.key, file_identity(spec.labels)]
        target = (images, store)
    return payload, target


def _inputs(ctx: StageContext, kind: AnalysisKind, spec, state: StudyState, model: ModelSpec | None,
            target: tuple | None) -> AnalysisInputs:
    """The inputs of one analysis item (features and concepts loaded as the analysis needs them)."""
    inputs = AnalysisInputs(name=model.name if model else "", source_concepts=state.bank)
    if model is not None:
        if {"features", "concepts"} & set(kind.needs):
            inputs.features, inputs.concepts, _ = matched_inputs(ctx, state.stores[model.name], state.bank,
                                                                 model.name)
        if "result" in kind.needs or kind.name == "forward-probe":
            inputs.result = state.results[model.name][1]
    else:
        inputs.concepts = state.bank
    if "results" in kind.needs:
        inputs.results = [res for _, res in state.results.values()]
        inputs.result_keys = [path.name for path, _ in state.results.values()]
        inputs.external = _external(ctx)
    if target is not None:
        assert model is not None  # a target is made per model
        images, store = target
        inputs.target_features, inputs.target_concepts, _ = matched_inputs(
            ctx, store, label_stage(ctx, images), f"{model.name} on {spec.images}")
    return inputs


def analysis_items(ctx: StageContext) -> list[tuple[AnalysisKind, object, ModelSpec | None]]:
    """Every analysis item the study asks for: ``(kind, its spec, the model or None)``, in run order."""
    out: list[tuple[AnalysisKind, object, ModelSpec | None]] = []
    for kind in ANALYSES.values():
        spec = getattr(ctx.study.analyses, kind.key)
        if spec is None or ("target" in kind.needs and not getattr(spec, "images", None)):
            continue
        out.extend((kind, spec, model) for model in _items(ctx, kind, spec))
    return out


def _items(ctx: StageContext, kind: AnalysisKind, spec) -> list[ModelSpec | None]:
    if not kind.per_model:
        return [None]
    wanted = getattr(spec, "models", None)
    return [m for m in ctx.study.models if wanted is None or m.name in wanted]


def analyses_stage(ctx: StageContext, state: StudyState, only: tuple[str, str | None] | None = None) -> list[Path]:
    """Run (or reuse) every analysis the study asks for; returns their output directories, in order.

    ``only``: just the item ``(analysis name, model name or None)`` (a study job).
    """
    for kind in ANALYSES.values():
        spec = getattr(ctx.study.analyses, kind.key)
        if spec is not None and "target" in kind.needs and not getattr(spec, "images", None):
            ctx.echo(f"warning: analyses.{kind.key}: no target images given (images:); skipped")
    made: list[Path] = []
    for kind, spec, model in analysis_items(ctx):
        if only is not None and only != (kind.name, model.name if model else None):
            continue
        label = f"{kind.name} {model.name}" if model else kind.name
        mark = ctx.begin("analyses", f"analyses {label}")
        t = time.perf_counter()
        payload, target = _payload(ctx, kind, spec, state, model)
        path = ctx.out / "analyses" / f"{kind.name}-{slug(model.name) + '-' if model else ''}{stage_key(payload)}"
        ctx.fresh("analyses", path)
        marker = "results.json" if kind.writes_result else "section.json"
        if (path / marker).is_file():
            ctx.log("analyses", label, True, 0.0, path)
        else:
            ctx.may_compute("analyses", ctx.images_key, label, path)
            inputs = _inputs(ctx, kind, spec, state, model, target)
            run_analysis(kind, inputs, spec, state.protocol, progress=ctx.progress).save(path, overwrite=True)
            ctx.log("analyses", label, False, time.perf_counter() - t, path)
        ctx.end("analyses", mark)
        made.append(path)
    return made


__all__ = ["StudyState", "analyses_stage", "analysis_items"]
