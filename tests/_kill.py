"""Killing a real process in the middle of a resumable job: wait until its work folder holds finished chunks."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path


def committed_chunks(state: Path) -> int:
    """Chunks recorded in a resumable work folder's state file (``.NAME.partial/manifest.json``); 0 while absent."""
    try:
        return len(json.loads(state.read_text())["chunks"])
    except (OSError, ValueError, KeyError):
        return 0


def wait_for_chunks(proc: subprocess.Popen, state: Path, at_least: int, timeout: float) -> None:
    """Return once ``state`` lists ``at_least`` chunks; fail if ``proc`` ended first (with its stderr)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and committed_chunks(state) < at_least:
        time.sleep(0.05)
    assert proc.poll() is None, "the job ended before it could be killed: " + proc.stderr.read().decode()[-2000:]


def interrupt_after(monkeypatch, owner, name: str, calls: int):
    """Make ``owner.name`` raise KeyboardInterrupt when called after ``calls`` calls (a run interrupted after
    that many steps); returns a function that puts the original back."""
    original = getattr(owner, name)
    count = {"n": 0}

    def flaky(*args, **kwargs):
        if count["n"] == calls:
            raise KeyboardInterrupt
        count["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, flaky)
    return lambda: monkeypatch.setattr(owner, name, original)
