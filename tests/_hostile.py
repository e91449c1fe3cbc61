"""Helpers of the hostile-input tests (issue 11): run the CLI, check a one-line error, kill a writer mid-save
(their small inputs are the fixtures ``write_example`` and ``bank_of`` of conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from qrprobe.cli.main import main

REPO = Path(__file__).resolve().parents[1]
FAST = ["--k", "4", "--clusterings", "1", "--epochs", "2", "--iters", "5", "--restarts", "1", "--quiet"]


def evaluate_example(example: tuple[Path, Path], out: Path) -> Path:
    """``qrprobe evaluate`` of a ``write_example`` example into ``out`` with the :data:`FAST` protocol."""
    features, concepts = example
    assert main(["evaluate", str(features), str(concepts), *FAST, "-o", str(out)]) == 0
    return out


def cli(args: list[str], timeout: int = 300, **kwargs) -> subprocess.CompletedProcess:
    """``qrprobe ARGS`` in a subprocess (this checkout's sources first)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **kwargs.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "qrprobe", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def kill_once_ready(script: str, ready: Path, *, cwd: Path | None = None, wait: float = 180.0) -> None:
    """Run the Python ``script`` in a subprocess until it creates the file ``ready`` (it is then in the middle
    of a save), and SIGKILL it there."""
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO / "src")},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    deadline = time.time() + wait
    while not ready.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert ready.exists(), proc.communicate()[1].decode()[-2000:] if proc.poll() is not None else "no save began"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def leftovers(out: Path) -> list[str]:
    """What ``out`` and its hidden siblings (temporaries, work folders) left on disk."""
    found = [out.name] if out.exists() else []
    return found + [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def assert_input_error(capsys, args: list[str], *names: str, out: Path | None = None) -> str:
    """``qrprobe ARGS`` exits 2 with one error line naming each of ``names``, no traceback, and (``out``)
    leaves nothing at the output path nor beside it."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error" in line]) == 1, err
    for name in names:
        assert name in err, (name, err)
    if out is not None:
        assert leftovers(out) == [], (leftovers(out), err)
    return err
