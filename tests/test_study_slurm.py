"""`qrprobe run --executor slurm`: each stage item a job, through submitit's local executor (each job a process
on this machine; the same job functions, pickling and logs as on Slurm, without a cluster)."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from qrprobe.cli.main import main
from qrprobe.errors import MissingExtraError
from qrprobe.study.items import StageItem, finished_items, run_item, study_items
from qrprobe.study.load import load_study
from qrprobe.study.runner import run_study
from qrprobe.study.slurm import job_parameters, submit_study
from qrprobe.study.stages import StageMissing
from test_study import STUDY, _images, _summaries

pytest.importorskip("submitit")
pytest.importorskip("PIL")

QUIET = {"echo": lambda _: None}
NO_ANALYSES = "analyses:\n  breakdown: {order: [Labels, Texture], label_group: Labels, models: [pixels]}\n"


@pytest.fixture
def study_file(tmp_path):
    images = _images(tmp_path / "images")

    def write(name: str = "study.yaml", out: str = "out", **replace) -> Path:
        text = STUDY.format(images=images, output=tmp_path / out, report="false")
        for old, new in replace.items():
            text = text.replace(old, new)
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def _summary(result: Path) -> dict:
    return json.loads((result / "results.json").read_text())["summary"]


def _labels(items) -> set[str]:
    return {item.label for item in items}


def test_the_job_graph_and_each_jobs_request(study_file):
    study = load_study(study_file(**{"report: {enabled: false}": "report: {enabled: false}\nresources: "
                                     "{evaluate: {gpus: 2, partition: big, slurm: {account: lab}}}"}))
    graph = dict(study_items(study))
    assert _labels(graph) == {"extract pixels", "extract histogram", "label labels", "label color",
                              "evaluate pixels", "evaluate histogram", "analyses breakdown pixels", "report"}
    assert _labels(graph[StageItem("evaluate", "pixels")]) == {"extract pixels", "label labels", "label color"}
    assert _labels(graph[StageItem("analyses", "breakdown", "pixels")]) == {
        "extract pixels", "extract histogram", "label labels", "label color", "evaluate pixels",
        "evaluate histogram"}
    assert len(graph[StageItem("report")]) == 7
    order = [item for item, _ in study_items(study)]
    assert all(order.index(d) < order.index(item) for item, deps in graph.items() for d in deps)
    params = job_parameters(study, StageItem("evaluate", "pixels"), ["11", "12"])
    assert params["gpus_per_node"] == 2
    assert params["slurm_partition"] == "big"
    assert params["mem_gb"] == 64.0
    assert params["slurm_additional_parameters"] == {"account": "lab", "dependency": "afterok:11:12",
                                                     "kill-on-invalid-dep": "yes"}
    extract = job_parameters(study, StageItem("extract", "pixels"))
    assert extract["gpus_per_node"] == 1
    assert "dependency" not in extract["slurm_additional_parameters"]
    assert pickle.loads(pickle.dumps(study)) == study  # what submitit ships to a job


def test_a_job_runs_alone_from_the_stage_directories(study_file, tmp_path):
    """run_item is a pure function of (study, output, item): inputs must exist, only its own stage computes."""
    study = load_study(study_file())
    out = tmp_path / "out"
    with pytest.raises(StageMissing, match="extract pixels"):
        run_item(study, out, StageItem("evaluate", "pixels"), **QUIET)
    assert not (out / "results").exists()
    log = run_item(study, out, StageItem("extract", "pixels"), **QUIET)
    assert [(e["stage"], e["item"], e["reused"]) for e in log] == [("extract", "pixels", False)]
    for expert in ("labels", "color"):
        run_item(study, out, StageItem("label", expert), **QUIET)
    log = run_item(study, out, StageItem("evaluate", "pixels"), **QUIET)
    assert [(e["stage"], e["reused"]) for e in log] == [("extract", True), ("label", True), ("label", True),
                                                        ("evaluate", False)]
    assert _labels(finished_items(study, out)) == {"extract pixels", "label labels", "label color",
                                                   "evaluate pixels"}
    assert "label color" not in _labels(finished_items(study, out, force=["label"]))
    assert "evaluate pixels" not in _labels(finished_items(study, out, force=["label"]))  # after an unfinished one


@pytest.mark.slow
def test_submitted_jobs_give_the_local_results_and_a_resubmission_skips_finished_items(study_file, tmp_path,
                                                                                     capsys):
    path = study_file()
    study = load_study(path)
    reference = run_study(load_study(study_file("reference.yaml", out="reference")), progress=False, **QUIET)

    first = submit_study(study, tmp_path / "out", cluster="local", folder=tmp_path / "jobs", poll_s=0.1, **QUIET)
    assert not first.failed
    assert not first.blocked
    assert not first.finished_before
    assert _labels(first.completed) == _labels(item for item, _ in study_items(study))
    assert len(first.jobs) == 8
    assert len({*first.jobs.values()}) == 8  # eight processes, eight job ids
    assert _summaries(tmp_path / "out") == _summaries(reference.output)
    assert (tmp_path / "out" / "ranking.md").read_text() == (reference.output / "ranking.md").read_text()
    assert any((tmp_path / "jobs").glob("*_log.err"))

    # resubmitting the unchanged study submits nothing; so does the CLI
    again = submit_study(study, tmp_path / "out", cluster="local", folder=tmp_path / "jobs", **QUIET)
    assert again.jobs == {}
    assert len(again.finished_before) == 8
    assert main(["run", str(path), "--executor", "slurm", "--cluster", "local", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "were finished already" in captured.err
    assert "| representation |" in captured.out

    # a changed expert: its labelling and what depends on it run again, the extractions do not
    changed = load_study(study_file(**{"- {name: color}": "- {name: color, options: {min_fraction: 0.2}}"}))
    third = submit_study(changed, tmp_path / "out", cluster="local", folder=tmp_path / "jobs", poll_s=0.1, **QUIET)
    assert _labels(third.jobs) == {"label color", "evaluate pixels", "evaluate histogram",
                                   "analyses breakdown pixels", "report"}
    assert _labels(third.finished_before) == {"extract pixels", "extract histogram", "label labels"}
    assert not third.failed
    local = run_study(changed, output=tmp_path / "local-changed", progress=False, **QUIET)
    submitted = {e["item"]: Path(e["path"]) for e in third.log if e["stage"] == "evaluate"}
    for name, path in local.results.items():
        assert _summary(submitted[name]) == _summary(path)
    ran = {(e["stage"], e["item"]) for e in third.log if not e["reused"]}
    assert ("label", "color") in ran
    assert not any(stage == "extract" for stage, _ in ran)


@pytest.mark.slow
def test_a_failed_job_blocks_what_depends_on_it_and_a_resubmission_runs_the_rest(study_file, tmp_path):
    study = load_study(study_file(**{NO_ANALYSES: ""}))
    broken = dataclasses.replace(study, models=[dataclasses.replace(study.models[0], layer="no.such.layer"),
                                                study.models[1]])
    first = submit_study(broken, tmp_path / "out", cluster="local", folder=tmp_path / "jobs", poll_s=0.1, **QUIET)
    assert _labels(first.failed) == {"extract pixels"}
    assert "has no layers" in first.failed[StageItem("extract", "pixels")]
    assert _labels(first.blocked) == {"evaluate pixels", "report"}
    assert "evaluate histogram" in _labels(first.completed)
    second = submit_study(study, tmp_path / "out", cluster="local", folder=tmp_path / "jobs", poll_s=0.1, **QUIET)
    assert _labels(second.jobs) == {"extract pixels", "evaluate pixels", "report"}
    assert not second.failed
    assert json.loads((tmp_path / "out" / "run-log.json").read_text())


def test_without_submitit_the_error_names_the_extra(study_file, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(MissingExtraError, match=r"qrprobe\[slurm\]"):
        submit_study(load_study(study_file()), "unused", cluster="local")
    assert main(["run", str(study_file()), "--executor", "slurm"]) == 2
    assert "pip install 'qrprobe[slurm]'" in capsys.readouterr().err
