"""A study's ``concepts:`` takes a CSV/Parquet table as well as a bank folder, and ``python:`` factory files
(and TorchScript/ONNX files) in ``model:`` are relative to the study file (issue 22 item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from qrprobe.errors import QRProbeInputError
from qrprobe.study.load import load_study, model_file_relative_to

pytest.importorskip("PIL")


def _images(root: Path) -> Path:
    from test_study import _images as coloured

    return coloured(root, per_class=10)


def _study(tmp_path: Path, concepts: str, model: str = "pixels-4") -> Path:
    images = _images(tmp_path / "images") if not (tmp_path / "images").exists() else tmp_path / "images"
    path = tmp_path / "study.yaml"
    path.write_text(f"name: t\nimages: {{source: {images}}}\noutput: {tmp_path / 'out'}\ndevice: cpu\n"
                    f"models: [{{name: p, model: {model}}}]\nexperts: [{{name: color}}]\nconcepts: [{concepts}]\n"
                    "protocol: {k: 4, clusterings: 1, iters: 10, restarts: 1, null_repeats: 0, bootstrap: 0, "
                    "probe: {epochs: 4}}\nreport: {enabled: false}\n")
    return path


def _table(tmp_path: Path, name: str = "tags.csv") -> Path:
    rows = [{"image_id": f"{c}/{i:02d}.png", "concept": f"is {c}", "group": "Tags"}
            for c in ("red", "green", "blue") for i in range(10)]  # white images: no tag
    path = tmp_path / name
    frame = pd.DataFrame(rows)
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", ["tags.csv", "tags.parquet"])
def test_a_concept_table_in_a_study(tmp_path, name):
    from qrprobe.study.runner import run_study
    from qrprobe.study.stages import ImageSet, study_concepts

    _table(tmp_path, name)
    study = load_study(_study(tmp_path, name))  # relative to the study file
    assert study.concepts == [str(tmp_path / name)]
    bank = study_concepts(study.concepts[0], ImageSet.open(study.images.source))
    assert bank.n_images == 40
    assert sorted(bank.names) == ["is blue", "is green", "is red"]
    assert int(bank.matrix.sum()) == 30
    if name.endswith(".csv"):  # one whole run: the table's group is evaluated beside the expert's
        run_study(study, progress=False, echo=lambda _: None)
        saved = json.loads(next((tmp_path / "out" / "results").glob("*/results.json")).read_text())
        groups = saved["inputs"]["concepts"]["groups"]
        assert "Tags" in groups


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: (p / "tags.txt").write_text("x"), "expected a concept-bank folder"),
    (lambda p: pd.DataFrame({"image": ["a"], "concept": ["b"]}).to_csv(p / "tags.txt.csv", index=False),
     "missing column"),
])
def test_a_bad_concept_table_is_refused_at_load(tmp_path, make, message):
    make(tmp_path)
    name = "tags.txt" if "folder" in message else "tags.txt.csv"
    with pytest.raises(QRProbeInputError, match=message) as err:
        load_study(_study(tmp_path, name))
    assert "concepts[0]" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_model_files_are_relative_to_the_study_file(tmp_path):
    (tmp_path / "nets.py").write_text("import torch\n\ndef build():\n    return torch.nn.Flatten()\n")
    (tmp_path / "net.onnx").write_bytes(b"")
    base = tmp_path
    assert model_file_relative_to("python:nets.py:build", base) == f"python:{base / 'nets.py'}:build"
    assert model_file_relative_to("python:mypkg.nets:build", base) == "python:mypkg.nets:build"
    assert model_file_relative_to("net.onnx", base) == str(base / "net.onnx")
    assert model_file_relative_to("onnx:net.onnx", base) == f"onnx:{base / 'net.onnx'}"
    assert model_file_relative_to("missing.pt", base) == "missing.pt"
    assert model_file_relative_to("timm:resnet50", base) == "timm:resnet50"
    (tmp_path / "bank").mkdir()
    study = load_study(_study(tmp_path, "bank", model="python:nets.py:build"))
    assert study.models[0].model == f"python:{tmp_path / 'nets.py'}:build"
