"""User data is never destroyed (issue 11, class 2) and manifests never reach outside their directory (class 10).

``--overwrite`` replaces only an artifact of the same kind that qrprobe wrote (recognised by its marker file);
an output is never one of the command's inputs nor a folder holding one, nor inside the image folder.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from _hostile import FAST, assert_input_error, evaluate_example
from qrprobe._atomic import artifact_kind
from qrprobe._workdir import ChunkedWorkDir
from qrprobe.cli.main import main
from qrprobe.errors import QRProbeInputError
from qrprobe.features import FeatureStore, write_feature_store
from qrprobe.results import Result
from qrprobe.synthetic import write_image_folder


def _user_folder(path):
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("years of work")
    (path / "data").mkdir()
    (path / "data" / "raw.csv").write_text("a,b\n1,2\n")
    return path


def _files(path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def example(write_example, tmp_path):
    return write_example(tmp_path / "ex")


# ---------------------------------------------------------------------------------------------- class 2
_FOLDER_COMMANDS = {  # command -> its arguments before -o, from (features, concepts, images)
    "evaluate": lambda features, concepts, images: ["evaluate", str(features), str(concepts), *FAST],
    "breakdown": lambda features, concepts, images: ["breakdown", str(features), str(concepts), *FAST],
    "example": lambda features, concepts, images: ["example", "--n", "30"],
    "extract": lambda features, concepts, images: ["extract", "pixels-4", str(images), "--workers", "0", "--quiet"],
    "label": lambda features, concepts, images: ["label", str(images), "--experts", "color", "--quiet"],
}


@pytest.mark.parametrize("command", list(_FOLDER_COMMANDS))
def test_overwrite_refuses_a_folder_of_user_files(command, example, tmp_path, capsys):
    features, concepts = example
    user = _user_folder(tmp_path / "mine")
    before = _files(user)
    images = write_image_folder(tmp_path / "imgs", {"a": 2, "b": 2})
    args = _FOLDER_COMMANDS[command](features, concepts, images)
    err = assert_input_error(capsys, [*args, "-o", str(user), "--overwrite"], str(user), "was not written by qrprobe")
    assert "choose another path" in err
    assert _files(user) == before, args


@pytest.mark.parametrize("command", ["report", "example --study"])
def test_overwrite_refuses_a_user_file(command, tmp_path, capsys):
    user = _user_folder(tmp_path / "mine")
    before = _files(user)
    args = ["report", str(tmp_path)] if command == "report" else command.split()
    assert_input_error(capsys, [*args, "-o", str(user / "thesis.tex"), "--overwrite"], "thesis.tex",
                       "was not written by qrprobe")
    assert _files(user) == before


@pytest.fixture
def result_dir(example, tmp_path):
    """A result directory evaluated from the example."""
    return evaluate_example(example, tmp_path / "res")


@pytest.mark.parametrize("case", ["the concepts", "their folder", "the folder above"])
def test_an_output_is_never_an_input_nor_holds_one(case, example, tmp_path, capsys):
    features, concepts = example
    before = _files(tmp_path / "ex")
    out, named = {"the concepts": (concepts, "is the input CONCEPTS"),
                  "their folder": (tmp_path / "ex", "holds the input FEATURES"),
                  "the folder above": (tmp_path, "holds the input FEATURES")}[case]
    assert_input_error(capsys, ["evaluate", str(features), str(concepts), *FAST, "-o", str(out), "--overwrite"],
                       named)
    assert _files(tmp_path / "ex") == before


def test_an_output_is_never_the_input_result(result_dir, capsys):
    assert_input_error(capsys, ["explain", str(result_dir), "-o", str(result_dir), "--overwrite"],
                       "is the input RESULT")
    assert (result_dir / "results.json").is_file()


def test_a_figures_folder_is_never_an_input(result_dir, tmp_path, capsys):
    assert_input_error(capsys, ["report", str(result_dir), "-o", str(tmp_path / "r.html"), "--figures-dir",
                                str(result_dir)], "--figures-dir", "is the input INPUT")
    assert (result_dir / "results.json").is_file()


@pytest.mark.parametrize("command", ["extract", "label"])
@pytest.mark.parametrize("case", ["inside", "equal"])
def test_an_output_inside_the_image_folder_is_refused(command, case, tmp_path, capsys):
    images = write_image_folder(tmp_path / "imgs", {"a": 2, "b": 2})
    args = (["extract", "pixels-4", str(images), "--workers", "0"] if command == "extract"
            else ["label", str(images), "--experts", "color"])
    if case == "inside":
        assert_input_error(capsys, [*args, "-o", str(images / "out")], "inside the image folder", out=images / "out")
    else:
        assert_input_error(capsys, [*args, "-o", str(images), "--overwrite"], "is the input IMAGES")
    assert sorted(p.name for p in images.iterdir()) == ["a", "b"]


def test_overwrite_replaces_a_result_with_a_result(example, tmp_path, capsys):
    # one sequence: the refusal and the replacement need the result the first command wrote
    features, concepts = example
    res = tmp_path / "res"
    assert main(["evaluate", str(features), str(concepts), *FAST, "-o", str(res)]) == 0
    assert artifact_kind(res) == "qrprobe.result"
    assert artifact_kind(concepts) == "qrprobe.concept-bank"
    assert_input_error(capsys, ["evaluate", str(features), str(concepts), *FAST, "-o", str(res)],
                       "already exists", "pass --overwrite")
    assert main(["evaluate", str(features), str(concepts), *FAST, "--seed", "3", "-o", str(res), "--overwrite"]) == 0
    assert Result.load(res).seeds == [3]


def test_overwrite_never_replaces_a_feature_store_by_a_result(example, tmp_path, capsys):
    features, concepts = example
    store = write_feature_store(tmp_path / "store", np.load(features))
    assert_input_error(capsys, ["evaluate", str(features), str(concepts), *FAST, "-o", str(store.path),
                                "--overwrite"], "holds a feature store, not a result directory")


def test_overwrite_never_replaces_a_result_by_an_analysis(example, result_dir, capsys):
    features, concepts = example
    assert_input_error(capsys, ["breakdown", str(features), str(concepts), *FAST, "-o", str(result_dir),
                                "--overwrite"], "holds a result directory, not an analysis directory")


def test_overwrite_replaces_a_generated_example(tmp_path):
    # one sequence: the second command replaces what the first wrote
    assert main(["example", "--n", "30", "-o", str(tmp_path / "gen")]) == 0
    assert main(["example", "--n", "40", "-o", str(tmp_path / "gen"), "--overwrite"]) == 0  # its own kind
    assert np.load(tmp_path / "gen" / "features.npy").shape[0] == 40


def test_the_library_obeys_the_same_rule(tmp_path):
    user = _user_folder(tmp_path / "mine")
    res = Result(summary={}, per_clustering=[], config={"k": 2}, seeds=[])
    with pytest.raises(QRProbeInputError, match="was not written by qrprobe"):
        res.save(user, overwrite=True)
    with pytest.raises(QRProbeInputError, match="was not written by qrprobe"):
        write_feature_store(user, np.zeros((3, 2)), overwrite=True)
    assert (user / "thesis.tex").read_text() == "years of work"
    res.save(tmp_path / "empty-is-fine")
    res.save(tmp_path / "empty-is-fine", overwrite=True)


# ---------------------------------------------------------------------------------------------- class 10
@pytest.mark.parametrize("name", ["../other/features-00000.npy", "/etc/passwd", "sub/features-00000.npy", ".."])
def test_a_store_manifest_naming_a_file_outside_the_store_is_refused(tmp_path, capsys, name):
    other = write_feature_store(tmp_path / "other", np.ones((4, 2)))
    evil = write_feature_store(tmp_path / "evil", np.zeros((4, 2)))
    manifest = json.loads((evil.path / "manifest.json").read_text())
    manifest["shards"][0]["file"] = name
    (evil.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(QRProbeInputError, match="not a plain file name inside the directory"):
        FeatureStore.open(evil.path)
    assert other.n == 4
    np.save(tmp_path / "c.npy", np.eye(4, dtype=np.uint8)[:, :2])
    (tmp_path / "names.txt").write_text("a\nb\n")
    assert_input_error(capsys, ["evaluate", str(evil.path), str(tmp_path / "c.npy"), "--concept-names",
                                str(tmp_path / "names.txt"), *FAST, "-o", str(tmp_path / "r")], "evil", "refusing",
                       out=tmp_path / "r")


def test_a_section_naming_files_outside_its_directory_is_refused(tmp_path, capsys):
    import pandas as pd

    from qrprobe.report.section import Block, Section
    from qrprobe.report.tables import Table

    Section("notes", "t", blocks=[Block(tables=[Table("t1", pd.DataFrame({"a": [1]}), "T")])]).save(tmp_path / "s")
    data = json.loads((tmp_path / "s" / "section.json").read_text())
    data["blocks"][0]["tables"] = ["../../../../etc/passwd"]
    (tmp_path / "s" / "section.json").write_text(json.dumps(data))
    assert_input_error(capsys, ["report", str(tmp_path / "s"), "-o", str(tmp_path / "r.html")], "refusing",
                       out=tmp_path / "r.html")


def test_a_forged_work_folder_state_never_moves_files_outside_it(tmp_path):
    final = tmp_path / "store"
    work = ChunkedWorkDir(final, identity={"k": 1})
    (tmp_path / "precious.npy").write_bytes(b"keep")
    state = json.loads((work.path / "state.json").read_text())
    state["chunks"] = [{"chunk": 0, "files": ["../precious.npy"], "file": "../precious.npy"}]
    (work.path / "state.json").write_text(json.dumps(state))
    again = ChunkedWorkDir(final, identity={"k": 1})
    assert again.chunks == {}
    assert (tmp_path / "precious.npy").read_bytes() == b"keep"
