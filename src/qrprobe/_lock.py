"""One writer per output: an advisory lock held for the whole run that writes it.

:func:`output_lock` guards an output (a directory or a file ``NAME``) with ``fcntl.flock`` on its hidden sibling
``.NAME.lock``; :func:`hold_lock` is the same on a lock file at any path (the study runner's
``OUTPUT/.qrprobe.lock``). The lock is taken before any work and refused *at once* when another process holds
it: :class:`~qrprobe.errors.QRProbeInputError` naming that process (its pid and start time, which the lock file
records), so a second run never computes for minutes and then fails, and two runs never both write one output,
``overwrite`` or not.

- Released on any exit: normally and on exceptions by the ``with`` block (the lock file is then removed); when
  the process dies (SIGKILL, a crash) the kernel releases ``flock`` itself, and the file left behind names a
  dead pid: the next run takes it over.
- Re-entrant within one process: a command that holds its output's lock may call library writers that take
  the same lock (a per-process count; the file is locked once).
- Removing the lock file is race-free: a process that locked a file which was meanwhile removed (or replaced)
  finds that its descriptor no longer matches the path, and locks again.
- Where ``flock`` is unavailable (no ``fcntl``, a file system without locks) the run goes on unlocked.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import QRProbeInputError

#: errno values of ``flock`` that mean "held by another process".
_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
#: errno values of ``flock`` that mean "this file system has no locks".
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)

_held: dict[tuple[int, str], int] = {}  # (pid, lock file) -> nested holds (a forked child holds none)
_held_guard = threading.Lock()


def lock_path(output: str | os.PathLike) -> Path:
    """Where the lock of ``output`` lives: the hidden sibling ``.NAME.lock`` (in the folder's real path, so that
    two runs naming one output through different symbolic links to its folder share the lock)."""
    output = Path(output)
    return output.parent.resolve() / f".{output.name}.lock"


def holder(path: str | os.PathLike) -> str:
    """Who holds the lock file ``path``, in words: ``"another qrprobe run (pid 123, started …)"``."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return "another qrprobe run"
    pid, _, started = text.partition(" ")
    return f"another qrprobe run (pid {pid}, started {started})" if pid.isdigit() else "another qrprobe run"


@contextlib.contextmanager
def output_lock(output: str | os.PathLike, what: str = "output") -> Iterator[None]:
    """Hold the lock of ``output`` (a file or directory, which need not exist yet; missing parent folders are
    created, and removed again on release when the run left them empty) for the block. ``what`` names the
    output in the message a second run gets (e.g. ``--out``)."""
    output = Path(output)
    created = _make_parents(output, what)
    try:
        with hold_lock(lock_path(output), output, what):
            yield
    finally:
        for folder in created:  # innermost first: folders this run created and left empty
            with contextlib.suppress(OSError):
                folder.rmdir()


@contextlib.contextmanager
def hold_lock(path: str | os.PathLike, output: str | os.PathLike, what: str = "output", *,
              reentrant: bool = True) -> Iterator[None]:
    """Hold the lock file ``path`` that guards ``output`` for the block (the file is removed on release).
    Raises :class:`~qrprobe.errors.QRProbeInputError` at once when another process holds it, or (not
    ``reentrant``: a study run inside a study run) when this process does."""
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - not on Linux/macOS
        yield
        return
    key = (os.getpid(), os.path.abspath(path))
    with _held_guard:
        nested = _held.get(key, 0)
        if nested and not reentrant:
            raise _busy(Path(key[1]), Path(output), what)
        if nested:
            _held[key] = nested + 1
    if nested:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    fd = _acquire(Path(key[1]), Path(output), what)
    with _held_guard:
        _held[key] = 1
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        if fd is not None:
            with contextlib.suppress(OSError):  # while still holding it: a process that opened the file
                os.unlink(key[1])               # meanwhile sees it is gone once it gets the lock
            os.close(fd)  # closing releases the lock


def _make_parents(output: Path, what: str) -> list[Path]:
    missing = []
    folder = output.absolute().parent
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise _cannot_lock(output, what, exc, path) from None
    return missing


def _busy(path: Path, output: Path, what: str) -> QRProbeInputError:
    return QRProbeInputError(f"{what} {str(output)!r}: {holder(path)} is using it; wait for it to finish, or "
                             f"choose another {what}")


def _cannot_lock(output: Path, what: str, exc: OSError, where: Path) -> QRProbeInputError:
    return QRProbeInputError(f"cannot write {what} {str(output)!r}: {exc.strerror or exc} (in {str(where)!r})")


def _acquire(path: Path, output: Path, what: str) -> int | None:
    """Lock ``path`` (created if missing) and write this process's id and start time into it; the open
    descriptor, or None on a file system without locks."""
    import fcntl

    for _ in range(100):  # another run may remove the file between our open and our lock: open it again
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            _make_parents(output, what)
            continue
        except OSError as exc:
            raise _cannot_lock(output, what, exc, path.parent) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _BUSY:
                raise _busy(path, output, what) from None
            if exc.errno in _UNSUPPORTED:
                return None  # a file system without locks: go on unlocked
            raise _cannot_lock(output, what, exc, path.parent) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if not same:  # we locked a file that its holder removed on release
            os.close(fd)
            continue
        started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        try:  # the previous content (a dead run's pid) is replaced: a stale lock is taken over
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {started}\n".encode())
        except OSError:
            pass  # the pid is only for messages; a full disk must not stop the lock
        return fd
    raise QRProbeInputError(f"{what} {str(output)!r}: could not take the lock {str(path)!r}")  # pragma: no cover


__all__ = ["hold_lock", "holder", "lock_path", "output_lock"]
