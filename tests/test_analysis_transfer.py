"""Transfer: a trained quantizer and probe applied to other images without retraining (paper Table 7)."""

from __future__ import annotations

import numpy as np
import pytest

from qrprobe.analysis.transfer import aligned_concepts, top_k_accuracy, transfer
from qrprobe.concepts.bank import ConceptBank
from qrprobe.errors import QRProbeInputError

METRICS = ("nmi", "ami", "top1", "map", "mi_bits")


def test_copy_reproduces_the_scores(evaluated) -> None:
    data, result = evaluated("full")
    for r in range(2):
        test_rows = np.flatnonzero(np.asarray(result.splits[r]) == 2)
        tr = transfer(result, data.features.copy(), data.bank, rows=test_rows)
        # the same images land in the same clusters and get the same predictions
        np.testing.assert_array_equal(tr.clusterings[r], result.clusterings[r])
        np.testing.assert_array_equal(tr.predictions[r], result.predictions[r])
        for m in METRICS:
            assert tr.per_clustering[r][m] == pytest.approx(result.per_clustering[r][m], abs=1e-4), m
    whole = transfer(result, data.features, data.bank)
    assert whole.summary["top1"]["mean"] >= result.summary["top1"]["mean"] - 1
    assert not whole.missing_concepts


def test_shuffled_concepts_drop_to_chance(evaluated) -> None:
    data, result = evaluated("full")
    perm = np.random.default_rng(0).permutation(data.bank.n_images)
    shuffled = ConceptBank(data.bank.matrix[perm], data.bank.concepts, data.bank.image_ids)
    tr = transfer(result, data.features, shuffled)
    k = result.config["k"]
    assert tr.summary["top1"]["mean"] < 100 / k + 3
    assert tr.summary["ami"]["mean"] < 1.0
    assert tr.summary["nmi"]["mean"] < 3.0
    assert tr.summary["mi_bits"]["mean"] < 0.05  # no information (the estimate may be negative)


def test_without_group_retrains_on_source(evaluated) -> None:
    data, result = evaluated("full")
    target = data.bank.drop_groups(["Scene"])  # the target images have no scene concepts
    zeroed = transfer(result, data.features, target)
    assert sorted(zeroed.missing_concepts) == ["scene:beach", "scene:forest", "scene:street"]
    assert zeroed.notes
    assert "fed as 0" in zeroed.notes[0]
    retrained = transfer(result, data.features, target, drop_groups=["Scene"], source_concepts=data.bank)
    assert retrained.dropped_groups == ["Scene"]
    assert not retrained.missing_concepts
    # a probe trained without scenes does better on scene-less images than one expecting them
    assert retrained.summary["mi_bits"]["mean"] > zeroed.summary["mi_bits"]["mean"]
    with pytest.raises(QRProbeInputError, match="--source-concepts"):
        transfer(result, data.features, target, drop_groups=["Scene"])
    with pytest.raises(QRProbeInputError, match="no group"):
        transfer(result, data.features, target, drop_groups=["Texture"], source_concepts=data.bank)


def test_bad_inputs(evaluated) -> None:
    data, result = evaluated("full")
    with pytest.raises(QRProbeInputError, match="dimensions"):
        transfer(result, data.features[:, :5], data.bank)
    result_without = type(result)(result.summary, result.per_clustering, result.config, result.seeds)
    with pytest.raises(QRProbeInputError, match="centroids"):
        transfer(result_without, data.features, data.bank)


def test_helpers() -> None:
    bank = ConceptBank.from_matrix(np.array([[1, 0], [0, 1]]), ["a", "b"])
    matrix, missing = aligned_concepts(bank, ["b", "zz", "a"])
    np.testing.assert_array_equal(matrix.toarray(), [[0, 0, 1], [1, 0, 0]])
    assert missing == ["zz"]
    log_proba = np.log(np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]))
    assert top_k_accuracy(np.array([1, 0]), log_proba, 2) == 50.0
    assert top_k_accuracy(np.array([2, 0]), log_proba, 3) == 100.0
