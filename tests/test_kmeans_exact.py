"""Exact 16-bit K-means: from the same initial centroids, the labels and centroids of a plain float64 Lloyd on
the same stored values (``_kmeans_reference``), with either distance engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from _kmeans_reference import inertia, nearest, reference_lloyd
from qrprobe.engine.kmeans import kernel as kmeans_kernel
from qrprobe.engine.kmeans.exact import BoundedLloyd
from qrprobe.engine.kmeans.quantize import KMeans, Stored
from qrprobe.engine.kmeans.standardize import to_storage

HAS_KERNEL = kmeans_kernel.load() is not None
ENGINES = ["torch", pytest.param("kernel", marks=pytest.mark.skipif(not HAS_KERNEL, reason="no bf16 kernel here"))]


def stored(x: np.ndarray, precision: str, engine: str = "auto") -> Stored:
    return Stored(to_storage(x.astype(np.float64), precision), precision, engine)


def overlapping_mixture(n=3000, d=32, centres=25, std=3.0, seed=0) -> np.ndarray:
    """Overlapping blobs, standardized: many points near cluster boundaries, many Lloyd iterations."""
    x, _ = make_blobs(n_samples=n, centers=centres, n_features=d, cluster_std=std, random_state=seed)
    return (x - x.mean(0)) / x.std(0)


def fit_from(s: Stored, init: np.ndarray, n_iter: int) -> KMeans:
    return KMeans(len(init), iters=n_iter, restarts=1, kmeans_init=init, device="cpu").fit_stored(s)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_exact_lloyd_equals_float64_lloyd(precision, engine):
    x = overlapping_mixture()
    s = stored(x, precision, engine)
    init = s.x[np.random.default_rng(0).choice(len(x), 40, replace=False)].float().numpy()
    km = fit_from(s, init, 40)
    labels, centroids, n_done = reference_lloyd(s.x, init, 40)
    np.testing.assert_array_equal(km.labels_, labels)
    np.testing.assert_array_equal(km.cluster_centers_, centroids)  # exact means: bit for bit
    assert km.result_.n_iter == n_done
    assert km.inertia_ == pytest.approx(inertia(s.x, centroids, labels), rel=1e-12)
    assert km.result_.precision == precision
    np.testing.assert_array_equal(km.predict(x), km.labels_)


def test_engines_agree_on_real_scale_dimension():
    """K ≥ 64 uses groups of 32 centroids; 256-d rows; both engines equal the reference."""
    x = overlapping_mixture(n=4000, d=256, centres=80, std=6.0, seed=3)
    init = to_storage(x, "bfloat16")[np.random.default_rng(1).choice(4000, 70, replace=False)].float().numpy()
    ref, _, _ = reference_lloyd(to_storage(x, "bfloat16"), init, 15)
    for engine in ["torch", "kernel"] if HAS_KERNEL else ["torch"]:
        np.testing.assert_array_equal(fit_from(stored(x, "bfloat16", engine), init, 15).labels_, ref)
    ref16, _, _ = reference_lloyd(to_storage(x, "float16"), init, 15)
    for engine in ["torch", "kernel"] if HAS_KERNEL else ["torch"]:
        np.testing.assert_array_equal(fit_from(stored(x, "float16", engine), init, 15).labels_, ref16)


def test_odd_dimension_and_tiny_k_use_the_torch_engine():
    x = overlapping_mixture(n=800, d=7, centres=3, std=2.0, seed=5)
    s = stored(x, "bfloat16")
    init = s.x[:3].float().numpy()
    labels, centroids, _ = reference_lloyd(s.x, init, 30)
    km = fit_from(s, init, 30)
    np.testing.assert_array_equal(km.labels_, labels)
    np.testing.assert_array_equal(km.cluster_centers_, centroids)


@pytest.mark.parametrize("engine", ENGINES)
def test_ties_go_to_the_lowest_centroid_and_empty_clusters_are_reseeded(engine):
    # duplicated points and two identical initial centroids: exact ties, then an empty cluster to re-seed
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 16))
    x = np.repeat(base, 5, axis=0)
    s = stored(x, "bfloat16", engine)
    init = s.x[[0, 0, 5, 10, 15, 20]].float().numpy()
    km = fit_from(s, init, 20)
    labels, centroids, _n_done = reference_lloyd(s.x, init, 20)
    np.testing.assert_array_equal(km.labels_, labels)
    np.testing.assert_array_equal(km.cluster_centers_, centroids)
    assert km.result_.n_empty_reseeded >= 1


def test_random_init_draws_the_same_points_as_the_float32_path():
    x = overlapping_mixture(n=1500, d=16, centres=12, seed=2)
    s = stored(x, "bfloat16")
    km = KMeans(12, iters=25, restarts=1, seed=7, device="cpu").fit_stored(s)
    idx = np.random.default_rng(7).choice(len(x), 12, replace=False)
    labels, _, _ = reference_lloyd(s.x, s.x[idx].float().numpy(), 25)
    np.testing.assert_array_equal(km.labels_, labels)


def test_restarts_keep_the_lowest_inertia_and_k_means_plus_plus_runs():
    x = overlapping_mixture(n=1500, d=16, centres=12, seed=4)
    s = stored(x, "float16")
    km = KMeans(12, iters=20, restarts=3, seed=1, device="cpu").fit_stored(s)
    assert len(km.result_.inertias) == 3
    assert km.inertia_ == pytest.approx(min(km.result_.inertias), rel=1e-12)
    pp = KMeans(12, iters=20, restarts=1, seed=1, kmeans_init="k-means++", device="cpu").fit_stored(s)
    assert np.isfinite(pp.inertia_)
    assert len(np.unique(pp.labels_)) == 12


def test_max_train_points_assigns_every_point_exactly():
    x = overlapping_mixture(n=2000, d=16, centres=10, seed=6)
    s = stored(x, "bfloat16")
    km = KMeans(10, iters=20, restarts=2, seed=0, max_train_points=600, device="cpu").fit_stored(s)
    assert km.labels_.shape == (2000,)
    expected = nearest(s.x.double(), torch.from_numpy(km.cluster_centers_)).numpy()
    np.testing.assert_array_equal(km.labels_, expected)
    assert km.inertia_ == pytest.approx(inertia(s.x, km.cluster_centers_, km.labels_), rel=1e-12)


def test_labels_equal_plain_float32_lloyd_on_the_same_stored_values():
    x = overlapping_mixture(n=3000, d=32, centres=30, seed=8)
    s = stored(x, "bfloat16")
    init = s.x[np.random.default_rng(3).choice(3000, 30, replace=False)].float().numpy()
    exact = fit_from(s, init, 30)
    plain = KMeans(30, iters=30, restarts=1, kmeans_init=init, device="cpu", kmeans_precision="float32").fit(
        s.x.float().numpy())
    np.testing.assert_array_equal(exact.labels_, plain.labels_)
    assert exact.inertia_ == pytest.approx(plain.inertia_, rel=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_bounds_hold_after_a_run(engine, precision):
    """ub ≥ the exact distance to the own centroid; lb[g] ≤ the exact distance to every other member of g."""
    x = overlapping_mixture(n=2000, d=64, centres=70, std=5.0, seed=9)
    s = stored(x, precision, engine)
    init = s.x[np.random.default_rng(4).choice(2000, 70, replace=False)].float()
    eng = s.engine(70)
    run = BoundedLloyd(s.x, torch.arange(2000), s.sq_norms(), eng, 70, s.row_err(70))
    centroids, _, _ = run.run(init, 12)
    dist = torch.cdist(s.x.double(), centroids.double())  # (N, K)
    own = dist[torch.arange(2000), run.labels]
    assert bool((run.ub.double() >= own * (1 - 1e-12)).all())
    slot_ids = run.slot_ids
    for g in range(eng.groups):
        members = slot_ids[g * eng.width:(g + 1) * eng.width]
        members = members[members >= 0]
        d = dist[:, members].clone()
        d[members.unsqueeze(0) == run.labels.unsqueeze(1)] = float("inf")
        assert bool((run.lb[:, g].double() <= d.min(1).values * (1 + 1e-12)).all())
    # most work was skipped in the late iterations, and few rows needed the float64 check
    assert run.stats.pairs[-1] < run.stats.pairs[0]
    assert sum(run.stats.exact_rows) < 0.5 * sum(run.stats.rows_checked)
    assert run.inertia() == pytest.approx(inertia(s.x, centroids.numpy(), run.labels.numpy()), rel=1e-12)
