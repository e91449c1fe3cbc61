"""Reading a study file: YAML with locations → the schema (:mod:`.config`) → the checks that need the
registries (:mod:`.checks`), every problem reported with its ``file:line:column``."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

from ..errors import QRProbeInputError
from .checks import work_problems
from .config import StudyConfig
from .schema import build
from .yamlsrc import load_located


def load_study(path: str | os.PathLike, *, overrides: dict | None = None) -> StudyConfig:
    """Read and validate a study config; every problem is reported with its ``file:line:column``."""
    path = Path(path)
    value, locations = load_located(path)
    if overrides and isinstance(value, dict):  # a file that is not a mapping is reported by study_from_dict
        value = {**value, **overrides}
    return study_from_dict(value, locations, path.parent)


def study_from_dict(value: object, locations: dict, base_dir: Path) -> StudyConfig:
    """Validate a plain mapping (e.g. the built-in demo's) as a :class:`StudyConfig`."""
    value, locations = _upgrade_explain(value, locations)
    value = expand_paper_experts(value)
    study = build(StudyConfig, value, locations, base_dir)
    study = dataclasses.replace(study, models=[dataclasses.replace(m, model=model_file_relative_to(m.model, base_dir))
                                               for m in study.models])
    problems = _semantic_problems(study) + work_problems(study, locations)
    if problems:
        where = next(iter(locations.values()), "config").rsplit(":", 2)[0]
        raise QRProbeInputError(f"invalid study config {where}:\n  " + "\n  ".join(problems))
    if study.output is not None and not Path(study.output).is_absolute():
        study = dataclasses.replace(study, output=str(base_dir / study.output))
    return study


_MODEL_FILES = (".onnx", ".pt", ".pth", ".ts", ".torchscript", ".jit")


def model_file_relative_to(model: str, base_dir: Path) -> str:
    """A study's MODEL string with the file it names resolved against the study file's folder ``base_dir``, as
    every other path of a study is: ``python:nets.py:build`` → ``python:/study/dir/nets.py:build``, and a
    relative TorchScript/ONNX file (``model.pt``, ``onnx:model.onnx``) found there. A module name
    (``python:mypkg.nets:build``) is imported as Python imports it (``sys.path``); absolute paths stay as they are.
    """
    prefix, sep, rest = model.partition(":")
    if sep and prefix == "python":
        module, colon, factory = rest.rpartition(":")
        if colon and module.endswith(".py") and not Path(module).is_absolute():
            return f"python:{base_dir / module}:{factory}"
        return model
    if sep and prefix in ("onnx", "torchscript"):
        path = rest
    elif not sep and model.lower().endswith(_MODEL_FILES):
        prefix, path = "", model
    else:
        return model
    if Path(path).is_absolute() or not (base_dir / path).exists():
        return model  # not there: the model's own error names it
    return f"{prefix}:{base_dir / path}" if prefix else str(base_dir / path)


def expand_paper_experts(value: object) -> object:
    """``experts: paper`` -> the closest-to-paper battery that can run here
    (:func:`qrprobe.experts.paper_set.paper_experts`); the experts left out, and why, go into ``notes``."""
    if not (isinstance(value, dict) and isinstance(value.get("experts"), str)
            and value["experts"].strip().lower() == "paper"):
        return value
    from ..experts.paper_set import paper_experts

    selection = paper_experts()
    experts = [{"name": name, **({"options": options} if options else {})} for name, options in selection.experts]
    note = selection.note()
    notes = value.get("notes")
    if notes is None:
        notes = []
    if note is not None and isinstance(notes, list):  # (a malformed `notes` is left for the schema to report)
        notes = [*notes, note]
    return {**value, "experts": experts, **({"notes": notes} if notes else {})}


def _upgrade_explain(value: object, locations: dict) -> tuple[object, dict]:
    """Before 0.2, ``analyses: explain: {base, added}`` meant what is now ``explain_groups`` (``explain`` now
    explains a model's own result, as ``qrprobe explain`` does): move such a mapping, with a warning."""
    if not isinstance(value, dict):
        return value, locations
    analyses = value.get("analyses")
    old = analyses.get("explain") if isinstance(analyses, dict) else None
    if not (isinstance(analyses, dict) and isinstance(old, dict) and {"base", "added"} & set(old)
            and "explain_groups" not in analyses):
        return value, locations
    where = locations.get(("analyses", "explain"), "study")
    warnings.warn(f"{where}: analyses.explain with base/added is deprecated; write analyses.explain_groups",
                  FutureWarning, stacklevel=3)
    analyses = {("explain_groups" if k == "explain" else k): v for k, v in analyses.items()}
    moved = {}
    for path, loc in locations.items():
        if path[:2] == ("analyses", "explain"):
            path = ("analyses", "explain_groups", *path[2:])
        moved[path] = loc
    return {**value, "analyses": analyses}, moved


def _semantic_problems(study: StudyConfig) -> list[str]:
    problems = []
    if not study.models:
        problems.append("models: at least one is needed")
    if not study.experts and not study.concepts:
        problems.append("experts: at least one expert (or a concept bank under `concepts`) is needed")
    for m in study.models:
        if not m.model and not m.features:
            problems.append(f"models.{m.name}: give `model` (to extract) or `features` (a feature store)")
    for what, items in (("models", study.models), ("experts", study.experts)):
        names = [i.name for i in items]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            problems.append(f"{what}: duplicate names {dups}")
    model_names = {m.name for m in study.models}
    for key, spec in dataclasses.asdict(study.analyses).items():
        unknown = sorted(set((spec or {}).get("models") or ()) - model_names)
        if unknown:
            problems.append(f"analyses.{key}.models: unknown model(s) {unknown}; models are {sorted(model_names)}")
    try:
        study.protocol_config()
    except QRProbeInputError as exc:
        problems.append(f"device: {exc}")
    return problems


__all__ = ["load_study", "study_from_dict"]
