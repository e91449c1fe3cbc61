"""The HTML report and the analysis commands, end to end on generated results."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from qrprobe.cli.main import main
from qrprobe.errors import QRProbeInputError
from qrprobe.report import build_report
from qrprobe.report.section import Section
from qrprobe.synthetic import make_object_scene

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def inputs(make_report_inputs, tmp_path_factory):
    return make_report_inputs(tmp_path_factory.mktemp("report-inputs"))


@pytest.fixture(scope="module")
def report(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    ext = out / "linear.csv"
    pd.DataFrame({"model": ["model <A>", "labels-only"], "linear_acc": [71.5, 55.0]}).to_csv(ext, index=False)
    html = build_report([inputs[k] for k in ("full", "labels", "k6", "bare", "breakdown")], out / "r.html",
                        external=ext, figures_dir=out / "figures", explain_pairs=2)
    return html, out / "figures"


def test_report_is_self_contained_and_escaped(report) -> None:
    html_path, _ = report
    html = html_path.read_text(encoding="utf-8")
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "model &lt;A&gt;" in html
    assert "<script" not in html.lower()
    # every image is embedded; nothing is loaded from elsewhere
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs
    assert all(s.startswith("data:image/") for s in srcs)
    assert not re.search(r"(href|src)=\"(https?:|//|file:)", html)
    assert "Content-Security-Policy" in html


def test_report_sections_and_notes(report) -> None:
    html = report[0].read_text(encoding="utf-8")
    for title in ("Model comparison", "Concept-group breakdown", "Scores against K", "Cluster explanations",
                  "Run configuration", "Top-1 against linear_acc"):
        assert title in html, title
    assert "saved without its arrays" in html  # the bare result: no explanations, said so
    assert "No image paths are recorded" in html  # the labels-only result has no paths
    assert "could not be read" in html  # some example images of the full result do not exist
    assert 'data:image/jpeg;base64' in html  # ... and the others are shown


def test_figures_and_tables_exported(report) -> None:
    figures = report[1]
    names = {p.relative_to(figures).as_posix() for p in figures.rglob("*") if p.is_file()}
    cmp = next(d.name for d in sorted(figures.iterdir()) if d.name.endswith("-comparison"))
    assert f"{cmp}/figures/comparison-scatter.png" in names
    assert f"{cmp}/figures/comparison-scatter.pdf" in names
    for fmt in ("csv", "json", "md", "tex"):
        assert f"{cmp}/tables/comparison.{fmt}" in names
    assert any(n.endswith("breakdown-cumulative.pdf") for n in names)
    assert any(n.endswith("ksweep.png") for n in names)
    assert any(re.search(r"pair-1-panel\.pdf$", n) for n in names)
    md = (figures / cmp / "tables" / "comparison.md").read_text()
    assert "linear acc" in md  # the human header (the CSV keeps linear_acc)
    assert "linear_acc" in (figures / cmp / "tables" / "comparison.csv").read_text()
    assert "&lt;A&gt;" in md
    for pdf in figures.rglob("*.pdf"):
        assert pdf.read_bytes().startswith(b"%PDF")


def test_section_round_trip(inputs) -> None:
    section = Section.load(inputs["breakdown"])
    assert section.kind == "breakdown"
    assert [t.name for t in section.tables()] == ["breakdown-cumulative", "breakdown-single"]
    assert all(f.png.startswith(b"\x89PNG") for f in section.figures())


def test_bad_report_inputs(tmp_path, inputs) -> None:
    with pytest.raises(QRProbeInputError, match="neither"):
        build_report([tmp_path], tmp_path / "x.html")
    with pytest.raises(QRProbeInputError, match="not found"):
        build_report([tmp_path / "nope"], tmp_path / "x.html")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user file")
    with pytest.raises(QRProbeInputError, match="figures-dir"):
        build_report([inputs["full"]], tmp_path / "x.html", figures_dir=tmp_path / "mine", explain_pairs=0)
    assert not (tmp_path / "x.html").exists()  # nothing half-written
    assert (tmp_path / "mine" / "keep.txt").exists()


def test_cli_report(tmp_path, inputs, capsys) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(inputs["labels"]), str(inputs["breakdown"]), "-o", str(out), "--pairs", "1"]) == 0
    assert out.is_file()
    assert main(["report", str(inputs["labels"]), "-o", str(out)]) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope"), "-o", str(tmp_path / "y.html")]) == 2
    assert main(["report", str(inputs["labels"]), "-o", str(tmp_path / "z.html"), "--external-column",
                 "acc"]) == 2


def test_cli_result_commands(tmp_path, inputs) -> None:
    assert main(["compare", str(inputs["full"]), str(inputs["labels"]), "-o", str(tmp_path / "cmp")]) == 0
    assert Section.load(tmp_path / "cmp").tables()[0].data["model"].tolist() == ["model <A>", "labels-only"]
    assert main(["explain", str(inputs["full"]), "--versus", str(inputs["labels"]), "--pairs", "2",
                 "-o", str(tmp_path / "ex")]) == 0
    section = Section.load(tmp_path / "ex")
    pairs = section.tables()[0].data
    assert len(pairs) == 2
    assert (pairs["drop"] > 20).all()
    assert main(["explain", str(inputs["k6"]), "--versus", str(inputs["labels"]),
                 "-o", str(tmp_path / "ex2")]) == 2  # different clusterings


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    data = make_object_scene(n=720)
    np.save(root / "feats.npy", data.features)
    data.bank.save(root / "concepts")
    rows = pd.DataFrame({"image_id": data.bank.image_ids, "label": data.objects * 3 + data.scenes})
    rows.to_csv(root / "labels.csv", index=False)
    return root


FAST = ["--clusterings", "1", "--iters", "20", "--restarts", "1", "--epochs", "10", "--milestones", "6,8",
        "--device", "cpu"]


def test_cli_analysis_commands(small_inputs, tmp_path) -> None:
    feats, concepts = str(small_inputs / "feats.npy"), str(small_inputs / "concepts")
    assert main(["breakdown", feats, concepts, "--order", "Labels,Scene,Noise", "--label-group", "Labels",
                 "--k", "12", *FAST, "--quiet", "-o", str(tmp_path / "bd")]) == 0
    single = Section.load(tmp_path / "bd").tables()[1].data.set_index("group")
    assert single.loc["+Scene", "delta_nmi_mean"] > 10
    assert main(["ksweep", feats, concepts, "--k", "6,12", *FAST, "--quiet", "-o", str(tmp_path / "ks")]) == 0
    assert (tmp_path / "ks" / "results" / "k-12" / "results.json").is_file()
    assert main(["evaluate", feats, concepts, "--k", "12", *FAST, "--quiet", "-o", str(tmp_path / "res")]) == 0
    assert main(["transfer", str(tmp_path / "res"), feats, concepts, "--device", "cpu",
                 "-o", str(tmp_path / "tr")]) == 0
    assert (tmp_path / "tr" / "clusterings.npy").is_file()
    assert main(["explain-groups", feats, concepts, "--base", "Labels", "--add", "Scene", "--k", "12", *FAST,
                 "--quiet", "-o", str(tmp_path / "eg")]) == 0
    assert main(["forward-probe", feats, concepts, "--result", str(tmp_path / "res"),
                 "-o", str(tmp_path / "fp")]) == 0
    probe = ["--repeats", "1", "--epochs", "10", "--milestones", "6,8", "--device", "cpu"]
    assert main(["self-labels", str(small_inputs / "labels.csv"), concepts, *probe,
                 "-o", str(tmp_path / "sl")]) == 0
    assert main(["concepts-to-labels", concepts, "--label-group", "Labels", *probe,
                 "-o", str(tmp_path / "c2l")]) == 0
    assert main(["report", *(str(tmp_path / d) for d in ("res", "sl", "c2l", "bd", "ks", "tr", "eg", "fp")),
                 "-o", str(tmp_path / "all.html")]) == 0
    html = (tmp_path / "all.html").read_text(encoding="utf-8")
    for kind in ("comparison", "breakdown", "ksweep", "transfer", "explain", "forward-probe", "configuration"):
        assert f'data-kind="{kind}"' in html, kind
    # bad input: exit 2 with a message, nothing written
    assert main(["breakdown", feats, concepts, "--order", "Labels,Colour", "-o", str(tmp_path / "bad")]) == 2
    assert main(["self-labels", str(small_inputs / "feats.npy"), concepts, "-o", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
