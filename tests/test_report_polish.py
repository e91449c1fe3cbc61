"""The report reads as a finished document (issue 22 item 5): no image twice in a report, human column headers
(the CSV keeps the field names), one explanation section per model and purpose, text that says what the
figures show, and the configuration as tables that list each note once."""

from __future__ import annotations

import dataclasses
import io
import re

import numpy as np
import pandas as pd
import pytest

from qrprobe.report import build_report
from qrprobe.report.build import arrange
from qrprobe.report.section import Block, Section, Thumbnail, ThumbnailRow
from qrprobe.report.sections import configuration_section, ksweep_section, mi_trend_text
from qrprobe.report.tables import Table
from qrprobe.report.thumbnails import (
    DistinctExamples,
    distinct_thumbnails,
    is_near_blank,
    remove_repeated_thumbnails,
)

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")

SNAKE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")  # a field name such as confusion_base


@pytest.fixture(scope="module")
def report_html(make_report_inputs, tmp_path_factory) -> str:
    """A report on a result with image paths, the same result under another name (the same clusters and
    pairs: its explanations must show other images), a result without paths and a breakdown."""
    from qrprobe.results import Result

    root = tmp_path_factory.mktemp("polish")
    inputs = make_report_inputs(root / "inputs")
    twin = dataclasses.replace(Result.load(inputs["full"]), name="model <A>, again")
    twin.save(root / "twin")
    html = build_report([inputs["full"], root / "twin", inputs["labels"], inputs["breakdown"]],
                        root / "r.html", explain_pairs=4)
    return html.read_text(encoding="utf-8")


def test_no_image_appears_twice_in_a_report(report_html: str) -> None:
    sources = re.findall(r'<img src="(data:image/[^"]+)"', report_html)
    labels = re.findall(r'<img src="data:image/jpeg;base64,[^"]*" alt="([^"]*)"', report_html)
    assert len(labels) > 8
    for section in re.findall(r"<section .*?</section>", report_html, re.S):  # (the twin's word clouds are
        figures = re.findall(r'<img src="(data:image/png[^"]+)"', section)  # its twin's, in another section)
        assert len(figures) == len(set(figures)), "a figure is embedded twice"
    assert sources
    # (the generated images are flat colours: different images of one colour pair have the same bytes, so an
    # example image is known by its id, the thumbnail's alt text)
    assert len(labels) == len(set(labels)), "an example image is shown twice"
    # both models' explanations still show examples: the second one picked other images of its clusters
    explain = re.findall(r'<section id="s\d+" data-kind="explain">(.*?)</section>', report_html, re.S)
    shown = [(re.findall(r"<h2>(.*?)</h2>", s)[0], s.count("data:image/jpeg"), s.count('class="missing"'))
             for s in explain]
    assert sum(n > 0 for _, n, _ in shown) >= 2, shown


def test_column_headers_are_words_not_field_names(report_html: str) -> None:
    headers = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", report_html, re.S)]
    assert headers
    raw = [h for h in headers if SNAKE.match(h.strip())]
    assert raw == [], f"raw field names as column headers: {raw}"
    assert "confusion (%)" in headers or "confusion, base (%)" in headers


def test_csv_keeps_the_field_names() -> None:
    data = pd.DataFrame({"cluster_a": [1], "confusion_base": [12.5], "n_test_a": [3], "nmi_mean": [40.0],
                         "nmi_std": [1.0]})
    table = Table("t", data)
    assert table.to_csv().splitlines()[0] == "cluster_a,confusion_base,n_test_a,nmi_mean,nmi_std"
    assert list(table.display_frame().columns) == ["cluster a", "confusion, base (%)", "test images a", "NMI"]


def test_explanation_headings_say_how_they_differ(report_html: str) -> None:
    titles = re.findall(r'<section id="s\d+" data-kind="explain">\s*<h2>(.*?)</h2>', report_html, re.S)
    assert len(titles) >= 2
    assert len(titles) == len(set(titles))
    assert all("confuses most" in t or "explains beyond" in t for t in titles), titles


@pytest.mark.parametrize(("values", "word"), [([1.4, 1.2, 1.0], "falls"), ([1.0, 1.2, 1.4], "grows"),
                                              ([1.0, 1.2, 1.001], "level")])
def test_k_sweep_text_says_what_the_curve_does(values, word) -> None:
    table = pd.DataFrame({"model": "m", "k": [6, 12, 24], "clusterings": 1, "mi_bits_mean": values,
                          "mi_bits_std": 0.0, "nmi_mean": [30.0, 35.0, 40.0], "nmi_std": 0.0})
    intro = ksweep_section(table).intro
    assert "should grow" not in intro
    assert word in mi_trend_text(table)
    assert f"{values[0]:.2f} → {values[-1]:.2f}" in intro


def test_configuration_lists_each_note_once_and_no_json_lists() -> None:
    from qrprobe.results import Result

    note = "Concepts: the battery differs from the paper's (a long note that three results share)."

    def result(name: str, k: int) -> Result:
        return Result({"nmi": {"mean": 40.0, "std": 1.0}}, [{"nmi": 40.0}],
                      {"k": k, "seed": 0}, [0, 1], name=name,
                      inputs={"notes": [note], "concepts": {"groups": ["Labels", "Objects"]}})

    results = [result("a", 6), result("b", 12), result("c", 12)]
    section = configuration_section(results, ["a", "b", "c"])
    tables = {t.name: t for t in section.tables()}
    text = " ".join(str(v) for t in tables.values() for v in t.data.to_numpy().ravel())
    assert note not in text  # the notes section lists it, once
    differ = tables["configuration"].data
    assert list(differ["setting"]) == ["config.k"]
    shared = tables["configuration-shared"].data
    assert "inputs.concepts.groups" in set(shared["setting"])
    assert "Labels, Objects" in set(shared["value"])  # a list reads as text, not as JSON
    assert not any(str(v).startswith("[") for v in shared["value"])
    # the notes section of a report on them says the note once
    sections = arrange([], results, ["a", "b", "c"])
    html_notes = [n for s in sections for n in s.notes]
    assert html_notes.count(note) == 1


def _jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def test_near_blank_images_are_shown_only_when_a_cluster_has_nothing_else(tmp_path) -> None:
    blank = np.full((32, 32, 3), 250)
    drawn = blank.copy()
    drawn[8:24, 8:24] = [30, 60, 200]
    assert is_near_blank(_jpeg(blank))
    assert not is_near_blank(_jpeg(drawn))
    paths = []
    for i in range(8):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(_jpeg(drawn if i in (5, 6, 7) else blank))
        paths.append(str(path))
    paths_arr = np.asarray(paths, dtype=object)
    ids = np.asarray([f"img{i}" for i in range(8)])
    labels = np.zeros(8, int)
    examples = DistinctExamples(labels, image_ids=ids)
    thumbs, missing, n_blank = distinct_thumbnails(examples, 0, [0, 1, 2], paths_arr, ids, size=16)
    assert [t.label for t in thumbs] == ["img5", "img6", "img7"]  # the drawn ones, though not the sample
    assert (missing, n_blank) == (0, 0)
    thumbs, _, n_blank = distinct_thumbnails(examples, 0, [0, 1, 2], paths_arr, ids, size=16)
    assert len(thumbs) == 3  # only blank ones are left: shown, and counted
    assert n_blank == 3


def test_shown_ids_carry_across_sections() -> None:
    ids = np.asarray([f"i{n}" for n in range(6)])
    shared: set[str] = set()
    first = DistinctExamples(np.zeros(6, int), image_ids=ids, shown_ids=shared).pick(0, [0, 1, 2])
    second = DistinctExamples(np.zeros(6, int), image_ids=ids, shown_ids=shared).pick(0, [0, 1, 2])
    assert first == [0, 1, 2]
    assert second == [3, 4, 5]
    assert shared == set(ids)


def test_remove_repeated_thumbnails_keeps_the_first_showing() -> None:
    def section(labels: list[str]) -> Section:
        return Section("explain", "t", blocks=[Block(thumbnail_rows=[
            ThumbnailRow("row", [Thumbnail(label, b"x") for label in labels])])])

    sections = [section(["a", "b"]), section(["b", "c"]), section(["a", "b"])]
    assert remove_repeated_thumbnails(sections) == {"a", "b", "c"}
    assert [[t.label for r in b.thumbnail_rows for t in r.thumbnails] for s in sections for b in s.blocks] == [
        ["a", "b"], ["c"], []]
    assert sections[2].blocks[0].thumbnail_rows == []  # an emptied row is dropped, not shown blank


def test_the_ranking_metric_is_named_as_its_column_is() -> None:
    data = pd.DataFrame({"model": ["a"], "ranked_by": ["top1_corrected"], "top1_corrected_mean": [12.0],
                         "top1_corrected_std": [1.0]})
    shown = Table("comparison", data).display_frame()
    assert shown["ranked by"].tolist() == ["Top-1 − chance"]
    assert "Top-1 − chance" in shown.columns
    assert Table("comparison", data).to_csv().splitlines()[1].split(",")[1] == "top1_corrected"
