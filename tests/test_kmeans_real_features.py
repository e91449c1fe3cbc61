"""Exact 16-bit K-means on real features: EfficientNet-Lite0 features of CIFAR-10 photos (../shared/data;
skipped when absent). From the same initial centroids, labels and centroids equal the float64 reference on the
same stored values, and the labels equal plain float32 Lloyd's on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _kmeans_reference import reference_lloyd
from qrprobe.engine.kmeans.quantize import KMeans, Stored
from qrprobe.engine.kmeans.standardize import Standardizer, standardized_copy

PER_CLASS = 60

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


@pytest.fixture(scope="module")
def lite0_features(tmp_path_factory, cifar_test_subset):
    from qrprobe.features import extract

    images = cifar_test_subset(PER_CLASS)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small CPU batches stall with two threads on a shared machine
    try:
        store = extract("efficientnet-lite0", images, tmp_path_factory.mktemp("lite0") / "store",
                        workers=1, progress=False)
    finally:
        torch.set_num_threads(before)
    return np.concatenate(list(store.iter_shards()))


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_exact_lloyd_on_lite0_features(lite0_features, precision):
    std = Standardizer().fit(lite0_features)
    stored = Stored(standardized_copy(lite0_features, std, precision), precision)
    init = stored.x[np.random.default_rng(0).choice(len(stored.x), 24, replace=False)].float().numpy()
    ours = KMeans(24, iters=30, restarts=1, kmeans_init=init, device="cpu").fit_stored(stored)
    labels, centroids, n_done = reference_lloyd(stored.x, init, 30)
    np.testing.assert_array_equal(ours.labels_, labels)
    np.testing.assert_array_equal(ours.cluster_centers_, centroids)
    assert ours.result_.n_iter == n_done
    plain = KMeans(24, iters=30, restarts=1, kmeans_init=init, device="cpu", kmeans_precision="float32").fit(
        stored.x.float().numpy())
    np.testing.assert_array_equal(ours.labels_, plain.labels_)
    assert ours.inertia_ == pytest.approx(plain.inertia_, rel=1e-4)
