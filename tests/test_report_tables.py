"""Tables: one Table rendered as CSV, JSON, Markdown and LaTeX, with user text escaped."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from qrprobe.errors import QRProbeInputError
from qrprobe.report.tables import Table, latex_escape, markdown_escape, slugify


@pytest.fixture
def table() -> Table:
    data = pd.DataFrame({
        "model": ["a_b & c", "<script>alert(1)</script>", "x|y"],
        "nmi_mean": [63.7312, 50.0, np.nan], "nmi_std": [0.0712, 1.5, np.nan],
        "delta_nmi_mean": [1.234, -0.5, 0.0], "delta_nmi_std": [0.1, 0.2, 0.0],
        "k": [1000, 500, 2], "flag": [True, False, True],
    })
    return Table("cmp 1", data, "Title 50%", "Caption with $ and #", digits=2, signed=("delta_nmi",))


def test_display_merges_mean_std_and_signs(table: Table) -> None:
    disp = table.display_frame()
    assert list(disp.columns) == ["model", "NMI", "ΔNMI", "K", "flag"]
    assert disp["NMI"].tolist() == ["63.73 ± 0.07", "50.00 ± 1.50", "–"]
    assert disp["ΔNMI"].tolist() == ["+1.23 ± 0.10", "-0.50 ± 0.20", "+0.00 ± 0.00"]
    assert disp["flag"].tolist() == ["yes", "no", "yes"]


def test_csv_keeps_full_precision(table: Table) -> None:
    back = pd.read_csv(io.StringIO(table.to_csv()))
    assert back["nmi_mean"].iloc[0] == pytest.approx(63.7312)
    assert back["model"].iloc[1] == "<script>alert(1)</script>"


def test_json_round_trip(table: Table) -> None:
    payload = json.loads(table.to_json())
    assert payload["columns"][:2] == ["model", "nmi_mean"]
    back = Table.from_json(table.to_json())
    assert back.name == table.name
    assert back.signed == ("delta_nmi",)
    pd.testing.assert_frame_equal(back.data, table.data, check_dtype=False)


def test_markdown_escapes_cells(table: Table) -> None:
    md = table.to_markdown()
    assert "<script>" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "x\\|y" in md
    header = md.splitlines()[2]
    assert header.count("|") == 6  # 5 columns


def test_latex_escapes_specials(table: Table) -> None:
    tex = table.to_latex()
    assert r"a\_b \& c" in tex
    assert r"\textless{}script\textgreater{}" in tex
    assert r"Caption with \$ and \#" in tex
    assert r"63.73 $\pm$ 0.07" in tex
    assert r"\begin{tabular}{lrrrl}" in tex
    for line in tex.splitlines():
        if line.endswith(r"\\"):
            # every row has the same number of unescaped column separators
            assert line.replace(r"\&", "").count("&") == 4


def test_escape_helpers() -> None:
    assert latex_escape("~^\\{}%") == r"\textasciitilde{}\textasciicircum{}\textbackslash{}\{\}\%"
    assert markdown_escape("a\nb|c") == "a b\\|c"
    assert slugify("Pair 1: a/b") == "pair-1-a-b"


def test_save_writes_every_format(tmp_path, table: Table) -> None:
    paths = table.save(tmp_path)
    assert sorted(p.name for p in paths) == ["cmp-1.csv", "cmp-1.json", "cmp-1.md", "cmp-1.tex"]
    assert Table.load(tmp_path / "cmp-1.json").title == "Title 50%"
    with pytest.raises(QRProbeInputError):
        table.render("xlsx")
    with pytest.raises(QRProbeInputError):
        Table.load(tmp_path / "cmp-1.csv")
