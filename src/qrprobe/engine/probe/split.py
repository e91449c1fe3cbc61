"""Stratified train / validation / test split of one clustering.

Per cluster, its images are shuffled with the clustering's seed and ``round(n · test_fraction)`` go to test;
of the rest, ``round(n_rest · val_fraction)`` go to validation and the remainder to train. The paper: 20% test,
then 20% of train for validation. A cluster too small for a share (e.g. 1 or 2 images at 20%) puts all its
images in train; such clusters are listed in ``Split.small_clusters``, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import QRProbeInputError


@dataclass(frozen=True)
class Split:
    """Index arrays (sorted, int64) into the N images, and the clusters too small to be stratified.

    ``small_clusters`` lists the clusters with no test or no validation image.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    small_clusters: tuple[int, ...]

    def as_codes(self, n: int) -> np.ndarray:
        """Codes per image, shape (n,), int8: 0 train, 1 validation, 2 test."""
        codes = np.zeros(n, dtype=np.int8)
        codes[self.val] = 1
        codes[self.test] = 2
        return codes


def _take_share(groups: list[np.ndarray], fraction: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    taken, rest = [], []
    for members in groups:
        m = int(np.floor(len(members) * fraction + 0.5))  # round half up, deterministic
        taken.append(members[:m])
        rest.append(members[m:])
    return taken, rest


def stratified_split(labels: np.ndarray, seed: int, test_fraction: float = 0.2,
                     val_fraction: float = 0.2) -> Split:
    """Split image indices per cluster into train, validation and test (see the module docstring).

    Parameters
    ----------
    labels : (N,) int cluster ids.
    seed : seed of the shuffle within each cluster.
    test_fraction : share of each cluster in test, in (0, 1).
    val_fraction : share of each cluster's non-test images in validation, in [0, 1).
    """
    if not 0.0 < test_fraction < 1.0:
        raise QRProbeInputError(f"--test-fraction must be in (0, 1), got {test_fraction}")
    if not 0.0 <= val_fraction < 1.0:
        raise QRProbeInputError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]  # grouped by cluster, shuffled within
    clusters, starts = np.unique(labels[order], return_index=True)
    groups = np.split(order, starts[1:])
    test, rest = _take_share(groups, test_fraction)
    val, train = _take_share(rest, val_fraction)
    small = tuple(int(c) for c, t, v in zip(clusters, test, val, strict=True)
                  if len(t) == 0 or (val_fraction > 0 and len(v) == 0))
    cat = lambda parts: np.sort(np.concatenate(parts)).astype(np.int64)  # noqa: E731
    split = Split(cat(train), cat(val), cat(test), small)
    if len(split.test) == 0 or len(split.train) == 0:
        raise QRProbeInputError(
            f"the split has {len(split.train)} train and {len(split.test)} test images; "
            "clusters are too small for the requested fractions (use a smaller K or more images)")
    return split
