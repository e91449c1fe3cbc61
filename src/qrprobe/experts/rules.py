"""The paper's rules for turning an expert's raw output into binary concepts (App. A).

- single-label classifier: the top-1 class (one-hot);
- multi-label classifier: every class whose score passes a threshold (or the top-k classes);
- detector: every class with a detection scored above a threshold (0.5 in the paper);
- segmenter: every class present in the label map (optionally covering a minimum area fraction);
- zero-shot (CLIP): the best prompt if its score reaches a threshold, else a background concept.

All functions are pure numpy; thresholds are parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import QRProbeInputError


def _as_2d(scores: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(scores)
    if arr.ndim != 2:
        raise ValueError(f"{what}: expected a (B, M) array, got shape {arr.shape}")
    return arr


def top1_onehot(scores: np.ndarray) -> np.ndarray:
    """Single-label rule: one-hot of each row's highest score.

    Parameters
    ----------
    scores : (B, M) float, class scores (logits or probabilities)

    Returns
    -------
    (B, M) bool with exactly one True per row (ties go to the lowest index).
    """
    scores = _as_2d(scores, "top1_onehot")
    out = np.zeros(scores.shape, dtype=bool)
    if scores.shape[1]:
        out[np.arange(scores.shape[0]), np.argmax(scores, axis=1)] = True
    return out


def threshold_multilabel(scores: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """Multi-label rule: ``scores >= threshold`` (a scalar or one threshold per class, shape (M,))."""
    scores = _as_2d(scores, "threshold_multilabel")
    return scores >= np.asarray(threshold, dtype=np.float64)


def topk_multilabel(scores: np.ndarray, k: int) -> np.ndarray:
    """Multi-label rule: the ``k`` highest-scoring classes of each row (ties by lowest index)."""
    scores = _as_2d(scores, "topk_multilabel")
    k = int(k)
    if k < 1:
        raise QRProbeInputError(f"top_k must be at least 1, got {k}")
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    out = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(out, order, True, axis=1)
    return out


def detections_to_presence(classes: Sequence[np.ndarray], scores: Sequence[np.ndarray], n_classes: int,
                           threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Detection rule: a class is present when one of its detections scores above ``threshold``.

    Parameters
    ----------
    classes : per image, int array (D_i,) of class indices in ``[0, n_classes)``
    scores : per image, float array (D_i,) of detection confidences
    n_classes : M
    threshold : strict lower bound on the confidence (the paper keeps detections with score > 0.5)

    Returns
    -------
    binary : (B, M) bool
    best : (B, M) float32, each class's highest detection score in the image (0 when never detected)
    """
    if len(classes) != len(scores):
        raise ValueError("classes and scores must list the same number of images")
    best = np.zeros((len(classes), n_classes), dtype=np.float32)
    for i, (c, s) in enumerate(zip(classes, scores, strict=True)):
        c = np.asarray(c, dtype=np.int64).ravel()
        s = np.asarray(s, dtype=np.float32).ravel()
        if c.shape != s.shape:
            raise ValueError(f"image {i}: {c.size} classes but {s.size} scores")
        keep = (c >= 0) & (c < n_classes)
        np.maximum.at(best[i], c[keep], s[keep])
    return best > threshold, best


def segmentation_to_presence(label_maps: Sequence[np.ndarray], n_classes: int, min_fraction: float = 0.0,
                             ignore: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Segmentation rule: a class is present when it covers more than ``min_fraction`` of the pixels.

    Parameters
    ----------
    label_maps : per image, int array (H_i, W_i) of class indices (values outside ``[0, n_classes)`` and
        those in ``ignore`` count as no class)
    n_classes : M
    min_fraction : a class must cover strictly more than this fraction of the image (0 = any pixel)

    Returns
    -------
    binary : (B, M) bool
    fractions : (B, M) float32, the fraction of pixels of each class
    """
    fractions = np.zeros((len(label_maps), n_classes), dtype=np.float32)
    for i, lm in enumerate(label_maps):
        lm = np.asarray(lm).ravel().astype(np.int64)
        if lm.size == 0:
            continue
        valid = lm[(lm >= 0) & (lm < n_classes)]
        fractions[i] = np.bincount(valid, minlength=n_classes)[:n_classes] / lm.size
    if len(ignore):
        fractions[:, list(ignore)] = 0.0
    return fractions > min_fraction, fractions


def area_fractions_to_presence(fractions: np.ndarray, min_fraction: float) -> np.ndarray:
    """Quantization rule (colours): a concept is present when its area fraction is at least ``min_fraction``."""
    return _as_2d(fractions, "area_fractions_to_presence") >= min_fraction


def zero_shot_with_background(scores: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Zero-shot rule: the best prompt when its score reaches ``threshold``, else the background concept.

    Parameters
    ----------
    scores : (B, P) similarities or probabilities of P prompts

    Returns
    -------
    (B, P + 1) bool, one True per row; the last column is the background concept.
    """
    scores = _as_2d(scores, "zero_shot_with_background")
    b, p = scores.shape
    out = np.zeros((b, p + 1), dtype=bool)
    if p == 0:
        out[:, -1] = True
        return out
    best = np.argmax(scores, axis=1)
    hit = scores[np.arange(b), best] >= threshold
    out[np.arange(b)[hit], best[hit]] = True
    out[~hit, p] = True
    return out


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64, returned as float32."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)
