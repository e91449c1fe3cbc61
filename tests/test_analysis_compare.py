"""Model comparison (Table 2) and the correlation with an external score (Fig. 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qrprobe.analysis.compare import compare_results, fit_line, read_external
from qrprobe.errors import QRProbeInputError
from qrprobe.results import Result, summarize


def _result(name: str, nmi: float, top1: float) -> Result:
    per = [{"nmi": nmi + d, "ami": nmi - 5 + d, "top1": top1 + d, "map": top1 - 2, "mi_bits": nmi / 20}
           for d in (-0.1, 0.1)]
    return Result(summarize(per), per, {"k": 1000}, [0, 1], name=name)


@pytest.fixture
def results() -> list[Result]:
    return [_result("MoCo-v2", 64.76, 47.53), _result("SwAV", 69.18, 55.85), _result("Jigsaw", 37.36, 9.80)]


def test_ranked_table(results) -> None:
    table = compare_results(results)
    assert table["model"].tolist() == ["SwAV", "MoCo-v2", "Jigsaw"]
    assert table["rank"].tolist() == [1, 2, 3]
    assert table.loc[0, "nmi_mean"] == pytest.approx(69.18)
    assert table.loc[0, "nmi_std"] == pytest.approx(0.1)
    assert compare_results(results, sort_by="top1")["model"].iloc[0] == "SwAV"
    with pytest.raises(QRProbeInputError, match="distinct"):
        compare_results(results, names=["a", "a", "b"])
    with pytest.raises(QRProbeInputError, match="--sort-by"):
        compare_results(results, sort_by="f1")


def test_external_columns_and_fit(tmp_path, results) -> None:
    path = tmp_path / "lin.csv"
    pd.DataFrame({"model": ["SwAV", "MoCo-v2", "Jigsaw", "Other"],
                  "linear_acc": ["73.90", "67.70", "46.58", "1"]}).to_csv(path, index=False)
    table = compare_results(results, external=read_external(path))
    assert table.set_index("model").loc["Jigsaw", "linear_acc"] == pytest.approx(46.58)
    fit = fit_line(table, "linear_acc", "top1_mean")
    xs, ys = np.array([73.90, 67.70, 46.58]), np.array([55.85, 47.53, 9.80])
    slope, intercept = np.polyfit(xs, ys, 1)
    assert fit.slope == pytest.approx(slope)
    assert fit.intercept == pytest.approx(intercept)
    assert fit.pearson_r == pytest.approx(np.corrcoef(xs, ys)[0, 1])
    assert fit.n == 3
    assert fit.spearman_rho == pytest.approx(1.0)


def test_external_errors(tmp_path, results) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"method": ["SwAV"], "acc": ["1"]}).to_csv(bad, index=False)
    with pytest.raises(QRProbeInputError, match="model"):
        read_external(bad)
    text = pd.DataFrame({"model": ["SwAV"], "acc": ["high"]})
    with pytest.raises(QRProbeInputError, match="numbers"):
        compare_results(results, external=text)
    dup = pd.DataFrame({"model": ["SwAV", "SwAV"], "acc": ["1", "2"]})
    with pytest.raises(QRProbeInputError, match="twice"):
        compare_results(results, external=dup)
    missing = pd.DataFrame({"model": ["SwAV"], "acc": ["1"]})
    table = compare_results(results, external=missing)
    assert table["acc"].isna().sum() == 2
    assert np.isnan(fit_line(table, "acc").slope)  # a single point defines no line
