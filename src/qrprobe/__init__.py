"""qrprobe: quantized reverse probing of image representations (Laina, Asano & Vedaldi, ICLR 2022).

The public API is imported lazily, so ``import qrprobe`` stays light (torch is loaded on first use)::

    import qrprobe as qrp
    result = qrp.evaluate(features, qrp.ConceptBank.from_long_table("concepts.csv"), k=1000)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ConceptBank": "qrprobe.concepts.bank",
    "FeatureStore": "qrprobe.features.store",
    "write_feature_store": "qrprobe.features.store",
    "evaluate": "qrprobe.engine.evaluate",
    "probe_labels": "qrprobe.engine.evaluate",
    "ProtocolConfig": "qrprobe.engine.evaluate",
    "ReverseProbing": "qrprobe.engine.evaluate",
    "ProbeConfig": "qrprobe.engine.probe",
    "ReverseProbe": "qrprobe.engine.probe",
    "KMeans": "qrprobe.engine.quantize",
    "Standardizer": "qrprobe.engine.quantize",
    "stratified_split": "qrprobe.engine.split",
    "Result": "qrprobe.results",
    "QRProbeInputError": "qrprobe.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'qrprobe' has no attribute {name!r}")
