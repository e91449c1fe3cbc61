"""The engine on a CUDA GPU agrees with the CPU (skipped where no GPU is present, as in CI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qrprobe.concepts import ConceptBank
from qrprobe.engine.config import ProbeConfig, ProtocolConfig
from qrprobe.engine.evaluate import evaluate
from qrprobe.engine.kmeans.quantize import KMeans
from qrprobe.engine.probe.reverse_probe import ReverseProbe
from qrprobe.synthetic import make_concept_combinations

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def test_kmeans_gpu_matches_cpu_from_the_same_start():
    features, _, _ = make_concept_combinations(n=5000, n_bits=4, dim=32, noise=2.0, seed=0)
    init = features[np.random.default_rng(0).choice(5000, 16, replace=False)]
    cpu = KMeans(16, iters=50, restarts=1, kmeans_init=init, device="cpu").fit(features)
    gpu = KMeans(16, iters=50, restarts=1, kmeans_init=init, device="cuda").fit(features)
    assert (cpu.labels_ == gpu.labels_).mean() > 0.999
    assert gpu.inertia_ == pytest.approx(cpu.inertia_, rel=1e-4)


def test_kmeans_gpu_chunked_equals_unchunked():
    features, _, _ = make_concept_combinations(n=20000, n_bits=5, dim=64, seed=1)
    a = KMeans(32, iters=20, restarts=1, seed=0, device="cuda", chunk_rows=1000).fit(features)
    b = KMeans(32, iters=20, restarts=1, seed=0, device="cuda", chunk_rows=50000).fit(features)
    assert (a.labels_ == b.labels_).mean() > 0.999


def test_probe_gpu_matches_cpu():
    rng = np.random.default_rng(0)
    import scipy.sparse as sp

    x = sp.csr_matrix((rng.random((3000, 200)) < 0.05).astype(np.uint8))
    y = rng.integers(0, 20, 3000)
    cfg = ProbeConfig(epochs=5, select="last")
    cpu = ReverseProbe(cfg, seed=0, device="cpu").fit(x, y, n_classes=20)
    gpu = ReverseProbe(cfg, seed=0, device="cuda").fit(x, y, n_classes=20)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, atol=1e-3)


def test_evaluate_end_to_end_on_gpu():
    features, concepts, _ = make_concept_combinations(n=4000, n_bits=4, seed=2)
    bank = ConceptBank.from_matrix(concepts, ["a", "b", "c", "d"])
    res = evaluate(features, bank, config=ProtocolConfig(k=16, clusterings=2, kmeans_init="k-means++",
                                                         device="cuda", probe=ProbeConfig(epochs=30)))
    assert res.summary["top1"]["mean"] >= 99.0
    assert res.config["device"] == "cuda"
