"""Intervals and paired tests: known answers and calibration on simulated per-clustering scores."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from qrprobe.engine.stats.uncertainty import difference_estimate, holm, mean_estimate


def test_without_replicates_it_is_the_t_interval_over_clusterings():
    values = np.array([60.1, 61.3, 59.7, 60.8, 62.0])
    est = mean_estimate(values, None)
    low, high = stats.t.interval(0.95, 4, loc=values.mean(), scale=stats.sem(values))
    assert (est.ci_low, est.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert est.df == pytest.approx(4)
    assert est.se_images == 0


def test_one_clustering_uses_the_image_bootstrap_alone():
    reps = np.random.default_rng(0).normal(50, 2.0, (1, 400))
    est = mean_estimate(np.array([50.3]), reps)
    assert est.se == pytest.approx(reps.std(ddof=1))
    assert est.se_seeds == 0
    assert np.isinf(est.df)
    assert est.ci_high - est.ci_low == pytest.approx(2 * 1.959964 * est.se)


def test_test_sampling_is_not_counted_twice():
    """Clusterings that differ only by test-sampling noise (variance 1 each, independent): the spread of their
    values already contains that noise, so the variance of the mean is 1/R, not the 2/R that adding the
    bootstrap variance to the spread would give."""
    rng = np.random.default_rng(1)
    r, b = 50, 2000
    values = 70 + rng.normal(0, 1.0, r)
    reps = values[:, None] + rng.normal(0, 1.0, (r, b))
    est = mean_estimate(values, reps)
    cov = np.cov(reps)
    assert est.se**2 == pytest.approx(values.var(ddof=1) / r + (cov.sum() - np.trace(cov)) / (r * (r - 1)))
    assert est.se**2 == pytest.approx(1 / r, rel=0.35)
    assert est.se_images**2 == pytest.approx(1 / r, rel=0.1)
    assert est.df == pytest.approx((r - 1) * (est.se**2 / (values.var(ddof=1) / r)) ** 2)  # Satterthwaite


def test_shared_test_images_add_their_covariance():
    """Errors shared by all clusterings (the same images in every test split) do not show in the spread of the
    values; the replicates' covariance between clusterings adds them."""
    rng = np.random.default_rng(5)
    r, b = 40, 4000
    values = 70 + rng.normal(0, 1.0, r)
    shared = rng.normal(0, 2.0, b)
    reps = values[:, None] + shared[None, :] + rng.normal(0, 1.0, (r, b))
    est = mean_estimate(values, reps)
    assert est.se**2 == pytest.approx(1 / r + 4.0, rel=0.1)


def test_identical_results_differ_by_nothing():
    values = np.array([60.0, 61.0, 59.0])
    reps = np.random.default_rng(2).normal(60, 1, (3, 100))
    for shared in (True, False):
        est = difference_estimate(values, reps, values, reps, shared_clusterings=shared)
        assert est.mean == 0
        if shared:
            assert est.se == 0
            assert est.p_value == 1.0


def test_shared_clusterings_pair_clustering_by_clustering():
    rng = np.random.default_rng(3)
    a, b = rng.normal(60, 3, 5), rng.normal(0, 0.1, 5)
    xa, xb = rng.normal(0, 1, (5, 300)), rng.normal(0, 1, (5, 300))
    paired = difference_estimate(a, xa, a - 1 + b, xa + xb, shared_clusterings=True)
    assert paired.mean == pytest.approx(np.mean(1 - b))
    direct = mean_estimate(1 - b, -xb)
    assert (paired.se, paired.p_value) == (pytest.approx(direct.se), pytest.approx(direct.p_value))


def _simulate(rng, r, b, sigma_seed, sigma_test, rho, delta=0.0):
    """Two results on the same images. Per-clustering values = truth + seed effect + test noise; a share
    ``rho`` of the test noise's variance comes from the images both results and all clusterings share (it
    cancels in the difference), the rest is specific to each clustering's split. Replicates redraw the test
    noise with the same structure, the shared part shared by both results as the hashed weights make it."""
    def values(common):
        return sigma_seed * rng.normal(0, 1, r) + sigma_test * (np.sqrt(rho) * common
                                                                 + np.sqrt(1 - rho) * rng.normal(0, 1, r))

    def replicates(centre, shared):
        return centre[:, None] + sigma_test * (np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.normal(0, 1, (r, b)))

    common, shared = rng.normal(), rng.normal(0, 1, b)
    va, vb = 50 + delta + values(common), 50 + values(common)
    return va, replicates(va, shared), vb, replicates(vb, shared)


@pytest.mark.parametrize(("sigma_seed", "sigma_test", "rho"), [(1.0, 0.3, 0.2), (0.2, 1.0, 0.2), (0.5, 0.5, 0.6)])
def test_paired_test_is_calibrated_and_detects_a_planted_difference(sigma_seed, sigma_test, rho):
    rng = np.random.default_rng(4)
    r, b = 5, 200
    null_p = []
    for _ in range(600):
        va, xa, vb, xb = _simulate(rng, r, b, sigma_seed, sigma_test, rho)
        null_p.append(difference_estimate(va, xa, vb, xb, shared_clusterings=False).p_value)
    fpr = np.mean(np.asarray(null_p) < 0.05)
    assert 0.015 < fpr < 0.085  # nominal 0.05; ±0.035 is about 4 binomial standard errors at 600 trials
    # a difference of 5 standard errors of the difference (seed and split-specific test noise of both)
    effect = 5 * np.sqrt(2 * (sigma_seed**2 + (1 - rho) * sigma_test**2) / r)
    detected = []
    for _ in range(200):
        va, xa, vb, xb = _simulate(rng, r, b, sigma_seed, sigma_test, rho, effect)
        detected.append(difference_estimate(va, xa, vb, xb, shared_clusterings=False).p_value < 0.05)
    assert np.mean(detected) > 0.8


def test_holm_known_answer():
    adjusted = holm([0.01, 0.04, 0.03, float("nan")])
    np.testing.assert_allclose(adjusted[:3], [0.03, 0.06, 0.06])
    assert np.isnan(adjusted[3])
    assert holm([]) == []


def test_undefined_replicates_are_left_out():
    rng = np.random.default_rng(6)
    values = rng.normal(50, 1, 4)
    reps = values[:, None] + rng.normal(0, 1, (4, 300))
    holes = reps.copy()
    holes[1, :10] = np.nan  # e.g. a replicate that drew no test image of a tiny split
    est = mean_estimate(values, holes)
    assert np.isfinite(est.se)
    assert est.se == pytest.approx(mean_estimate(values, reps[:, 10:]).se)
    diff = difference_estimate(values, holes, values + 1, reps, shared_clusterings=True)
    assert diff.mean == pytest.approx(-1)
    assert np.isfinite(diff.p_value)
