"""Exact 16-bit K-means on a CUDA GPU: the features live on the device in 16 bits and the labels and centroids
equal the CPU's and the float64 reference's bit for bit (skipped where no GPU is present, as in CI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from _kmeans_reference import reference_lloyd
from qrprobe.engine.config import KMeansConfig
from qrprobe.engine.kmeans.quantize import KMeans, Stored, fit_clusterings
from qrprobe.engine.kmeans.standardize import to_storage

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def mixture(n=6000, d=128, centres=90, seed=0):
    x, _ = make_blobs(n_samples=n, centers=centres, n_features=d, cluster_std=6.0, random_state=seed)
    return (x - x.mean(0)) / x.std(0)


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_gpu_equals_cpu_and_the_float64_reference(precision):
    x16 = to_storage(mixture(), precision)
    init = x16[np.random.default_rng(0).choice(len(x16), 80, replace=False)].float().numpy()
    cpu = KMeans(80, iters=25, restarts=1, kmeans_init=init, device="cpu").fit_stored(Stored(x16, precision))
    gpu_stored = Stored(x16.cuda(), precision)
    gpu = KMeans(80, iters=25, restarts=1, kmeans_init=init, device="cuda").fit_stored(gpu_stored)
    labels, centroids, _ = reference_lloyd(x16, init, 25)
    np.testing.assert_array_equal(gpu.labels_, labels)
    np.testing.assert_array_equal(gpu.cluster_centers_, centroids)
    np.testing.assert_array_equal(gpu.labels_, cpu.labels_)
    assert gpu.inertia_ == pytest.approx(cpu.inertia_, rel=1e-12)


def test_fit_clusterings_keeps_a_16bit_copy_on_the_device():
    x = mixture(n=3000, d=64, centres=20, seed=1).astype(np.float32)
    config = KMeansConfig(k=20, iters=15, restarts=2, kmeans_precision="bfloat16")
    _, runs_gpu = fit_clusterings(x, config, seeds=[0, 1], device="cuda")
    _, runs_cpu = fit_clusterings(x, config, seeds=[0, 1], device="cpu")
    for g, c in zip(runs_gpu, runs_cpu, strict=True):
        np.testing.assert_array_equal(g.labels, c.labels)
        np.testing.assert_array_equal(g.centroids, c.centroids)
