"""The input checks of :class:`~qrprobe.engine.kmeans.quantize.KMeans` as a scikit-learn estimator: scikit-learn's
own (``validate_data``: 2-d, non-empty, finite, numeric, the number of features and their names against those
of ``fit``), with one-line errors that name the argument ``X``.

A torch tensor (the 16-bit features K-means stores, which numpy cannot hold) is checked the same way with torch,
block by block, and passed on as it is.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ...errors import QRProbeInputError

try:  # scikit-learn ≥ 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn: the estimator's own method
    def _validate_data(estimator, X, **kwargs):
        return estimator._validate_data(X, **kwargs)

DTYPES = [np.float32, np.float64, np.float16]  # kept as they are; anything else numeric becomes float32
_BLOCK_BYTES = 64 * 2**20
_DUMP = re.compile(r"\s*(array=|\[)")  # the lines of a message that print the values


def _named(message: str) -> str:
    """scikit-learn's ``message`` on one line, without the dump of the data it may hold, prefixed with ``X:``
    unless it already names ``X``."""
    kept = [line.strip() for line in message.splitlines() if line.strip() and not _DUMP.match(line)]
    text = " ".join(kept) or "invalid input"
    return text if re.search(r"\bX\b", text) else f"X: {text}"


def check_features(estimator: Any, X: Any, *, reset: bool, min_samples: int = 1) -> Any:
    """``X`` checked for ``estimator`` (``reset``: at ``fit``, recording ``n_features_in_``; else against it):
    an (N, D) float array (float32, float64 and float16 kept, other numbers converted to float32) or a torch
    tensor. Sparse, complex, empty, non-finite or wrongly shaped input raises
    :class:`~qrprobe.errors.QRProbeInputError` (a ``ValueError``) naming ``X``."""
    if sp.issparse(X):
        raise QRProbeInputError("X: sparse input is not supported; K-means needs a dense (N, D) array "
                                "(X.toarray())")
    if isinstance(X, torch.Tensor):
        return _check_tensor(estimator, X, reset=reset, min_samples=min_samples)
    try:
        return _validate_data(estimator, X, reset=reset, dtype=DTYPES, ensure_min_samples=min_samples)
    except ValueError as exc:
        raise QRProbeInputError(_named(str(exc))) from exc


def _check_tensor(estimator: Any, X: torch.Tensor, *, reset: bool, min_samples: int) -> torch.Tensor:
    if X.ndim != 2:
        raise QRProbeInputError(f"X: expected a 2-d (N, D) tensor, got shape {tuple(X.shape)}")
    if X.is_complex():
        raise QRProbeInputError("X: Complex data not supported; K-means needs real-valued features")
    n, d = X.shape
    if n < min_samples or d < 1:
        raise QRProbeInputError(f"X: found a tensor of shape {(n, d)}; at least {min_samples} row(s) and 1 column "
                                "are needed")
    if not X.is_floating_point():
        X = X.float()
    step = max(1, _BLOCK_BYTES // max(1, d * X.element_size()))
    for start in range(0, n, step):
        if not bool(torch.isfinite(X[start:start + step]).all()):
            raise QRProbeInputError("X: Input X contains NaN or infinity")
    if reset:
        estimator.n_features_in_ = d
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif hasattr(estimator, "n_features_in_") and d != estimator.n_features_in_:
        raise QRProbeInputError(f"X has {d} features, but {type(estimator).__name__} is expecting "
                                f"{estimator.n_features_in_} features as input.")
    return X


__all__ = ["check_features"]
