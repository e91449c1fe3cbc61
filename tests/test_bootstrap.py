"""Bootstrap replicates: shared hash weights, and metrics under weights against the expanded sample."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from qrprobe import metrics
from qrprobe.engine.stats import bootstrap as B
from qrprobe.engine.stats.corrected import ChanceReference, corrected_scores


def _probe_output(seed: int, n: int = 400, k: int = 12, signal: float = 1.5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += signal
    return y, logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def test_weights_are_poisson_one_and_depend_only_on_image_and_replicate():
    ids = np.array([f"img{i}" for i in range(3000)])
    keys = B.image_keys(ids, len(ids))
    w = B.poisson_weights(keys, 0, 100)
    assert w.shape == (3000, 100)
    assert w.dtype == np.uint8
    counts = np.bincount(w.ravel(), minlength=6)[:6] / w.size
    expected = np.exp(-1) / np.array([1, 1, 2, 6, 24, 120])
    np.testing.assert_allclose(counts, expected, atol=0.003)
    assert abs(np.corrcoef(w[:, 0], w[:, 1])[0, 1]) < 0.05
    # the same image gets the same weight in replicate b, whatever the order or company of the images
    order = np.random.default_rng(0).permutation(3000)[:500]
    np.testing.assert_array_equal(B.poisson_weights(keys[order], 40, 60), w[order, 40:60])
    np.testing.assert_array_equal(B.image_keys(ids[order], 500), keys[order])
    assert B.images_fingerprint(keys[::-1]) == B.images_fingerprint(keys)
    assert B.images_fingerprint(keys[:-1]) != B.images_fingerprint(keys)
    # images without ids are keyed by row number
    np.testing.assert_array_equal(B.image_keys(None, 3), B.image_keys(np.array(["#row0", "#row1", "#row2"]), 3))


@pytest.mark.parametrize("seed", range(3))
def test_unit_weights_reproduce_the_scores(seed):
    y, lp = _probe_output(seed)
    scores, details = metrics.score_details(y, lp)
    ref = ChanceReference.from_train(np.random.default_rng(seed + 10).integers(0, 12, 300), 12)
    scores = {**scores, **corrected_scores(details, scores, ref)}
    reps = B.replicate_scores(details, np.ones((len(y), 1)), scores["map"], ref)[:, 0]
    for m, value in zip(B.REPLICATE_METRICS, reps, strict=True):
        assert value == pytest.approx(scores[m], abs=1e-9), m


def test_integer_weights_equal_the_expanded_sample():
    """Replicate b is the sample with each image repeated w times: NMI (all normalisations), top-1 and the MI
    estimate exactly; AMI with the unweighted correction term and the linearised mAP approximately."""
    y, lp = _probe_output(7, n=500, k=15)
    scores, details = metrics.score_details(y, lp)
    keys = B.image_keys(np.array([f"i{i}" for i in range(500)]), 500)
    w = B.poisson_weights(keys, 0, 120)
    train = np.random.default_rng(8).integers(0, 15, 700)
    ref = ChanceReference.from_train(train, 15)
    reps = B.replicate_scores(details, w, scores["map"], ref)
    row = {m: reps[i] for i, m in enumerate(B.REPLICATE_METRICS)}
    counts = np.bincount(train, minlength=15) + 0.5
    log2_prior = np.log2(counts / counts.sum())
    exact = {m: [] for m in ("ami", "map")}
    for b in range(w.shape[1]):
        idx = np.repeat(np.arange(500), w[:, b])
        yy, pp = y[idx], details.y_pred[idx]
        for m, method in (("nmi", "arithmetic"), ("nmi_geometric", "geometric"), ("nmi_max", "max")):
            assert row[m][b] == pytest.approx(100 * skm.normalized_mutual_info_score(yy, pp, average_method=method),
                                              abs=1e-9)
        assert row["top1"][b] == pytest.approx(100 * np.mean(yy == pp), abs=1e-9)
        # chance-corrected: the same quantities of the expanded sample minus its chance levels
        mean_h = (metrics.entropy_bits(yy) + metrics.entropy_bits(pp)) / 2 * np.log(2)  # nats
        assert row["nmi_corrected"][b] == pytest.approx(100 * skm.normalized_mutual_info_score(yy, pp)
                                                        - 100 * details.expected_mi_nats / mean_h, abs=1e-9)
        kappa_chance = 100 * np.sum(np.bincount(yy, minlength=15) * np.bincount(pp, minlength=15)) / len(yy) ** 2
        assert row["top1_corrected"][b] == pytest.approx(100 * np.mean(yy == pp) - kappa_chance, abs=1e-9)
        assert row["mi_corrected_bits"][b] == pytest.approx(
            np.mean(-log2_prior[yy]) - metrics.cross_entropy_bits(yy, lp[idx]), abs=1e-9)
        assert row["mi_bits"][b] == pytest.approx(metrics.entropy_bits(yy) - metrics.cross_entropy_bits(yy, lp[idx]),
                                                  abs=1e-9)
        exact["ami"].append(100 * skm.adjusted_mutual_info_score(yy, pp))
        exact["map"].append(100 * metrics.mean_average_precision(yy, lp[idx]))
    for m, values in exact.items():
        values = np.asarray(values)
        # what the intervals use is the spread of the replicates: within 15% of the exact bootstrap's
        assert row[m].std() == pytest.approx(values.std(), rel=0.15), m
        assert np.corrcoef(row[m], values)[0, 1] > 0.9, m


def test_split_replicates_are_blocked_consistently():
    y, lp = _probe_output(3)
    scores, details = metrics.score_details(y, lp)
    keys = B.image_keys(None, len(y))
    a = B.split_replicates(details, keys, 70, scores["map"], block=32)
    b = B.split_replicates(details, keys, 70, scores["map"], block=7)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(B.split_replicates(details, keys, 20, scores["map"]), a[:, :20], rtol=1e-12)
