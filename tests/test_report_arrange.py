"""The report reads like the paper: notes first, each input once, one comparison (with the Fig. 3 scatter only
when it can say something), the K curves of every model together, distinct example images."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from qrprobe.analysis.compare import compare_results, fit_line
from qrprobe.report import build_report, report
from qrprobe.report.build import assemble, report_sections
from qrprobe.report.comparison import MIN_SCATTER_POINTS, comparison_section, unmatched_note
from qrprobe.report.section import Section
from qrprobe.report.sections import ksweep_section
from qrprobe.report.thumbnails import DistinctExamples


@pytest.fixture(scope="module")
def results(evaluated):
    _, full = evaluated("full")
    _, labels = evaluated("labels")
    _, k6 = evaluated("k6")
    return [dataclasses.replace(full, name="alpha"), dataclasses.replace(labels, name="beta"),
            dataclasses.replace(k6, name="gamma")]


def _external_section(results, values: dict[str, float]) -> Section:
    names = [r.name for r in results]
    ext = pd.DataFrame({"model": list(values), "linear": list(values.values())})
    table = compare_results(results, names, external=ext, sort_by="top1")
    return comparison_section(table, fit=fit_line(table, "linear"), x_column="linear", sort_by="top1")


def test_no_scatter_and_no_correlation_through_two_points(results) -> None:
    section = _external_section(results, {"alpha": 70.0, "beta": 10.0})
    assert not section.figures()
    names = [t.name for t in section.tables()]
    assert "correlation" not in names
    assert "external-values" in names
    text = " ".join(b.text for b in section.blocks)
    assert "Pearson" not in text
    assert f"at least {MIN_SCATTER_POINTS}" in text
    assert "No linear value for gamma" in text
    values = next(t for t in section.tables() if t.name == "external-values").data
    assert values["model"].tolist() == ["alpha", "beta"] or set(values["model"]) == {"alpha", "beta"}


def test_scatter_and_correlation_with_three_points(results) -> None:
    section = _external_section(results, {"alpha": 70.0, "beta": 10.0, "gamma": 40.0})
    assert [f.name for f in section.figures()] == ["comparison-scatter"]
    corr = next(t for t in section.tables() if t.name == "correlation").data
    assert int(corr["n"].iloc[0]) == 3
    assert "ranked by top-1" in section.tables()[0].caption  # captions name the ranking metric


def test_missing_external_value_is_not_a_warning_unless_a_name_is_misspelt() -> None:
    ext = pd.DataFrame({"model": ["alpha", "beta"], "linear": [1.0, 2.0]})
    assert unmatched_note(ext, ["alpha", "beta", "pixels"]) is None  # pixels simply has no value
    note = unmatched_note(ext.assign(model=["alpha", "Beta"]), ["alpha", "beta", "pixels"])
    assert note is not None
    assert "beta, pixels" in note
    assert "Beta" in note


def test_study_notes_come_first_and_configuration_last(results) -> None:
    study = Section("notes", "About this study: test", notes=["why K is 12"])
    breakdown = Section("breakdown", "Concept-group breakdown")
    flags = [{"code": "constant_concepts", "level": "note", "message": "3 concepts never vary", "clusterings": []},
             {"code": "negative_mi", "level": "warning", "message": "MI below zero", "clusterings": [0]}]
    with_note = dataclasses.replace(results[0], inputs={**results[0].inputs, "flags": flags,
                                                        "warnings": ["MI below zero"],
                                                        "notes": ["concept battery differs from the paper: x"]})
    sections = report_sections([with_note, *results[1:]], ["alpha", "beta", "gamma"], [breakdown, study],
                               explain_pairs=1)
    kinds = [s.kind for s in sections]
    assert sections[0] is study
    assert kinds[1] == "notes"
    assert "alpha: concept battery differs from the paper: x" in sections[1].notes
    assert "alpha: 3 concepts never vary" in sections[1].notes  # a note-level flag
    comparison = sections[kinds.index("comparison")]
    assert "alpha ⚠" in comparison.tables()[0].data["model"].tolist()  # a warning-level flag marks the row
    assert "alpha: MI below zero" in comparison.notes
    assert kinds.index("comparison") < kinds.index("breakdown") < kinds.index("explain")
    assert kinds[-1] == "configuration"


def test_each_input_section_once(results, tmp_path) -> None:
    """A compare directory beside its result directories: one comparison; an explanation given and made, or a
    directory named twice: once."""
    paths = [r.save(tmp_path / r.name) for r in results[:2]]
    given = [s for s in assemble(paths, explain_pairs=1) if s.kind in ("comparison", "explain")]
    for s in given:
        s.save(tmp_path / f"given-{s.kind}-{len(list(tmp_path.iterdir()))}")
    sections = assemble([*paths, paths[0], *sorted(tmp_path.glob("given-*"))], explain_pairs=1)
    titles = [s.title for s in sections]
    assert [s.kind for s in sections].count("comparison") == 1
    assert len(titles) == len(set(titles)), titles


def test_k_sweeps_of_several_models_share_one_section() -> None:
    def sweep(model: str, shift: float) -> Section:
        table = pd.DataFrame({"model": model, "k": [6, 12, 24], "clusterings": 1,
                              "nmi_mean": np.array([30.0, 40.0, 50.0]) + shift, "nmi_std": 0.0,
                              "mi_bits_mean": [1.0, 1.2, 1.4], "mi_bits_std": 0.0})
        return ksweep_section(table)

    sections = report_sections([], [], [sweep("a", 0.0), sweep("b", 5.0), sweep("c", 10.0)])
    assert [s.kind for s in sections] == ["ksweep"]
    table = sections[0].tables()[0]
    assert sorted(set(table.data["model"])) == ["a", "b", "c"]
    assert len(table.data) == 9
    assert len(sections[0].figures()) == 1
    assert "±" not in " ".join(table.display_frame()["NMI"])  # one clustering per K: no spread shown


def test_distinct_examples() -> None:
    labels = np.repeat([0, 1], [10, 3])
    shown = DistinctExamples(labels)
    first = shown.pick(0, [0, 1, 2, 3])
    second = shown.pick(0, [0, 1, 2, 3])  # the analysis's sample again: other images of the cluster instead
    assert first == [0, 1, 2, 3]
    assert len(second) == 4
    assert not set(first) & set(second)
    assert set(second) <= set(range(10))
    assert len(shown.pick(1, [10, 11, 12])) == 3
    assert shown.pick(1, [10, 11, 12]) == []
    assert DistinctExamples(None).pick(0, [1, 2]) == [1, 2]


def test_no_thumbnail_repeats_within_an_explanation(tmp_path, make_report_inputs) -> None:
    inputs = make_report_inputs(tmp_path / "inputs")
    html = build_report([inputs["full"]], tmp_path / "r.html", explain_pairs=4).read_text(encoding="utf-8")
    for section in re.findall(r'<section id="s\d+" data-kind="explain">(.*?)</section>', html, re.S):
        shown = re.findall(r'<img src="data:image/jpeg;base64,[^"]*" alt="([^"]*)"', section)
        assert shown
        assert len(shown) == len(set(shown)), "an example image is shown twice"


def test_library_report_matches_the_command(results, tmp_path) -> None:
    html = report(results, tmp_path / "lib.html", explain_pairs=0).read_text(encoding="utf-8")
    kinds = re.findall(r'data-kind="([^"]+)"', html)
    assert kinds[0] == "notes" or kinds[0] == "comparison"
    assert kinds.count("comparison") == 1
    assert kinds[-1] == "configuration"
