"""Confusion between clusters: which clusters a probe mixes up on the test split, and how that changes.

Pair confusion (decided): for clusters ``a`` and ``b`` with test confusion matrix ``C`` (rows: true cluster,
columns: predicted), ``(C[a, b] + C[b, a]) / (n_a + n_b)`` where ``n_a`` is the number of test images of
``a``: the share of the pair's test images that the probe assigns to the other cluster of the pair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import QRProbeInputError


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_clusters: int) -> np.ndarray:
    """Counts ``C[t, p]`` of images of true cluster ``t`` predicted as ``p``, shape (K, K), int64."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise QRProbeInputError(f"true and predicted clusters differ in shape: {y_true.shape} vs {y_pred.shape}")
    if len(y_true) and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n_clusters):
        raise QRProbeInputError(f"cluster ids must lie in 0 … {n_clusters - 1}")
    flat = np.bincount(y_true * n_clusters + y_pred, minlength=n_clusters * n_clusters)
    return flat.reshape(n_clusters, n_clusters)


def pair_confusion(cm: np.ndarray) -> np.ndarray:
    """Symmetric pair confusion, shape (K, K), float64, zero diagonal (see the module docstring)."""
    cm = np.asarray(cm, dtype=np.float64)
    sizes = cm.sum(axis=1)
    mutual = cm + cm.T
    denom = sizes[:, None] + sizes[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(denom > 0, mutual / denom, 0.0)
    np.fill_diagonal(out, 0.0)
    return out


def most_confused_pairs(cm: np.ndarray, top: int = 10) -> pd.DataFrame:
    """The ``top`` cluster pairs with the highest pair confusion.

    Returns a DataFrame with columns ``cluster_a``, ``cluster_b`` (``a < b``), ``confusion`` (0-1),
    ``n_a``, ``n_b`` (test images), sorted by decreasing confusion.
    """
    conf = pair_confusion(cm)
    sizes = np.asarray(cm).sum(axis=1)
    a, b = np.triu_indices(len(conf), k=1)
    values = conf[a, b]
    order = np.lexsort((b, a, -values))[:top]
    order = order[values[order] > 0]
    return pd.DataFrame({"cluster_a": a[order], "cluster_b": b[order], "confusion": values[order],
                         "n_a": sizes[a[order]], "n_b": sizes[b[order]]})


def confusion_drops(y_true: np.ndarray, pred_base: np.ndarray, pred_added: np.ndarray, n_clusters: int,
                    top: int = 10) -> pd.DataFrame:
    """Cluster pairs whose pair confusion drops most from the base probe to the probe with more concepts.

    Parameters
    ----------
    y_true : (n,) true cluster of each test image.
    pred_base, pred_added : (n,) predictions of the base probe and of the probe with the added group.
    n_clusters : K.
    top : number of pairs returned.

    Returns
    -------
    DataFrame with ``cluster_a``, ``cluster_b``, ``confusion_base``, ``confusion_added``, ``drop``
    (``confusion_base − confusion_added``, 0-1), ``n_a``, ``n_b``; only pairs with a positive drop, largest
    first.
    """
    cm_base = confusion_matrix(y_true, pred_base, n_clusters)
    cm_added = confusion_matrix(y_true, pred_added, n_clusters)
    base, added = pair_confusion(cm_base), pair_confusion(cm_added)
    sizes = cm_base.sum(axis=1)
    a, b = np.triu_indices(n_clusters, k=1)
    drop = base[a, b] - added[a, b]
    order = np.lexsort((b, a, -drop))
    order = order[drop[order] > 0][:top]
    return pd.DataFrame({"cluster_a": a[order], "cluster_b": b[order], "confusion_base": base[a, b][order],
                         "confusion_added": added[a, b][order], "drop": drop[order],
                         "n_a": sizes[a[order]], "n_b": sizes[b[order]]})


__all__ = ["confusion_drops", "confusion_matrix", "most_confused_pairs", "pair_confusion"]
