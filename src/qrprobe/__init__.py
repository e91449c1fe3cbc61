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
    qrp.report([result], "report.html")

Inputs and artifacts: ``open_images``, ``extract`` (its parameters: ``ExtractConfig``), ``FeatureStore``,
``write_feature_store``, ``create_representation``, ``label`` (its parameters: ``LabelConfig``), ``ConceptBank``.
The protocol: ``evaluate``, ``ProtocolConfig``, ``ProbeConfig``, ``ReverseProbing`` (a scikit-learn
estimator), ``quantize`` and ``probe_labels`` (its steps), ``KMeans``, ``Standardizer``, ``ReverseProbe``,
``stratified_split``, ``Result``.
Analyses and reports: ``analyze`` (any analysis of the paper by name, inputs as paths or objects:
``compare``, ``breakdown``, ``explain``, ``explain-groups``, ``ksweep``, ``transfer``, ``forward-probe``,
``self-labels``, ``concepts-to-labels``), ``run_analysis`` (the same on prepared inputs), ``analysis`` (the
functions themselves), ``report``.
Studies: ``load_study``, ``run_study``. Generated data with a known answer: ``synthetic``.
Errors: ``QRProbeInputError`` (bad input), ``ParameterError`` (a bad parameter value).
"""

from __future__ import annotations

import importlib

from ._network import disable_telemetry

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
    "report": "qrprobe.report",
    "load_study": "qrprobe.study.load",
    "run_study": "qrprobe.study.runner",
}
_MODULES = ("analysis", "synthetic")

__all__ = ["__version__", *_EXPORTS, *_MODULES]


def __getattr__(name: str):
    if name in _EXPORTS:
        target = _EXPORTS[name]
        module, attr = target if isinstance(target, tuple) else (target, name)
        return getattr(importlib.import_module(module), attr)
    if name in _MODULES:
        return importlib.import_module(f"qrprobe.{name}")
    raise AttributeError(f"module 'qrprobe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
