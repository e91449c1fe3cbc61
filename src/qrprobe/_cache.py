"""The one root of qrprobe's per-user cache: ``$QRPROBE_CACHE``, or ``~/.cache/qrprobe`` when it is unset or
empty. Compiled kernels live in its ``kernels/``, verified expert weights in its ``experts/``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$QRPROBE_CACHE`` (unset or empty: ``~/.cache/qrprobe``); not created here."""
    return Path(os.environ.get("QRPROBE_CACHE") or Path.home() / ".cache" / "qrprobe")
