"""Bad inputs and arguments (issue 11, classes 5 and 6): one line naming the input, exit 2, nothing written.

Class 5: damaged or forged files and out-of-range arguments used to end in tracebacks. Class 6: inputs that
used to give an empty or meaningless output with exit code 0.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _hostile import FAST, assert_input_error, evaluate_example
from qrprobe.cli.main import main
from qrprobe.features import write_feature_store
from qrprobe.synthetic import write_image_folder


@pytest.fixture
def example(write_example, tmp_path):
    return write_example(tmp_path / "ex")


@pytest.fixture
def result(example, tmp_path):
    return evaluate_example(example, tmp_path / "res")


def _damage(path, how: str) -> None:
    if how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(b"\x00garbage\xff" * 10)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif how == "json-list":
        path.write_text("[1, 2, 3]")


# ---------------------------------------------------------------------------------------------- class 5
@pytest.mark.parametrize(("member", "how"), [("matrix.npz", "garbage"), ("matrix.npz", "truncated"),
                                        ("concepts.parquet", "garbage"), ("index.parquet", "empty"),
                                        ("manifest.json", "garbage"), ("manifest.json", "json-list")])
def test_a_damaged_concept_bank(example, tmp_path, capsys, member, how):
    features, concepts = example
    _damage(concepts / member, how)
    out = tmp_path / "r"
    assert_input_error(capsys, ["evaluate", str(features), str(concepts), *FAST, "-o", str(out)],
                       str(concepts), out=out)


@pytest.mark.parametrize(("member", "how"), [("features-00000.npy", "empty"), ("features-00000.npy", "truncated"),
                                        ("index.parquet", "garbage"), ("manifest.json", "garbage"),
                                        ("manifest.json", "json-list")])
def test_a_damaged_feature_store(example, tmp_path, capsys, member, how):
    _, concepts = example
    store = write_feature_store(tmp_path / "store", np.load(example[0]))
    _damage(store.path / member, how)
    out = tmp_path / "r"
    assert_input_error(capsys, ["evaluate", str(store.path), str(concepts), *FAST, "-o", str(out)], "store",
                       out=out)


@pytest.mark.parametrize("how", ["empty", "garbage", "truncated"])
def test_a_damaged_npy(example, tmp_path, capsys, how):
    _, concepts = example
    bad = tmp_path / "f.npy"
    np.save(bad, np.ones((120, 8), np.float32))
    _damage(bad, how)
    assert_input_error(capsys, ["evaluate", str(bad), str(concepts), *FAST, "-o", str(tmp_path / "r")],
                       "f.npy", out=tmp_path / "r")


@pytest.mark.parametrize(("member", "content"), [("results.json", "{bad json"), ("results.json", "[]"),
                                            ("results.json", '{"format": "qrprobe.result/1"}'),
                                            ("clusterings.npy", None), ("predictions.npy", b"")])
@pytest.mark.parametrize("command", ["explain", "report"])
def test_a_damaged_result(result, tmp_path, capsys, member, content, command):
    if content is None:  # clusterings of the wrong shape
        np.save(result / member, np.zeros((1, 7), np.int32))
    elif isinstance(content, bytes):
        (result / member).write_bytes(content)
    else:
        (result / member).write_text(content)
    args = [command, str(result), "-o", str(tmp_path / ("x" if command == "explain" else "x.html"))]
    assert_input_error(capsys, args, "res", out=tmp_path / args[-1])


def test_a_result_with_cluster_ids_out_of_range(result, tmp_path, capsys):
    ids = np.load(result / "clusterings.npy")
    ids[0, 0] = 999
    np.save(result / "clusterings.npy", ids)
    assert_input_error(capsys, ["explain", str(result), "-o", str(tmp_path / "x")], "cluster ids outside",
                       out=tmp_path / "x")


@pytest.mark.parametrize(("flag", "value"), [("--lr", "nan"), ("--lr", "1e308"), ("--weight-decay", "inf"),
                                        ("--seed", "-1"), ("--seed", "99999999999999999999"),
                                        ("--milestones", "9,1,-3"), ("--lr-decay", "-1"), ("--k", "1"),
                                        ("--test-fraction", "1.5"), ("--clusterings", "0")])
def test_bad_protocol_values_name_their_flag(example, tmp_path, capsys, flag, value):
    features, concepts = example
    out = tmp_path / "r"
    assert_input_error(capsys, ["evaluate", str(features), str(concepts), *FAST, f"{flag}={value}", "-o", str(out)],
                       f"{flag}:", out=out)


@pytest.mark.parametrize(("args", "named"), [
    (["extract", "pixels-4", "IMGS", "--workers", "-1"], "--workers"),
    (["extract", "pixels-4", "IMGS", "--chunk-size", "0"], "--chunk-size"),
    (["extract", "efficientnet-lite0-random", "IMGS", "--image-size", "0"], "--image-size"),
    (["label", "IMGS", "--experts", "color", "--workers", "-1"], "--workers"),
    (["label", "IMGS", "--experts", "color", "--max-side", "0"], "--max-side"),
    (["label", "IMGS", "--experts", "color", "--batch-size", "0"], "--batch-size"),
    (["example", "--n", "-5"], "--n"), (["example", "--n", "0"], "--n"), (["example", "--n", "1000000000000"], "--n"),
])
def test_bad_run_arguments(tmp_path, capsys, args, named):
    images = write_image_folder(tmp_path / "imgs", {"a": 2, "b": 2})
    args = [str(images) if a == "IMGS" else a for a in args]
    out = tmp_path / "out"
    assert_input_error(capsys, [*args, "-o", str(out)], named, out=out)


def test_threads_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:  # an argparse type: usage and one error line, exit 2
        main(["extract", "pixels-4", str(tmp_path), "--threads", "-1", "-o", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert "--threads" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("pairs", ["0", "-3"])
def test_explain_pairs_zero_leaves_no_output(result, tmp_path, capsys, pairs):
    assert_input_error(capsys, ["explain", str(result), "--pairs", pairs, "-o", str(tmp_path / "x")], "--pairs",
                       out=tmp_path / "x")


def test_an_unwritable_output_is_found_before_any_work(example, tmp_path, capsys, monkeypatch):
    import qrprobe._atomic as atomic
    import qrprobe.engine.evaluate as engine

    features, concepts = example
    monkeypatch.setattr(engine, "evaluate", lambda *a, **k: pytest.fail("computed before checking the output"))

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(atomic, "open", read_only, raising=False)
    assert_input_error(capsys, ["evaluate", str(features), str(concepts), *FAST, "-o", str(tmp_path / "r")],
                       "cannot write", "Read-only file system", out=tmp_path / "r")


# ---------------------------------------------------------------------------------------------- class 6
def test_a_file_list_without_paths_writes_no_feature_store(tmp_path, capsys):
    listing = tmp_path / "list.csv"
    listing.write_text("image_id,label\na,cat\nb,dog\n")
    assert_input_error(capsys, ["extract", "pixels-4", str(listing), "--workers", "0", "-o", str(tmp_path / "f")],
                       "list.csv:1", "no path column", out=tmp_path / "f")


def test_a_folder_without_images_writes_no_feature_store(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    assert_input_error(capsys, ["extract", "pixels-4", str(tmp_path / "empty"), "--workers", "0", "-o",
                                str(tmp_path / "f")], "no image files", out=tmp_path / "f")


def test_a_folder_of_undecodable_images_writes_no_feature_store(tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(3):
        (broken / f"{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert_input_error(capsys, ["extract", "pixels-4", str(broken), "--workers", "0", "-o", str(tmp_path / "f")],
                       "none of the 3 images", out=tmp_path / "f")


@pytest.fixture
def external_scores(tmp_path) -> Path:
    """External scores of models that are not among the results."""
    table = tmp_path / "ext.csv"
    pd.DataFrame({"model": ["resnet", "vit"], "linear": [70.0, 80.0]}).to_csv(table, index=False)
    return table


def test_compare_with_external_scores_matching_no_model(result, external_scores, tmp_path, capsys):
    assert_input_error(capsys, ["compare", str(result), "--external", str(external_scores), "-o",
                                str(tmp_path / "c")], "--external", "no row", out=tmp_path / "c")


def test_report_with_external_scores_matching_no_model(result, external_scores, tmp_path, capsys):
    assert_input_error(capsys, ["report", str(result), "--external", str(external_scores), "-o",
                                str(tmp_path / "r.html")], "--external", out=tmp_path / "r.html")


@pytest.fixture
def unrelated_concepts(bank_of, tmp_path) -> Path:
    """A concept bank of 40 images whose concepts the result's probe never saw."""
    rng = np.random.default_rng(0)
    bank_of(rng.random((40, 2)) < 0.5, ["zebra", "piano"]).save(tmp_path / "tc")
    return tmp_path / "tc"


def test_transfer_with_no_shared_concept(result, unrelated_concepts, tmp_path, capsys):
    np.save(tmp_path / "t.npy", np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32))
    assert_input_error(capsys, ["transfer", str(result), str(tmp_path / "t.npy"), str(unrelated_concepts), "-o",
                                str(tmp_path / "x")], "CONCEPTS", "zebra", out=tmp_path / "x")


def test_transfer_with_another_dimension(result, unrelated_concepts, tmp_path, capsys):
    np.save(tmp_path / "t5.npy", np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32))
    assert_input_error(capsys, ["transfer", str(result), str(tmp_path / "t5.npy"), str(unrelated_concepts), "-o",
                                str(tmp_path / "x")], "5 dimensions", out=tmp_path / "x")


@pytest.mark.parametrize(("make", "named"), [
    (lambda: np.ones((120, 4), complex), "real numbers"),
    (lambda: np.full((120, 4), 1e300), "too large to standardize"),
    (lambda: np.ones(120, np.float32), "2-D"),
    (lambda: np.ones((120, 0), np.float32), "empty array"),
])
def test_features_that_cannot_be_standardized(example, tmp_path, capsys, make, named):
    np.save(tmp_path / "f.npy", make())
    assert_input_error(capsys, ["evaluate", str(tmp_path / "f.npy"), str(example[1]), *FAST, "-o",
                                str(tmp_path / "r")], named, out=tmp_path / "r")


def test_section_json_that_is_not_an_object(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "section.json").write_text(json.dumps(["not", "a", "section"]))
    assert_input_error(capsys, ["report", str(tmp_path / "s"), "-o", str(tmp_path / "r.html")], "section.json",
                       out=tmp_path / "r.html")
