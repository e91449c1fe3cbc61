"""Forward linear probes vs. the clusters (paper Fig. 2): an XOR concept defeats a linear probe."""

from __future__ import annotations

import numpy as np
import pytest

from qrprobe.analysis.forward_probe import forward_probe, forward_probe_labels
from qrprobe.concepts.bank import ConceptBank


def _xor_data(n: int = 1200, seed: int = 0):
    """Four blobs at the corners of a square; 'shape' is linearly separable, 'colour' is the XOR."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    x = np.stack([a, b], 1) * 4.0 - 2.0 + rng.normal(scale=0.3, size=(n, 2))
    shape, colour = a, a ^ b
    bank = ConceptBank.from_matrix(np.stack([shape, colour], 1), ["square", "red"])
    return x.astype(np.float32), bank, a * 2 + b


def test_xor_concept_is_found_by_clusters_not_by_a_linear_probe() -> None:
    x, bank, blobs = _xor_data()
    fp = forward_probe(x, bank, clusterings=blobs[None, :])
    table = fp.table.set_index("concept")
    assert table.loc["square", "linear_bacc"] > 95
    assert table.loc["red", "linear_bacc"] < 65  # chance is 50
    assert table.loc["red", "cluster_bacc"] > 95
    assert table.index[0] == "red"  # largest gap first
    assert fp.summary()["gap_bacc"] > 15


def test_linear_only_and_labels() -> None:
    x, bank, blobs = _xor_data(600)
    fp = forward_probe(x, bank, min_positives=1000)
    assert fp.table.empty
    assert fp.skipped == ["square", "red"]
    scores = forward_probe_labels(x, blobs)
    assert scores["top1"] == pytest.approx(100.0)
