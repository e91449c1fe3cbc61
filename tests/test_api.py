"""The public API: every exported name resolves, and ``import qrprobe`` stays light."""

from __future__ import annotations

import subprocess
import sys

import qrprobe


def test_every_export_resolves():
    for name in qrprobe.__all__:
        assert getattr(qrprobe, name) is not None


def test_import_does_not_load_torch():
    code = "import sys, qrprobe; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_public_api_is_visible_to_dir_and_help():
    names = dir(qrprobe)
    for name in ("evaluate", "ConceptBank", "ReverseProbing", "run_analysis", "synthetic"):
        assert name in names
    assert "evaluate" in qrprobe.__doc__ and "run_analysis" in qrprobe.__doc__


def test_result_has_a_short_repr_and_frames(tmp_path):
    import numpy as np

    from qrprobe.concepts.bank import ConceptBank

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    concepts = (rng.random((300, 5)) < 0.3).astype(np.uint8)
    ConceptBank.from_matrix(concepts, list("abcde")).save(tmp_path / "bank")
    result = qrprobe.evaluate(x, tmp_path / "bank", k=4, clusterings=2, iters=5, restarts=1, epochs=2,
                              device="cpu")  # concepts given as a path
    text = repr(result)
    assert len(text) < 400 and "K=4" in text and "R=2" in text and "NMI" in text
    frame = result.to_frame()
    assert list(frame["clustering"]) == [0, 1] and {"nmi", "mi_bits"} <= set(frame.columns)
    summary = result.summary_frame()
    assert summary.loc["nmi", "mean"] == result.summary["nmi"]["mean"] and summary.loc["nmi", "n"] == 2
