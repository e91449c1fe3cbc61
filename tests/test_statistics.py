"""Scores that cannot mislead: intervals, chance levels, baselines, paired comparisons, on generated data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn import metrics as skm

from qrprobe import metrics
from qrprobe.analysis.significance import paired_difference, pairing_problem, shared_clusterings
from qrprobe.concepts.bank import ConceptBank
from qrprobe.engine.evaluate import evaluate
from qrprobe.engine.protocol import prepare_inputs, probe_all, quantize
from qrprobe.engine.stats.bootstrap import REPLICATE_METRICS
from qrprobe.engine.stats.chance import baselines, null_outcomes, null_permutation
from qrprobe.errors import QRProbeInputError
from qrprobe.results import Result, markdown_table, statistics_lines
from qrprobe.synthetic import make_concept_clusters

FAST = dict(k=8, clusterings=3, iters=20, restarts=1, epochs=12, milestones=(8, 10), device="cpu", bootstrap=100)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny probes run far faster on one thread on a loaded machine (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    x, bank, _ = make_concept_clusters(800, dim=16, n_objects=4, n_scenes=2, noise=1.5, seed=3)
    return x, bank


@pytest.fixture(scope="module")
def result(data):
    return evaluate(*data, name="A", **FAST)


def test_every_score_has_an_interval_a_chance_level_and_a_baseline(result):
    r = len(result.seeds)
    assert result.replicates.shape == (r, len(REPLICATE_METRICS), 100)
    assert result.null_replicates.shape == result.replicates.shape
    for m in ("nmi", "ami", "top1", "map", "mi_bits", "nmi_geometric", "nmi_max", "mi_ratio"):
        e = result.summary[m]
        assert e["ci_low"] < e["mean"] < e["ci_high"], m
        assert e["se_seeds"] ** 2 == pytest.approx(max(e["se"] ** 2 - e["se_images"] ** 2, 0), abs=1e-12)
        assert len(e["null_values"]) == r
        assert e["above_null"] == pytest.approx(e["mean"] - e["null_mean"])
        assert all(f"{m}_null" in p for p in result.per_clustering)
    for m in ("nmi", "ami", "top1", "map", "mi_bits"):
        assert "baseline" in result.summary[m]
        assert result.summary[m]["baseline_kind"]
    assert result.summary["nmi"]["above_null_p"] < 0.05  # the concepts explain these clusters
    assert result.summary["ami"]["baseline"] == 0.0
    stats = result.statistics
    assert stats["null"]["repeats"] == 1
    assert stats["null"]["seconds"] > 0
    assert stats["bootstrap"]["replicates"] == 100
    assert stats["bootstrap"]["keys"] == "image_id"
    assert all(p["labels_hash"] and p["test_clusters"] <= p["nonempty_clusters"] for p in result.per_clustering)


def test_new_fields_leave_the_scores_as_they_were(data, result):
    plain = evaluate(*data, **{**FAST, "bootstrap": 0, "null_repeats": 0})
    for m in ("nmi", "ami", "top1", "map", "mi_bits", "cluster_entropy_bits", "cross_entropy_bits", "mi_ratio"):
        assert plain.summary[m]["values"] == result.summary[m]["values"], m
        assert set(plain.summary[m]) == {"mean", "std", "values"} | ({"baseline", "baseline_kind"}
                                                                     if "baseline" in plain.summary[m] else set())
    assert plain.replicates is None
    assert plain.null_replicates is None


def test_saved_and_old_results_load(tmp_path, result):
    result.save(tmp_path / "r")
    back = Result.load(tmp_path / "r")
    np.testing.assert_array_equal(back.replicates, result.replicates)
    assert back.statistics["bootstrap"]["metrics"] == list(REPLICATE_METRICS)
    table = markdown_table([back], intervals=True)
    low, high = back.summary["nmi"]["ci_low"], back.summary["nmi"]["ci_high"]
    assert f"[{low:.2f}, {high:.2f}]" in table  # the interval with the metric's own decimals
    lines = statistics_lines(back)
    assert lines[0].startswith("[low, high]: 95% interval")
    assert any(line.startswith("chance") for line in lines)
    # a result written before intervals existed: no statistics, no replicates, summary mean/std/values only
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    data.pop("statistics")
    data["summary"] = {m: {k: e[k] for k in ("mean", "std", "values")} for m, e in data["summary"].items()}
    (tmp_path / "r" / "results.json").write_text(json.dumps(data))
    (tmp_path / "r" / "replicates.npy").unlink()
    old = Result.load(tmp_path / "r")
    assert old.statistics == {}
    assert statistics_lines(old) == []
    assert "[" not in markdown_table([old], intervals=True)
    assert "no bootstrap replicates" in pairing_problem(old, back)


def _independent(seed: int, n: int = 1500) -> Result:
    """A representation with 8 clusters probed with 30 concepts independent of everything."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, 16)) + 3 * rng.normal(size=(8, 16))[rng.integers(0, 8, n)]).astype(np.float32)
    bank = ConceptBank.from_matrix(sp.csr_matrix((rng.random((n, 30)) < 0.15).astype(np.uint8)),
                                   [f"c{i}" for i in range(30)], image_ids=[f"i{i}" for i in range(n)])
    return evaluate(x, bank, **{**FAST, "epochs": 20, "milestones": (12, 16)})


def test_independent_concepts_score_at_their_chance_level():
    """Concepts independent of the features: the MI estimate equals its null within ±0.05 bits."""
    res = _independent(0)
    mi = res.summary["mi_bits"]
    assert abs(mi["mean"] - mi["null_mean"]) < 0.05
    assert mi["above_null_p"] > 0.05
    assert abs(res.summary["ami"]["mean"] - res.summary["ami"]["null_mean"]) < 2.0


def test_independent_concepts_give_no_negative_information():
    assert _independent(1).summary["mi_bits"]["mean"] >= -0.05


def test_a_planted_difference_is_significant_and_an_identical_representation_is_not(data, result):
    x, bank = data
    rng = np.random.default_rng(9)
    rows = rng.choice(len(x), len(x) // 3, replace=False)
    worse = x.copy()
    worse[rows] = x[rng.permutation(rows)]  # a third of the images' features belong to other images
    planted = evaluate(worse, bank, name="P", **{**FAST, "seed": 100})
    diff = paired_difference(result, planted, "nmi")
    assert diff.mean > 0
    assert diff.p_value < 0.05
    assert diff.ci_low > 0
    again = evaluate(x, bank, name="A again", **FAST)
    assert shared_clusterings(result, again)
    same = paired_difference(result, again, "nmi")
    assert same.mean == 0
    assert same.p_value == 1.0


def test_pairing_is_refused_on_other_images_or_concepts(data, result):
    x, bank = data
    other_concepts = evaluate(x, bank.drop_groups(["Other"]), **FAST)
    assert "different concept banks" in pairing_problem(result, other_concepts)
    with pytest.raises(QRProbeInputError, match="different concept banks"):
        paired_difference(result, other_concepts)
    fewer = evaluate(x[:700], bank.select_rows(np.arange(700)), **FAST)
    assert "different images" in pairing_problem(result, fewer)


def test_one_quantization_probed_with_two_concept_sets_pairs_by_clustering(data):
    x, bank = data
    from qrprobe.engine.config import ProtocolConfig

    quant = quantize(prepare_inputs(x, bank).features, ProtocolConfig.from_params(**FAST))
    a = evaluate(None, bank, quantization=quant)
    b = evaluate(None, bank.drop_groups(["Scene"]), quantization=quant)
    assert shared_clusterings(a, b)
    assert [p["labels_hash"] for p in a.per_clustering] == [p["labels_hash"] for p in b.per_clustering]
    assert not shared_clusterings(a, evaluate(x, bank, **{**FAST, "seed": 50}))


def test_the_null_keeps_splits_and_shuffles_concept_rows(data, result):
    x, bank = data
    perm = null_permutation(bank.n_images, result.seeds[0], 0)
    assert sorted(perm) == list(range(bank.n_images))
    assert (perm != np.arange(bank.n_images)).mean() > 0.9
    np.testing.assert_array_equal(perm, null_permutation(bank.n_images, result.seeds[0], 0))
    assert not np.array_equal(perm, null_permutation(bank.n_images, result.seeds[0], 1))
    from qrprobe.engine.config import ProtocolConfig

    quant = quantize(prepare_inputs(x, bank).features, ProtocolConfig.from_params(**{**FAST, "clusterings": 1}))
    real = probe_all(quant, bank)[0]
    nulls, seconds = null_outcomes(quant, bank, 2)
    assert len(nulls) == 1
    assert len(nulls[0]) == 2
    assert seconds > 0
    for null in nulls[0]:
        np.testing.assert_array_equal(null.split.test, real.split.test)  # same clustering, same split
    assert nulls[0][0].scores["nmi"] < real.scores["nmi"] / 2


def test_baselines_known_answers():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 5, 400)
    y[:150] = 0  # cluster 0 is the largest
    logits = rng.normal(size=(400, 5))
    logits[np.arange(400), y] += 1.0
    log_proba = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    _, details = metrics.score_details(y, log_proba)
    train = np.r_[np.zeros(60, int), rng.integers(0, 5, 100)]
    base = baselines(details, train, 5)
    assert base["top1"] == pytest.approx(100 * np.mean(y == 0))
    constant = np.tile(np.log(np.bincount(train, minlength=5) / len(train)), (400, 1))
    assert base["map"] == pytest.approx(100 * metrics.mean_average_precision(y, constant))
    prior = (np.bincount(train, minlength=5) + 0.5) / (len(train) + 2.5)  # add-½, as the probe's epoch 0
    assert base["mi_bits"] == pytest.approx(metrics.entropy_bits(y) + np.mean(np.log2(prior[y])))
    # NMI of shuffled predictions: the exact expectation over permutations
    shuffled = [skm.normalized_mutual_info_score(y, rng.permutation(details.y_pred)) for _ in range(3000)]
    assert base["nmi"] == pytest.approx(100 * np.mean(shuffled), abs=0.05)
    assert base["ami"] == 0.0
