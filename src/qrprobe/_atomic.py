"""Write artifact directories atomically: build under a temporary sibling name, rename when complete.

An interrupted run therefore never leaves a half-written directory under the final name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory next to ``final``; on success it replaces ``final``.

    With ``overwrite=False`` an existing non-empty ``final`` is an error. On any exception the temporary
    directory is removed and ``final`` is left as it was.
    """
    from .errors import QRProbeInputError

    final = Path(final)
    if final.exists() and not overwrite and (not final.is_dir() or any(final.iterdir())):
        raise QRProbeInputError(f"output directory {str(final)!r} already exists and is not empty "
                                "(choose another path or pass overwrite)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
