"""Degenerate results (issue 11, class 1): never a confident number that measures nothing.

No meaningful number exists → exit 2 with the reason (constant features, one cluster, concepts that never
vary, test splits of one cluster). A number that exists but is unreliable → a warning printed by the CLI,
recorded in results.json (``inputs.flags`` with a code, ``inputs.warnings``) and marked in the report.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _hostile import FAST, assert_input_error
from qrprobe.cli.main import main
from qrprobe.engine.degenerate import (
    DOMINANT_SHARE,
    check_quantization,
    clustering_flags,
    concept_flags,
    dominant_threshold,
    score_flags,
)
from qrprobe.engine.evaluate import evaluate
from qrprobe.errors import QRProbeInputError
from qrprobe.results import Result


def _flags(out) -> dict[str, dict]:
    data = json.loads((out / "results.json").read_text())
    return {f["code"]: f for f in data["inputs"]["flags"]}


# ---------------------------------------------------------------------------------------------- refused
def test_constant_features_are_refused_not_scored_100(write_example, tmp_path, capsys):
    _, concepts = write_example(tmp_path / "ex")
    np.save(tmp_path / "const.npy", np.zeros((120, 8), np.float32))
    out = tmp_path / "res"
    err = assert_input_error(capsys, ["evaluate", str(tmp_path / "const.npy"), str(concepts), *FAST, "-o", str(out)],
                             "FEATURES", "one cluster", "constant", out=out)
    assert "100 %" in err  # says why the number would have looked perfect


def test_a_single_distinct_point_is_refused_in_every_protocol_path(bank_of, tmp_path):
    bank = bank_of(np.random.default_rng(0).random((60, 3)) < 0.5)
    same = np.ones((60, 4), np.float32) * 3.0
    with pytest.raises(QRProbeInputError, match="one cluster"):
        evaluate(same, bank, k=3, clusterings=1, epochs=1, iters=3, restarts=1)
    from qrprobe.workflow.analyses import analyze

    with pytest.raises(QRProbeInputError, match="one cluster"):  # the K sweep goes through the same path
        analyze("ksweep", features=same, concepts=bank, k=[2, 3], clusterings=1, epochs=1, iters=3, restarts=1)


def test_a_concept_present_in_every_image_is_refused(write_example, tmp_path, capsys):
    features, _ = write_example(tmp_path / "ex")
    table = tmp_path / "all.csv"
    pd.DataFrame({"image_id": [str(i) for i in range(120)], "concept": "everywhere"}).to_csv(table, index=False)
    out = tmp_path / "res"
    assert_input_error(capsys, ["evaluate", str(features), str(table), *FAST, "-o", str(out)],
                       "no concept varies", "everywhere", out=out)


def test_concepts_that_never_vary_are_refused_even_mixed(bank_of, tmp_path):
    matrix = np.zeros((50, 3), np.uint8)
    matrix[:, 0] = 1  # present everywhere; the others nowhere
    with pytest.raises(QRProbeInputError, match="no concept varies"):
        bank_of(matrix).check_usable()
    matrix[7, 2] = 1  # one varying concept is enough
    bank_of(matrix).check_usable()


def test_test_splits_of_a_single_cluster_are_refused(bank_of, tmp_path):
    # 290 images at one point, 10 spread ones: K=8 puts the 10 in clusters too small to reach the test split
    rng = np.random.default_rng(1)
    x = np.zeros((300, 8), np.float32)
    x[:10] = rng.normal(size=(10, 8)) * 5
    bank = bank_of(rng.random((300, 4)) < 0.5)
    with pytest.raises(QRProbeInputError, match="holds a single cluster"):
        evaluate(x, bank, k=8, clusterings=2, epochs=1, iters=5, restarts=1)


# ---------------------------------------------------------------------------------------------- flagged
def test_k2_on_15_images_is_flagged_in_the_cli_and_in_results_json(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(8, 4)), rng.normal(size=(7, 4)) + 20]).astype(np.float32)
    np.save(tmp_path / "f.npy", x)
    np.save(tmp_path / "c.npy", (rng.random((15, 3)) < 0.5).astype(np.uint8))
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    out = tmp_path / "res"
    assert main(["evaluate", str(tmp_path / "f.npy"), str(tmp_path / "c.npy"), "--concept-names",
                 str(tmp_path / "names.txt"), "--k", "2", "--clusterings", "2", "--epochs", "2", "--quiet",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    flags = _flags(out)
    assert flags["few_test_images"]["level"] == "warning"
    assert flags["few_test_images"]["clusterings"] == [0, 1]
    assert "warning: f (K=2): the test split has 3 images for 2 clusters" in err  # names model and K
    assert flags["few_test_images"]["message"] in json.loads((out / "results.json").read_text())["inputs"]["warnings"]


def test_duplicate_points_give_fewer_clusters_than_k_and_a_warning(bank_of, tmp_path):
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(3, 6)) * 4, 40, axis=0).astype(np.float32)
    res = evaluate(x, bank_of(rng.random((120, 4)) < 0.5), k=6, clusterings=1, epochs=1, iters=5, restarts=1)
    flags = {f["code"]: f for f in res.inputs["flags"]}
    assert res.per_clustering[0]["nonempty_clusters"] == 3
    assert "only 3 of K=6 clusters are non-empty" in flags["empty_clusters"]["message"]


def test_a_dominant_cluster_is_flagged(bank_of, tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros((200, 4)), rng.normal(size=(10, 4)) + 30, rng.normal(size=(10, 4)) - 30])
    res = evaluate(x.astype(np.float32), bank_of(rng.random((220, 3)) < 0.5), k=3, clusterings=1, epochs=1,
                   iters=10, restarts=2)
    flag = next(f for f in res.inputs["flags"] if f["code"] == "dominant_cluster")
    share = np.bincount(res.clusterings[0]).max() / 220
    assert share > dominant_threshold(3) >= DOMINANT_SHARE
    assert f"holds {share:.0%} of the images" in flag["message"]


def test_a_sound_result_has_no_warning(write_example, tmp_path):
    features, concepts = write_example(tmp_path / "ex", n=400)
    res = evaluate(str(features), str(concepts), k=4, clusterings=1, epochs=5, iters=10, restarts=1)
    assert [f for f in res.inputs["flags"] if f["level"] == "warning"] == []
    assert res.inputs["warnings"] == []


def test_the_report_marks_flagged_results(bank_of, tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(3, 6)) * 4, 40, axis=0).astype(np.float32)
    res = evaluate(x, bank_of(rng.random((120, 4)) < 0.5), k=6, clusterings=1, epochs=1, iters=5, restarts=1,
                   name="duplicates")
    res.save(tmp_path / "res")
    assert main(["report", str(tmp_path / "res"), "-o", str(tmp_path / "r.html"), "--pairs", "0"]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "duplicates ⚠" in html
    assert "only 3 of K=6 clusters are non-empty" in html
    assert Result.load(tmp_path / "res").inputs["flags"][0]["code"] == "empty_clusters"


# ---------------------------------------------------------------------------------------------- the rules
def test_clustering_flags_against_hand_counts():
    labels = np.array([[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1]])
    flags = {f.code: f for f in clustering_flags(labels, 3)}
    assert flags["empty_clusters"].clusterings == (0,)          # clustering 0 uses 2 of 3 clusters
    assert flags["dominant_cluster"].clusterings == (0,)        # 10/11 = 91% ≥ 75% (K = 3)
    assert 10 / 11 > dominant_threshold(3) > 4 / 11
    assert clustering_flags(labels[1:], 3) == []


def test_score_flags_negative_mi_single_cluster_and_undefined():
    rows = [{"n_test": 40, "mi_bits": -0.3, "nmi": 10.0}, {"n_test": 40, "mi_bits": 0.1, "nmi": float("nan")}]
    flags = {f.code: f for f in score_flags(rows, [2, 1], [4, 4])}
    assert set(flags) == {"negative_mi", "test_single_cluster", "undefined_score"}
    assert flags["test_single_cluster"].clusterings == (1,)
    assert "-0.100 bits" in flags["negative_mi"].message
    with pytest.raises(QRProbeInputError, match="single cluster"):
        score_flags(rows, [1, 1], [4, 4])


def test_concept_notes_and_the_single_cluster_check(bank_of):
    matrix = np.zeros((6, 3), np.uint8)
    matrix[:, 0] = 1
    matrix[2, 1] = 1
    (note,) = concept_flags(bank_of(matrix, ["sky", "dog", "cat"]))
    assert note.level == "note"
    assert "2 of 3 concepts" in note.message
    assert "sky" in note.message
    check_quantization(np.array([[0, 1, 1]]), np.ones(2), [0])
    with pytest.raises(QRProbeInputError, match="all dimensions are constant"):
        check_quantization(np.array([[0, 1, 1], [2, 2, 2]]), np.zeros(2), [0, 1])
