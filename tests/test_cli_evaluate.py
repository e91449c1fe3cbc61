"""``qrprobe evaluate``: outputs, row matching, and bad input (exit 2, a clear message, no partial output)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qrprobe.cli.main import main
from qrprobe.concepts import ConceptBank
from qrprobe.features import write_feature_store
from qrprobe.synthetic import make_concept_combinations

FAST = ["--k", "4", "--clusterings", "2", "--iters", "20", "--restarts", "2", "--epochs", "5",
        "--kmeans-init", "k-means++", "--device", "cpu", "--quiet"]
METRICS = ("nmi", "ami", "top1", "map", "mi_bits")


@pytest.fixture
def inputs(tmp_path):
    features, concepts, _ = make_concept_combinations(n=400, n_bits=2, seed=0)
    np.save(tmp_path / "features.npy", features)
    np.save(tmp_path / "concepts.npy", concepts)
    (tmp_path / "names.txt").write_text("Objects\tcat\nScene\tbeach\n")
    ids = [f"img{i:04d}" for i in range(400)]
    write_feature_store(tmp_path / "store", features, ids, model="toy")
    bank = ConceptBank.from_matrix(concepts, ["cat", "beach"], ["Objects", "Scene"], image_ids=ids)
    bank.save(tmp_path / "bank")
    rows, cols = np.nonzero(concepts)
    pd.DataFrame({"image_id": np.asarray(ids)[rows], "concept": np.array(["cat", "beach"])[cols],
                  "group": np.array(["Objects", "Scene"])[cols]}).to_csv(tmp_path / "long.csv", index=False)
    return tmp_path


def _run(*argv: str) -> int:
    return main(["evaluate", *map(str, argv)])


def test_npy_inputs_write_results_json_and_print_markdown(inputs, capsys):
    out = inputs / "out"
    assert _run(inputs / "features.npy", inputs / "concepts.npy", "--concept-names", inputs / "names.txt",
                "-o", out, *FAST) == 0
    results = json.loads((out / "results.json").read_text())
    for metric in METRICS:
        entry = results["summary"][metric]
        assert set(entry) >= {"mean", "std", "values"}
        assert len(entry["values"]) == 2
    assert results["summary"]["top1"]["mean"] > 95
    assert results["config"]["k"] == 4
    assert results["seeds"] == [0, 1]
    assert results["inputs"]["matched_by"] == "position"
    printed = capsys.readouterr().out
    assert printed.startswith("| representation | K | R | NMI |")
    assert "| features | 4 | 2 |" in printed
    assert (out / "results.md").read_text().strip() == printed.strip()


def test_store_with_bank_and_long_table_match_by_image_id(inputs):
    # one test: the three runs are the three sides of the comparison
    rng = np.random.default_rng(0)
    perm = rng.permutation(400)
    bank = ConceptBank.load(inputs / "bank")
    bank.select_rows(perm).save(inputs / "shuffled")  # same images, other order: must be re-aligned
    scores = []
    for concepts in ("bank", "shuffled", "long.csv"):
        out = inputs / f"out-{concepts}"
        assert _run(inputs / "store", inputs / concepts, "-o", out, *FAST) == 0
        results = json.loads((out / "results.json").read_text())
        assert results["inputs"]["matched_by"] == "image_id"
        assert results["name"] == "toy"
        scores.append(results["summary"]["nmi"]["values"])
    assert scores[0] == scores[1] == scores[2]


def test_group_selection(inputs):
    out = inputs / "objects"
    assert _run(inputs / "store", inputs / "bank", "--groups", "Objects", "-o", out, *FAST) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["inputs"]["concepts"]["groups"] == ["Objects"]
    assert results["summary"]["top1"]["mean"] < 75  # one of the two defining concepts is gone


def _bad(tmp_path, name, array):
    np.save(tmp_path / name, array)
    return tmp_path / name


@pytest.mark.parametrize("case", [
    "nan", "inf", "rows", "ids", "k1", "kbig", "empty", "zeros", "nonbinary", "dupnames", "dupids", "group",
    "missing-features", "missing-concepts", "names-count", "no-names",
])
def test_bad_input_exits_2_with_a_clear_message_and_no_output(inputs, case, capsys):
    f, c, names = inputs / "features.npy", inputs / "concepts.npy", inputs / "names.txt"
    extra: list = ["--concept-names", names]
    features = np.load(f)
    expected = {
        "nan": "non-finite value nan at row 5", "inf": "non-finite value inf", "rows": "row count mismatch",
        "ids": "image ids differ", "k1": "≥ 2", "kbig": "exceeds the number of images", "empty": "no concepts",
        "zeros": "all zeros", "nonbinary": "binary", "dupnames": "duplicate concept names",
        "dupids": "duplicate image ids", "group": "unknown concept group", "missing-features": "file not found",
        "missing-concepts": "file not found", "names-count": "lists 1 concepts but", "no-names": "--concept-names",
    }[case]
    k_args = list(FAST)
    if case == "nan":
        features[5, 3] = np.nan
        f = _bad(inputs, "bad.npy", features)
    elif case == "inf":
        features[7, 0] = np.inf
        f = _bad(inputs, "bad.npy", features)
    elif case == "rows":
        f = _bad(inputs, "bad.npy", features[:-3])
    elif case == "ids":
        ids = [f"other{i}" for i in range(400)]
        write_feature_store(inputs / "store2", features, ids)
        f, c, extra = inputs / "store2", inputs / "bank", []
    elif case == "k1":
        k_args[1] = "1"
    elif case == "kbig":
        k_args[1] = "401"
    elif case == "empty":
        c = _bad(inputs, "empty.npy", np.zeros((400, 0), np.uint8))
        (inputs / "none.txt").write_text("")
        extra = ["--concept-names", inputs / "none.txt"]
    elif case == "zeros":
        c = _bad(inputs, "zeros.npy", np.zeros((400, 2), np.uint8))
    elif case == "nonbinary":
        c = _bad(inputs, "nb.npy", np.full((400, 2), 2, np.uint8))
    elif case == "dupnames":
        (inputs / "dup.txt").write_text("Objects\tcat\nScene\tcat\n")
        extra = ["--concept-names", inputs / "dup.txt"]
    elif case == "dupids":
        features_small = features[:2]
        write_feature_store(inputs / "store3", features_small, ["a", "b"])
        pd.DataFrame({"image_id": ["a", "a"], "path": ["", ""]}).to_parquet(inputs / "store3" / "index.parquet")
        f, c, extra = inputs / "store3", inputs / "bank", []
    elif case == "group":
        extra += ["--groups", "Material"]
    elif case == "missing-features":
        f = inputs / "nope.npy"
    elif case == "missing-concepts":
        c = inputs / "nope"
    elif case == "names-count":
        (inputs / "one.txt").write_text("Objects\tcat\n")
        extra = ["--concept-names", inputs / "one.txt"]
    elif case == "no-names":
        extra = []
    out = inputs / "out-bad"
    assert _run(f, c, *extra, "-o", out, *k_args) == 2
    err = capsys.readouterr().err
    assert err.startswith("qrprobe evaluate: error:")
    assert expected in err
    assert not out.exists()
    assert not [p for p in inputs.iterdir() if p.name.startswith(".out-bad")]


def test_existing_output_is_not_overwritten_without_flag(inputs, capsys):
    out = inputs / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert _run(inputs / "features.npy", inputs / "concepts.npy", "--concept-names", inputs / "names.txt",
                "-o", out, *FAST) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "precious"


def test_console_script_exit_code(inputs):
    proc = subprocess.run([sys.executable, "-m", "qrprobe", "evaluate", str(inputs / "nope.npy"),
                           str(inputs / "concepts.npy"), "-o", str(inputs / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "file not found" in proc.stderr


def test_console_script_help():
    help_text = subprocess.run([sys.executable, "-m", "qrprobe", "evaluate", "--help"], capture_output=True,
                               text=True).stdout
    for flag in ("--k", "--clusterings", "--seed", "--out", "--concept-names", "--groups", "--lr", "--epochs"):
        assert flag in help_text


def test_sharded_store_streams_and_scores_like_the_array(inputs):
    from qrprobe.engine.config import ProbeConfig, ProtocolConfig
    from qrprobe.engine.evaluate import evaluate
    from qrprobe.engine.inputs import ShardedRows, load_features

    features = np.load(inputs / "features.npy")
    ids = [f"img{i:04d}" for i in range(400)]
    store = write_feature_store(inputs / "sharded", features, ids, shard_rows=64)
    assert len(store.manifest["shards"]) == 7
    rows = load_features(inputs / "sharded").array
    assert isinstance(rows, ShardedRows)
    assert rows.shape == (400, 16)
    np.testing.assert_array_equal(rows[60:130], features[60:130])
    np.testing.assert_array_equal(np.asarray(rows), features)
    cfg = ProtocolConfig(k=4, clusterings=1, iters=10, kmeans_init="k-means++", device="cpu",
                         probe=ProbeConfig(epochs=3))
    bank = ConceptBank.load(inputs / "bank")
    a = evaluate(inputs / "sharded", bank, config=cfg)
    b = evaluate(features, bank.select_rows(np.arange(400)), config=cfg)
    assert a.per_clustering[0]["nmi"] == b.per_clustering[0]["nmi"]


def test_printed_table_has_intervals_chance_and_baselines(inputs, capsys):
    a = inputs / "a"
    assert _run(inputs / "store", inputs / "bank", "-o", a, "--name", "A", "--bootstrap", "50", *FAST) == 0
    printed = capsys.readouterr().out
    summary = json.loads((a / "results.json").read_text())["summary"]["nmi"]
    assert f"[{summary['ci_low']:.2f}, {summary['ci_high']:.2f}]" in printed  # NMI's own decimals
    assert "- chance (concepts shuffled across images, 1 repeat(s)" in printed
    assert "- baselines: NMI" in printed
    assert (a / "replicates.npy").is_file()
    assert (a / "null_replicates.npy").is_file()


@pytest.fixture
def two_results(inputs) -> tuple[Path, Path]:
    """Results A (bootstrap, chance) and B (another seed, bootstrap, no chance) of the same inputs."""
    a, b = inputs / "a", inputs / "b"
    with contextlib.redirect_stdout(io.StringIO()):
        assert _run(inputs / "store", inputs / "bank", "-o", a, "--name", "A", "--bootstrap", "50", *FAST) == 0
        assert _run(inputs / "store", inputs / "bank", "-o", b, "--name", "B", "--seed", "10", "--bootstrap",
                    "50", "--null-repeats", "0", *FAST) == 0
    return a, b


def test_compare_pairs_results(two_results, inputs, capsys):
    a, b = two_results
    assert main(["compare", str(a), str(b), "--sort-by", "ami", "-o", str(inputs / "cmp")]) == 0
    printed = capsys.readouterr().out
    assert "ranked by AMI" in printed
    assert "Adjacent pairs in the ranking by AMI" in printed
    assert "Rank agreement between metrics (Kendall τ)" in printed
    adjacent = pd.read_csv(inputs / "cmp" / "tables" / "comparison-adjacent.csv")
    assert adjacent.loc[0, "metric"] == "ami"
    # the two toy results score AMI 100 both: an exact tie is reported as one, with no test (issue 19)
    assert adjacent.loc[0, "difference"] == 0
    assert adjacent.loc[0, "note"].startswith("tie")
    assert not np.isfinite(adjacent.loc[0, "p_value"])
    assert not adjacent.loc[0, "significant"]


def test_compare_solver_probes_the_same_clusterings_with_both_solvers(inputs, capsys):
    out = inputs / "both"
    assert _run(inputs / "store", inputs / "bank", "-o", out, *FAST, "--compare-solver", "lbfgs") == 0
    printed = capsys.readouterr().out
    assert "| toy | 4 | 2 |" in printed
    assert "| toy (solver lbfgs) | 4 | 2 |" in printed
    main_result, other = (json.loads((d / "results.json").read_text()) for d in (out, out / "solver-lbfgs"))
    assert (main_result["config"]["probe"]["solver"], other["config"]["probe"]["solver"]) == ("sgd", "lbfgs")
    np.testing.assert_array_equal(np.load(out / "clusterings.npy"), np.load(out / "solver-lbfgs" / "clusterings.npy"))
    assert not np.array_equal(np.load(out / "coef.npy"), np.load(out / "solver-lbfgs" / "coef.npy"))
    assert main_result["timings"]["quantize"] == other["timings"]["quantize"] > 0
