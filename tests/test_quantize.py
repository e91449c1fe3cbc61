"""Standardization and K-means against scikit-learn and faiss, and their edge cases."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from qrprobe.engine.config import KMeansConfig
from qrprobe.engine.kmeans.quantize import KMeans, Standardizer, check_finite
from qrprobe.errors import QRProbeInputError


def test_standardizer_matches_numpy_and_zeroes_constant_dimensions(rng):
    x = rng.normal(3.0, 2.0, size=(500, 6)).astype(np.float16)
    x[:, 2] = 7.0
    z = Standardizer(chunk_rows=64).fit_transform(x)
    x64 = x.astype(np.float64)
    std = x64.std(0)
    ref = (x64 - x64.mean(0)) / np.where(std > 0, std, 1.0)
    ref[:, 2] = 0.0
    np.testing.assert_allclose(z, ref, atol=1e-5)
    assert np.all(z[:, 2] == 0)


def test_lloyd_matches_sklearn_from_the_same_initial_centroids():
    x, _ = make_blobs(n_samples=3000, centers=12, n_features=10, cluster_std=2.0, random_state=0)
    x = x.astype(np.float32)
    init = x[np.random.default_rng(0).choice(len(x), 12, replace=False)]
    ours = KMeans(12, iters=100, restarts=1, kmeans_init=init, device="cpu").fit(x)
    ref = SkKMeans(12, init=init, n_init=1, max_iter=100, tol=0, algorithm="lloyd").fit(x)
    assert adjusted_rand_score(ref.labels_, ours.labels_) == pytest.approx(1.0)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, atol=1e-3)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-4)
    # the reported inertia is the sum of squared distances to the assigned centroid
    direct = ((x - ours.cluster_centers_[ours.labels_]) ** 2).sum()
    assert ours.inertia_ == pytest.approx(direct, rel=1e-4)
    np.testing.assert_array_equal(ours.predict(x), ours.labels_)


def test_random_restarts_find_separated_blobs():
    x, truth = make_blobs(n_samples=3000, centers=3, n_features=8, cluster_std=0.5, random_state=4)
    km = KMeans(3, iters=50, restarts=5, seed=0, device="cpu").fit(x.astype(np.float32))
    assert adjusted_rand_score(truth, km.labels_) == pytest.approx(1.0)


def test_kmeans_keeps_the_best_restart(rng):
    x = rng.normal(size=(800, 5)).astype(np.float32)
    km = KMeans(20, iters=30, restarts=4, seed=3, device="cpu").fit(x)
    assert len(km.result_.inertias) == 4
    assert km.inertia_ == pytest.approx(min(km.result_.inertias), rel=1e-5)


def test_kmeans_same_seed_same_result_other_seed_differs(rng):
    x = rng.normal(size=(1000, 8)).astype(np.float32)
    a = KMeans(10, iters=20, restarts=2, seed=1, device="cpu").fit(x)
    b = KMeans(10, iters=20, restarts=2, seed=1, device="cpu").fit(x)
    c = KMeans(10, iters=20, restarts=2, seed=2, device="cpu").fit(x)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert not np.array_equal(a.labels_, c.labels_)


def test_empty_clusters_are_reseeded():
    # 30 points but only 3 distinct locations and K = 6: Lloyd leaves clusters empty, which must be re-seeded
    x = np.repeat(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], np.float32), 10, axis=0)
    x += np.random.default_rng(0).normal(scale=0.01, size=x.shape).astype(np.float32)
    km = KMeans(6, iters=50, restarts=1, seed=0, device="cpu").fit(x)
    assert np.all(np.isfinite(km.cluster_centers_))
    assert len(np.unique(km.labels_)) == 6


def test_kmeans_plus_plus_init(rng):
    x, truth = make_blobs(n_samples=2000, centers=8, n_features=6, cluster_std=0.5, random_state=1)
    km = KMeans(8, iters=50, restarts=1, seed=0, kmeans_init="k-means++", device="cpu").fit(x.astype(np.float32))
    assert adjusted_rand_score(truth, km.labels_) > 0.99


def test_max_train_points_samples_but_assigns_all(rng):
    x, _ = make_blobs(n_samples=3000, centers=5, n_features=4, random_state=2)
    km = KMeans(5, iters=30, restarts=2, seed=0, max_train_points=500, device="cpu").fit(x.astype(np.float32))
    assert km.labels_.shape == (3000,)


@pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss not installed")
def test_faiss_backend_agrees_with_torch_backend():
    x, truth = make_blobs(n_samples=3000, centers=3, n_features=8, cluster_std=0.5, random_state=4)
    x = x.astype(np.float32)
    t = KMeans(3, iters=50, restarts=5, seed=0, device="cpu").fit(x)
    f = KMeans(3, iters=50, restarts=5, seed=0, kmeans_backend="faiss", device="cpu").fit(x)
    assert adjusted_rand_score(truth, f.labels_) == pytest.approx(1.0)
    assert f.inertia_ == pytest.approx(t.inertia_, rel=1e-4)
    direct = ((x - f.cluster_centers_[f.labels_]) ** 2).sum()
    assert f.inertia_ == pytest.approx(direct, rel=1e-4)


@pytest.mark.parametrize(("k", "message"), [(1, "≥ 2"), (0, "≥ 2"), (11, "exceeds the number of images N=10")])
def test_invalid_k(k, message):
    with pytest.raises(QRProbeInputError, match=message):
        KMeans(k).fit(np.zeros((10, 2), np.float32))


def test_check_finite_names_the_row():
    x = np.zeros((5, 3), np.float32)
    x[3, 1] = np.nan
    with pytest.raises(QRProbeInputError, match="row 3, column 1"):
        check_finite(x)
    x[3, 1] = np.inf
    with pytest.raises(QRProbeInputError, match="non-finite"):
        check_finite(x)


def test_inside_reuse_clusterings_each_clustering_is_computed_once(monkeypatch):
    from qrprobe.engine.kmeans import quantize as q
    from qrprobe.engine.kmeans.memo import reuse_clusterings

    x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    plain = q.fit_clusterings(x, KMeansConfig(k=5, iters=10, restarts=2), seeds=[0, 1])[1]
    calls = []
    original = q.KMeans.fit_stored
    monkeypatch.setattr(q.KMeans, "fit_stored", lambda self, *a: calls.append(self.seed) or original(self, *a))
    with reuse_clusterings():
        first = q.fit_clusterings(x, KMeansConfig(k=5, iters=10, restarts=2), seeds=[0, 1])[1]
        again = q.fit_clusterings(x.copy(), KMeansConfig(k=5, iters=10, restarts=2), seeds=[1, 2])[1]  # same values
        other_k = q.fit_clusterings(x, KMeansConfig(k=6, iters=10, restarts=2), seeds=[0])[1]
        changed = q.fit_clusterings(x + 1e-3, KMeansConfig(k=5, iters=10, restarts=2), seeds=[0])[1]
    assert calls == [0, 1, 2, 0, 0]  # seed 1 at K=5 on these values was not computed twice
    assert again[0] is first[1]
    for a, b in zip(first, plain, strict=True):  # what is reused is what a fresh run computes
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.inertia == b.inertia
    assert other_k[0].centroids.shape[0] == 6
    assert changed[0] is not first[0]
    q.fit_clusterings(x, KMeansConfig(k=5, iters=10, restarts=2), seeds=[0])  # outside: nothing is kept
    assert calls[-1] == 0
    assert len(calls) == 6
