"""The study config (``qrprobe run study.yaml``): images × models × experts × protocol → analyses → report.

A study is written once in YAML and validated completely, with the location of every error, before any work
starts (:func:`load_study`). Example::

    name: my-study
    images: {source: images/, labels: labels.csv}      # a folder, a file list or tar shards
    output: runs/my-study                               # default: <config name>-out beside the config
    device: auto
    models:
      - {name: lite0, model: efficientnet-lite0}
      - {name: resnet50-moco, model: "timm:resnet50", weights: moco_v2.pth}
    experts:
      - {name: labels}
      - {name: color}
      - {name: my-style, kind: clip, group: Other, options: {vocabulary: styles.txt}}
    protocol: {k: 1000, clusterings: 5, seed: 0, probe: {epochs: 100}}   # `qrprobe evaluate --help` names every key
    analyses:
      breakdown: {order: [Labels, Objects, Scene, Texture, Other], label_group: Labels}
      ksweep: {k: [500, 1000, 2000]}
      explain: {base: [Labels], added: [Scene], pairs: 6}
    report: {title: My study}

Relative paths are relative to the config file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.config import ProtocolConfig
from ..errors import QRProbeInputError
from .schema import build
from .yamlsrc import load_located

FILE = {"file": True}


@dataclass(frozen=True)
class ImagesSpec:
    """The image collection: ``source`` (folder, file list or tar shards) and optional ground-truth ``labels``
    (a long table ``image_id, concept[, group]`` read by the ``labels`` expert)."""

    source: str = field(metadata=FILE)
    labels: str | None = field(default=None, metadata=FILE)


@dataclass(frozen=True)
class ModelSpec:
    """One representation: a MODEL string (``qrprobe models``) and how to run it."""

    name: str
    model: str
    weights: str | None = field(default=None, metadata=FILE)
    layer: str | None = None
    pretrained: bool = True
    batch_size: int | None = None  # None: the extractor's default (larger on a GPU than on a CPU)
    dtype: str = "float32"
    image_size: int | None = None
    external: dict[str, float] = field(default_factory=dict)
    # The transform the model was trained/evaluated with: a preset name (imagenet, imagenet-bicubic) or a
    # mapping {preset, resize, crop, interpolation, mean, std}; None: the model family's own.
    preprocess: str | dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.preprocess is not None:
            from ..models.preprocess import parse_preprocess

            parse_preprocess(self.preprocess)  # a ParameterError names the field


@dataclass(frozen=True)
class ExpertSpec:
    """One expert (``qrprobe experts``): ``name`` is the registry name unless ``kind`` gives it."""

    name: str
    kind: str | None = None
    group: str | None = None
    weights: str | None = field(default=None, metadata=FILE)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BreakdownSpec:
    """Cumulative and single concept groups (Fig. 4, Table 3); ``models``: which (default: all)."""

    order: list[str] | None = None
    label_group: str | None = None
    models: list[str] | None = None


@dataclass(frozen=True)
class KSweepSpec:
    """Scores against K (Fig. 6, 7); ``clusterings`` defaults to the protocol's."""

    k: list[int] = field(default_factory=list)
    clusterings: int | None = None
    models: list[str] | None = None


@dataclass(frozen=True)
class ExplainSpec:
    """Cluster pairs whose confusion drops most when ``added`` groups join the ``base`` groups (Fig. 5)."""

    base: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    pairs: int = 6
    models: list[str] | None = None


@dataclass(frozen=True)
class AnalysesSpec:
    breakdown: BreakdownSpec | None = None
    ksweep: KSweepSpec | None = None
    explain: ExplainSpec | None = None


@dataclass(frozen=True)
class ReportSpec:
    title: str = ""
    enabled: bool = True
    pairs: int = 4
    sort_by: str = "nmi"


@dataclass(frozen=True)
class StudyConfig:
    """A whole study; see the module docstring."""

    name: str
    images: ImagesSpec
    models: list[ModelSpec]
    experts: list[ExpertSpec]
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    analyses: AnalysesSpec = field(default_factory=AnalysesSpec)
    report: ReportSpec = field(default_factory=ReportSpec)
    output: str | None = None
    device: str = "auto"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def protocol_config(self) -> ProtocolConfig:
        """The protocol with the study's device."""
        return dataclasses.replace(self.protocol, device=self.device)


def load_study(path: str | os.PathLike, *, overrides: dict | None = None) -> StudyConfig:
    """Read and validate a study config; every problem is reported with its ``file:line:column``."""
    path = Path(path)
    value, locations = load_located(path)
    if overrides:
        value = {**value, **overrides}
    return study_from_dict(value, locations, path.parent)


def study_from_dict(value: dict, locations: dict, base_dir: Path) -> StudyConfig:
    """Validate a plain mapping (e.g. the built-in demo's) as a :class:`StudyConfig`."""
    study = build(StudyConfig, value, locations, base_dir)
    problems = _semantic_problems(study)
    if problems:
        where = next(iter(locations.values()), "config").rsplit(":", 2)[0]
        raise QRProbeInputError(f"invalid study config {where}:\n  " + "\n  ".join(problems))
    if study.output is not None and not Path(study.output).is_absolute():
        study = dataclasses.replace(study, output=str(base_dir / study.output))
    return study


def _semantic_problems(study: StudyConfig) -> list[str]:
    problems = []
    for what, items in (("models", study.models), ("experts", study.experts)):
        if not items:
            problems.append(f"{what}: at least one is needed")
        names = [i.name for i in items]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            problems.append(f"{what}: duplicate names {dups}")
    for m in study.models:
        if m.dtype not in ("float16", "float32"):
            problems.append(f"models.{m.name}.dtype: expected float16 or float32, got {m.dtype!r}")
    if study.report.sort_by not in ("nmi", "ami", "top1", "map", "mi_bits"):
        problems.append(f"report.sort_by: expected one of nmi, ami, top1, map, mi_bits, got {study.report.sort_by!r}")
    names = {m.name for m in study.models}
    for kind in ("breakdown", "ksweep", "explain"):
        spec = getattr(study.analyses, kind)
        unknown = sorted(set(spec.models or ()) - names) if spec is not None else []
        if unknown:
            problems.append(f"analyses.{kind}.models: unknown model(s) {unknown}; models are {sorted(names)}")
    try:
        study.protocol_config()
    except QRProbeInputError as exc:
        problems.append(f"device: {exc}")
    return problems
