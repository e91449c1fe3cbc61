"""benchmarks/gpu_checks.sh, prepared for a lent GPU, run here on the CPU at a tiny size: the Table-2 row's
script must run the whole protocol and the K-means comparison, and write its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_table2_row_of_gpu_checks_runs_on_cpu_at_small_n(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "N": "1500", "DIM": "12", "K": "6", "CONCEPTS": "30",
           "ONES": "4", "EPOCHS": "2", "BOOTSTRAP": "10", "DEVICE": "cpu", "ROW_ONLY": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_checks.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    figures = json.loads((tmp_path / "out" / "table2-row.json").read_text())
    assert set(figures["timings"]) == {"inputs", "quantize", "probe", "null", "statistics", "total"}
    assert figures["timings"]["total"] > 0
    assert figures["args"]["clusterings"] == 5
    assert figures["args"]["restarts"] == 5
    seconds, inertia, iterations = figures["kmeans"]["ours"]
    assert seconds > 0
    assert inertia > 0
    assert 1 <= iterations <= 100
    text = (tmp_path / "out" / "table2-row.txt").read_text()
    assert "| total |" in text
    assert "| qrprobe | to convergence" in text
