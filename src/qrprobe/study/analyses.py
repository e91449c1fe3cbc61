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


def _inputs(ctx: StageContext, kind: AnalysisKind, spec, state: StudyState, model: ModelSpec | None,
            payload: dict) -> AnalysisInputs:
    """The inputs of one analysis item; adds what they depend on to ``payload`` (its cache key)."""
    inputs = AnalysisInputs(name=model.name if model else "", source_concepts=state.bank)
    payload["concepts"] = state.bank_hash
    if model is not None:
        store = state.stores[model.name]
        payload["features"] = store.manifest.get("content_hash")
        if {"features", "concepts"} & set(kind.needs):
            inputs.features, inputs.concepts, _ = matched_inputs(ctx, store, state.bank, model.name)
        path, result = state.results[model.name]
        payload["result"] = str(path)
        if "result" in kind.needs or kind.name == "forward-probe":
            inputs.result = result
    else:
        inputs.concepts = state.bank
    if "results" in kind.needs:
        inputs.results = [res for _, res in state.results.values()]
        inputs.result_keys = [path.name for path, _ in state.results.values()]
        inputs.external = _external(ctx)
        payload["results"] = inputs.result_keys
        payload["external"] = None if inputs.external is None else inputs.external.to_dict("records")
    if "target" in kind.needs and model is not None:
        target = ImageSet.open(spec.images, spec.labels)
        store = extract_stage(ctx, model, target)
        inputs.target_features, inputs.target_concepts, _ = matched_inputs(
            ctx, store, label_stage(ctx, target), f"{model.name} on {spec.images}")
        payload["target"] = [store.manifest.get("content_hash"), target.key, file_identity(spec.labels)]
    return inputs


def _items(ctx: StageContext, kind: AnalysisKind, spec) -> list[ModelSpec | None]:
    if not kind.per_model:
        return [None]
    wanted = getattr(spec, "models", None)
    return [m for m in ctx.study.models if wanted is None or m.name in wanted]


def analyses_stage(ctx: StageContext, state: StudyState) -> list[Path]:
    """Run (or reuse) every analysis the study asks for; returns their output directories, in order."""
    made: list[Path] = []
    for kind in ANALYSES.values():
        spec = getattr(ctx.study.analyses, kind.key)
        if spec is None:
            continue
        if "target" in kind.needs and not getattr(spec, "images", None):
            ctx.echo(f"warning: analyses.{kind.key}: no target images given (images:); skipped")
            continue
        for model in _items(ctx, kind, spec):
            label = f"{kind.name} {model.name}" if model else kind.name
            payload: dict = {"kind": kind.name, "spec": spec.to_dict(), "protocol": state.protocol.to_dict()}
            t = time.perf_counter()
            inputs = _inputs(ctx, kind, spec, state, model, payload)
            key = stage_key(payload)
            path = ctx.out / "analyses" / f"{kind.name}-{slug(model.name) + '-' if model else ''}{key}"
            ctx.fresh("analyses", path)
            marker = "results.json" if kind.writes_result else "section.json"
            if (path / marker).is_file():
                ctx.log("analyses", label, True, 0.0, path)
            else:
                run_analysis(kind, inputs, spec, state.protocol, progress=ctx.progress).save(path, overwrite=True)
                ctx.log("analyses", label, False, time.perf_counter() - t, path)
            made.append(path)
    return made


__all__ = ["StudyState", "analyses_stage"]
