"""Bootstrap replicates of the test metrics, with resampling weights shared by every result on the same images.

Replicate ``b`` gives image ``i`` the weight ``w = F⁻¹(u)``, where ``F`` is the Poisson(1) distribution
function and ``u`` a uniform number derived from ``(key(image_id), b)`` by a fixed hash (BLAKE2b of the id,
then the SplitMix64 sequence seeded with it). A Poisson(1) weight is the number of times an image is drawn
in a bootstrap sample of random size (the "Poisson bootstrap"); because it depends only on the image and the
replicate, every result computed on the same images uses the same resampling in replicate ``b``, whatever its
clusterings, splits or concepts. The difference of two results' replicate values is therefore a paired
bootstrap replicate of their difference, computable after the fact from two saved results
(:mod:`qrprobe.engine.stats.uncertainty`).

Each metric is recomputed under integer weights exactly as on the expanded sample (each image repeated ``w``
times), with two shortcuts, both documented in ``docs/statistics.md``:

- AMI uses the expected mutual information of the unweighted table (its correction term) in every replicate:
  computing it again costs O(K²·n) per replicate;
- mAP is linearised: ``mAP(w) ≈ mAP + Σ_i (w_i − 1)·influence_i`` with the exact influence function of each
  class's AP (:func:`qrprobe.metrics.average_precision_influence`). The exact weighted mAP needs a cumulative
  sum over every class's full ranking per replicate, O(K·n·B); the linearisation costs O(n·B).
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp

from ...metrics import TestDetails
from .corrected import CORRECTED_METRICS, ChanceReference, top1_chance

SCHEME = "poisson1-blake2b-splitmix64/1"
REPLICATE_METRICS = ("nmi", "nmi_geometric", "nmi_max", "ami", "top1", "map", "mi_bits", "cluster_entropy_bits",
                     "cross_entropy_bits", "mi_ratio", *CORRECTED_METRICS)
_LN2 = float(np.log(2.0))
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
# Poisson(1) distribution function at 0 … 11 on the 53-bit integer scale of u (P(w > 12) < 1e-10)
_POISSON_CDF = np.cumsum([np.exp(-1.0) / np.prod(np.arange(1, k + 1, dtype=float)) for k in range(12)])
_THRESHOLDS = np.floor(_POISSON_CDF * 2.0**53).astype(np.uint64)


def image_keys(image_ids: np.ndarray | None, n: int) -> np.ndarray:
    """64-bit keys of the images, shape (n,) uint64: BLAKE2b of each id (of the row number when there are none)."""
    ids = [str(i) for i in image_ids] if image_ids is not None else [f"#row{i}" for i in range(n)]
    return np.fromiter((int.from_bytes(hashlib.blake2b(i.encode("utf-8"), digest_size=8).digest(), "little")
                        for i in ids), dtype=np.uint64, count=len(ids))


def images_fingerprint(keys: np.ndarray) -> str:
    """A hash of the set of image keys (order-free): two results pair only when these agree."""
    return hashlib.sha256(np.sort(np.asarray(keys, dtype=np.uint64)).tobytes()).hexdigest()[:16]


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z ^ (z >> np.uint64(30))
    z = z * _M1
    z = z ^ (z >> np.uint64(27))
    z = z * _M2
    return z ^ (z >> np.uint64(31))


def poisson_weights(keys: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Weights of replicates ``start … stop-1`` for the images with ``keys``, shape (n, stop-start), uint8."""
    keys = np.asarray(keys, dtype=np.uint64)
    reps = np.arange(start + 1, stop + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        u = _splitmix64(keys[:, None] + reps[None, :] * _GOLDEN) >> np.uint64(11)
    return np.searchsorted(_THRESHOLDS, u, side="right").astype(np.uint8)


def _entropy_nats(counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Entropy of each column of ``counts`` (k, b) with column sums ``totals`` (b,), in nats; NaN for a column
    of total 0 (a replicate that drew no image)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts / totals
        terms = np.where(counts > 0, p * np.log(np.where(counts > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=0)


def _indicator(codes: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """One-hot (u, n) CSR of ``codes`` over their distinct values, and the index of each distinct value."""
    values, inverse = np.unique(codes, return_inverse=True)
    n = len(codes)
    matrix = sp.csr_matrix((np.ones(n), (inverse, np.arange(n))), shape=(len(values), n))
    return matrix, values


class _Tables:
    """The (true, predicted) contingency structure of one split, ready to be weighted."""

    def __init__(self, d: TestDetails) -> None:
        k = int(max(d.y_true.max(), d.y_pred.max())) + 1
        self.cells, cell_values = _indicator(d.y_true * k + d.y_pred)
        self.rows, row_values = _indicator(d.y_true)
        self.cols, col_values = _indicator(d.y_pred)
        self.cell_row = np.searchsorted(row_values, cell_values // k)
        self.cell_col = np.searchsorted(col_values, cell_values % k)


def _nmi_family(t: _Tables, w: np.ndarray, expected_mi: float) -> dict[str, np.ndarray]:
    """NMI (three normalisations), AMI (fixed correction) and the true-cluster entropy under weights (n, b)."""
    total = w.sum(axis=0)
    cell = t.cells @ w
    rows = t.rows @ w
    cols = t.cols @ w
    h_true = _entropy_nats(rows, total)
    h_pred = _entropy_nats(cols, total)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = cell * total / (rows[t.cell_row] * cols[t.cell_col])
        mi = np.where(cell > 0, cell / total * np.log(np.where(cell > 0, ratio, 1.0)), 0.0).sum(axis=0)
    mi = np.maximum(mi, 0.0)
    both_constant = (h_true == 0) & (h_pred == 0)
    out = {}
    normalizers = {"nmi": (h_true + h_pred) / 2.0, "nmi_geometric": np.sqrt(h_true * h_pred),
                   "nmi_max": np.maximum(h_true, h_pred)}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, norm in normalizers.items():
            value = np.where(mi > 0, mi / np.where(norm > 0, norm, 1.0), 0.0)
            out[name] = 100.0 * np.where(both_constant, 1.0, value)
        denom = normalizers["nmi"] - expected_mi
        denom = np.where(denom < 0, np.minimum(denom, -np.finfo(float).eps), np.maximum(denom, np.finfo(float).eps))
        out["ami"] = 100.0 * np.where(both_constant, 1.0, (mi - expected_mi) / denom)
        mean_h = normalizers["nmi"]
        chance = np.where(mean_h > 0, expected_mi / np.where(mean_h > 0, mean_h, 1.0), 0.0)
        out["nmi_corrected"] = out["nmi"] - 100.0 * np.where(both_constant, 0.0, chance)
    out["cluster_entropy_bits"] = h_true / _LN2
    return out


def replicate_scores(details: TestDetails, weights: np.ndarray, map_value: float,
                     reference: ChanceReference | None = None) -> np.ndarray:
    """Every metric of :data:`REPLICATE_METRICS` under each column of ``weights`` (n, b): shape (metrics, b).

    ``map_value`` is the split's mAP (×100), the point the linearised mAP replicates vary around. With all
    weights 1 the values equal :func:`qrprobe.metrics.score_predictions` and, for the chance-corrected metrics,
    :func:`qrprobe.engine.stats.corrected.corrected_scores` (up to rounding). ``reference``: the clustering's
    training clusters and whether the probe kept the prior, which mAP and MI are corrected by (None: those two
    corrected rows are NaN).
    """
    w = np.asarray(weights, dtype=np.float64)
    t = _Tables(details)
    out = _nmi_family(t, w, details.expected_mi_nats)
    total = w.sum(axis=0)
    correct = (details.y_true == details.y_pred).astype(np.float64)
    # a replicate that drew no test image (total 0, likely on a tiny split) is NaN in every metric, quietly: the
    # intervals leave such replicates out (uncertainty._finite_replicates)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["top1"] = 100.0 * (correct @ w) / total
        out["cross_entropy_bits"] = (details.ce_bits @ w) / total
        out["mi_bits"] = out["cluster_entropy_bits"] - out["cross_entropy_bits"]
        out["mi_ratio"] = np.where(out["cluster_entropy_bits"] > 0,
                                   100.0 * out["mi_bits"] / out["cluster_entropy_bits"], np.nan)
    out["map"] = map_value + 100.0 * (details.map_influence @ (w - 1.0))
    out["top1_corrected"] = out["top1"] - top1_chance(details, w)
    if reference is None:
        out["map_corrected"] = out["mi_corrected_bits"] = np.full(w.shape[1], np.nan)
    else:
        out["map_corrected"] = out["map"] - reference.map_chance(details)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["mi_corrected_bits"] = (reference.ce_saving_bits(details) @ w) / total
    return np.stack([out[m] for m in REPLICATE_METRICS])


def split_replicates(details: TestDetails, keys: np.ndarray, n_replicates: int, map_value: float,
                     block: int = 32, reference: ChanceReference | None = None) -> np.ndarray:
    """Replicates ``0 … n_replicates-1`` of one scored split: shape (metrics, n_replicates), float64.

    ``keys`` are the image keys of the split's rows (:func:`image_keys`), ``map_value`` its mAP (×100), the
    point the linearised mAP replicates vary around. Weights are generated ``block`` replicates at a time;
    ``reference``: as for :func:`replicate_scores`.
    """
    out = np.empty((len(REPLICATE_METRICS), n_replicates), dtype=np.float64)
    for start in range(0, n_replicates, block):
        stop = min(start + block, n_replicates)
        out[:, start:stop] = replicate_scores(details, poisson_weights(keys, start, stop), map_value, reference)
    return out


__all__ = ["REPLICATE_METRICS", "SCHEME", "image_keys", "images_fingerprint", "poisson_weights",
           "replicate_scores", "split_replicates"]
