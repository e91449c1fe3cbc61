"""Scores of a reverse probe on held-out images.

All functions take integer cluster ids ``y_true`` of shape (n,) and either predicted ids (n,) or the probe's
log-probabilities (n, K). Percent metrics are returned ×100, as in the paper; information in bits.

Decided details (the paper is silent on them; see ``docs/protocol.md``):

- NMI uses the arithmetic mean of the two entropies (scikit-learn's default ``average_method``); AMI is
  scikit-learn's ``adjusted_mutual_info_score`` with the same normalisation. The geometric-mean and max
  normalisations are reported beside it (``nmi_geometric``, ``nmi_max``; ``docs/statistics.md``).
- mAP is the unweighted mean, over the clusters present in ``y_true``, of the one-vs-rest average precision of
  the probe's softmax score for that cluster (average precision as scikit-learn defines it: the step-wise
  area under the precision-recall curve, ties in score counted together).
- The mutual-information estimate is ``H(cluster) − CE`` (paper Eq. 1), where ``H`` is the entropy of the
  empirical cluster distribution of the scored images and ``CE`` the probe's mean cross-entropy on them, both in
  bits. Since ``CE ≥ 0`` the estimate never exceeds ``H``; it can be negative for a probe worse than chance.
"""

from __future__ import annotations

from dataclasses import dataclass

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


_AVERAGES = ("arithmetic", "geometric", "max")


def _normalizer(h_true: float, h_pred: float, average_method: str) -> float:
    if average_method == "arithmetic":
        return (h_true + h_pred) / 2.0
    if average_method == "geometric":
        return float(np.sqrt(h_true * h_pred))
    if average_method == "max":
        return max(h_true, h_pred)
    raise ValueError(f"average_method must be one of {_AVERAGES}, got {average_method!r}")


def normalized_mutual_info(y_true: np.ndarray, y_pred: np.ndarray, average_method: str = "arithmetic") -> float:
    """NMI in [0, 1] (multiply by 100 for the paper's scale): ``I(true; pred)`` divided by the arithmetic
    mean (default), the geometric mean or the max of the two entropies (scikit-learn's ``average_method``).

    Two constant labellings are identical partitions: NMI = 1, as in scikit-learn; no shared information
    gives 0 whatever the normalisation.
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
    if average_method != "arithmetic" and (mi == 0.0 or h_true == 0 or h_pred == 0):
        return 0.0  # a constant labelling shares no information (scikit-learn returns 0 too)
    return float(mi / _normalizer(h_true, h_pred, average_method))


def adjusted_mutual_info(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """AMI with arithmetic normalisation (scikit-learn's implementation), at most 1."""
    from sklearn.metrics import adjusted_mutual_info_score

    return float(adjusted_mutual_info_score(y_true, y_pred, average_method="arithmetic"))


def top1_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of exact matches, in [0, 1]."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred))


def _ranked_precision(is_positive: np.ndarray, scores: np.ndarray, n_pos: int):
    """The ranking of ``scores`` (decreasing, stable) and, per tie group (one threshold per distinct score),
    its last position, cumulative positives, precision and recall gain."""
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    s = np.asarray(scores)[order]
    hits = is_positive[order]
    tp = np.cumsum(hits, dtype=np.int64)
    # last position of every run of equal scores: one threshold per distinct score
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp_at = tp[ends]
    precision = tp_at / (ends + 1.0)
    recall_gain = np.diff(np.r_[0, tp_at]) / n_pos
    return order, hits, ends, tp_at, precision, recall_gain


def average_precision(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of ``scores`` (n,) for the binary target ``is_positive`` (n,), in [0, 1].

    The step-wise area under the precision-recall curve, with tied scores forming one threshold (the
    definition of ``sklearn.metrics.average_precision_score``). Returns NaN when there is no positive.
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    n_pos = int(is_positive.sum())
    if n_pos == 0:
        return float("nan")
    *_, precision, recall_gain = _ranked_precision(is_positive, scores, n_pos)
    return float(np.sum(recall_gain * precision))


def average_precision_influence(is_positive: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray]:
    """Average precision (as :func:`average_precision`) and its influence function, shape (n,).

    The influence of image ``j`` is the derivative of AP with respect to a weight on that image, at unit
    weights: AP of a reweighted sample is ``AP + Σ_j (w_j − 1) · influence_j`` to first order (the linearised
    bootstrap of mAP, ``docs/statistics.md``). With tie groups ``g`` in decreasing score order, ``p_g``
    positives, cumulative counts ``N_g`` and cumulative positives ``T_g``::

        influence_j = (1/P) · (positive_j · (T_g/N_g + Σ_{h≥g} p_h/N_h − AP) − Σ_{h≥g} p_h·T_h/N_h²)

    for ``j`` in group ``g``; the influences sum to 0 (AP does not change when every weight is scaled).
    Returns ``(nan, zeros)`` when there is no positive.
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    scores = np.asarray(scores)
    n_pos = int(is_positive.sum())
    influence = np.zeros(len(is_positive), dtype=np.float64)
    if n_pos == 0:
        return float("nan"), influence
    order, hits, ends, tp_at, precision, recall_gain = _ranked_precision(is_positive, scores, n_pos)
    ap = float(np.sum(recall_gain * precision))
    # per tie group: p_g / N_g and p_g · T_g / N_g², summed from the group to the end
    p_g = np.diff(np.r_[0, tp_at]).astype(np.float64)
    n_g = ends + 1.0
    s1 = np.cumsum((p_g / n_g)[::-1])[::-1]
    s2 = np.cumsum((p_g * tp_at / n_g**2)[::-1])[::-1]
    sizes = np.diff(np.r_[-1, ends])
    sorted_influence = hits * np.repeat((precision + s1 - ap) / n_pos, sizes) - np.repeat(s2 / n_pos, sizes)
    influence[order] = sorted_influence
    return ap, influence


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray, block_columns: int = 64) -> float:
    """Macro mean over the classes present in ``y_true`` of one-vs-rest AP, in [0, 1].

    ``scores`` has shape (n, K); column ``c`` scores class ``c`` (classes are 0 … K-1). Columns are copied
    to contiguous memory ``block_columns`` at a time, so a large (n, K) array is read efficiently.
    """
    return _map_and_influence(y_true, scores, block_columns, influence=False)[0]


def _map_and_influence(y_true: np.ndarray, scores: np.ndarray, block_columns: int = 64,
                       influence: bool = True) -> tuple[float, np.ndarray | None]:
    """mAP and (when ``influence``) its influence function (n,): the mean of the classes' AP influences."""
    y_true = np.asarray(y_true)
    present = np.unique(y_true)
    aps = []
    total = np.zeros(len(y_true), dtype=np.float64) if influence else None
    for b in range(0, len(present), block_columns):
        cols = present[b:b + block_columns]
        block = np.ascontiguousarray(np.asarray(scores)[:, cols].T)
        for c, row in zip(cols, block, strict=True):
            if total is not None:  # (influence asked for)
                ap, infl = average_precision_influence(y_true == c, row)
                total += infl
            else:
                ap = average_precision(y_true == c, row)
            aps.append(ap)
    if total is not None:
        total /= len(present)
    return float(np.mean(aps)), total


def cross_entropy_bits(y_true: np.ndarray, log_proba: np.ndarray) -> float:
    """Mean of ``-log2 q(y_true | x)`` from natural-log probabilities ``log_proba`` (n, K), in bits."""
    y_true = np.asarray(y_true)
    picked = np.asarray(log_proba)[np.arange(len(y_true)), y_true].astype(np.float64)
    return float(-picked.mean() / _LN2)


@dataclass
class TestDetails:
    """Per-image quantities of one scored split, from which every metric can be recomputed under weights.

    Attributes
    ----------
    y_true, y_pred : (n,) int64 true and predicted (argmax) cluster ids
    ce_bits : (n,) float64 ``-log2 q(y_true | concepts)`` of each image
    map_influence : (n,) float64 influence of each image on mAP (in [0, 1] units; see
        :func:`average_precision_influence`)
    expected_mi_nats : expected mutual information of the (true, predicted) contingency table under
        independence with its margins fixed (the AMI's correction term), in nats
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    ce_bits: np.ndarray
    map_influence: np.ndarray
    expected_mi_nats: float


def _expected_mi_nats(y_true: np.ndarray, y_pred: np.ndarray, ami: float) -> float:
    """The AMI's expected mutual information, recovered from ``ami = (MI − E) / (mean(H) − E)``."""
    table = _contingency(y_true, y_pred)
    n = float(len(y_true))
    rows = np.asarray(table.sum(axis=1)).ravel()
    cols = np.asarray(table.sum(axis=0)).ravel()
    coo = table.tocoo()
    nij = coo.data.astype(np.float64)
    mi = float(np.sum(nij / n * (np.log(nij) + np.log(n) - np.log(rows[coo.row]) - np.log(cols[coo.col]))))
    mean_h = (_entropy_from_counts(rows) + _entropy_from_counts(cols)) / 2.0
    if not np.isfinite(ami) or abs(1.0 - ami) < 1e-12:
        return 0.0
    return float((mi - ami * mean_h) / (1.0 - ami))


def score_details(y_true: np.ndarray, log_proba: np.ndarray) -> tuple[dict[str, float], TestDetails]:
    """:func:`score_predictions` and the per-image :class:`TestDetails` the bootstrap needs (one pass)."""
    y_true = np.asarray(y_true)
    log_proba = np.asarray(log_proba)
    y_pred = log_proba.argmax(axis=1)
    h = entropy_bits(y_true)
    per_image_ce = -np.asarray(log_proba[np.arange(len(y_true)), y_true], dtype=np.float64) / _LN2
    ce = cross_entropy_bits(y_true, log_proba)
    mi = h - ce
    ami = adjusted_mutual_info(y_true, y_pred)
    # AP depends only on the order of scores: log-probabilities rank exactly as softmax probabilities do,
    # without the ties that float underflow of exp() would create.
    map_, influence = _map_and_influence(y_true, log_proba)
    assert influence is not None  # asked for by default
    scores = {
        "nmi": 100.0 * normalized_mutual_info(y_true, y_pred),
        "ami": 100.0 * ami,
        "top1": 100.0 * top1_accuracy(y_true, y_pred),
        "map": 100.0 * map_,
        "mi_bits": mi,
        "cluster_entropy_bits": h,
        "cross_entropy_bits": ce,
        "mi_ratio": 100.0 * mi / h if h > 0 else float("nan"),
        "nmi_geometric": 100.0 * normalized_mutual_info(y_true, y_pred, "geometric"),
        "nmi_max": 100.0 * normalized_mutual_info(y_true, y_pred, "max"),
    }
    details = TestDetails(y_true.astype(np.int64), y_pred.astype(np.int64), per_image_ce, influence,
                          _expected_mi_nats(y_true, y_pred, ami))
    return scores, details


def score_predictions(y_true: np.ndarray, log_proba: np.ndarray) -> dict[str, float]:
    """All reverse-probing metrics of one probe on one held-out split.

    Parameters
    ----------
    y_true : (n,) int, true cluster ids in ``0 … K-1``.
    log_proba : (n, K) float, the probe's natural-log class probabilities (``log_softmax`` of its logits).

    Returns
    -------
    dict with ``nmi``, ``ami``, ``top1``, ``map`` (×100), ``mi_bits``, ``cluster_entropy_bits``,
    ``cross_entropy_bits`` (bits), ``mi_ratio`` (``mi_bits / cluster_entropy_bits``, ×100) and the NMI with
    geometric and max normalisation, ``nmi_geometric`` and ``nmi_max`` (×100).
    """
    return score_details(y_true, log_proba)[0]
