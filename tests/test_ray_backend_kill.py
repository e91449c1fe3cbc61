"""A real SIGKILL of `qrprobe extract --backend ray` mid-run, then the same command again: the rerun keeps the
killed run's finished chunks and writes the store a local run writes, byte for byte.

Its own file (not test_ray_backend.py): it needs none of that module's in-process Ray runtime (each run starts
its own in the subprocess), and with ``--dist loadfile`` it can then run on one worker while that module runs on
the other, instead of after it.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from _kill import committed_chunks, wait_for_chunks
from qrprobe.cli.main import main
from qrprobe.features.store import partial_path

pytest.importorskip("ray")
pytest.importorskip("ray.data")

REPO = Path(__file__).resolve().parents[1]
IMAGES = str(REPO / "src" / "qrprobe" / "data" / "demo" / "openclipart-demo.tar")
#: Images extracted; chunks of 4, so LIMIT // 4 chunks. Enough that the job is still running after the burst of
#: chunks Ray may commit between the poll and the kill (two chunks take well under a second on a quiet machine).
LIMIT = 200

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def same_files(a: Path, b: Path) -> None:
    """Every file of ``a`` is in ``b`` with the same bytes, and no other file is; sub-folders alike."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if (a / name).is_dir():
            same_files(a / name, b / name)
        else:
            assert filecmp.cmp(a / name, b / name, shallow=False), f"{name} differs"


def _ray_processes(session_dir: str) -> list[int]:
    """Processes still running whose command line names the given Ray session."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()[1:] if session_dir in line]


def _ray_processes_after(session_dir: str, grace_s: float) -> list[int]:
    """:func:`_ray_processes`, once none is left or ``grace_s`` seconds have passed (a SIGKILL is delivered
    asynchronously: a process may show for a moment after ``killpg``)."""
    deadline = time.monotonic() + grace_s
    while (left := _ray_processes(session_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def ray_tmpdir():
    """A short temporary folder for the subprocess' Ray sessions (Ray's socket paths must stay under 108 bytes)."""
    path = tempfile.mkdtemp(prefix="qrp-ray-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_killed_ray_extraction_reruns_to_an_identical_store(tmp_path, ray_tmpdir, capsys):
    """A real SIGKILL of `qrprobe extract --backend ray` (driver, its Ray runtime and workers), then again (one
    sequence: the rerun needs what the killed run left)."""
    args = ["extract", "efficientnet-lite0-random", IMAGES, "--quiet", "--limit", str(LIMIT), "--batch-size", "4",
            "--chunk-size", "4", "--device", "cpu"]
    cmd = [sys.executable, "-m", "qrprobe", *args]
    ray_flags = ["--backend", "ray", "--num-cpus", "2", "--object-store-gb", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "RAY_TMPDIR": ray_tmpdir}
    out = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, *ray_flags, "-o", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    manifest = partial_path(out) / "manifest.json"
    wait_for_chunks(proc, manifest, 2, timeout=300)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job: driver, raylet, workers (as a scheduler would)
    proc.wait()
    assert not out.exists()
    done = committed_chunks(manifest)
    # the batches are fast (a random network, 4 images), so on a quiet machine Ray may commit several chunks in a
    # burst between the poll and the kill; decoding LIMIT images keeps the job running past them
    assert 2 <= done < LIMIT // 4
    assert not _ray_processes_after(ray_tmpdir, grace_s=5), "Ray processes outlived the killed job"
    resumed = subprocess.run([*cmd, *ray_flags, "-o", str(out)], env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed after {done} finished chunk(s)" in resumed.stdout
    # the reference: the same command with the local backend, in this process (the CLI's code, one torch thread;
    # a subprocess would only add an interpreter start)
    assert main([*args, "--workers", "0", "--threads", "1", "-o", str(tmp_path / "ref")]) == 0, \
        capsys.readouterr().err[-3000:]
    same_files(tmp_path / "ref", out)
