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
    assert "evaluate" in qrprobe.__doc__
    assert "run_analysis" in qrprobe.__doc__


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
    assert len(text) < 400
    assert "K=4" in text
    assert "R=2" in text
    assert "NMI" in text
    frame = result.to_frame()
    assert list(frame["clustering"]) == [0, 1]
    assert {"nmi", "mi_bits"} <= set(frame.columns)
    summary = result.summary_frame()
    assert summary.loc["nmi", "mean"] == result.summary["nmi"]["mean"]
    assert summary.loc["nmi", "n"] == 2


def test_analyze_takes_paths_or_objects_and_options_by_name(tmp_path):
    import numpy as np

    from qrprobe.concepts.bank import ConceptBank

    rng = np.random.default_rng(1)
    x = rng.normal(size=(240, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    bank = ConceptBank.from_matrix((rng.random((240, 4)) < 0.4).astype(np.uint8), list("abcd"),
                                   groups=["G1", "G1", "G2", "G2"])
    bank.save(tmp_path / "bank")
    fast = {"k": 3, "clusterings": 1, "iters": 5, "restarts": 1, "epochs": 2, "device": "cpu"}
    by_path = qrprobe.analyze("breakdown", features=tmp_path / "x.npy", concepts=tmp_path / "bank",
                              order=["G1", "G2"], **fast)
    by_object = qrprobe.analyze("breakdown", features=x, concepts=bank, order=["G1", "G2"], **fast)
    a, b = (o.section.tables()[0].data for o in (by_path, by_object))
    assert a.equals(b)
    assert len(a) == 2
    import pytest

    with pytest.raises(TypeError, match="unknown protocol parameter 'pairz'"):
        qrprobe.analyze("breakdown", features=x, concepts=bank, pairz=3)


def test_help_is_a_short_page_that_loads_nothing_heavy():
    code = ("import io, sys, contextlib, qrprobe\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    help(qrprobe)\n"
            "print(len(out.getvalue().splitlines()), 'torch' in sys.modules, 'sklearn' in sys.modules)\n"
            "print('evaluate' in dir(qrprobe), callable(qrprobe.evaluate))")
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    n_lines, torch_loaded, sklearn_loaded = lines[0].split()
    assert int(n_lines) < 150
    assert (torch_loaded, sklearn_loaded) == ("False", "False")
    assert lines[1] == "True True"  # dir() still lists the API and every name still resolves after help()
