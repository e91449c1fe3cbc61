"""Metrics agree with scikit-learn, and the MI estimate behaves as Eq. (1) says."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from qrprobe import metrics


def _labels(seed: int, n: int, k: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, n)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("n", "k1", "k2"), [(50, 3, 4), (500, 20, 7), (2000, 100, 100)])
def test_nmi_ami_accuracy_match_sklearn(seed, n, k1, k2):
    a, b = _labels(seed, n, k1), _labels(seed + 100, n, k2)
    b_corr = np.where(np.random.default_rng(seed).random(n) < 0.5, a % k2, b)  # partly dependent
    for pred in (b, b_corr, a):
        assert metrics.normalized_mutual_info(a, pred) == pytest.approx(
            skm.normalized_mutual_info_score(a, pred, average_method="arithmetic"), abs=1e-10)
        assert metrics.adjusted_mutual_info(a, pred) == pytest.approx(
            skm.adjusted_mutual_info_score(a, pred, average_method="arithmetic"), abs=1e-10)
        assert metrics.top1_accuracy(a, pred) == pytest.approx(skm.accuracy_score(a, pred))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=80))
def test_nmi_matches_sklearn_on_arbitrary_labellings(pairs):
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    assert metrics.normalized_mutual_info(a, b) == pytest.approx(
        skm.normalized_mutual_info_score(a, b), abs=1e-9)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=1, max_size=60))
def test_average_precision_matches_sklearn_with_ties(rows):
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows], dtype=float)  # few distinct values: many ties
    if not y.any():
        assert np.isnan(metrics.average_precision(y, s))
        return
    assert metrics.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_mean_average_precision_is_macro_over_present_classes(seed):
    rng = np.random.default_rng(seed)
    k, n = 10, 300
    y = rng.integers(0, k - 2, n)  # classes 8 and 9 never occur: they must not count
    scores = rng.random((n, k))
    expected = np.mean([skm.average_precision_score(y == c, scores[:, c]) for c in np.unique(y)])
    assert metrics.mean_average_precision(y, scores) == pytest.approx(expected, abs=1e-12)


def test_entropy_and_cross_entropy_in_bits():
    y = np.array([0, 1, 2, 3] * 25)
    assert metrics.entropy_bits(y) == pytest.approx(2.0)
    uniform = np.full((100, 4), np.log(0.25))
    assert metrics.cross_entropy_bits(y, uniform) == pytest.approx(2.0)
    scores = metrics.score_predictions(y, uniform)
    assert scores["mi_bits"] == pytest.approx(0.0, abs=1e-12)
    assert scores["cluster_entropy_bits"] == pytest.approx(2.0)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12), st.floats(0.1, 20.0))
def test_mi_estimate_never_exceeds_cluster_entropy(seed, k, temperature):
    rng = np.random.default_rng(seed)
    n = 200
    y = rng.integers(0, k, n)
    logits = temperature * rng.normal(size=(n, k))
    logits[np.arange(n), y] += temperature * rng.random()  # a probe of random quality
    log_proba = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    s = metrics.score_predictions(y, log_proba)
    assert s["mi_bits"] <= s["cluster_entropy_bits"] + 1e-12
    assert s["cross_entropy_bits"] >= 0
    assert 0 <= s["top1"] <= 100
    assert 0 <= s["map"] <= 100


def test_perfect_probe_scores_100():
    y = np.repeat(np.arange(5), 20)
    log_proba = np.log(np.full((100, 5), 1e-9))
    log_proba[np.arange(100), y] = 0.0
    s = metrics.score_predictions(y, log_proba)
    assert s["nmi"] == pytest.approx(100)
    assert s["ami"] == pytest.approx(100)
    assert s["top1"] == 100
    assert s["map"] == pytest.approx(100)
    assert s["mi_bits"] == pytest.approx(np.log2(5), abs=1e-6)


@pytest.mark.parametrize("method", ["arithmetic", "geometric", "max"])
@pytest.mark.parametrize("seed", range(4))
def test_nmi_normalisations_match_sklearn(method, seed):
    a, b = _labels(seed, 400, 9), _labels(seed + 50, 400, 5)
    b_corr = np.where(np.random.default_rng(seed).random(400) < 0.6, a % 5, b)
    for pred in (b, b_corr, a, np.zeros(400, int)):
        assert metrics.normalized_mutual_info(a, pred, method) == pytest.approx(
            skm.normalized_mutual_info_score(a, pred, average_method=method), abs=1e-10)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60),
       st.sampled_from(["geometric", "max"]))
def test_nmi_normalisations_match_sklearn_on_arbitrary_labellings(pairs, method):
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    assert metrics.normalized_mutual_info(a, b, method) == pytest.approx(
        skm.normalized_mutual_info_score(a, b, average_method=method), abs=1e-9)


def _weighted_ap(is_positive, scores, w):
    """AP of a sample where image i counts w_i times (ties grouped as in average_precision)."""
    order = np.argsort(-scores, kind="mergesort")
    s, h, ww = scores[order], is_positive[order], w[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp, total = np.cumsum(ww * h)[ends], np.cumsum(ww)[ends]
    return float(np.sum(np.diff(np.r_[0, tp]) / (ww * h).sum() * tp / total))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 40), st.integers(1, 8))
def test_ap_influence_is_the_derivative_of_weighted_ap(seed, n, levels):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    if not y.any():
        y[0] = True
    s = rng.integers(0, levels, n).astype(float)  # few levels: many ties
    ap, influence = metrics.average_precision_influence(y, s)
    assert ap == metrics.average_precision(y, s) == pytest.approx(_weighted_ap(y, s, np.ones(n)))
    eps = 1e-6
    numeric = [(_weighted_ap(y, s, 1 + eps * np.eye(n)[j]) - _weighted_ap(y, s, 1 - eps * np.eye(n)[j])) / (2 * eps)
               for j in range(n)]
    np.testing.assert_allclose(influence, numeric, atol=1e-6)
    assert influence.sum() == pytest.approx(0.0, abs=1e-12)  # AP does not change when every weight is scaled


def test_score_details_agree_with_score_predictions(rng):
    n, k = 300, 7
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    log_proba = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    scores, details = metrics.score_details(y, log_proba)
    assert scores == metrics.score_predictions(y, log_proba)
    assert scores["nmi_geometric"] == pytest.approx(
        100 * skm.normalized_mutual_info_score(y, log_proba.argmax(1), average_method="geometric"))
    np.testing.assert_array_equal(details.y_pred, log_proba.argmax(1))
    assert details.ce_bits.mean() == pytest.approx(scores["cross_entropy_bits"])
    # the AMI's correction term: AMI = (MI − E) / (mean H − E)
    mi = skm.mutual_info_score(y, details.y_pred)
    mean_h = (metrics.entropy_bits(y) + metrics.entropy_bits(details.y_pred)) / 2 * np.log(2)
    assert (mi - details.expected_mi_nats) / (mean_h - details.expected_mi_nats) == pytest.approx(scores["ami"] / 100)
