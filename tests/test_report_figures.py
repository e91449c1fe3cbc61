"""Figures: PNG + PDF output, word clouds (with and without the wordcloud package), user text drawn literally."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from qrprobe.report import figures as F


def test_save_png_and_pdf(tmp_path) -> None:
    fig = F.comparison_scatter([60, 70, 75], [40, 50, 58], ["a $x$", "b_1", "c^2"], slope=1.2, intercept=-30,
                               r=0.99, xlabel="linear acc. ($)")
    paths = F.save_figure(fig, tmp_path, "Fig 3")
    assert [p.name for p in paths] == ["fig-3.png", "fig-3.pdf"]
    assert paths[0].read_bytes().startswith(b"\x89PNG")
    assert paths[1].read_bytes().startswith(b"%PDF")
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


@pytest.mark.parametrize("with_package", [True, False])
def test_word_cloud(monkeypatch, with_package: bool) -> None:
    if not with_package:
        monkeypatch.setitem(sys.modules, "wordcloud", None)  # import fails: the matplotlib fallback draws
    weights = {"<script>alert(1)</script>": 2.0, "scene:$beach": -1.5, "grass": 0.5, "zero": 0.0}
    png = F.figure_png(F.word_cloud(weights, title="a vs b"))
    assert png.startswith(b"\x89PNG")
    assert F.figure_png(F.word_cloud({})).startswith(b"\x89PNG")


def test_other_figures_render() -> None:
    cum = pd.DataFrame({"step": ["L", "S", "S"], "with_labels": [True, True, False],
                        "nmi_mean": [70.0, 90.0, 50.0], "nmi_std": [0.1, 0.2, 0.3]})
    deltas = pd.DataFrame({"group": ["+S", "+N"], "delta_nmi_mean": [20.0, -1.0], "delta_nmi_std": [0.1, 0.2]})
    sweep = pd.DataFrame({"model": ["m", "m", "n", "n"], "k": [8, 16, 8, 16], "mi_bits_mean": [1.0, 1.5, 0.8, 1.2],
                          "mi_bits_std": [0.0] * 4, "nmi_mean": [50.0, 55, 45, 48], "nmi_std": [0.1] * 4})
    images = [np.zeros((8, 8, 3), np.uint8), None]
    for fig in (F.breakdown_bars(cum), F.delta_bars(deltas), F.k_curves(sweep),
                F.coefficient_bars(["a", "b$"], [1.0, -2.0], title="x"), F.thumbnail_strip(images, title="t"),
                F.pair_figure({"a": 1.0, "b": -1.0}, images[:1], [], label_a="c1", label_b="c2", title="p")):
        assert F.figure_png(fig).startswith(b"\x89PNG")
