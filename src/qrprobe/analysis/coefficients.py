"""Reading a reverse probe's coefficients: what separates two clusters, what characterises one.

Coefficients are compared as they are: a softmax probe's logits are unchanged when a concept's row of
coefficients is shifted by a constant, so only differences between clusters (and coefficients centred over
clusters, for per-cluster summaries) carry meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import QRProbeInputError

MIN_SUPPORT = 5  # default: concepts carried by fewer images are left out of explanations


def concept_support(concepts: pd.DataFrame, matrix=None) -> np.ndarray | None:
    """Images carrying each concept, shape (M,) int64: the column sums of ``matrix`` (N, M) when given, else
    the concept table's ``n_images`` column (written by ``evaluate``), else None (unknown)."""
    if matrix is not None:
        return np.asarray(matrix.sum(axis=0)).ravel().astype(np.int64)
    if "n_images" in concepts.columns:
        return concepts["n_images"].to_numpy(dtype=np.int64)
    return None


def coefficient_differences(coef: np.ndarray, cluster_a: int, cluster_b: int, concepts: pd.DataFrame,
                            top: int = 15, groups: Sequence[str] | None = None,
                            min_relative: float = 0.02, support: np.ndarray | None = None,
                            min_support: int = 0) -> pd.DataFrame:
    """Concepts whose probe coefficients differ most between two clusters.

    Parameters
    ----------
    coef : (M, K) probe coefficients (concept → cluster logit).
    cluster_a, cluster_b : the two clusters.
    concepts : concept table with ``name`` and ``group`` columns, M rows.
    top : number of concepts returned (largest ``|difference|`` first).
    groups : only concepts of these groups (None: all).
    min_relative : leave out concepts whose ``|difference|`` is below this share of the largest one.
    support : (M,) images carrying each concept (:func:`concept_support`), or None when unknown.
    min_support : leave out concepts carried by fewer images (their coefficients rest on too few images to
        mean much); needs ``support``.

    Returns
    -------
    DataFrame with ``concept``, ``group``, ``difference`` (``coef[:, a] − coef[:, b]``, logit units),
    ``favours`` (the cluster id the concept pushes towards) and ``support`` (images carrying the concept; -1
    when unknown).
    """
    coef = np.asarray(coef)
    if coef.ndim != 2 or coef.shape[0] != len(concepts):
        raise QRProbeInputError(f"coefficients of shape {coef.shape} do not match {len(concepts)} concepts")
    diff = coef[:, cluster_a].astype(np.float64) - coef[:, cluster_b].astype(np.float64)
    keep = np.ones(len(diff), bool)
    if groups is not None:
        keep = concepts["group"].isin(list(groups)).to_numpy()
    if support is not None and min_support > 0:
        keep = keep & (np.asarray(support) >= min_support)
    strongest = float(np.abs(diff[keep]).max()) if keep.any() else 0.0
    idx = np.flatnonzero(keep & (np.abs(diff) > min_relative * strongest) & (diff != 0))
    idx = idx[np.lexsort((idx, -np.abs(diff[idx])))][:top]
    return pd.DataFrame({"concept": concepts["name"].to_numpy()[idx], "group": concepts["group"].to_numpy()[idx],
                         "difference": diff[idx],
                         "favours": np.where(diff[idx] > 0, cluster_a, cluster_b).astype(np.int64),
                         "support": (np.asarray(support)[idx] if support is not None
                                     else np.full(len(idx), -1)).astype(np.int64)})


def top_concepts(coef: np.ndarray, cluster: int, concepts: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """Concepts with the largest coefficient for ``cluster`` after centring each concept over clusters.

    Returns a DataFrame with ``concept``, ``group`` and ``weight`` (centred coefficient, logit units).
    """
    coef = np.asarray(coef, dtype=np.float64)
    centred = coef[:, cluster] - coef.mean(axis=1)
    idx = np.flatnonzero(centred > 0)
    idx = idx[np.lexsort((idx, -centred[idx]))][:top]
    return pd.DataFrame({"concept": concepts["name"].to_numpy()[idx],
                         "group": concepts["group"].to_numpy()[idx], "weight": centred[idx]})


def example_rows(labels: np.ndarray, cluster: int, n: int, seed: int = 0,
                 candidates: np.ndarray | None = None) -> np.ndarray:
    """Up to ``n`` row indices of images in ``cluster`` (a seeded random sample, sorted)."""
    labels = np.asarray(labels)
    rows = np.flatnonzero(labels == cluster)
    if candidates is not None:
        rows = np.intersect1d(rows, candidates)
    if len(rows) > n:
        rows = np.sort(np.random.default_rng([seed, int(cluster)]).choice(rows, n, replace=False))
    return rows


@dataclass
class ClusterSummary:
    """One cluster: its size, its top concepts (centred coefficients), its most frequent concepts, examples."""

    cluster: int
    size: int
    top_concepts: pd.DataFrame
    frequent_concepts: pd.DataFrame
    rows: np.ndarray


def _frequent_concepts(matrix, rows: np.ndarray, concepts: pd.DataFrame, top: int) -> pd.DataFrame:
    if matrix is None or len(rows) == 0:
        return pd.DataFrame(columns=["concept", "frequency"])
    freq = np.asarray(matrix[rows].mean(axis=0)).ravel()
    idx = np.flatnonzero(freq > 0)
    idx = idx[np.lexsort((idx, -freq[idx]))][:top]
    return pd.DataFrame({"concept": concepts["name"].to_numpy()[idx], "frequency": freq[idx]})


def summarize_clusters(labels: np.ndarray, coef: np.ndarray, concepts: pd.DataFrame, *,
                       clusters: Sequence[int] | None = None, matrix=None, top: int = 8,
                       n_examples: int = 8, seed: int = 0) -> list[ClusterSummary]:
    """Per-cluster summaries: size, top concepts by centred coefficient, most frequent concepts, examples.

    Parameters
    ----------
    labels : (N,) cluster of every image.
    coef : (M, K) probe coefficients.
    concepts : concept table (M rows, ``name``, ``group``).
    clusters : which clusters (None: all, largest first).
    matrix : optional (N, M) concept matrix, for concept frequencies inside each cluster.
    """
    labels = np.asarray(labels)
    k = coef.shape[1]
    sizes = np.bincount(labels, minlength=k)
    if clusters is None:
        clusters = [int(c) for c in np.argsort(-sizes, kind="stable")]
    out = []
    for c in clusters:
        members = np.flatnonzero(labels == c)
        out.append(ClusterSummary(int(c), int(sizes[c]), top_concepts(coef, c, concepts, top),
                                  _frequent_concepts(matrix, members, concepts, top),
                                  example_rows(labels, c, n_examples, seed)))
    return out


__all__ = ["MIN_SUPPORT", "ClusterSummary", "coefficient_differences", "concept_support", "example_rows",
           "summarize_clusters", "top_concepts"]
