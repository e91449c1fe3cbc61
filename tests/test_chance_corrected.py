"""Chance-corrected comparison (issue 19): corrected scores, 'at chance', ties, the chance-gap rule, flags."""

from __future__ import annotations

import numpy as np
import pytest

from qrprobe.analysis.compare import compare_results, tie_ranks
from qrprobe.analysis.significance import adjacent_significance, chance_level
from qrprobe.engine.degenerate import clustering_flags, dominant_threshold, probe_flags
from qrprobe.engine.evaluate import evaluate
from qrprobe.report.comparison import comparison_from_results
from qrprobe.synthetic import make_concept_clusters

FAST = dict(clusterings=2, iters=10, restarts=2, kmeans_init="k-means++", epochs=5, milestones=(3, 4),
            device="cpu", null_repeats=0, bootstrap=50)


def _catch_all(share: float, seed: int, n: int = 300, k: int = 5) -> np.ndarray:
    """K well-separated blobs, one holding ``share`` of the images; which blob an image is in is random."""
    rng = np.random.default_rng([seed, 19])
    big = round(share * n)
    labels = rng.permutation(np.r_[np.zeros(big, int), 1 + np.arange(n - big) % (k - 1)])
    return (np.eye(k, 6)[labels] * 30 + rng.normal(size=(n, 6))).astype(np.float32)


@pytest.fixture(scope="module")
def at_chance_pair():
    """Two representations whose blobs are independent of the concepts, with a catch-all of 50% and 60%: every
    probe keeps the cluster prior, raw top-1 differs by cluster sizes alone."""
    _, bank, _ = make_concept_clusters(300, dim=8, seed=0)
    return [evaluate(_catch_all(share, seed), bank, k=5, name=name, **FAST)
            for share, seed, name in ((0.5, 0, "half"), (0.6, 1, "sixty"))]


def test_every_probe_keeps_the_prior_flagged_and_at_chance(at_chance_pair):
    for res in at_chance_pair:
        assert res.statistics["prior_kept"] == [0, 1]
        codes = {f["code"] for f in res.inputs["flags"]}
        assert "prior_kept" in codes
        assert any("probe kept the cluster prior" in w for w in res.inputs["warnings"])
        for m in ("nmi_corrected", "top1_corrected", "map_corrected", "mi_corrected_bits"):
            assert res.summary[m]["at_chance"] is True
            assert res.summary[m]["mean"] == pytest.approx(0.0, abs=1e-5), m
    half, sixty = at_chance_pair
    assert sixty.summary["top1"]["mean"] - half.summary["top1"]["mean"] > 5  # raw top-1: cluster sizes


def test_a_tie_at_chance_shares_its_rank_and_gets_no_p_value(at_chance_pair):
    names = [r.name for r in at_chance_pair]
    table = compare_results(at_chance_pair, sort_by="top1")
    assert table["rank"].tolist() == [1, 1]
    assert table["at_chance"].all()
    assert table["ranked_by"].iloc[0] == "top1_corrected"
    pairs = adjacent_significance(at_chance_pair, names, table["model"].tolist(), "top1_corrected")
    assert np.isnan(pairs["p_value"].iloc[0])
    assert not pairs["significant"].iloc[0]
    assert pairs["note"].iloc[0] == "tie: both at chance"
    # ranked by the raw score, the catch-all's larger share wins: no tie, but its lead is the chance level's
    raw = compare_results(at_chance_pair, sort_by="top1", raw=True)
    assert raw["model"].tolist() == ["sixty", "half"]
    assert raw["rank"].tolist() == [1, 2]
    assert "top1_corrected_mean" not in raw.columns
    raw_pairs = adjacent_significance(at_chance_pair, names, raw["model"].tolist(), "top1")
    gap = at_chance_pair[1].summary["top1"]["mean"] - at_chance_pair[0].summary["top1"]["mean"]
    assert raw_pairs["chance_difference"].iloc[0] == pytest.approx(
        chance_level(at_chance_pair[1], "top1") - chance_level(at_chance_pair[0], "top1"))
    assert raw_pairs["chance_difference"].iloc[0] == pytest.approx(gap, abs=1e-5)
    assert gap > 0
    assert not raw_pairs["significant"].iloc[0]
    assert "not beyond chance" in raw_pairs["note"].iloc[0]


def test_the_report_shows_at_chance_not_a_zero_width_interval(at_chance_pair):
    names = [r.name for r in at_chance_pair]
    section = comparison_from_results(at_chance_pair, names, names, sort_by="nmi")
    shown = section.tables()[0].display_frame()
    assert (shown.filter(like="NMI") == "at chance").all(axis=None)
    assert "[0.00, 0.00]" not in shown.to_string()
    adjacent = next(t for t in section.tables() if t.name == "comparison-adjacent").display_frame()
    assert adjacent["p"].iloc[0] == "–"
    assert "tie" in adjacent["note"].iloc[0]


def test_tie_ranks():
    assert tie_ranks([3.0, 2.0, 2.0, 1.0]) == [1, 2, 2, 4]
    assert tie_ranks([0.0, 1e-9, -5.0, np.nan, np.nan]) == [1, 1, 3, 4, 5]


def test_dominant_cluster_threshold_follows_k():
    assert dominant_threshold(50) == pytest.approx(0.2)
    assert dominant_threshold(1000) == pytest.approx(0.2)
    assert dominant_threshold(10) == pytest.approx(0.5)
    assert dominant_threshold(3) == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    catch_all = rng.permutation(np.r_[np.zeros(210, int), 1 + np.arange(790) % 49])  # 21% at K = 50
    flags = clustering_flags(catch_all[None], 50)
    assert [f.code for f in flags] == ["dominant_cluster"]
    assert "K=50" in flags[0].message
    assert clustering_flags(rng.permutation(np.arange(1000) % 50)[None], 50) == []


def test_top1_mostly_its_majority_is_flagged():
    rows = [{"top1": 30.0, "top1_baseline": 27.0}, {"top1": 84.0, "top1_baseline": 50.0},
            {"top1": 10.0, "top1_baseline": 4.0}, {"top1": 27.0, "top1_baseline": 27.0, "probe_kept_prior": True}]
    flags = {f.code: f for f in probe_flags(rows)}
    assert flags["top1_majority"].clusterings == (0,)
    assert flags["prior_kept"].clusterings == (3,)


def test_chance_levels_are_the_expectations_over_permutations():
    """Top-1 and mAP chance levels against Monte-Carlo permutations of the predictions / scores."""
    from qrprobe import metrics
    from qrprobe.engine.stats.corrected import ChanceReference, top1_chance

    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(40, int), rng.integers(1, 6, 60)]
    logits = rng.normal(size=(100, 6))
    log_proba = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    _, details = metrics.score_details(y, log_proba)
    perms = [rng.permutation(100) for _ in range(4000)]
    top1 = np.mean([100 * np.mean(y == details.y_pred[p]) for p in perms])
    assert top1_chance(details)[0] == pytest.approx(top1, abs=0.2)
    ap = np.mean([100 * metrics.mean_average_precision(y, log_proba[p]) for p in perms[:1500]])
    ref = ChanceReference.from_train(y, 6)
    assert ref.map_chance(details) == pytest.approx(ap, abs=0.3)
    constant = ChanceReference.from_train(y, 6, kept_prior=True)
    assert constant.map_chance(details) == pytest.approx(100 / 6)


def test_warnings_name_model_and_k_and_survive_a_reload(at_chance_pair, tmp_path, capsys):
    from qrprobe.engine.evaluate import print_warnings
    from qrprobe.results import Result

    half = at_chance_pair[0]
    half.save(tmp_path / "half")
    capsys.readouterr()
    print_warnings(Result.load(tmp_path / "half"), progress=True)  # what a study prints when it reuses it
    err = capsys.readouterr().err
    assert "warning: half (K=5): probe kept the cluster prior" in err
    assert err.count("probe kept the cluster prior") == 1


def test_breakdown_flags_a_group_that_lowers_mi_beyond_its_interval():
    from qrprobe.analysis.breakdown import mi_drop

    before = {"mi_bits": [1.00, 1.10, 0.95]}
    assert mi_drop(before, {"mi_bits": [0.50, 0.62, 0.44]})       # −0.5 ± small: flagged
    assert not mi_drop(before, {"mi_bits": [1.05, 1.00, 1.00]})   # within noise
    assert not mi_drop(before, {"mi_bits": [1.20, 1.30, 1.10]})   # a gain
    assert not mi_drop(None, before)
