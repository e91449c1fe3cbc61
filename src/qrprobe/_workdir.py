"""The resumable work folder ``.NAME.partial`` of an artifact built chunk by chunk (the feature store's
extraction, the concept bank's labelling): finished chunks survive a crash, and a rerun with the same identity
continues after them. Its files are written as :mod:`qrprobe._atomic` writes artifacts (temporary names,
renames, stale temporaries removed).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ._atomic import (
    PARTIAL_SUFFIX,
    _check_replaceable,
    _remove,
    _swap_into_place,
    _tag,
    atomic_write_text,
    clean_stale,
    write_error,
)


def _plain_name(name: object) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and os.path.basename(name) == name \
        and "\\" not in name and "\0" not in name


def _chunk_records(chunks: object) -> list[dict]:
    """The well-formed chunk records of a work folder's state: an integer ``chunk`` and ``files`` that are
    plain names in the folder (a damaged or forged state never makes us read or move a file outside it)."""
    if not isinstance(chunks, list):
        return []
    return [c for c in chunks if isinstance(c, dict) and isinstance(c.get("chunk"), int)
            and isinstance(c.get("files"), list) and all(_plain_name(f) for f in c["files"])
            and all(_plain_name(c[k]) for k in ("file", "index_file") if k in c)]


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

    SUFFIX = PARTIAL_SUFFIX

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
            self.chunks = {int(c["chunk"]): c for c in _chunk_records(state.get("chunks"))
                           if all((self.path / f).is_file() for f in c["files"])}
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

    def move_into_place(self, *, overwrite: bool = False, kind: str | None = None) -> None:
        """Rename the work folder to the final name (the folder must by now hold the complete artifact of
        ``kind``, which may replace an artifact of the same kind with ``overwrite``)."""
        clean_stale(self.final)
        _check_replaceable(self.final, overwrite, kind)
        try:
            _swap_into_place(self.path, self.final)
        except OSError as exc:
            raise write_error(self.final, exc) from exc

    def remove(self) -> None:
        """Delete the work folder."""
        shutil.rmtree(self.path, ignore_errors=True)
