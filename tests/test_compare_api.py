"""Comparing results in Python: ``qrprobe.compare`` gives what ``qrprobe compare`` prints, ``analyze("compare",
[r, rb])`` works, results are named from their model, the "distinct names" error says how to name them, and
``Result.__eq__`` compares content (a saved-then-loaded result equals the original)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import qrprobe
from qrprobe.concepts import ConceptBank
from qrprobe.errors import QRProbeInputError
from qrprobe.results import Result
from qrprobe.synthetic import make_concept_combinations

FAST = {"k": 4, "clusterings": 2, "iters": 10, "restarts": 1, "epochs": 3, "device": "cpu", "null_repeats": 1,
        "bootstrap": 20}


@pytest.fixture(scope="module")
def two_results():
    x, concepts, _ = make_concept_combinations(n=240, n_bits=2, seed=2)
    bank = ConceptBank.from_matrix(concepts, ["a", "b"])
    noisy = x + np.random.default_rng(0).normal(scale=3.0, size=x.shape)
    return qrprobe.evaluate(x, bank, **FAST), qrprobe.evaluate(noisy, bank, **FAST)


def test_compare_in_python_is_the_cli_comparison(two_results, tmp_path):
    r, rb = two_results
    assert r.name == rb.name == "features"  # arrays have no model: the default name
    with pytest.raises(QRProbeInputError, match=r"distinct names.*names=\["):
        qrprobe.compare([r, rb])
    out = qrprobe.compare([r, rb], names=["clean", "noisy"])
    assert list(out.frame["model"]) == ["clean", "noisy"]  # ranked by NMI
    assert out.frame.loc[0, "nmi_mean"] == pytest.approx(r.summary["nmi"]["mean"])
    assert len(out.significance) == 1  # one adjacent pair
    assert {"difference", "p_value"} <= set(out.significance.columns)
    assert out.rank_agreement is not None
    assert "comparison-adjacent" in out.tables
    assert "clean" in repr(out)
    # the CLI's analysis on the same results (as directories named like the names) gives the same tables
    r.save(tmp_path / "clean")
    rb.save(tmp_path / "noisy")
    by_dirs = qrprobe.compare([tmp_path / "clean", tmp_path / "noisy"], names=["clean", "noisy"])
    pd.testing.assert_frame_equal(by_dirs.frame, out.frame)
    pd.testing.assert_frame_equal(by_dirs.significance, out.significance)


def test_compare_names_results_from_their_model(two_results):
    r, rb = two_results
    unnamed = [dataclasses.replace(x, name="") for x in two_results]
    unnamed[0].inputs = {**r.inputs, "features": {**r.inputs["features"], "model": "resnet50"}}
    unnamed[1].inputs = {**rb.inputs, "features": {**rb.inputs["features"], "path": "/x/vit_b16.npy"}}
    assert set(qrprobe.compare(unnamed).frame["model"]) == {"resnet50", "vit_b16"}
    out = qrprobe.analyze("compare", unnamed)  # positional input
    assert set(out.section.tables()[0].data["model"]) == {"resnet50", "vit_b16"}


def test_analyze_compare_positional_and_its_naming_error(two_results):
    r, rb = two_results
    with pytest.raises(QRProbeInputError, match=r"distinct names.*name="):
        qrprobe.analyze("compare", [r, rb])
    rb2 = dataclasses.replace(rb, name="noisy")
    out = qrprobe.analyze("compare", [r, rb2])
    assert set(out.section.tables()[0].data["model"]) == {"features", "noisy"}
    with pytest.raises(TypeError, match="given twice"):
        qrprobe.analyze("compare", [r, rb2], results=[r, rb2])


def test_result_equality_is_by_content(two_results, tmp_path):
    r, rb = two_results
    back = Result.load(r.save(tmp_path / "r"))
    assert back == r
    assert r == back
    assert r != rb
    assert r != "features"
    renamed = dataclasses.replace(r, name="other")
    assert renamed != r
    changed = dataclasses.replace(r, clusterings=np.array(r.clusterings).copy())
    assert changed == r
    changed.clusterings[0, 0] = (changed.clusterings[0, 0] + 1) % 4
    assert changed != r
    no_arrays = Result.load(tmp_path / "r", arrays=False)
    assert no_arrays != r  # the arrays are part of the content
