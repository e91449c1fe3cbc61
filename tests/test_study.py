"""``qrprobe run``: config errors with locations, stage caching, forced stages and resuming."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from qrprobe.cli.main import main
from qrprobe.errors import QRProbeInputError
from qrprobe.study.load import load_study
from qrprobe.study.runner import run_study

pytest.importorskip("PIL")

COLOURS = {"red": (200, 30, 30), "green": (30, 170, 40), "blue": (30, 40, 200), "white": (235, 235, 235)}


def _images(root: Path, per_class: int = 16) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            arr = np.clip(np.array(rgb) + rng.normal(0, 25, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"{i:02d}.png")
    return root


STUDY = """\
name: tiny
images: {{source: {images}}}
output: {output}
device: cpu
models:
  - {{name: pixels, model: pixels-4}}
  - {{name: histogram, model: color-histogram}}
experts:
  - {{name: labels}}
  - {{name: color}}
protocol: {{k: 4, clusterings: 2, iters: 20, restarts: 2, kmeans_init: k-means++, probe: {{epochs: 8}}}}
analyses:
  breakdown: {{order: [Labels, Texture], label_group: Labels, models: [pixels]}}
report: {{enabled: {report}}}
"""


@pytest.fixture
def study_file(tmp_path):
    images = _images(tmp_path / "images")

    def write(report: bool = False, **replace) -> Path:
        text = STUDY.format(images=images, output=tmp_path / "out", report=str(report).lower())
        for old, new in replace.items():
            text = text.replace(old, new)
        path = tmp_path / "study.yaml"
        path.write_text(text)
        return path

    return write


def _summaries(out: Path) -> dict:
    return {p.name.rsplit("-", 1)[0]: json.loads((p / "results.json").read_text())["summary"]
            for p in sorted((out / "results").iterdir()) if (p / "results.json").is_file()}


def test_rerun_does_no_work_and_a_changed_expert_recomputes_only_what_depends_on_it(study_file, tmp_path):
    path = study_file()
    first = run_study(load_study(path), progress=False, echo=lambda _: None)
    assert set(first.ran("extract")) == {"pixels", "histogram"}
    assert set(first.ran("label")) == {"labels", "color"}
    assert set(first.ran("evaluate")) == {"pixels", "histogram"}
    assert (first.output / "study.resolved.json").is_file()
    assert "| representation |" in first.ranking

    again = run_study(load_study(path), progress=False, echo=lambda _: None)
    assert [e for e in again.log if not e["reused"]] == []
    assert _summaries(again.output) == _summaries(first.output)

    changed = study_file(**{"- {name: color}": "- {name: color, options: {min_fraction: 0.2}}"})
    third = run_study(load_study(changed), progress=False, echo=lambda _: None)
    assert third.ran("extract") == []
    assert third.ran("label") == ["color"]
    assert set(third.ran("evaluate")) == {"pixels", "histogram"}  # they depend on the concepts
    assert third.ran("analyses") == ["breakdown pixels"]

    forced = run_study(load_study(changed), force=["evaluate"], progress=False, echo=lambda _: None)
    assert set(forced.ran("evaluate")) == {"pixels", "histogram"}
    assert forced.ran("extract") == forced.ran("label") == forced.ran("analyses") == []


def test_a_run_killed_during_probing_resumes_with_the_same_results(study_file, tmp_path, monkeypatch):
    import qrprobe.engine.evaluate as engine

    path = study_file()
    reference = run_study(load_study(path), output=tmp_path / "reference", progress=False, echo=lambda _: None)

    real = engine.evaluate
    calls = {"n": 0}

    def dies_on_second_model(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed while probing")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", dies_on_second_model)
    with pytest.raises(KeyboardInterrupt):
        run_study(load_study(path), progress=False, echo=lambda _: None)
    monkeypatch.setattr(engine, "evaluate", real)
    out = tmp_path / "out"
    assert len([p for p in (out / "results").iterdir() if (p / "results.json").is_file()]) == 1
    resumed = run_study(load_study(path), progress=False, echo=lambda _: None)
    assert resumed.ran("extract") == []
    assert resumed.ran("label") == []
    assert len(resumed.ran("evaluate")) == 1
    assert _summaries(out) == _summaries(reference.output)


def test_config_typo_fails_at_once_with_location_and_valid_keys(study_file, tmp_path, capsys):
    path = study_file(**{"clusterings: 2": "clustrings: 2"})
    with pytest.raises(QRProbeInputError) as err:
        load_study(path)
    message = str(err.value)
    assert f"{path}:11:18:" in message
    assert "protocol.clustrings: unknown key 'clustrings'" in message
    assert "valid keys: bootstrap, clusterings, iters, k" in message
    assert main(["run", str(path)]) == 2
    assert "unknown key 'clustrings'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing started


@pytest.mark.parametrize(("replace", "message"), [
    ({"k: 4,": "k: four,"}, "protocol.k: expected an integer, got 'four'"),
    ({"model: pixels-4": "model: pixels-4, weights: missing.pt"}, "models[0].weights: file not found"),
    ({"models: [pixels]": "models: [pixel]"}, "unknown model(s) ['pixel']"),
    ({"- {name: color}": "- {name: labels}"}, "duplicate names ['labels']"),
])
def test_config_errors_are_reported_before_any_work(study_file, tmp_path, replace, message):
    with pytest.raises(QRProbeInputError, match=None) as err:
        load_study(study_file(**replace))
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_study_report_is_written(study_file):
    pytest.importorskip("matplotlib")
    outcome = run_study(load_study(study_file(report=True)), progress=False, echo=lambda _: None)
    html = outcome.report.read_text()
    assert "Model comparison" in html
    assert "pixels" in html
    again = run_study(load_study(study_file(report=True)), progress=False, echo=lambda _: None)
    assert again.ran("report") == []


def test_study_reference_doc_is_generated_from_the_schema():
    from pathlib import Path

    from qrprobe.study.reference import reference_markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "study-reference.md"
    assert doc.read_text(encoding="utf-8") == reference_markdown(), \
        "docs/study-reference.md is stale: python -m qrprobe.study.reference > docs/study-reference.md"
    for key in ("`clusterings`", "`lr_decay`", "`explain_groups`", "`drop_groups`", "`concepts_per_pair`"):
        assert key in doc.read_text(encoding="utf-8")


def test_the_study_template_is_a_valid_study(tmp_path):
    from qrprobe.cli.main import main
    from qrprobe.study.load import load_study

    path = tmp_path / "study.yaml"
    assert main(["example", "--study", "-o", str(path)]) == 0
    (tmp_path / "images").mkdir()
    study = load_study(path)
    assert study.protocol.k == 1000
    assert study.analyses.breakdown.label_group == "Labels"
    # the same command again: the template it wrote is not replaced without --overwrite
    assert main(["example", "--study", "-o", str(path)]) == 2


def test_a_study_takes_a_feature_store_and_a_concept_bank_made_elsewhere(tmp_path):
    """Features extracted with the CLI and a bank labelled with the CLI enter a study as they are (one sequence:
    the study reads what the two commands wrote)."""
    import numpy as np

    from qrprobe.cli.main import main
    from qrprobe.results import Result
    from qrprobe.study.load import study_from_dict
    from qrprobe.study.runner import run_study

    images = tmp_path / "images"
    rng = np.random.default_rng(0)
    from PIL import Image

    for cls in ("red", "blue"):
        (images / cls).mkdir(parents=True)
        for i in range(12):
            colour = (200, 20, 20) if cls == "red" else (20, 20, 200)
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(images / cls / f"{i}.png")
    assert main(["extract", "pixels-4", str(images), "-o", str(tmp_path / "feats"), "--quiet"]) == 0
    assert main(["label", str(images), "--experts", "labels,color", "-o", str(tmp_path / "bank"), "--quiet"]) == 0
    study = study_from_dict({"name": "s", "images": {"source": str(images)},
                             "models": [{"name": "pixels", "features": str(tmp_path / "feats")}],
                             "concepts": [str(tmp_path / "bank")],
                             "protocol": {"k": 2, "clusterings": 1, "iters": 10, "restarts": 1,
                                          "probe": {"epochs": 3}},
                             "report": {"enabled": False}}, {}, tmp_path)
    outcome = run_study(study, output=tmp_path / "out", progress=False, echo=lambda _: None)
    assert outcome.ran("extract") == []  # nothing re-made
    assert outcome.ran("label") == []
    result = Result.load(outcome.results["pixels"])
    assert result.inputs["features"]["model"] == "pixels-4"
    assert result.inputs["concepts"]["n_concepts"] > 2


def test_cli_and_study_give_the_same_numbers(study_file, tmp_path):
    """The CLI (extract → label → evaluate) and a study with the same settings agree exactly (one feature dtype,
    one protocol default everywhere; one sequence: evaluate reads what extract and label wrote)."""
    from qrprobe.cli.main import main
    from qrprobe.study.load import load_study
    from qrprobe.study.runner import run_study

    path = study_file()
    outcome = run_study(load_study(path), progress=False, echo=lambda _: None)
    images = str(tmp_path / "images")
    assert main(["extract", "pixels-4", images, "-o", str(tmp_path / "f"), "--quiet", "--device", "cpu"]) == 0
    assert main(["label", images, "--experts", "labels,color", "-o", str(tmp_path / "c"), "--quiet"]) == 0
    assert main(["evaluate", str(tmp_path / "f"), str(tmp_path / "c"), "-o", str(tmp_path / "r"), "--quiet",
                 "--k", "4", "--clusterings", "2", "--iters", "20", "--restarts", "2", "--kmeans-init", "k-means++",
                 "--epochs", "8", "--device", "cpu"]) == 0
    cli = json.loads((tmp_path / "r" / "results.json").read_text())["summary"]
    study = json.loads((outcome.results["pixels"] / "results.json").read_text())["summary"]
    for metric in ("nmi", "ami", "top1", "map", "mi_bits"):
        assert cli[metric]["values"] == study[metric]["values"], metric


def test_the_paper_study_is_shipped_with_the_package(tmp_path):
    from qrprobe.cli.main import main

    path = tmp_path / "paper.yaml"
    assert main(["example", "--study", "paper", "-o", str(path)]) == 0
    assert "Table 2" in path.read_text()
    assert "deit_base_patch16_224" in path.read_text()


def test_the_run_counts_its_stage_items_and_quiet_prints_nothing(study_file, capsys):
    path = study_file()
    lines: list[str] = []
    run_study(load_study(path), progress=True, echo=lines.append)
    stages = [re.match(r"\[stage (\d+)/(\d+)\] (\w+)", line) for line in lines]
    stages = [m for m in stages if m]
    # 2 extract, 1 labelling pass, 2 evaluate, 1 breakdown (no report): one line each, in order
    assert [int(m[1]) for m in stages] == [1, 2, 3, 4, 5, 6]
    assert {int(m[2]) for m in stages} == {6}
    assert [m[3] for m in stages] == ["extract", "extract", "label", "evaluate", "evaluate", "analyses"]
    assert "left + 1 item(s) not timed yet" in next(line for line in lines if line.startswith("[stage 5/6]"))
    assert "\r" not in capsys.readouterr().err
    quiet: list[str] = []
    run_study(load_study(path), force=["evaluate"], progress=False, echo=quiet.append)
    assert quiet == []
    assert all(line.startswith("warning: ") for line in capsys.readouterr().err.splitlines())  # warnings only


@pytest.mark.slow
def test_models_extracted_together_give_the_stores_of_one_by_one(study_file, tmp_path):
    """``extract_together`` (the default) reads each image once for both models; the stores (and so every
    result) are those of one-by-one extraction, and the log says both were computed."""
    together = run_study(load_study(study_file()), progress=False)
    assert [e["reused"] for e in together.log if e["stage"] == "extract"] == [False, False]
    apart_out = tmp_path / "apart"
    apart_file = study_file(**{f"output: {tmp_path / 'out'}": f"output: {apart_out}",
                               "device: cpu": "device: cpu\nextract_together: false"})
    apart = run_study(load_study(apart_file), progress=False)
    hashes = [{p.name: json.loads((p / "manifest.json").read_text())["content_hash"]
               for p in (out / "features").iterdir() if (p / "manifest.json").is_file()}
              for out in (together.output, apart.output)]
    assert len(hashes[0]) == 2
    assert hashes[0] == hashes[1]
