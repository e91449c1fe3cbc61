"""What a study is checked for before any work, beyond its schema: names that must resolve, and its layout.

- :func:`work_problems`: every MODEL string names a model family or built-in, every expert exists and takes
  the options given (so an unknown expert is reported at load time, not after the extraction ran);
- :func:`check_layout`: the output folder is not an input, does not lie inside an image folder of the study
  (a re-run would read its figures as images), and is either new, empty, or the output of an earlier run of
  a study (marked by ``study.resolved.json``), so that a study never writes into, or deletes from, a folder
  of unrelated files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .._atomic import check_not_an_input
from ..errors import QRProbeInputError
from .config import StudyConfig
from .lock import LOCK_NAME

#: The file every study output folder holds; a non-empty folder without it is not a study's output.
RESOLVED = "study.resolved.json"


def _where(locations: dict, path: tuple) -> str:
    for cut in range(len(path), -1, -1):
        if path[:cut] in locations:
            return locations[path[:cut]] + ": "
    return ""


def work_problems(study: StudyConfig, locations: dict) -> list[str]:
    """Problems that would stop the run only after earlier stages worked: unknown models, unknown experts,
    options an expert does not take. Each is ``"file:line:col: key: message"``."""
    from ..experts.registry import coerce_options, expert_class, expert_info
    from ..models.registry import parse_model_spec

    problems = []
    for i, model in enumerate(study.models):
        if model.model:
            try:
                parse_model_spec(model.model)
            except QRProbeInputError as exc:
                problems.append(f"{_where(locations, ('models', i, 'model'))}models[{i}].model: {exc}")
    for i, expert in enumerate(study.experts):
        key = "kind" if expert.kind else "name"
        try:
            info = expert_info(expert.kind or expert.name)
            coerce_options(expert_class(info.name), dict(expert.options), info.name)
        except QRProbeInputError as exc:
            where = ("experts", i, "options") if "option" in str(exc) else ("experts", i, key)
            problems.append(f"{_where(locations, where)}experts[{i}].{where[-1]}: {exc}")
    for i, path in enumerate(study.concepts):
        problem = concept_table_problem(path)
        if problem:
            problems.append(f"{_where(locations, ('concepts', i))}concepts[{i}]: {problem}")
    return problems


def concept_table_problem(path: str) -> str | None:
    """Why ``path`` (an entry of a study's ``concepts:``) is neither a concept-bank folder nor a readable table
    with columns ``image_id`` and ``concept``; None when it is one."""
    from ..concepts.bank import read_table

    if Path(path).is_dir():
        return None
    if Path(path).suffix.lower() not in (".csv", ".tsv", ".tab", ".parquet", ".pq"):
        return (f"{path!r}: expected a concept-bank folder (`qrprobe label`) or a table (.csv, .tsv or .parquet "
                "with columns image_id, concept[, group])")
    try:
        columns = set(read_table(path).columns)
    except QRProbeInputError as exc:
        return str(exc)
    missing = [c for c in ("image_id", "concept") if c not in columns]
    return (f"{path!r}: missing column(s) {', '.join(missing)}; a concept table has columns image_id, "
            f"concept[, group]") if missing else None


def study_inputs(study: StudyConfig) -> tuple[dict, list[str]]:
    """The study's input paths by label, and its image folders (the study's own and any transfer target's)."""
    inputs: dict = {"images.source": study.images.source, "images.labels": study.images.labels,
                    "concepts": list(study.concepts)}
    for i, m in enumerate(study.models):
        inputs[f"models[{i}]"] = [getattr(m, f.name) for f in dataclasses.fields(m)  # weights, features …
                                  if f.metadata.get("file") and getattr(m, f.name)]
    for i, e in enumerate(study.experts):
        inputs[f"experts[{i}]"] = [p for p in (e.weights, *(v for v in e.options.values() if isinstance(v, str)))
                                   if p and Path(p).exists()]
    folders = [study.images.source]
    for name, spec in dataclasses.asdict(study.analyses).items():
        for key, value in (spec or {}).items():
            if isinstance(value, str) and key in ("images", "labels", "external"):
                inputs[f"analyses.{name}.{key}"] = value
                if key == "images":
                    folders.append(value)
    return inputs, folders


def check_layout(study: StudyConfig, output: str | Path) -> None:
    """Refuse an output folder that is or holds an input, lies in an image folder of the study, or is a
    non-empty folder that no study wrote (see the module docstring)."""
    output = Path(output)
    inputs, folders = study_inputs(study)
    check_not_an_input(output, inputs, what="output", holding=False)  # a store inside an earlier output is fine
    for folder in folders:
        check_not_an_input(output, {}, images=folder, what="output")
    if output.exists() and not output.is_dir():
        raise QRProbeInputError(f"output {str(output)!r} is a file; a study writes a folder")
    if output.is_dir() and any(e.name != LOCK_NAME for e in output.iterdir()) and not (output / RESOLVED).is_file():
        raise QRProbeInputError(f"output {str(output)!r} is a folder of other files (it has no {RESOLVED}, so no "
                                "study wrote it); a study writes into a new or empty folder, or into its own "
                                "earlier output — choose another output")


__all__ = ["RESOLVED", "check_layout", "study_inputs", "work_problems"]
