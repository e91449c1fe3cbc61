"""Writing artifacts so that an interrupted run never leaves one that looks done, nor debris that stays.

- :func:`atomic_directory`: build a directory under a temporary sibling name, rename it when complete;
- :func:`atomic_write_text`: the same for one text file;
- :class:`ChunkedWorkDir`: the resumable work folder ``.NAME.partial`` of an artifact built chunk by chunk
  (the feature store's extraction, the concept bank's labelling): finished chunks survive a crash and a
  rerun with the same identity continues after them.

Temporary names carry the writing process's id (``.NAME.tmp-PID-XXXXXXXX``). A process killed mid-write
(SIGKILL, power loss) leaves them behind; the next write of the same artifact removes those whose process is
gone, and puts back a previous artifact that was moved aside (``.NAME.old-PID-XXXXXXXX``) but not yet
replaced. Write failures (a full disk, a read-only or unwritable output) remove what they had written, leave
the previous artifact as it was, and raise :class:`~qrprobe.errors.QRProbeInputError` naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

#: errno values that mean "this output cannot be written here" rather than a bug.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
_STALE = re.compile(r"\.(tmp|old)-(\d+)-[0-9a-f]{8}$")


def _tag(kind: str) -> str:
    return f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(final: str | os.PathLike) -> None:
    """Remove the temporary siblings of ``final`` left by dead processes; when ``final`` itself is missing
    and a previous version was moved aside by a run killed mid-swap, put that version back."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    prefix = f".{final.name}."
    stale: dict[str, list[Path]] = {"tmp": [], "old": []}
    for entry in os.scandir(final.parent):
        if entry.name.startswith(prefix):
            m = _STALE.match(entry.name, len(prefix) - 1)
            if m and not _process_alive(int(m.group(2))):
                stale[m.group(1)].append(Path(entry.path))
    olds = sorted(stale["old"], key=lambda p: p.stat().st_mtime)
    if olds and not final.exists() and not final.is_symlink():
        olds.pop().rename(final)
    for path in stale["tmp"] + olds:
        _remove(path)


def write_error(path: str | os.PathLike, exc: OSError) -> Exception:
    """The error to raise for ``exc`` while writing ``path``: a :class:`QRProbeInputError` naming the path for
    a full disk or an unwritable output, ``exc`` itself otherwise."""
    from .errors import QRProbeInputError

    if exc.errno not in _WRITE_ERRNOS:
        return exc
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
    return QRProbeInputError(f"cannot write {str(path)!r}: {exc.strerror or exc}{where}; nothing was replaced")


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` is moved aside first and removed afterwards."""
    if final.exists():
        old = final.parent / f".{final.name}.{_tag('old')}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def _check_replaceable(final: Path, overwrite: bool) -> None:
    from .errors import QRProbeInputError

    if final.exists() and not overwrite and (not final.is_dir() or any(final.iterdir())):
        raise QRProbeInputError(f"output directory {str(final)!r} already exists and is not empty "
                                "(choose another path or pass overwrite)")


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory next to ``final``; on success it replaces ``final``.

    With ``overwrite=False`` an existing non-empty ``final`` is an error. On any exception the temporary
    directory is removed and ``final`` is left as it was.
    """
    final = Path(final)
    clean_stale(final)
    _check_replaceable(final, overwrite)
    tmp = final.parent / f".{final.name}.{_tag('tmp')}"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        raise write_error(final, exc) from exc
    try:
        yield tmp
        _swap_into_place(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(final, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    clean_stale(path)
    tmp = path.with_name(f".{path.name}.{_tag('tmp')}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ChunkedWorkDir:
    """The resumable work folder ``.NAME.partial`` beside an artifact ``NAME`` that is built in chunks.

    The folder holds the chunks' files and a JSON state file: ``header`` + ``identity`` + ``chunks`` (one
    record per committed chunk, listing its ``files``). A chunk is committed by writing each of its files
    under a temporary name, renaming them, then rewriting the state; so a crash at any point loses at most
    the chunk in progress. Re-opening with an equal ``identity`` (and ``resume``) keeps the committed chunks
    whose files are all present; anything else starts from an empty folder. Temporary files of a killed run
    are removed on opening.

    Parameters
    ----------
    final : the artifact's final path ``NAME``.
    identity : what the chunks depend on (configuration hash, ...): resuming needs equality.
    header : more state fields, written as they are (a format tag, descriptions).
    state_name : the state file's name in the folder.
    resume : keep the committed chunks of an earlier run with the same identity.
    """

    SUFFIX = ".partial"

    def __init__(self, final: str | os.PathLike, *, identity: dict, header: dict | None = None,
                 state_name: str = "state.json", resume: bool = True) -> None:
        self.final = Path(final)
        self.path = self.partial_path(self.final)
        self.identity = dict(identity)
        self.header = dict(header or {})
        self.state_name = state_name
        self.chunks: dict[int, dict] = {}
        try:
            state = json.loads((self.path / state_name).read_text())
        except (OSError, ValueError):
            state = None
        if resume and isinstance(state, dict) and all(state.get(k) == v for k, v in self.identity.items()):
            self.chunks = {int(c["chunk"]): c for c in state.get("chunks", [])
                           if c.get("files") is not None and all((self.path / f).is_file() for f in c["files"])}
            for entry in os.scandir(self.path):
                if entry.name.startswith(".") or (entry.name != state_name and not self._committed(entry.name)):
                    _remove(Path(entry.path))
        elif self.path.exists() or self.path.is_symlink():
            _remove(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        self.write_state()

    @classmethod
    def partial_path(cls, final: str | os.PathLike) -> Path:
        """Where the work folder of ``final`` lives: the hidden sibling ``.NAME.partial``."""
        final = Path(final)
        return final.parent / f".{final.name}{cls.SUFFIX}"

    def _committed(self, name: str) -> bool:
        return any(name in c["files"] for c in self.chunks.values())

    def write_state(self, **fields) -> None:
        """Rewrite the state file (``fields`` are added to it, for a final manifest)."""
        state = {**self.header, **self.identity, **fields, "chunks": [self.chunks[c] for c in sorted(self.chunks)]}
        atomic_write_text(self.path / self.state_name, json.dumps(state, indent=2, default=str))

    def commit(self, chunk: int, files: dict[str, Callable[[Path], None]], record: dict | None = None) -> None:
        """Durably record ``chunk``: ``files`` maps each file name to a function writing it at a given path;
        ``record`` (JSON-able) is kept in the state with ``chunk`` and ``files``."""
        written = []
        try:
            for name, write in files.items():
                tmp = self.path / f".{name}.{_tag('tmp')}"
                written.append(tmp)
                write(tmp)
                os.replace(tmp, self.path / name)
        except OSError as exc:
            for tmp in written:
                tmp.unlink(missing_ok=True)
            raise write_error(self.final, exc) from exc
        except BaseException:
            for tmp in written:
                tmp.unlink(missing_ok=True)
            raise
        self.chunks[int(chunk)] = {**(record or {}), "chunk": int(chunk), "files": list(files)}
        self.write_state()

    def forget(self, chunk: int) -> None:
        """Drop a committed chunk (its files turned out unreadable): it will be computed again."""
        entry = self.chunks.pop(int(chunk), None)
        for name in (entry or {}).get("files", []):
            (self.path / name).unlink(missing_ok=True)
        self.write_state()

    def move_into_place(self, *, overwrite: bool = False) -> None:
        """Rename the work folder to the final name (the folder must by now hold the complete artifact)."""
        clean_stale(self.final)
        _check_replaceable(self.final, overwrite)
        try:
            _swap_into_place(self.path, self.final)
        except OSError as exc:
            raise write_error(self.final, exc) from exc

    def remove(self) -> None:
        """Delete the work folder."""
        shutil.rmtree(self.path, ignore_errors=True)
