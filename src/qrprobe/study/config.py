"""The study config (``qrprobe run study.yaml``): images × models × experts × protocol → analyses → report.

A study is written once in YAML and validated completely, with the location of every error, before any work
starts (:func:`load_study`). Example::

    name: my-study
    images: {source: images/, labels: labels.csv}      # a folder, a file list or tar shards
    output: runs/my-study                               # default: <config name>-out beside the config
    device: auto
    models:
      - {name: lite0, model: efficientnet-lite0}            # keys of `qrprobe extract`: docs/study-reference.md
      - {name: resnet50-moco, model: "timm:resnet50", weights: moco_v2.pth}
    experts:
      - {name: labels}
      - {name: color}
      - {name: my-style, kind: clip, group: Other, options: {vocabulary: styles.txt}}
    protocol: {k: 1000, clusterings: 5, seed: 0, probe: {epochs: 100}}   # `qrprobe evaluate --help` names every key
    analyses:
      breakdown: {order: [Labels, Objects, Scene, Texture, Other], label_group: Labels}
      ksweep: {k: [500, 1000, 2000]}
      explain_groups: {base: [Labels], added: [Scene], pairs: 6}
    report: {title: My study}

Relative paths are relative to the config file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from ..engine.config import ProtocolConfig
from ..experts.label_config import LabelConfig
from ..features.config import ExtractConfig
from ..results import HEADLINE
from ..schema import config_fields, derived_dataclass, int_at_least, number_in, param, validate


def required(help: str, **metadata: Any) -> Any:
    """A required study field (no default) with its help text (``file=True``: a path that must exist)."""
    return field(metadata={"help": help, **metadata})


_Spec = TypeVar("_Spec")


def _validated(cls: type[_Spec]) -> type[_Spec]:
    """Check a spec's fields against their metadata when it is built (choices, ranges)."""
    def post_init(self) -> None:
        validate(self)

    setattr(cls, "__post_init__", post_init)  # noqa: B010 (a method added to a class, not an attribute set)
    return cls


@dataclass(frozen=True)
@_validated
class ImagesSpec:
    """The image collection."""

    source: str = required("the images: a folder (sub-folders are labels), a file list (.csv/.txt) or "
                           "webdataset tar shards", file=True)
    labels: str | None = param(None, "ground-truth labels for the `labels` expert: a long table "
                               "image_id,concept[,group]", file=True, shown="the folder names, if any")


@dataclass(frozen=True)
@_validated
class _ModelKeys:
    """One representation: a MODEL string (``qrprobe models``) and how to extract its features."""

    name: str = required("the representation's name in tables and reports")
    model: str = param("", "a MODEL string: built-in name, timm:NAME, torchvision:NAME, open_clip:NAME, hf:NAME, "
                       "a TorchScript/ONNX file or python:MODULE:FACTORY (`qrprobe models`), MODULE a module name "
                       "(imported from sys.path) or a .py file; files relative to the study file; required "
                       "unless `features` is given", shown="required", key=True)
    features: str | None = param(None, "a feature store already extracted (`qrprobe extract`) on the study's "
                                 "images: used instead of extracting", file=True, shown="extract")
    external: dict[str, float] = param({}, "external scores of this model (e.g. linear-probe accuracy), shown "
                                       "beside the scores and in the Fig. 3 scatter", shown="none")

    def extraction(self, **run: Any) -> ExtractConfig:
        """The :class:`~qrprobe.features.config.ExtractConfig` of this model: the extraction keys it states, with
        ``run`` (the study's device, progress …) for the others."""
        return ExtractConfig(**_stated(self, ExtractConfig), **run)


def _stated(spec: Any, cls: type) -> dict[str, Any]:
    """The values of the fields of the study spec ``spec`` that are fields of the config ``cls``."""
    names = {f.name for f in config_fields(cls)}
    return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name in names}


def _in_study(f: dataclasses.Field) -> bool:
    return f.metadata.get("study", True)


if TYPE_CHECKING:  # the extraction's keys are added at run time: a static checker sees the model's own
    ModelSpec: TypeAlias = _ModelKeys
else:
    ModelSpec = derived_dataclass("ModelSpec", _ModelKeys, ExtractConfig, module=__name__, select=_in_study)


@dataclass(frozen=True)
@_validated
class ExpertSpec:
    """One concept expert (``qrprobe experts``)."""

    name: str = required("the expert's name (a registry name, unless `kind` gives the expert)")
    kind: str | None = param(None, "the registry expert to run under this name (e.g. clip with a vocabulary)",
                             shown="the name")
    group: str | None = param(None, "the concept group of its concepts (Objects, Scene, …)",
                              shown="the expert's own")
    weights: str | None = param(None, "a local weights file for the expert", file=True, shown="the expert's")
    options: dict[str, Any] = param({}, "the expert's options (`qrprobe experts NAME` lists them)", shown="none")


def _analyses_spec() -> type:
    """``analyses:`` — one optional key per analysis of the registry, each with that analysis' options."""
    from ..workflow.analyses import ANALYSES

    fields = [(kind.key, kind.spec | None, field(default=None, metadata={"help": kind.help, "shown": "not run"}))
              for kind in ANALYSES.values()]
    cls = dataclasses.make_dataclass("AnalysesSpec", fields, frozen=True)
    cls.__doc__ = "The analyses of a study: each key an analysis of the registry (``qrprobe <analysis> --help``)."
    cls.__module__ = __name__
    return cls


if TYPE_CHECKING:  # one field per registered analysis, made at run time
    AnalysesSpec: TypeAlias = Any
else:
    AnalysesSpec = _analyses_spec()


@dataclass(frozen=True)
class _LabellingKeys:
    """How the experts label the images (``qrprobe label --help``)."""

    def labelling(self, **run: Any) -> LabelConfig:
        """The :class:`~qrprobe.experts.label_config.LabelConfig` of the study: the keys it states, with ``run``
        (progress …) for the others."""
        return LabelConfig(**_stated(self, LabelConfig), **run)


if TYPE_CHECKING:  # the labelling's keys are added at run time
    LabellingSpec: TypeAlias = _LabellingKeys
else:
    LabellingSpec = derived_dataclass("LabellingSpec", _LabellingKeys, LabelConfig, module=__name__,
                                      select=_in_study)


@dataclass(frozen=True)
@_validated
class ReportSpec:
    """The HTML report."""

    title: str = param("", "title of the page", shown="qrprobe study: NAME")
    enabled: bool = param(True, "write the report")
    pairs: int = param(4, "confused cluster pairs explained per result (0: none)", check=int_at_least(0))
    sort_by: str = param("nmi", "metric that ranks the comparison table", choices=HEADLINE)


def _stage_resources(stage: str, what: str, gpus: int, cpus: int, mem_gb: float, timeout_min: int) -> type:
    """The resources of one stage's jobs on a cluster (``qrprobe run --executor slurm``), with its defaults."""
    fields = [
        ("gpus", int, param(gpus, "GPUs per job", check=int_at_least(0))),
        ("cpus", int, param(cpus, "CPU cores per job", check=int_at_least(1))),
        ("mem_gb", float, param(float(mem_gb), "memory per job, GiB", check=number_in(0, 1e6, low_open=True))),
        ("timeout_min", int, param(timeout_min, "time limit per job, minutes", check=int_at_least(1))),
        ("partition", str | None, param(None, "the Slurm partition", shown="the cluster's default")),
        ("slurm", dict[str, Any], param({}, "more sbatch options, as --KEY=VALUE (account, qos, constraint, "
                                        "exclude, …)", shown="none")),
    ]
    cls = dataclasses.make_dataclass(f"{stage.capitalize()}Resources", fields, frozen=True,
                                     namespace={"__post_init__": lambda self: validate(self)})
    cls.__doc__ = f"The resources of each {what} job."
    cls.__module__ = __name__
    return cls


if TYPE_CHECKING:  # classes made at run time: a static checker cannot see their fields
    ExtractResources: TypeAlias = Any
    LabelResources: TypeAlias = Any
    EvaluateResources: TypeAlias = Any
    AnalysesResources: TypeAlias = Any
    ReportResources: TypeAlias = Any
else:
    ExtractResources = _stage_resources("extract", "extraction (one per model)", 1, 8, 32, 12 * 60)
    LabelResources = _stage_resources("label", "labelling (one per expert)", 1, 8, 32, 12 * 60)
    EvaluateResources = _stage_resources("evaluate", "evaluation (one per model)", 1, 4, 64, 4 * 60)
    AnalysesResources = _stage_resources("analyses", "analysis (one per analysis and model)", 1, 4, 64, 4 * 60)
    ReportResources = _stage_resources("report", "report (the last job)", 0, 2, 16, 60)


@dataclass(frozen=True)
class ResourcesSpec:
    """What each stage's jobs ask of a cluster (``qrprobe run --executor slurm``; the local executor ignores it)."""

    extract: ExtractResources = field(default_factory=ExtractResources,
                                      metadata={"help": "each model's extraction job"})
    label: LabelResources = field(default_factory=LabelResources, metadata={"help": "each expert's labelling job"})
    evaluate: EvaluateResources = field(default_factory=EvaluateResources,
                                        metadata={"help": "each model's evaluation job"})
    analyses: AnalysesResources = field(default_factory=AnalysesResources,
                                        metadata={"help": "each analysis job (per analysis and model)"})
    report: ReportResources = field(default_factory=ReportResources,
                                    metadata={"help": "the last job: ranking and report"})


@dataclass(frozen=True)
class StudyConfig:
    """A whole study: images × models × experts × protocol → analyses → report."""

    name: str = required("the study's name (the default output folder is NAME-out beside the file)")
    images: ImagesSpec = required("the image collection")
    models: list[ModelSpec] = required("the representations to compare")
    experts: list[ExpertSpec] = param([], "the concept experts that label the images; or `paper`: the closest-to-"
                                      "paper battery that runs here (`docs/protocol.md` §10)", shown="none")
    concepts: list[str] = param([], "concepts of the study's images beside the experts': concept-bank folders "
                                "(`qrprobe label`) or tables (.csv, .tsv, .parquet; columns image_id, concept"
                                "[, group]; ids as the study's images', e.g. red/00.png)", file=True, shown="none")
    labelling: LabellingSpec = field(default_factory=LabellingSpec,
                                     metadata={"help": "how the experts label the images (`qrprobe label --help`)"})
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig,
                                     metadata={"help": "the protocol (`qrprobe evaluate --help` lists every key)"})
    analyses: AnalysesSpec = field(default_factory=AnalysesSpec,
                                   metadata={"help": "the analyses of the paper to run"})
    report: ReportSpec = field(default_factory=ReportSpec, metadata={"help": "the HTML report"})
    output: str | None = param(None, "the output folder", shown="NAME-out beside the study file")
    device: str = param("auto", "auto (a GPU when present), cpu, cuda or cuda:N")
    notes: list[str] = param([], "remarks shown first in the report (why K is what it is, …)", shown="none")
    resources: ResourcesSpec = field(default_factory=ResourcesSpec,
                                     metadata={"help": "cluster resources of each stage's jobs (--executor slurm)"})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def protocol_config(self) -> ProtocolConfig:
        """The protocol with the study's device."""
        return dataclasses.replace(self.protocol, device=self.device)
