"""Scores of a reverse probe on held-out images.

All functions take integer cluster ids ``y_true`` of shape (n,) and either predicted ids (n,) or the probe's
log-probabilities (n, K). Percent metrics are returned ×100, as in the paper; information in bits.

Decided details (the paper is silent on them; see ``docs/protocol.md``):

- NMI uses the arithmetic mean of the two entropies (scikit-learn's default ``average_method``); AMI is
  scikit-learn's ``adjusted_mutual_info_score`` with the same normalisation.
- mAP is the unweighted mean, over the clusters present in ``y_true``, of the one-vs-rest average precision of
  the probe's softmax score for that cluster (average precision as scikit-learn defines it: the step-wise
  area under the precision-recall curve, ties in score counted together).
- The mutual-information estimate is ``H(cluster) − CE`` (paper Eq. 1), where ``H`` is the entropy of the
  empirical cluster distribution of the scored images and ``CE`` the probe's mean cross-entropy on them, both in
  bits. Since ``CE ≥ 0`` the estimate never exceeds ``H``; it can be negative for a probe worse than chance.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

_LN2 = float(np.log(2.0))


def _contingency(y_true: np.ndarray, y_pred: np.ndarray) -> sparse.csr_matrix:
    _, t = np.unique(y_true, return_inverse=True)
    _, p = np.unique(y_pred, return_inverse=True)
    ones = np.ones(len(t), dtype=np.int64)
    return sparse.csr_matrix((ones, (t, p)), shape=(t.max() + 1, p.max() + 1))


def _entropy_from_counts(counts: np.ndarray) -> float:
    """Entropy in nats of the distribution proportional to ``counts``."""
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts / total
    return float(-(p * np.log(p)).sum())


def entropy_bits(labels: np.ndarray) -> float:
    """Entropy of the empirical distribution of ``labels`` (shape (n,)), in bits."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return _entropy_from_counts(counts) / _LN2


def normalized_mutual_info(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """NMI with arithmetic normalisation, in [0, 1] (multiply by 100 for the paper's scale).

    Two constant labellings are identical partitions: NMI = 1, as in scikit-learn.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        raise ValueError("NMI of empty labellings")
    table = _contingency(y_true, y_pred)
    n = float(len(y_true))
    h_true = _entropy_from_counts(np.asarray(table.sum(axis=1)).ravel())
    h_pred = _entropy_from_counts(np.asarray(table.sum(axis=0)).ravel())
    if h_true == 0 and h_pred == 0:
        return 1.0
    coo = table.tocoo()
    nij = coo.data.astype(np.float64)
    a = np.asarray(table.sum(axis=1)).ravel()[coo.row].astype(np.float64)
    b = np.asarray(table.sum(axis=0)).ravel()[coo.col].astype(np.float64)
    mi = float(np.sum(nij / n * (np.log(nij) + np.log(n) - np.log(a) - np.log(b))))
    mi = max(mi, 0.0)
    return float(mi / ((h_true + h_pred) / 2.0))


def adjusted_mutual_info(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """AMI with arithmetic normalisation (scikit-learn's implementation), at most 1."""
    from sklearn.metrics import adjusted_mutual_info_score

    return float(adjusted_mutual_info_score(y_true, y_pred, average_method="arithmetic"))


def top1_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of exact matches, in [0, 1]."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred))


def average_precision(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of ``scores`` (n,) for the binary target ``is_positive`` (n,), in [0, 1].

    The step-wise area under the precision-recall curve, with tied scores forming one threshold (the
    definition of ``sklearn.metrics.average_precision_score``). Returns NaN when there is no positive.
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    n_pos = int(is_positive.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    s = np.asarray(scores)[order]
    hits = is_positive[order]
    tp = np.cumsum(hits, dtype=np.int64)
    # last position of every run of equal scores: one threshold per distinct score
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp_at = tp[ends]
    precision = tp_at / (ends + 1.0)
    recall_gain = np.diff(np.r_[0, tp_at]) / n_pos
    return float(np.sum(recall_gain * precision))


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray, block_columns: int = 64) -> float:
    """Macro mean over the classes present in ``y_true`` of one-vs-rest AP, in [0, 1].

    ``scores`` has shape (n, K); column ``c`` scores class ``c`` (classes are 0 … K-1). Columns are copied
    to contiguous memory ``block_columns`` at a time, so a large (n, K) array is read efficiently.
    """
    y_true = np.asarray(y_true)
    present = np.unique(y_true)
    aps = []
    for b in range(0, len(present), block_columns):
        cols = present[b:b + block_columns]
        block = np.ascontiguousarray(np.asarray(scores)[:, cols].T)
        aps.extend(average_precision(y_true == c, row) for c, row in zip(cols, block, strict=True))
    return float(np.mean(aps))


def cross_entropy_bits(y_true: np.ndarray, log_proba: np.ndarray) -> float:
    """Mean of ``-log2 q(y_true | x)`` from natural-log probabilities ``log_proba`` (n, K), in bits."""
    y_true = np.asarray(y_true)
    picked = np.asarray(log_proba)[np.arange(len(y_true)), y_true].astype(np.float64)
    return float(-picked.mean() / _LN2)


def score_predictions(y_true: np.ndarray, log_proba: np.ndarray) -> dict[str, float]:
    """All reverse-probing metrics of one probe on one held-out split.

    Parameters
    ----------
    y_true : (n,) int, true cluster ids in ``0 … K-1``.
    log_proba : (n, K) float, the probe's natural-log class probabilities (``log_softmax`` of its logits).

    Returns
    -------
    dict with ``nmi``, ``ami``, ``top1``, ``map`` (×100), ``mi_bits``, ``cluster_entropy_bits``,
    ``cross_entropy_bits`` (bits) and ``mi_ratio`` (``mi_bits / cluster_entropy_bits``, ×100).
    """
    y_true = np.asarray(y_true)
    log_proba = np.asarray(log_proba)
    y_pred = log_proba.argmax(axis=1)
    h = entropy_bits(y_true)
    ce = cross_entropy_bits(y_true, log_proba)
    mi = h - ce
    return {
        "nmi": 100.0 * normalized_mutual_info(y_true, y_pred),
        "ami": 100.0 * adjusted_mutual_info(y_true, y_pred),
        "top1": 100.0 * top1_accuracy(y_true, y_pred),
        # AP depends only on the order of scores: log-probabilities rank exactly as softmax probabilities do,
        # without the ties that float underflow of exp() would create.
        "map": 100.0 * mean_average_precision(y_true, log_proba),
        "mi_bits": mi,
        "cluster_entropy_bits": h,
        "cross_entropy_bits": ce,
        "mi_ratio": 100.0 * mi / h if h > 0 else float("nan"),
    }
