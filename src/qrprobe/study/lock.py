"""One run at a time per study output folder: the lock :func:`qrprobe._lock.hold_lock` on
``OUTPUT/.qrprobe.lock``.

The lock is ``fcntl.flock`` on Linux and macOS: the kernel releases it when the holding process ends, however
it ends (a killed run never leaves a lock that blocks the next one). The file records the holder's process id
and start time, for the message a second run prints when it is refused. Where ``flock`` is unavailable (no
``fcntl``, or a file system without locks) the run goes on unlocked. The single commands' outputs are locked
the same way, on a sibling ``.NAME.lock`` (:func:`qrprobe._lock.output_lock`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .._lock import hold_lock
from ..errors import QRProbeInputError

LOCK_NAME = ".qrprobe.lock"


@contextlib.contextmanager
def study_lock(output: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of the study output folder ``output`` (created if needed) for the block; raise
    :class:`~qrprobe.errors.QRProbeInputError` at once when another process holds it."""
    output = Path(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QRProbeInputError(f"output {str(output)!r}: cannot create the study lock ({exc.strerror})") from None
    with hold_lock(output / LOCK_NAME, output, "output", reentrant=False):
        yield


__all__ = ["LOCK_NAME", "study_lock"]
