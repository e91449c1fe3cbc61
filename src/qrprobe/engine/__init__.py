"""The engine: quantized reverse probing on arrays and artifacts, in three wings and a front end.

Wings (each a package whose ``__init__`` names what it offers):

- :mod:`qrprobe.engine.kmeans` — quantization: per-dimension standardization streamed into one copy of the
  storage precision, K-means (``KMeans``, ``fit_clusterings``, ``KMeansResult``) with its interchangeable
  paths (plain float32 Lloyd, exact 16-bit Lloyd with Yinyang bounds over pluggable distance engines, faiss),
  the clusterings memo of a study run, and K-means across processes (``kmeans.distributed``).
- :mod:`qrprobe.engine.probe` — the reverse probe (``ReverseProbe``: the paper's SGD schedule or L-BFGS to the
  optimum) and the stratified train/validation/test split (``stratified_split``).
- :mod:`qrprobe.engine.stats` — what a score means: bootstrap replicates over test images, intervals and paired
  differences, the permutation null, baselines and small-sample warnings (``result_statistics``).

Front end (flat modules, in the order data flows through them): ``config`` (the protocol schema),
``inputs`` (read FEATURES / CONCEPTS and match rows), ``degenerate`` (results refused or flagged),
``protocol`` (the one protocol path: ``prepare_inputs`` → ``quantize`` → ``probe_all``), ``evaluate``
(``evaluate`` → a Result), ``estimator`` (the scikit-learn estimator ``ReverseProbing``).

Lower wings never import upper parts: kmeans and probe import only ``config`` (and ``inputs``) of the front
end; stats imports ``protocol``; ``evaluate`` imports stats (``tests/test_import_rules.py`` checks it).
Importing this package imports nothing else: the wings are loaded when first used.
"""

from __future__ import annotations

import importlib

WINGS = ("kmeans", "probe", "stats")
__all__ = list(WINGS)


def __getattr__(name: str):
    if name in WINGS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
