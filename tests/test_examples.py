"""The example study configs parse: apart from the files a user must supply, they are valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from qrprobe.errors import QRProbeInputError
from qrprobe.study.demo import demo_study
from qrprobe.study.load import load_study

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_paper_study_is_valid_except_for_the_missing_data_and_checkpoints():
    with pytest.raises(QRProbeInputError) as err:
        load_study(EXAMPLES / "paper-imagenet.yaml")
    problems = str(err.value).splitlines()[1:]
    assert problems, "expected the missing files to be reported"
    assert all("file not found" in line for line in problems), problems
    assert any("images.source" in line for line in problems)


def test_paper_study_with_files_present_lists_the_table_2_models(tmp_path, monkeypatch):
    import yaml

    config = yaml.safe_load((EXAMPLES / "paper-imagenet.yaml").read_text())
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    for item in (*config["models"], *config["experts"]):
        if item.get("weights"):
            (tmp_path / item["weights"]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / item["weights"]).write_bytes(b"")
    (tmp_path / "study.yaml").write_text((EXAMPLES / "paper-imagenet.yaml").read_text())
    study = load_study(tmp_path / "study.yaml")
    assert len(study.models) == 20
    assert study.protocol.k == 1000
    assert study.protocol.clusterings == 5
    assert study.analyses.breakdown.label_group == "IN-1k"


def test_demo_study_is_valid_and_its_images_are_bundled():
    study = demo_study()
    assert Path(study.images.source).is_file()
    assert Path(study.images.labels).is_file()
    assert [m.model for m in study.models] == ["efficientnet-lite0", "efficientnet-lite0-random", "pixels"]
    assert study.notes
    assert "K = 24" in " ".join(study.notes)


@pytest.mark.slow
def test_demo_pipeline_runs_on_the_bundled_images(tmp_path):
    """The demo's plumbing (bundled tar, label table, analyses, report) with the cheap parts only: the
    pixel baseline and the rule-based experts (the full demo adds two EfficientNet-Lite0 passes), a K sweep
    of two K and one explained pair (the plumbing is the same for more)."""
    import dataclasses

    pytest.importorskip("matplotlib")
    from qrprobe.study.runner import run_study

    study = demo_study()
    study = dataclasses.replace(
        study, models=[m for m in study.models if m.model == "pixels"],
        experts=[e for e in study.experts if e.name in ("labels", "color", "image-stats")],
        protocol=dataclasses.replace(study.protocol, clusterings=2),
        analyses=dataclasses.replace(study.analyses, breakdown=None, explain=None, explain_groups=None,
                                     ksweep=dataclasses.replace(study.analyses.ksweep, k=[6, 12])),
        report=dataclasses.replace(study.report, pairs=1))
    outcome = run_study(study, output=tmp_path / "demo", progress=False, echo=lambda _: None)
    assert outcome.report.is_file()
    assert "pixels 16x16" in outcome.ranking
    assert "ranked by top-1 − chance" in outcome.ranking
    html = outcome.report.read_text()
    assert "About this study" in html
    assert "K = 24 for 1,484 images" in html
