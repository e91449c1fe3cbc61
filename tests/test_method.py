"""Known-answer tests of quantized reverse probing: each fails if the method is wrong."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import cross_val_score

from qrprobe.concepts import ConceptBank
from qrprobe.engine.config import ProbeConfig, ProtocolConfig
from qrprobe.engine.estimator import ReverseProbing
from qrprobe.engine.evaluate import evaluate
from qrprobe.synthetic import make_concept_combinations

FAST_PROBE = ProbeConfig(epochs=30, milestones=(20, 25))


def _config(k: int, **kwargs) -> ProtocolConfig:
    base = {"k": k, "clusterings": 2, "seed": 0, "iters": 50, "device": "cpu", "probe": FAST_PROBE}
    return ProtocolConfig(**{**base, **kwargs})


def test_clusters_determined_by_concept_combinations_are_recovered():
    features, concepts, _ = make_concept_combinations(n=3000, n_bits=4, seed=1)
    noise = (np.random.default_rng(2).random((3000, 6)) < 0.3).astype(np.uint8)
    bank = ConceptBank.from_matrix(np.hstack([concepts, noise]), [f"c{i}" for i in range(10)])
    # k-means++ seeding, so that K-means itself recovers the 16 groups in every clustering and the test is
    # about the probe and the scores; random initialisation (the default) is tested in test_quantize.py
    result = evaluate(features, bank, config=_config(16, kmeans_init="k-means++"))
    for r in result.per_clustering:
        assert r["top1"] >= 99.0
        assert r["nmi"] >= 99.0
        assert r["mi_bits"] == pytest.approx(4.0, abs=0.1)  # log2(16) bits: the concepts explain everything
        assert r["mi_bits"] <= r["cluster_entropy_bits"]


def test_concepts_independent_of_the_clusters_explain_nothing():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(4000, 8)).astype(np.float32)
    concepts = (rng.random((4000, 12)) < 0.3).astype(np.uint8)
    bank = ConceptBank.from_matrix(concepts, [f"n{i}" for i in range(12)])
    result = evaluate(features, bank, config=_config(10))
    for r in result.per_clustering:
        assert abs(r["ami"]) < 1.0
        assert abs(r["mi_bits"]) < 0.05
        assert r["mi_bits"] <= r["cluster_entropy_bits"]


def test_figure_2_reverse_probe_recovers_what_a_forward_probe_cannot():
    """Colour is an XOR of the feature coordinates (not linearly separable), yet colour x shape form the
    clusters: a forward linear probe for colour stays at chance, the reverse probe recovers the clusters."""
    rng = np.random.default_rng(4)
    n = 2000
    red = rng.random(n) < 0.5
    square = rng.random(n) < 0.5
    corner = np.stack([red ^ square, square], axis=1).astype(float)  # red iff the corner lies on the diagonal
    features = (10.0 * corner + rng.normal(size=(n, 2))).astype(np.float32)
    forward = cross_val_score(LogisticRegression(), features, red, cv=5).mean()
    assert forward < 0.6
    concepts = np.stack([red, ~red, ~square, square], axis=1).astype(np.uint8)
    bank = ConceptBank.from_matrix(concepts, ["red", "blue", "circle", "square"],
                                   groups=["Colour", "Colour", "Shape", "Shape"])
    result = evaluate(features, bank, config=_config(4, kmeans_init="k-means++"))
    assert result.summary["top1"]["mean"] >= 99.0
    assert result.summary["nmi"]["mean"] >= 99.0
    # without the shape group, colour alone cannot tell the clusters apart beyond its two halves
    colour_only = evaluate(features, bank.select_groups(["Colour"]), config=_config(4, kmeans_init="k-means++"))
    assert colour_only.summary["top1"]["mean"] < 60.0


def test_same_seed_same_result_different_seed_different_clustering():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(1500, 6)).astype(np.float32)
    bank = ConceptBank.from_matrix((rng.random((1500, 8)) < 0.3).astype(np.uint8), list("abcdefgh"))
    cfg = _config(12, clusterings=2, probe=ProbeConfig(epochs=5))
    a, b = evaluate(features, bank, config=cfg), evaluate(features, bank, config=cfg)
    assert a.per_clustering == b.per_clustering
    for name in ("clusterings", "splits", "predictions", "coef"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.clusterings[0], a.clusterings[1])  # seeds 0 and 1
    c = evaluate(features, bank, config=ProtocolConfig(**{**cfg.to_dict(), "seed": 10}))
    assert not np.array_equal(a.clusterings[0], c.clusterings[0])
    assert c.seeds == [10, 11]


def test_result_summary_and_estimator_api(tmp_path):
    features, concepts, _ = make_concept_combinations(n=800, n_bits=2, seed=6)
    bank = ConceptBank.from_matrix(concepts, ["a", "b"])
    est = ReverseProbing(k=4, clusterings=3, seed=0, iters=20, kmeans_init="k-means++",
                         epochs=5, device="cpu").fit(features, bank, name="toy")
    res = est.result_
    for metric in ("nmi", "ami", "top1", "map", "mi_bits"):
        values = [r[metric] for r in res.per_clustering]
        assert res.summary[metric]["values"] == values
        assert res.summary[metric]["mean"] == pytest.approx(np.mean(values))
        assert res.summary[metric]["std"] == pytest.approx(np.std(values))
    assert est.summary_["nmi"]["mean"] == res.summary["nmi"]["mean"]
    assert est.score(features, bank) == pytest.approx(  # the fitted probes on the same images
        np.mean([100 * normalized_mutual_info_score(c, p) for c, p in zip(res.clusterings, res.predictions,
                                                                                      strict=True)]))
    assert res.clusterings.shape == (3, 800)
    assert res.coef.shape == (3, 2, 4)
    assert res.centroids.shape == (3, 4, 16)
    assert res.config["probe"]["lr"] == 3.5
    assert res.config["k"] == 4
    assert "torch" in res.versions
    assert "numpy" in res.versions
    res.save(tmp_path / "r")
    from qrprobe.results import Result

    back = Result.load(tmp_path / "r")
    assert back.summary == res.summary
    assert back.name == "toy"
    np.testing.assert_array_equal(back.coef, res.coef)
    stages = ("inputs", "quantize", "probe", "null", "statistics")
    assert set(res.timings) == {*stages, "total"}
    assert all(res.timings[s] >= 0 for s in stages)
    assert sum(res.timings[s] for s in stages) <= res.timings["total"] + 0.01  # the stages do not overlap
    assert back.timings == res.timings


def test_an_expert_that_is_the_network_under_test_is_flagged(tmp_path):
    """Circularity: the concepts of an expert that is the probed network are flagged in the result."""
    from qrprobe.features import write_feature_store

    features, concepts, _ = make_concept_combinations(n=300, n_bits=2, seed=7)
    ids = [f"i{i}" for i in range(300)]
    store = write_feature_store(tmp_path / "feats", features, ids, model="efficientnet-lite0")
    bank = ConceptBank.from_matrix(concepts, ["tabby cat", "espresso"], "Objects", "imagenet", image_ids=ids,
                                   info={"experts": [{"name": "imagenet", "config": {"model": "efficientnet-lite0"}}]})
    cfg = _config(4, clusterings=1, probe=ProbeConfig(epochs=2))
    flagged = evaluate(store, bank, config=cfg)
    assert any("circularity" in w and "imagenet" in w for w in flagged.inputs["warnings"])
    other = write_feature_store(tmp_path / "other", features, ids, model="timm:resnet50")
    assert evaluate(other, bank, config=cfg).inputs["warnings"] == []
