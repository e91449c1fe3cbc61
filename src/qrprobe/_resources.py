"""Running out of a resource while writing: a file-size limit, a full disk or quota, memory.

Each is a limit of the machine, not a bug: it must end a run with one line that says which limit was hit and
where, never a traceback, and leave nothing partial behind (the atomic writers of :mod:`qrprobe._atomic`
remove what they wrote; :func:`qrprobe._atomic.writing` also drops an output's resumable work folder).

The same limit reaches us in many shapes: ``OSError(EFBIG)`` or ``OSError(ENOSPC)`` from a write; numpy's
``OSError("2000 requested and 1008 written")`` (a short write, without errno); a ``RuntimeError`` of a
DataLoader worker or of torch that quotes the system's message ("File too large", "No space left on
device"); ``MemoryError`` (numpy's ``_ArrayMemoryError`` too) or torch's "can't allocate memory".
:func:`resource_problem` recognises them all, through the chain of causes.

A file-size limit (``ulimit -f``) sends ``SIGXFSZ``, whose default action kills the process; CPython ignores
it at start-up (so ``write`` fails with ``EFBIG`` instead), and :func:`ignore_file_size_signal` makes sure of
it for the command-line entry point.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import threading
from collections.abc import Iterator

from .errors import QRProbeInputError

_LIMIT_ERRNOS = {errno.EFBIG: "file-size", errno.ENOSPC: "disk", errno.EDQUOT: "disk"}
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
_OUT_OF_MEMORY = ("can't allocate memory", "cannot allocate memory", "out of memory")


class ResourceLimitError(QRProbeInputError):
    """A run stopped by a limit of the machine (file size, disk space, memory); the message names it and the
    output. ``problem``: the limit in words (``"out of memory"``, ``"File too large (…)"``)."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


def ignore_file_size_signal() -> None:
    """Ignore ``SIGXFSZ`` (from the main thread; elsewhere it is left as it is): a write past the file-size
    limit then fails with ``EFBIG`` — an error we can report — instead of killing the process."""
    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes (explicit or implicit), each once."""
    seen = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)


def _file_size_limit() -> str:
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):  # pragma: no cover - not on Unix
        return ""
    if soft == resource.RLIM_INFINITY:
        return ""
    return f" (the file-size limit, `ulimit -f`, is {soft // 1024} KiB)"


def resource_problem(exc: BaseException) -> str | None:
    """What limit ``exc`` (or one of its causes) reports, in words, or None when it is not a resource limit."""
    for err in _chain(exc):
        if isinstance(err, ResourceLimitError):
            return err.problem
        if isinstance(err, MemoryError):
            return "out of memory"
        if isinstance(err, OSError) and err.errno in _LIMIT_ERRNOS:
            words = os.strerror(err.errno)
            return words + _file_size_limit() if err.errno == errno.EFBIG else words
        text = str(err)
        if isinstance(err, OSError) and err.errno is None and _SHORT_WRITE.search(text):
            return _short_write()
        if isinstance(err, (OSError, RuntimeError)):
            for code in _LIMIT_ERRNOS:
                if os.strerror(code) in text:
                    return os.strerror(code) + (_file_size_limit() if code == errno.EFBIG else "")
            if any(words in text.lower() for words in _OUT_OF_MEMORY):
                return "out of memory"
    return None


def _short_write() -> str:
    """A write that stopped short without an errno (numpy's ``tofile``): a file-size limit or a full disk."""
    limit = _file_size_limit()
    if limit:
        return os.strerror(errno.EFBIG) + limit
    return "a write stopped short (" + os.strerror(errno.ENOSPC).lower() + "?)"


def resource_limit_error(exc: BaseException, output: str | os.PathLike | None = None,
                         what: str = "output") -> ResourceLimitError | None:
    """The one-line error for ``exc`` when it is a resource limit (None otherwise): it names ``output`` (an
    error raised for an inner output, such as a writer's temporary folder, is named again for this one), the
    limit, and that nothing was written."""
    problem = resource_problem(exc)
    if problem is None:
        return None
    if output is None:
        return exc if isinstance(exc, ResourceLimitError) else ResourceLimitError(
            f"stopped by a resource limit: {problem}", problem)
    named = f"{what} {str(output)!r}" if what.startswith("-") else repr(str(output))  # a flag, or the path
    if problem == "out of memory":
        return ResourceLimitError(f"ran out of memory while making {named}; nothing was written (a previous "
                                  "output is kept as it was)", problem)
    return ResourceLimitError(f"cannot write {named}: {problem}; nothing was written (a previous output is "
                              "kept as it was)", problem)


__all__ = ["ResourceLimitError", "ignore_file_size_signal", "resource_limit_error", "resource_problem"]
