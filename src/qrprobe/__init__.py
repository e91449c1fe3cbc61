"""qrprobe: quantized reverse probing of image representations (Laina, Asano & Vedaldi, ICLR 2022).

How interpretable is a representation? Quantize a frozen model's features with K-means, label every image
with human-nameable concepts, and measure how well a linear probe predicts an image's cluster from its
concepts (NMI, AMI, top-1, mAP, mutual information in bits).

The public API (imported lazily, so ``import qrprobe`` stays light)::

    import qrprobe as qrp
    feats = qrp.extract("timm:resnet50", "images/", "feats/")          # a FeatureStore
    bank = qrp.label("images/", ["labels", "color", "text"])           # a ConceptBank
    result = qrp.evaluate(feats, bank, k=1000, clusterings=5)          # a Result
    result.to_frame(); result.summary_frame()                          # scores as DataFrames
    qrp.compare([result, other]).frame                                  # ranked, with significance
    qrp.report([result], "report.html")

Inputs and artifacts: ``open_images``, ``extract`` (its parameters: ``ExtractConfig``), ``FeatureStore``,
``write_feature_store``, ``create_representation``, ``label`` (its parameters: ``LabelConfig``), ``ConceptBank``.
The protocol: ``evaluate``, ``ProtocolConfig``, ``KMeansConfig``, ``ProbeConfig``, ``ReverseProbing`` (a scikit-learn
estimator), ``quantize`` and ``probe_labels`` (its steps), ``KMeans``, ``Standardizer``, ``ReverseProbe``,
``stratified_split``, ``Result``.
Analyses and reports: ``compare`` (results ranked, with the significance of each step, as ``qrprobe compare``),
``analyze`` (any analysis of the paper by name, inputs as paths or objects:
``compare``, ``breakdown``, ``explain``, ``explain-groups``, ``ksweep``, ``transfer``, ``forward-probe``,
``self-labels``, ``concepts-to-labels``), ``run_analysis`` (the same on prepared inputs), ``analysis`` (the
functions themselves), ``report``.
Studies: ``load_study``, ``run_study``. Generated data with a known answer: ``synthetic``.
Errors: ``QRProbeInputError`` (bad input), ``ParameterError`` (a bad parameter value).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

from ._network import disable_telemetry

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time every name below is imported on first use
    from . import analysis as analysis
    from . import synthetic as synthetic
    from .concepts.bank import ConceptBank as ConceptBank
    from .engine.config import KMeansConfig as KMeansConfig
    from .engine.config import ProbeConfig as ProbeConfig
    from .engine.config import ProtocolConfig as ProtocolConfig
    from .engine.estimator import ReverseProbing as ReverseProbing
    from .engine.evaluate import evaluate as evaluate
    from .engine.kmeans.quantize import KMeans as KMeans
    from .engine.kmeans.quantize import Standardizer as Standardizer
    from .engine.probe.reverse_probe import ReverseProbe as ReverseProbe
    from .engine.probe.split import stratified_split as stratified_split
    from .engine.protocol import probe_labels as probe_labels
    from .engine.protocol import quantize as quantize
    from .errors import ParameterError as ParameterError
    from .errors import QRProbeInputError as QRProbeInputError
    from .experts.label import label_images as label  # noqa: F401 - exported as ``label``
    from .features.extract import extract as extract
    from .features.store import FeatureStore as FeatureStore
    from .features.store import write_feature_store as write_feature_store
    from .images import open_images as open_images
    from .models.registry import create_representation as create_representation
    from .report.build import report as report
    from .results import Result as Result
    from .study.load import load_study as load_study
    from .study.runner import run_study as run_study
    from .workflow.analyses import analyze as analyze
    from .workflow.analyses import run_analysis as run_analysis
    from .workflow.compare_api import compare as compare

__version__ = "0.1.0"
disable_telemetry()  # before any dependency that reads its telemetry switch at import (huggingface_hub)

_EXPORTS: dict[str, str | tuple[str, str]] = {
    "ConceptBank": "qrprobe.concepts.bank",
    "FeatureStore": "qrprobe.features.store",
    "write_feature_store": "qrprobe.features.store",
    "evaluate": "qrprobe.engine.evaluate",
    "probe_labels": "qrprobe.engine.protocol",
    "quantize": "qrprobe.engine.protocol",
    "ProtocolConfig": "qrprobe.engine.config",
    "ReverseProbing": "qrprobe.engine.estimator",
    "ProbeConfig": "qrprobe.engine.config",
    "KMeansConfig": "qrprobe.engine.config",
    "ReverseProbe": "qrprobe.engine.probe.reverse_probe",
    "KMeans": "qrprobe.engine.kmeans.quantize",
    "Standardizer": "qrprobe.engine.kmeans.quantize",
    "stratified_split": "qrprobe.engine.probe.split",
    "Result": "qrprobe.results",
    "QRProbeInputError": "qrprobe.errors",
    "ParameterError": "qrprobe.errors",
    "extract": "qrprobe.features.extract",
    "ExtractConfig": "qrprobe.features.config",
    "LabelConfig": "qrprobe.experts.label_config",
    "open_images": "qrprobe.images",
    "create_representation": "qrprobe.models",
    "label": ("qrprobe.experts.label", "label_images"),
    "run_analysis": "qrprobe.workflow.analyses",
    "analyze": "qrprobe.workflow.analyses",
    "compare": "qrprobe.workflow.compare_api",
    "report": "qrprobe.report",
    "load_study": "qrprobe.study.load",
    "run_study": "qrprobe.study.runner",
}
_MODULES = ("analysis", "synthetic")

__all__ = ["__version__", *_EXPORTS, *_MODULES]


def _documenting() -> bool:
    """Whether pydoc (``help(qrprobe)``) is walking the module's members: it reads every name ``dir()`` lists,
    and importing them all would load torch, scikit-learn and matplotlib for a page whose docstring already lists
    the API."""
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__") == "pydoc":
            return True
        frame = frame.f_back
    return False


def __getattr__(name: str):
    if (name in _EXPORTS or name in _MODULES) and _documenting():
        raise AttributeError(name)  # pydoc skips it: the docstring above lists it
    if name in _EXPORTS:
        target = _EXPORTS[name]
        module, attr = target if isinstance(target, tuple) else (target, name)
        return getattr(importlib.import_module(module), attr)
    if name in _MODULES:
        return importlib.import_module(f"qrprobe.{name}")
    raise AttributeError(f"module 'qrprobe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
