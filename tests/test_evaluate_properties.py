"""Property: ``qrprobe evaluate`` on any small input either succeeds with every score in its valid range or
stops with exit code 2 and one error line — never a traceback, never an out-of-range number (issue 11).

Random small feature arrays (few distinct values, constant columns, duplicates), random 0/1 concept banks
(constant columns included) and random protocol flags, written to disk and run through the CLI in-process.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qrprobe.cli.main import main

LEVELS = (-2.5, 0.0, 0.5, 3.0, 100.0)  # a few values: duplicates and constant columns are common


@st.composite
def inputs(draw):
    n = draw(st.integers(2, 40))
    d = draw(st.integers(1, 4))
    m = draw(st.integers(1, 4))
    levels = draw(st.lists(st.sampled_from(LEVELS), min_size=1, max_size=3))
    features = np.asarray(draw(st.lists(st.sampled_from(levels), min_size=n * d, max_size=n * d)),
                          np.float32).reshape(n, d)
    concepts = np.asarray(draw(st.lists(st.booleans(), min_size=n * m, max_size=n * m)), np.uint8).reshape(n, m)
    flags = ["--k", str(draw(st.integers(2, 6))), "--clusterings", str(draw(st.integers(1, 2))),
             "--seed", str(draw(st.integers(0, 5))), "--epochs", str(draw(st.integers(1, 3))),
             "--iters", "5", "--restarts", "1",
             "--test-fraction", str(draw(st.sampled_from((0.2, 0.5, 0.9)))),
             "--val-fraction", str(draw(st.sampled_from((0.0, 0.2, 0.5)))),
             "--batch-size", str(draw(st.sampled_from((1, 7, 512))))]
    return features, concepts, flags


def _run(features: np.ndarray, concepts: np.ndarray, flags: list[str]) -> tuple[int, str, Path]:
    tmp = Path(tempfile.mkdtemp(prefix="qrprobe-prop-"))
    np.save(tmp / "f.npy", features)
    np.save(tmp / "c.npy", concepts)
    (tmp / "names.txt").write_text("".join(f"c{j}\n" for j in range(concepts.shape[1])))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["evaluate", str(tmp / "f.npy"), str(tmp / "c.npy"), "--concept-names", str(tmp / "names.txt"),
                     *flags, "--quiet", "-o", str(tmp / "res")])
    return code, err.getvalue(), tmp / "res"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs())
def test_evaluate_succeeds_in_range_or_fails_cleanly(case):
    features, concepts, flags = case
    code, err, out = _run(features, concepts, flags)
    assert "Traceback" not in err, err
    if code == 2:
        assert len([line for line in err.splitlines() if "error" in line]) == 1, err
        assert not out.exists()
        return
    assert code == 0, err
    data = json.loads((out / "results.json").read_text())
    for row in data["per_clustering"]:
        for metric in ("nmi", "top1", "map"):
            assert row[metric] is None or 0.0 <= row[metric] <= 100.0 + 1e-9, (metric, row[metric])
        assert row["ami"] is None or row["ami"] <= 100.0 + 1e-9
        h = row["cluster_entropy_bits"]
        assert 0.0 <= h <= np.log2(int(flags[1])) + 1e-9
        assert row["mi_bits"] <= h + 1e-9  # the estimate never exceeds the entropy it is taken from
        assert row["nonempty_clusters"] >= 2  # a single cluster is refused, never scored
    codes = {f["code"] for f in data["inputs"]["flags"]}
    warnings = data["inputs"]["warnings"]
    assert all(f["message"] in warnings for f in data["inputs"]["flags"] if f["level"] == "warning")
    if any(r["nonempty_clusters"] < int(flags[1]) for r in data["per_clustering"]):
        assert "empty_clusters" in codes
    if np.mean([r["mi_bits"] for r in data["per_clustering"]]) < 0:
        assert "negative_mi" in codes
    lines = [line for line in err.splitlines() if line.startswith("warning: ")]  # each names model and K
    assert all(any(line.endswith(f": {w}") for line in lines) for w in warnings)
