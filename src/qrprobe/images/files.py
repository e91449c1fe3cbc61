"""Reading image files safely: regular files only, with a size cap, and names that can be written out.

A FIFO would block the reader forever, ``/dev/zero`` linked as ``x.jpg`` would be read until memory runs out,
and a file name that is not valid UTF-8 cannot be stored in a feature store's index. Each of these becomes a
reason (a rejected or skipped file), never a hang or a crash.
"""

from __future__ import annotations

import os
import stat

from .decode import ImageDecodeError

#: Largest image file (or tar member) read, in bytes. An encoded image this large would decode to far more
#: pixels than Pillow's decompression-bomb limit allows anyway; larger files are reported, not read.
MAX_IMAGE_BYTES = 256 * 1024 * 1024

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """``"a FIFO"``, ``"a character device"``... for a ``st_mode`` that is not a regular file."""
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def byte_cap(max_bytes: int | None = None) -> int:
    """``max_bytes``, or :data:`MAX_IMAGE_BYTES` (looked up at call time) when None."""
    return MAX_IMAGE_BYTES if max_bytes is None else max_bytes


def why_not_a_file(path: str | os.PathLike) -> str:
    """For a path that is not a regular file: ``"not found"`` or ``"is not a regular file (a FIFO)"``..."""
    try:
        return f"is not a regular file ({file_kind(os.stat(path).st_mode)})"
    except OSError:
        return "not found"


def not_regular_reason(st: os.stat_result, max_bytes: int | None = None) -> str | None:
    """Why a file with this ``stat`` result cannot be an image file, or None when it can be read."""
    max_bytes = byte_cap(max_bytes)
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file ({file_kind(st.st_mode)})"
    if st.st_size > max_bytes:
        return too_large(st.st_size, max_bytes)
    return None


def too_large(size: int, max_bytes: int | None = None) -> str:
    max_bytes = byte_cap(max_bytes)
    return f"file too large ({size} bytes; the cap is {max_bytes} bytes)"


def read_file_bytes(path: str, max_bytes: int | None = None) -> bytes:
    """Return the bytes of the regular file ``path`` (at most ``max_bytes``).

    Raises :class:`ImageDecodeError` saying why the file cannot be read: missing, a directory, a FIFO or
    device (checked on the opened file, so a file swapped after listing is caught too), too large.
    """
    max_bytes = byte_cap(max_bytes)
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageDecodeError("file not found") from None
    except IsADirectoryError:
        raise ImageDecodeError("is a directory, not a file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise ImageDecodeError(f"cannot read file ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        reason = not_regular_reason(os.fstat(fd), max_bytes)
        if reason:
            raise ImageDecodeError(reason)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ImageDecodeError(too_large(len(data), max_bytes))
    return data


def is_utf8(name: str) -> bool:
    """Whether a file name (as ``os`` returns it, undecodable bytes as surrogates) is valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(name: str) -> str:
    """A file name that can be written anywhere: undecodable bytes shown as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")
