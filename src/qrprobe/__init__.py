"""qrprobe: quantized reverse probing of image representations (Laina, Asano & Vedaldi, ICLR 2022).

The public API is imported lazily, so ``import qrprobe`` stays light (torch is loaded on first use)::

    import qrprobe as qrp
    feats = qrp.extract("timm:resnet50", "images/", "feats/")          # a FeatureStore
    bank = qrp.label("images/", ["labels", "color", "text"])           # a ConceptBank
    result = qrp.evaluate(feats, bank, k=1000, clusterings=5)          # a Result
    qrp.report([result], "report.html")
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ConceptBank": "qrprobe.concepts.bank",
    "FeatureStore": "qrprobe.features.store",
    "write_feature_store": "qrprobe.features.store",
    "evaluate": "qrprobe.engine.evaluate",
    "probe_labels": "qrprobe.engine.protocol",
    "quantize": "qrprobe.engine.protocol",
    "ProtocolConfig": "qrprobe.engine.config",
    "ReverseProbing": "qrprobe.engine.estimator",
    "ProbeConfig": "qrprobe.engine.config",
    "ReverseProbe": "qrprobe.engine.probe",
    "KMeans": "qrprobe.engine.quantize",
    "Standardizer": "qrprobe.engine.quantize",
    "stratified_split": "qrprobe.engine.split",
    "Result": "qrprobe.results",
    "QRProbeInputError": "qrprobe.errors",
    "extract": "qrprobe.features.extract",
    "open_images": "qrprobe.images",
    "create_representation": "qrprobe.models",
    "label": ("qrprobe.experts.label", "label_images"),
    "report": "qrprobe.report",
    "load_study": "qrprobe.study.config",
    "run_study": "qrprobe.study.runner",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name] if isinstance(_EXPORTS[name], tuple) else (_EXPORTS[name], name)
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'qrprobe' has no attribute {name!r}")
