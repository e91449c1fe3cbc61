"""benchmarks/probe_floor.py at a tiny size: every part runs through the kernel's own step loop and is printed,
the update part computes the kernel's momentum step (zero gradient), and bad arguments are refused."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from qrprobe.engine.probe import kernel
from qrprobe.engine.probe.sgd import with_bias_column

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "probe_floor.py"
TINY = ["--n", "3000", "--concepts", "40", "--ones", "5", "--k", "70", "--steps", "3", "--threads", "2"]

pytestmark = pytest.mark.skipif(not kernel.available(), reason="the compiled probe cannot run here")


def _script():
    spec = importlib.util.spec_from_file_location("probe_floor", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_part_is_measured_and_summed(tmp_path):
    """One round: each cached part is its twice − once, and the parts summed is their sum (to the printed
    rounding; timings this small may be noise, so only the table's arithmetic is checked)."""
    args = [*TINY, "--rounds", "1", "--keep-data", str(tmp_path / "data")]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")]
                                              for line in proc.stdout.splitlines() if line.startswith("| "))}
    floor = _script()
    ms = {}
    for name in ("kernel", *floor.PARTS, *floor.CACHED):
        assert name in rows, name
        ms[name] = float(rows[name][0].split(" (")[0])
    for name, (twice, once) in floor.CACHED.items():
        assert ms[name] == pytest.approx(ms[twice] - ms[once], abs=0.011)
    summed = next(name for name in rows if name.startswith("parts summed"))
    assert float(rows[summed][0].split(" (")[0]) == pytest.approx(sum(ms[name] for name in floor.SUMMED), abs=0.021)
    assert "kernel / parts summed, round by round: " in proc.stdout
    assert "forward (F) / (forward gathers + softmax), round by round" in proc.stdout
    assert "goal 2.00 s/epoch: the kernel " in proc.stdout


def test_the_update_part_is_the_momentum_step_with_a_zero_gradient():
    """Steps of v = u; w ← w − η v; u ← μ v + λ w on every row, as the kernel's update with no gradient."""
    floor = _script()
    lib = floor._floor_library()
    rng = np.random.default_rng(0)
    n, m, k, batch = 300, 12, 70, 64
    x = with_bias_column(sp.csr_matrix((rng.random((n, m)) < 0.3).astype(np.float32)))
    sgd = kernel.KernelSGD(x, rng.integers(0, k, n), k, batch, 0.9, 1e-3, 2)
    sgd.w[:] = rng.normal(size=sgd.w.shape).astype(np.float32)
    sgd.u[:] = rng.normal(size=sgd.u.shape).astype(np.float32)
    w, u = sgd.w.astype(np.float64), sgd.u.astype(np.float64)
    perm = rng.permutation(n).astype(np.int64)
    proba = np.empty(n, dtype=np.float32)
    rc = floor.run_part(lib, "update", sgd, perm, 0.05, proba)
    assert rc == 0
    for _ in range(-(-n // batch)):
        v = u
        w = w - 0.05 * v
        u = 0.9 * v + 1e-3 * w
    np.testing.assert_allclose(sgd.w, w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sgd.u, u, rtol=1e-5, atol=1e-5)
    r = sgd.rows
    assert lib.qr_floor_epoch(99, sgd.w.ctypes.data, sgd.u.ctypes.data, sgd.n_table, k, r.indptr.ctypes.data,
                              r.indices.ctypes.data, r.labels.ctypes.data, perm.ctypes.data, n, batch, 0.05, 0.9,
                              1e-3, proba.ctypes.data, 2) == -2


@pytest.mark.parametrize("arg", ["--steps", "--rounds", "--threads"])
def test_a_count_below_one_is_refused(arg):
    proc = subprocess.run([sys.executable, str(SCRIPT), *TINY, arg, "0"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 2
    assert "must be at least 1" in proc.stderr
