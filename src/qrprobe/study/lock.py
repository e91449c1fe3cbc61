"""One run at a time per study output folder: an advisory lock on ``OUTPUT/.qrprobe.lock``.

The lock is ``fcntl.flock`` on Linux and macOS: the kernel releases it when the holding process ends, however
it ends (a killed run never leaves a lock that blocks the next one). The file records the holder's process id
and start time, for the message a second run prints when it is refused. Where ``flock`` is unavailable (no
``fcntl``, or a file system without locks) the run goes on unlocked.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import QRProbeInputError

LOCK_NAME = ".qrprobe.lock"


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "another qrprobe run"
    pid, _, started = text.partition(" ")
    return f"another qrprobe run (pid {pid}, started {started})" if pid.isdigit() else "another qrprobe run"


@contextlib.contextmanager
def study_lock(output: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of the study output folder ``output`` (created if needed) for the block; raise
    :class:`~qrprobe.errors.QRProbeInputError` at once when another process holds it."""
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - not on Linux/macOS
        yield
        return
    output = Path(output)
    path = output / LOCK_NAME
    try:
        output.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise QRProbeInputError(f"output {str(output)!r}: cannot create the study lock ({exc.strerror})") from None
    try:
        _acquire(fd, path, output)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _acquire(fd: int, path: Path, output: Path) -> None:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise QRProbeInputError(f"{_holder(path)} is using {str(output)!r}; wait for it to finish, or give "
                                    "this run another output") from None
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            return  # a file system without locks: go on unlocked
        raise
    started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {started}\n".encode())


__all__ = ["LOCK_NAME", "study_lock"]
