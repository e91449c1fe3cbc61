"""``evaluate``: quantized reverse probing of one representation → :class:`qrprobe.results.Result`.

A thin assembly of the protocol path (:mod:`qrprobe.engine.protocol`): prepare the inputs, quantize, probe
every clustering, and collect the scores, the arrays later analyses need and the provenance into a Result.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._versions import library_versions
from ..concepts.bank import ConceptBank
from ..concepts.paper_battery import battery_note
from ..concepts.provenance import circularity_warnings, expert_networks
from ..progress import format_seconds, loud, note, remark, scope, warn
from ..results import Result, summarize
from .config import ProtocolConfig
from .degenerate import check_test_splits, result_flags, warning_messages
from .protocol import FeaturesLike, Inputs, ProbeOutcome, Quantization, prepare_inputs, probe_all, quantize
from .stats.chance import null_outcomes
from .stats.result_statistics import result_statistics

ConceptsLike = ConceptBank | str | os.PathLike


def protocol_config(config: ProtocolConfig | None, params: dict[str, Any]) -> ProtocolConfig:
    """``config`` or the paper's protocol with ``params`` (flat protocol/probe fields) — never both."""
    if config is not None and params:
        raise TypeError(f"give either config= or protocol parameters ({', '.join(sorted(params))}), not both; "
                        "to change a config, use dataclasses.replace(config, ...) or "
                        "ProtocolConfig.from_params(config, ...)")
    return config if config is not None else ProtocolConfig.from_params(**params)


def load_concepts_for(features: FeaturesLike, concepts: ConceptsLike) -> tuple[FeaturesLike, ConceptBank]:
    """Accept a concept-bank path as well as a ConceptBank (a long table is matched to the features' ids)."""
    if isinstance(concepts, ConceptBank):
        return features, concepts
    from .inputs import Features, load_concepts, load_features

    feats = features if isinstance(features, Features) else load_features(features)
    return feats, load_concepts(concepts, image_ids=feats.image_ids, n_images=feats.array.shape[0])


def evaluate(features: FeaturesLike | None, concepts: ConceptsLike, config: ProtocolConfig | None = None, *,
             name: str = "", progress: bool = False, keep_arrays: bool = True,
             quantization: Quantization | None = None, **params: Any) -> Result:
    """Quantized reverse probing of one representation.

    Parameters
    ----------
    features : (N, D) array, FeatureStore, path of either, or :class:`~qrprobe.engine.inputs.Features`.
    concepts : ConceptBank or the path of one (directory, long table); N rows, matched by image id or position
        (``qrprobe.engine.inputs``).
    config : the full protocol (default: the paper's). Or, instead, any protocol or probe field as a keyword
        (``k=50, clusterings=3, epochs=20``); giving both is an error.
    name : label of this representation in tables.
    progress : progress bars and one line per clustering on stderr.
    keep_arrays : keep cluster ids, splits, predictions, probe weights and centroids in the Result.
    quantization : reuse these clusterings (from :func:`~qrprobe.engine.protocol.quantize`) instead of
        quantizing again; ``features`` is then ignored (may be None) and the protocol is theirs (no
        ``config``/parameters).

    Returns
    -------
    Result with per-clustering scores and their mean ± std (population std over clusterings), 95% intervals,
    the chance level of every score (``config.null_repeats`` probes per clustering on shuffled concepts) and
    baselines (``docs/statistics.md``).

    """
    with scope(name):
        return _evaluate(features, concepts, config, name, progress, keep_arrays, quantization, params)


def _evaluate(features: FeaturesLike | None, concepts: ConceptsLike, config: ProtocolConfig | None, name: str,
              progress: bool, keep_arrays: bool, quantization: Quantization | None, params: dict) -> Result:
    clock = time.perf_counter()
    timings: dict[str, float] = {}
    if quantization is not None:
        if config is not None or params:
            raise TypeError("quantization= carries its own protocol; do not pass config= or protocol parameters")
        quant = quantization
        inputs = prepare_inputs(quant.features, load_concepts_for(quant.features, concepts)[1])
    else:
        if features is None:
            raise TypeError("evaluate() needs features unless quantization= is given")
        cfg = protocol_config(config, params)
        features, bank = load_concepts_for(features, concepts)
        inputs = prepare_inputs(features, bank)
        timings["inputs"] = time.perf_counter() - clock
        quant = quantize(inputs.features, cfg, progress)
        timings["quantize"] = time.perf_counter() - clock - timings["inputs"]
    start = time.perf_counter()
    outcomes = probe_all(quant, inputs.concepts, progress)
    timings["probe"] = time.perf_counter() - start
    nulls, null_seconds = None, 0.0
    repeats = getattr(quant.config, "null_repeats", 0)
    if repeats:
        nulls, null_seconds = null_outcomes(quant, inputs.concepts, repeats, progress)
        note(f"null: {repeats} probe(s) per clustering on shuffled concepts, {format_seconds(null_seconds)}",
             progress)
    timings["null"] = null_seconds
    start = time.perf_counter()
    result = assemble_result(quant, inputs, outcomes, name=name, keep_arrays=keep_arrays, progress=progress,
                             nulls=nulls, null_seconds=null_seconds)
    timings["statistics"] = time.perf_counter() - start
    timings["total"] = time.perf_counter() - clock
    result.timings = {key: round(value, 3) for key, value in timings.items()}
    return result


def assemble_result(quant: Quantization, inputs: Inputs, outcomes: list[ProbeOutcome], *, name: str = "",
                    keep_arrays: bool = True, progress: bool = False,
                    nulls: list[list[ProbeOutcome]] | None = None, null_seconds: float = 0.0) -> Result:
    """Collect the scores of ``outcomes`` (one per clustering of ``quant``) into a :class:`Result`.

    ``nulls`` (per clustering, the probes on shuffled concepts) add the chance level of every score; the
    protocol's ``bootstrap`` replicates add intervals (:mod:`qrprobe.engine.stats.result_statistics`).
    """
    cfg, feats, bank = quant.config, inputs.features, inputs.concepts
    n = feats.array.shape[0]
    per = []
    for r, (km, outcome, s) in enumerate(zip(quant.kmeans, outcomes, quant.seeds, strict=True)):
        per.append({"clustering": r, "seed": s, "k": quant.k, **outcome.scores, "inertia": km.inertia,
                    "restart_inertias": list(km.inertias), "kmeans_iterations": km.n_iter,
                    "nonempty_clusters": len(np.unique(km.labels))})
    test_clusters = [len(np.unique(quant.labels[r][o.split.test])) for r, o in enumerate(outcomes)]
    check_test_splits(per, test_clusters)
    stats = result_statistics(quant, feats.image_ids, outcomes, nulls, null_seconds,
                              n_replicates=getattr(cfg, "bootstrap", 0))
    summary = summarize(per)
    for row, extra in zip(per, stats.per_clustering, strict=True):
        row.update(extra)
    for m, extra in stats.summary.items():
        summary.setdefault(m, {}).update(extra)
    flags = result_flags(quant.labels, quant.k, per, test_clusters, bank)
    warnings = provenance_warnings(bank, feats.provenance, name) + warning_messages(flags)
    notes = provenance_notes(bank)
    unchecked = unchecked_circularity(bank, feats.provenance, name) if not warnings else None
    if unchecked:
        notes.append(unchecked)
    if inputs.matched_by == "position":
        notes.insert(0, f"FEATURES and CONCEPTS rows were matched by position ({n} rows): no image ids are "
                        "common to both, so row i of one is assumed to be the image of row i of the other")
    result = Result(
        summary=summary, per_clustering=per, config=cfg.to_dict(), seeds=list(quant.seeds),
        versions=library_versions(), name=name or default_name(feats.provenance),
        inputs={"features": {**feats.provenance, "n": n, "dim": int(feats.array.shape[1])},
                "concepts": {"source": bank.info.get("source"), "n_concepts": bank.n_concepts,
                             "groups": bank.groups, "nnz": int(bank.matrix.nnz),
                             "content_hash": bank.content_hash()},
                "matched_by": inputs.matched_by, "warnings": warnings, "notes": notes,
                "flags": [f.to_dict() for f in flags]},
        image_ids=feats.image_ids, paths=feats.paths,
        concepts=bank.concepts.assign(n_images=np.asarray(bank.matrix.sum(axis=0)).ravel().astype(np.int64)),
        standardizer={"mean": quant.mean, "scale": quant.scale},
        replicates=stats.replicates, null_replicates=stats.null_replicates, statistics=stats.info,
    )
    if keep_arrays:
        result.clusterings = quant.labels.astype(np.int32)
        result.splits = np.stack([o.split.as_codes(n) for o in outcomes])
        result.predictions = np.stack([o.predictions.astype(np.int32) for o in outcomes])
        result.coef = np.stack([o.probe.coef_ for o in outcomes])
        result.bias = np.stack([o.probe.intercept_ for o in outcomes])
        result.centroids = quant.centroids
    print_warnings(result, progress)
    for message in notes if progress else notes[:1] if inputs.matched_by == "position" else ():
        remark(message, loud(progress))
    return result


def result_label(result: Result) -> str:
    """How warnings name a result: its name and K (``"efficientnet-lite0 (K=50)"``)."""
    return f"{result.name or 'result'} (K={result.config.get('k')})"


def print_warnings(result: Result, progress: bool = False) -> None:
    """Print every warning of ``result`` (its flags' and provenance warnings, ``inputs.warnings``, and the
    small-sample warnings of its statistics), each naming the model (and K, except the provenance warnings,
    which hold for every K): the same lines after
    :func:`evaluate` and when a study reuses the saved result. Printed on stderr in the CLI or with
    ``progress``, else logged (:func:`qrprobe.progress.warn`)."""
    flagged = {f.get("message") for f in result.inputs.get("flags", [])}
    stats = (result.statistics or {}).get("warnings", [])
    for message in dict.fromkeys([*result.inputs.get("warnings", []), *stats]):
        # a provenance warning does not depend on K (printed once per model in a K sweep); the rest do
        label = result_label(result) if message in flagged or message in stats else (result.name or "result")
        warn(f"{label}: {message}", progress)


def provenance_warnings(bank: ConceptBank, provenance: dict, name: str = "") -> list[str]:
    """Warnings about the inputs' provenance: an expert that is the network under test (circularity).

    The network is the feature store's model; for features without one (a ``.npy``), the representation's
    ``name`` and the file's stem stand for it, so ``efficientnet-lite0.npy`` is checked too.
    """
    if not bank.info.get("experts"):
        return []
    candidates = [provenance.get("model")] if provenance.get("model") else [
        name, Path(provenance["path"]).stem if provenance.get("path") else ""]
    out: list[str] = []
    for candidate in dict.fromkeys(c for c in candidates if c):
        out.extend(m for m in circularity_warnings(bank, candidate) if m not in out)
    return out


def unchecked_circularity(bank: ConceptBank, provenance: dict, name: str = "") -> str | None:
    """A note when the features name no model while some expert of the bank is a network, or None."""
    if provenance.get("model") or name:
        return None
    networks = expert_networks(bank)
    if not networks:
        return None
    return (f"the features carry no model name, so circularity (an expert that is the network under test: "
            f"{', '.join(sorted(set(networks)))}) could only be checked against the file name; name the "
            "representation (name= / --name) to check it")


def provenance_notes(bank: ConceptBank) -> list[str]:
    """Notes about the concepts: how the bank's expert battery differs from the paper's (when it was labelled
    by qrprobe's experts; a user's own concept table gets no note)."""
    experts = bank.info.get("experts")
    if not experts:
        return []
    text = battery_note(experts)
    return [text] if text else []


def default_name(provenance: dict) -> str:
    """The model of a feature store, else the stem of the features file, else ``"features"``."""
    if provenance.get("model"):
        return str(provenance["model"])
    if provenance.get("path"):
        return Path(provenance["path"]).stem
    return "features"


__all__ = ["assemble_result", "evaluate", "print_warnings", "protocol_config", "result_label"]
