"""The study file format, written out from the schema itself: a Markdown reference and a commented template.

Both are generated from the dataclasses that validate a study (:mod:`qrprobe.study.config`, the protocol of
:mod:`qrprobe.engine.config`, the analyses' options of :mod:`qrprobe.workflow.specs`), so they list exactly
the keys a study accepts, with their defaults and help. ``docs/study-reference.md`` is this module's output
(a test keeps it so); ``qrprobe example --study`` writes the template.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from ..engine.config import field_default
from .config import StudyConfig


def _inner(hint: Any) -> tuple[Any, str]:
    """(the dataclass inside ``hint`` or None, a readable type name)."""
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        inner, name = _inner(args[0])
        return inner, f"{name} or null"
    if origin in (list, tuple):
        inner, name = _inner(args[0])
        return inner, f"list of {name}"
    if origin is dict:
        return None, f"mapping of {_inner(args[1])[1]}"
    if dataclasses.is_dataclass(hint):
        return hint, "mapping"
    names = {int: "integer", float: "number", str: "string", bool: "true/false", Any: "any value"}
    return None, names.get(hint, str(hint))


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.metadata.get("study", True)]


def _default(f: dataclasses.Field) -> str:
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        return "required"
    if f.metadata.get("shown"):
        return str(f.metadata["shown"])
    value = field_default(f)
    if dataclasses.is_dataclass(value):
        return "see below"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _help(f: dataclasses.Field) -> str:
    text = f.metadata.get("help", "")
    if f.metadata.get("choices"):
        text += f" (one of {', '.join(f.metadata['choices'])})"
    if f.metadata.get("aliases"):
        text += f"; formerly {', '.join(f.metadata['aliases'])}"
    return text


def reference_markdown() -> str:
    """The Markdown reference of every key of a study file."""
    lines = ["# Study file reference", "",
             "Generated from qrprobe's schema (`python -m qrprobe.study.reference`); every key a study file "
             "accepts, with its type, default and meaning. Relative paths are relative to the study file. "
             "`qrprobe example --study -o study.yaml` writes a commented template.", ""]

    def section(cls: type, path: str) -> None:
        lines.extend([f"## `{path}`" if path else "## top level", "", (cls.__doc__ or "").split("\n")[0], "",
                      "| key | type | default | meaning |", "|---|---|---|---|"])
        nested = []
        for f, hint in _fields(cls):
            inner, type_name = _inner(hint)
            if f.metadata.get("flat") and inner is not None:
                # keys of a nested config that a study gives flat here (or nested under f.name, not both)
                for g, _ in _fields(inner):
                    lines.append(f"| `{g.name}` | {_inner(typing.get_type_hints(inner)[g.name])[1]} | {_default(g)} | "
                                 f"{_help(g)} |")
                lines.append(f"| `{f.name}` | mapping | none | the keys "
                             f"{', '.join(f'`{g.name}`' for g, _ in _fields(inner))} nested under `{f.name}:` "
                             "instead of flat (each key once) |")
                continue
            lines.append(f"| `{f.name}` | {type_name} | {_default(f)} | {_help(f)} |")
            if inner is not None:
                sub = f"{path}.{f.name}" if path else f.name
                nested.append((inner, sub + ("[]" if "list" in type_name else "")))
        lines.append("")
        for inner, sub in nested:
            section(inner, sub)

    section(StudyConfig, "")
    return "\n".join(lines).rstrip() + "\n"


def template_yaml() -> str:
    """A commented study template: the required keys filled with examples, every optional key commented out
    with its default."""
    return """\
# A qrprobe study (`qrprobe run THIS_FILE`). Every key is listed in docs/study-reference.md;
# `qrprobe evaluate --help` and `qrprobe <analysis> --help` describe the protocol and analysis keys.
name: my-study
images:
  source: images/                 # a folder (sub-folders are labels), a file list or webdataset tar shards
  # labels: labels.csv            # ground truth for the `labels` expert: image_id,concept[,group]
models:
  - {name: ResNet-50 (supervised), model: "timm:resnet50.tv_in1k"}
  - {name: pixels, model: pixels}
  # - {name: MoCo v2, model: "torchvision:resnet50", weights: moco_v2_800ep.pth.tar}
experts:                          # `qrprobe experts` lists them
  - {name: labels}
  - {name: color}
  - {name: image-stats}
# labelling: {batch_size: 64, workers: 2}
# output: my-study-out            # default: NAME-out beside this file
# device: auto
protocol:                         # defaults: the paper's protocol
  k: 1000                         # clusters; use fewer for small collections (about N / 50)
  clusterings: 5
  # seed: 0
  # iters: 100
  # restarts: 5
  # probe: {lr: 3.5, momentum: 0.9, batch_size: 512, epochs: 100, milestones: [60, 80], lr_decay: 0.1,
  #         weight_decay: 3.0e-6}
analyses:                         # each key is an analysis of `qrprobe --help`
  breakdown: {order: [Labels, Texture, Other], label_group: Labels}
  # explain_groups: {base: [Labels], added: [Texture], pairs: 6}
  # ksweep: {k: [500, 1000, 2000], clusterings: 1}
  # forward_probe: {max_concepts: 200}
  # transfer: {images: other-images/, drop_groups: [Labels]}
  # self_labels: {labels: pseudo-labels.csv}
  # concepts_to_labels: {label_group: Labels}
report:
  title: My study
  # sort_by: nmi                  # nmi, ami, top1, map or mi_bits
notes:
  - "Why K is what it is, where the images come from, anything a reader of the report should know first."
# resources:                      # each stage's jobs with `qrprobe run --executor slurm` (docs/scale.md)
#   extract: {gpus: 1, cpus: 8, mem_gb: 32, timeout_min: 720, partition: gpu}
#   label: {gpus: 1, cpus: 8, mem_gb: 32, timeout_min: 720, partition: gpu}
#   evaluate: {gpus: 1, cpus: 4, mem_gb: 64, timeout_min: 240, slurm: {account: my-project}}
"""


if __name__ == "__main__":  # pragma: no cover - the documentation generator
    print(reference_markdown(), end="")
