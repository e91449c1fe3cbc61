"""benchmarks/ab_probe_kernel.py at a tiny size: two builds of the same kernel train to the same weights, an edit
that changes the update shows as a weight difference, and a contender that names nothing is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qrprobe.engine.probe import kernel

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "ab_probe_kernel.py"
TINY = ["--n", "3000", "--concepts", "40", "--ones", "5", "--k", "20", "--rounds", "3", "--steps", "2",
        "--threads", "1"]

pytestmark = pytest.mark.skipif(not kernel.available(), reason="the compiled probe cannot run here")


def _run(*args: str) -> tuple[dict[tuple[str, str], list[str]], dict[str, float]]:
    """The script's table, {(contender, busy): cells after those two}, and its weight differences by contender."""
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in proc.stdout.splitlines()
            if line.startswith("| ")]
    table = {(cells[0], cells[1]): cells[2:] for cells in rows[1:]}
    differences = {line.split(": ")[0]: float(line.rsplit(": ", 1)[1]) for line in proc.stdout.splitlines()
                   if ": largest weight difference from " in line}
    return table, differences


def test_the_same_kernel_twice_trains_to_the_same_weights_quiet_and_busy(tmp_path):
    copy = tmp_path / "probe_sgd.c"
    copy.write_text(kernel.SOURCES[0].read_text())
    table, differences = _run(".", str(copy), *TINY, "--busy", "--keep-data", str(tmp_path / "data"))
    assert differences == {str(copy): 0.0}
    assert set(table) == {(".", "no"), (str(copy), "no"), (".", "yes"), (str(copy), "yes")}
    ms_per_step, validation_s, epoch_s, *_ = table[".", "yes"]
    assert float(ms_per_step) >= 0
    assert float(validation_s) >= 0
    assert float(epoch_s) >= 0
    assert table[".", "yes"][-1] != "–"  # busy/quiet, round by round
    assert table[".", "no"][-1] == "–"


def test_an_edit_of_the_update_shows_as_a_weight_difference(tmp_path):
    source = kernel.SOURCES[0].read_text()
    update = "vf wn = w[c] - lr * v;"
    assert update in source
    edited = tmp_path / "edited.c"
    edited.write_text(source.replace(update, "vf wn = w[c] - 0.5f * lr * v;"))
    _, differences = _run(".", str(edited), *TINY, "--keep-data", str(tmp_path / "data"))
    assert differences[str(edited)] > 1e-4


def test_a_contender_that_names_nothing_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), ".", str(tmp_path / "missing.c"), *TINY],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert "missing.c" in proc.stderr
    assert "no such file" in proc.stderr
