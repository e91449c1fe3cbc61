"""How sure a ranking is: adjacent-pair tests, rank agreement, the compare section; honest provenance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qrprobe.analysis.compare import chance_table, compare_results
from qrprobe.analysis.significance import adjacent_significance, rank_agreement
from qrprobe.concepts.bank import ConceptBank
from qrprobe.engine.evaluate import evaluate
from qrprobe.engine.stats.bootstrap import REPLICATE_METRICS
from qrprobe.results import Result, summarize
from qrprobe.synthetic import make_concept_combinations
from qrprobe.workflow.analyses import AnalysisInputs, run_analysis
from qrprobe.workflow.specs import CompareSpec

R, B = 5, 300


def _result(name: str, nmi: float, rng: np.random.Generator, *, replicates: bool = True, top1: float | None = None,
            concepts: str = "bank-1") -> Result:
    """A Result whose clusterings scatter around ``nmi``: seed effects (sd 0.5) and test-sampling errors (sd 1,
    half of their variance shared by every clustering and result on these images), with replicates that redraw
    the test-sampling errors in the same way (the shared half from ``_SHARED``, as the hashed weights do)."""
    values = nmi + rng.normal(0, 0.5, R) + np.sqrt(0.5) * (_COMMON + rng.normal(0, 1, R))
    per = [{"clustering": r, "seed": r, "nmi": v, "ami": v - 8, "top1": (top1 or v) - 10 + 0 * v, "map": v - 5,
            "mi_bits": v / 20} for r, v in enumerate(values)]
    res = Result(summarize(per), per, {"k": 100}, list(range(R)), name=name,
                 inputs={"concepts": {"content_hash": concepts}})
    if replicates:
        reps = np.zeros((R, len(REPLICATE_METRICS), B))
        noise = values[:, None] + np.sqrt(0.5) * (_SHARED[None, :] + rng.normal(0, 1, (R, B)))
        for i, m in enumerate(REPLICATE_METRICS):
            if m in res.summary:
                offset = np.mean([p[m] for p in per]) - values.mean()
                reps[:, i, :] = noise + offset if m != "mi_bits" else noise / 20
        res.replicates = reps
        res.statistics = {"bootstrap": {"replicates": B, "scheme": "poisson1-blake2b-splitmix64/1",
                                        "metrics": list(REPLICATE_METRICS), "images_hash": "same-images"}}
    return res


_SHARED = np.random.default_rng(99).normal(0, 1, B)
_COMMON = 0.7


@pytest.fixture
def results() -> list[Result]:
    rng = np.random.default_rng(0)
    return [_result("close-2", 60.0, rng), _result("far", 40.0, rng), _result("close-1", 60.3, rng)]


def test_adjacent_pairs_say_which_steps_of_the_ranking_are_significant(results):
    table = compare_results(results)
    assert table["model"].tolist()[2] == "far"
    assert {"nmi_ci_low", "nmi_ci_high", "top1_ci_low"} <= set(table.columns)
    pairs = adjacent_significance(results, [r.name for r in results], table["model"].tolist(), "nmi")
    assert pairs["next_model"].tolist()[1] == "far"
    close, far = pairs.iloc[0], pairs.iloc[1]
    assert not close["significant"]
    assert far["significant"]
    assert far["significant_holm"]
    assert far["ci_low"] > 0
    assert far["p_value"] < 1e-3
    assert close["ci_low"] < 0 < close["ci_high"]
    assert pairs["clusterings"].tolist() == ["independent", "independent"]
    # Holm: the smaller p-value times 2, the larger times 1 (never below the first)
    assert pairs["p_holm"].tolist() == pytest.approx([max(close["p_value"], 2 * far["p_value"]), 2 * far["p_value"]])


def test_pairs_that_cannot_be_tested_say_why(results):
    rng = np.random.default_rng(1)
    results = [*results, _result("no-reps", 30.0, rng, replicates=False),
               _result("other-bank", 20.0, rng, concepts="bank-2")]
    names = [r.name for r in results]
    ranking = compare_results(results)["model"].tolist()
    pairs = adjacent_significance(results, names, ranking, "nmi").set_index("next_model")
    assert "no bootstrap replicates" in pairs.loc["no-reps", "note"]
    assert np.isnan(pairs.loc["no-reps", "p_value"])
    assert not pairs.loc["no-reps", "significant"]
    assert "no bootstrap replicates" in pairs.loc["other-bank", "note"]  # its neighbour has none either
    swapped = adjacent_significance(results, names, ["far", "other-bank"], "nmi")
    assert "different concept banks" in swapped.loc[0, "note"]


def test_rank_agreement_is_kendall_tau_between_metric_rankings():
    table = pd.DataFrame({"nmi_mean": [3.0, 2.0, 1.0, 0.5], "top1_mean": [1.0, 2.0, 3.0, 4.0],
                          "ami_mean": [3.0, 1.0, 2.0, 0.0]})
    tau = rank_agreement(table).set_index("metric")
    assert tau.loc["NMI", "NMI"] == 1.0
    assert tau.loc["NMI", "top-1"] == -1.0
    assert tau.loc["NMI", "AMI"] == pytest.approx(2 / 3)  # one discordant pair of six
    assert list(tau.index) == ["NMI", "AMI", "top-1"]


def test_compare_section_ranks_by_the_metric_it_says(results):
    inputs = AnalysisInputs(results=results, result_keys=[r.name for r in results])
    out = run_analysis("compare", inputs, CompareSpec(sort_by="ami"))
    tables = {t.name: t for t in out.section.tables()}
    assert "ranked by AMI" in tables["comparison"].caption
    assert {"comparison-adjacent", "comparison-rank-agreement", "comparison-chance"} <= set(tables)
    assert set(tables["comparison-adjacent"].data["metric"]) == {"ami"}
    assert "ranking by AMI" in tables["comparison-adjacent"].title
    printed = out.markdown()
    assert "Adjacent pairs" in printed
    assert "Kendall" in printed
    chance = chance_table(results, [r.name for r in results])
    assert {"nmi_null", "nmi_above_null", "nmi_baseline"} <= set(chance.columns)


# ---------------------------------------------------------------------------------------------- provenance
def _bank(ids):
    _, concepts, _ = make_concept_combinations(n=300, n_bits=2, seed=7)
    matrix = np.hstack([concepts, concepts[:, :1]])
    info = {"experts": [{"name": "imagenet", "config": {"model": "efficientnet-lite0"}},
                        {"name": "color", "config": {}}]}
    return ConceptBank.from_matrix(matrix, ["tabby cat", "espresso", "red"], ["Objects", "Objects", "Texture"],
                                   ["imagenet", "imagenet", "color"], image_ids=ids, info=info)


FAST = dict(k=4, clusterings=1, epochs=2, iters=10, restarts=1, device="cpu", null_repeats=0, bootstrap=0)


def test_circularity_follows_the_concepts_used_and_npy_names(tmp_path):
    from qrprobe.features import write_feature_store

    features, _, _ = make_concept_combinations(n=300, n_bits=2, seed=7)
    ids = [f"i{i}" for i in range(300)]
    bank = _bank(ids)
    store = write_feature_store(tmp_path / "feats", features, ids, model="efficientnet-lite0")
    assert any("circularity" in w for w in evaluate(store, bank, **FAST).inputs["warnings"])
    assert evaluate(store, bank.drop_groups(["Objects"]), **FAST).inputs["warnings"] == []
    np.save(tmp_path / "efficientnet-lite0.npy", features)
    named_file = evaluate(str(tmp_path / "efficientnet-lite0.npy"), bank, **FAST)
    assert any("circularity" in w for w in named_file.inputs["warnings"])
    np.save(tmp_path / "features.npy", features)
    assert any("circularity" in w for w in evaluate(str(tmp_path / "features.npy"), bank, name="efficientnet-lite0",
                                                    **FAST).inputs["warnings"])
    anonymous = evaluate(str(tmp_path / "features.npy"), bank, **FAST)
    assert anonymous.inputs["warnings"] == []
    assert any("carry no model name" in n for n in anonymous.inputs["notes"])


def test_rows_matched_by_position_are_announced_on_the_console(capsys, caplog):
    """In the CLI (console output) the note prints even with --quiet; a library call logs it (logger
    ``qrprobe``, INFO) and records it in the result."""
    import logging

    from qrprobe.progress import console_output

    features, _, _ = make_concept_combinations(n=300, n_bits=2, seed=7)
    with console_output():
        res = evaluate(features, _bank(None), **FAST)
    assert res.inputs["matched_by"] == "position"
    err = capsys.readouterr().err
    assert "matched by position (300 rows)" in err
    assert any("matched by position" in n for n in res.inputs["notes"])
    with caplog.at_level(logging.INFO, logger="qrprobe"):
        evaluate(features, _bank(None), **FAST)
    assert "matched by position" not in capsys.readouterr().err
    assert any("matched by position (300 rows)" in r.getMessage() for r in caplog.records)
