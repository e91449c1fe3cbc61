"""Concept screening: fit the probe on the top-ranked concepts only, the number kept chosen on validation.

Why (issue 19 item 3): with few training images per cluster, every concept adds K weights whose estimation
noise raises the probe's test cross-entropy, so adding concepts that carry nothing (or little beyond the rest)
*lowered* the MI estimate (−2.25 bits for 200 junk concepts at N = 1,000, K = 50 under the paper's SGD).
Screening makes the estimate (nearly) monotone in the concept set:

1. rank the concepts on the TRAINING rows only by their plug-in mutual information with the cluster ids
   (:func:`concept_scores`; a binary concept's plug-in bias, (K − 1) / (2 n ln 2) bits, is the same for every
   concept, so it does not change the ranking and is not subtracted);
2. fit the probe (the same solver and schedule) on the top-m concepts for m on a geometric grid
   (:func:`screen_sizes`), from m = M (all concepts, the unscreened fit) downwards, and keep the m whose probe
   has the lowest validation cross-entropy (the class prior is a candidate inside every fit). The path stops
   once two sizes in a row do not improve on the best, or at once when the first smaller size does not beat
   all M, so when all concepts are best it costs two fits;
3. when a subset won, bisect between it and the next smaller size tried (:func:`refine_size`): the grid's
   steps would otherwise keep up to a third more concepts than the informative ones (e.g. 12 for 10), each
   costing a little.

The kept subset's columns keep their order, so keeping all M concepts is exactly the unscreened fit, and the
dropped concepts get zero weights.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# the sizes tried: 1, 2, 3, 4, 6, 8, 12, 16, 24, … (2^i and 3·2^(i−1)), below M, and M itself
# the path stops after this many sizes in a row that do not improve on the best validation loss, and at once when
# the first smaller size does not beat all M concepts (1 everywhere gave the same MI on benchmarks/
# mi_added_concepts.py but stopped an L-BFGS path early: 44 of 212 concepts kept instead of the 12 informative)
STOP_AFTER = 2
# auto: screen where M · K / (2 n_train) nats, the rough excess cross-entropy of M × K fitted weights, is above
# this (at N = 20,000, K = 50, 212 concepts, n_train = 12,800, that is 0.41 nats, and 200 junk concepts cost the
# unscreened probe 0.39 bits; with 12 concepts 0.02 nats: no screening, one fit)
AUTO_EXCESS_NATS = 0.05


def concept_scores(concepts: sp.csr_matrix, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Plug-in mutual information (bits) between each binary concept and the cluster ids, shape (M,) float64.

    ``concepts``: (n, M) CSR, stored entries count as ones; ``labels``: (n,) ints in ``0 … n_classes − 1``.
    Costs O(nnz + M · K): the (M, K) table of co-occurrence counts, built by one sparse product.
    """
    concepts = sp.csr_matrix(concepts)
    n, m = concepts.shape
    if n == 0:
        return np.zeros(m)
    ones = sp.csr_matrix((np.ones(concepts.nnz), concepts.indices, concepts.indptr), shape=concepts.shape)
    onehot = sp.csr_matrix((np.ones(n), (np.arange(n), labels)), shape=(n, n_classes))
    with_concept = np.asarray((ones.T @ onehot).todense(), dtype=np.float64)  # (M, K): rows with c = 1, per cluster
    per_cluster = np.bincount(labels, minlength=n_classes).astype(np.float64)  # (K,)
    without = per_cluster[None, :] - with_concept  # (M, K): rows with c = 0
    p_cluster = per_cluster / n

    def part(joint: np.ndarray) -> np.ndarray:  # Σ_k p(c, k) log2 p(c, k) / (p(c) p(k)) for one value of c
        p_joint = joint / n
        p_value = p_joint.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = p_joint * np.log2(p_joint / (p_value * p_cluster[None, :]))
        return np.nansum(np.where(p_joint > 0, terms, 0.0), axis=1)

    return np.maximum(part(with_concept) + part(without), 0.0)


def concept_ranking(concepts: sp.csr_matrix, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Column indices (M,) int64, the most informative concept (:func:`concept_scores`) first; ties keep the
    column order."""
    return np.argsort(-concept_scores(concepts, labels, n_classes), kind="stable").astype(np.int64)


def screen_sizes(m: int) -> list[int]:
    """The subset sizes tried, largest first: M, then 2^i and 3 · 2^(i−1) below M, down to 1."""
    grid = {1}
    power = 1
    while power < m:
        grid.update({power, 3 * power // 2 if power > 1 else 1})
        power *= 2
    return [m, *sorted((s for s in grid if s < m), reverse=True)]


def refine_size(lo: int, hi: int) -> int | None:
    """The next size of the bisection between ``lo`` (tried, worse) and ``hi`` (the best so far), or None when
    the gap is at most max(1, hi / 16) (exact below 32 concepts; a few fits at most above)."""
    return (lo + hi) // 2 if hi - lo > max(1, hi // 16) else None


def should_screen(mode: str, n_train: int, n_concepts: int, n_classes: int, has_val: bool) -> bool:
    """Whether the probe screens its concepts: ``mode`` ``"on"``, or ``"auto"`` where the excess cross-entropy
    that fitting M × K weights on n training rows costs, roughly M · K / (2 n) nats, exceeds
    :data:`AUTO_EXCESS_NATS` (n < 10 · M · K); never without a validation split or with a single concept."""
    if not has_val or n_concepts <= 1 or mode == "off":
        return False
    return mode == "on" or n_concepts * n_classes / (2 * n_train) > AUTO_EXCESS_NATS


__all__ = ["AUTO_EXCESS_NATS", "STOP_AFTER", "concept_ranking", "concept_scores", "refine_size", "screen_sizes",
           "should_screen"]
