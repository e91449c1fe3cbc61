"""Writing artifacts so that an interrupted run never leaves one that looks done, nor debris that stays.

- :func:`atomic_directory`: build a directory under a temporary sibling name, rename it when complete;
- :func:`atomic_write_text`: the same for one text file;
- the resumable work folder of an artifact built chunk by chunk is :class:`qrprobe._workdir.ChunkedWorkDir`.

Only an output that qrprobe wrote is ever replaced (``overwrite``): a directory whose marker file names an
artifact of the same kind (:func:`artifact_kind`: ``results.json``, ``section.json``, a store's or a bank's
``manifest.json`` …). Any other existing, non-empty path is refused with a message that says why.

Temporary names carry the writing process's id (``.NAME.tmp-PID-XXXXXXXX``). A process killed mid-write
(SIGKILL, power loss) leaves them behind; the next write of the same artifact removes those whose process is
gone, and puts back a previous artifact that was moved aside (``.NAME.old-PID-XXXXXXXX``) but not yet
replaced. Write failures (a full disk, a read-only or unwritable output) remove what they had written, leave
the previous artifact as it was, and raise :class:`~qrprobe.errors.QRProbeInputError` naming the path.

Every writer runs inside :func:`writing`: the output's lock (:func:`qrprobe._lock.output_lock`, one writer per
output, taken before any work) and the handling of resource limits (:mod:`qrprobe._resources`: a file-size
limit, a full disk or memory give one :class:`~qrprobe._resources.ResourceLimitError`, and the output's
temporaries and work folder are removed). :func:`atomic_directory` takes it itself; the writers whose work
comes before the directory (extraction, labelling, a report, every command with ``-o``) take it first.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from ._lock import output_lock
from ._resources import ResourceLimitError, resource_limit_error, resource_problem

#: errno values that mean "this output cannot be written here" rather than a bug.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
_STALE = re.compile(r"\.(tmp|old)-(\d+)-[0-9a-f]{8}$")
#: The suffix of an artifact's resumable work folder ``.NAME.partial`` (:class:`qrprobe._workdir.ChunkedWorkDir`).
PARTIAL_SUFFIX = ".partial"
#: How messages of the library tell to replace an output; the command line sets it to its flag.
OVERWRITE_SWITCH = "overwrite=True"


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


_STALE_ANY = re.compile(r"^\.(?P<name>.+)\.(tmp|old)-(\d+)-[0-9a-f]{8}$")


def clean_stale_in(folder: str | os.PathLike) -> None:
    """:func:`clean_stale` for every artifact of ``folder`` that left temporaries (whatever its name)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    names = {m.group("name") for e in os.scandir(folder) if (m := _STALE_ANY.match(e.name))}
    for name in sorted(names):
        clean_stale(folder / name)


def check_writable(path: str | os.PathLike) -> None:
    """Before any work: that ``path`` (a file or directory to be written) can be written — its nearest existing
    folder accepts a small file, written and synced (a read-only or full disk is found now, not after hours of
    computing). Raises :class:`~qrprobe.errors.QRProbeInputError` naming ``path``."""
    path = Path(path)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    probe = folder / f".{path.name}.{_tag('tmp')}"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        from .errors import QRProbeInputError

        raise QRProbeInputError(f"cannot write {str(path)!r}: {exc.strerror or exc} (in {str(folder)!r})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def write_error(path: str | os.PathLike, exc: OSError) -> Exception:
    """The error to raise for ``exc`` while writing ``path``: a :class:`QRProbeInputError` naming the path for
    a full disk or an unwritable output, ``exc`` itself otherwise."""
    from .errors import QRProbeInputError

    problem = resource_problem(exc)  # a file-size limit, a full disk, a short write
    if exc.errno not in _WRITE_ERRNOS and problem is None:
        return exc
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
    if problem is None:
        return QRProbeInputError(f"cannot write {str(path)!r}: {exc.strerror or exc}{where}; nothing was replaced")
    return ResourceLimitError(f"cannot write {str(path)!r}: {problem}{where}; nothing was replaced", problem)


def discard_debris(final: str | os.PathLike) -> None:
    """Remove what this process left beside ``final``: its temporaries and the work folder ``.NAME.partial``
    (after a resource limit: nothing partial stays, and the space is given back)."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    mine = f".{final.name}.tmp-{os.getpid()}-"
    for entry in os.scandir(final.parent):
        if entry.name.startswith(mine) or entry.name == f".{final.name}{PARTIAL_SUFFIX}":
            _remove(Path(entry.path))


@contextlib.contextmanager
def writing(output: str | os.PathLike, what: str = "output") -> Iterator[None]:
    """The scope of a run that writes ``output`` (``what`` names it in messages, e.g. ``--out``): its lock is
    held (another run on the same output is refused at once), and a resource limit met inside (a file-size
    limit, a full disk, memory; in whatever shape it comes) removes this run's temporaries and the output's
    work folder and raises one :class:`~qrprobe._resources.ResourceLimitError`. A previous output stays."""
    from .errors import QRProbeInputError

    with output_lock(output, what):
        try:
            yield
        except QRProbeInputError as exc:
            if not isinstance(exc, ResourceLimitError):
                raise
            discard_debris(output)
            raise (resource_limit_error(exc, output, what) or exc) from None  # named for this output
        except BaseException as exc:
            error = resource_limit_error(exc, output, what)
            if error is None:
                raise
            discard_debris(output)
            raise error from None


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` is moved aside first and removed afterwards."""
    if final.exists():
        old = final.parent / f".{final.name}.{_tag('old')}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


#: Each kind of directory qrprobe writes and the marker file that identifies it: a JSON file whose ``format``
#: starts with the kind (``qrprobe.result/1``), or, for kinds without a manifest, a plain marker file.
ARTIFACT_MARKERS: dict[str, str] = {
    "qrprobe.result": "results.json",
    "qrprobe.report-section": "section.json",
    "qrprobe.feature-store": "manifest.json",
    "qrprobe.concept-bank": "manifest.json",
    "qrprobe.example": "example.json",
    "qrprobe.figures": ".qrprobe-figures",
}
_PLAIN_MARKERS = {"qrprobe.figures"}
_KIND_WORDS = {"qrprobe.result": "a result directory", "qrprobe.report-section": "an analysis directory",
               "qrprobe.feature-store": "a feature store", "qrprobe.concept-bank": "a concept bank",
               "qrprobe.example": "an example directory", "qrprobe.figures": "a figures directory"}


def _format_of(path: Path) -> str | None:
    """The ``format`` field of a small JSON marker file, or None."""
    try:
        if not path.is_file() or path.stat().st_size > 50_000_000:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fmt = data.get("format") if isinstance(data, dict) else None
    return fmt if isinstance(fmt, str) else None


def artifact_kind(path: str | os.PathLike) -> str | None:
    """The kind of qrprobe artifact the directory ``path`` holds (a key of :data:`ARTIFACT_MARKERS`), or None
    when it is not one (a user's folder, a file, a missing path)."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return None
    for kind, marker in ARTIFACT_MARKERS.items():
        if kind in _PLAIN_MARKERS:
            if (path / marker).is_file():
                return kind
        elif (_format_of(path / marker) or "").split("/")[0] == kind:
            return kind
    return None


def kind_of_format(fmt: str) -> str:
    """``"qrprobe.result/1"`` → ``"qrprobe.result"``."""
    return fmt.split("/")[0]


def check_replaceable(final: str | os.PathLike, overwrite: bool, kind: str | None, what: str = "output") -> None:
    """Refuse to write ``final`` unless it is missing, an empty directory, or (with ``overwrite``) an artifact of
    ``kind`` that qrprobe wrote. ``what`` names the output in messages (e.g. ``--out 'res'``)."""
    from .errors import QRProbeInputError

    final = Path(final)
    if final.is_symlink() and not final.exists():
        raise QRProbeInputError(f"{what} {str(final)!r} is a broken symbolic link; choose another path")
    if not final.exists():
        return
    if final.is_dir() and not final.is_symlink() and not any(final.iterdir()):
        return
    found = artifact_kind(final)
    switch = "--overwrite" if what.startswith("-") else OVERWRITE_SWITCH  # the CLI's flag, or the parameter
    if not overwrite:
        hint = f" (pass {switch} to replace it)" if found is not None and found == kind else ""
        raise QRProbeInputError(f"{what} {str(final)!r} already exists and is not empty{hint}; choose another path")
    wanted = _KIND_WORDS.get(kind or "", "an output")
    if kind is None or found != kind:
        if final.is_symlink():
            why = "is a symbolic link"
        elif not final.is_dir():
            why = "is a file"
        elif found is not None:
            why = f"holds {_KIND_WORDS[found]}, not {wanted}"
        else:
            why = f"was not written by qrprobe (no {ARTIFACT_MARKERS.get(kind or '', 'qrprobe marker')})"
        raise QRProbeInputError(f"{what} {str(final)!r} {why}; {switch} replaces only {wanted} that "
                                "qrprobe wrote — choose another path or remove it yourself")


def _resolved(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def check_not_an_input(out: str | os.PathLike, inputs: dict, *, images: str | os.PathLike | None = None,
                       what: str = "output", holding: bool = True) -> None:
    """Refuse an output that is one of a run's inputs or (``holding``) a folder holding one (``inputs``: label →
    a path or a list of paths; None and missing paths are ignored), or that lies in the image folder ``images``
    (a later run would read its files as images). ``what`` names the output in messages (e.g. ``--out``)."""
    from .errors import QRProbeInputError

    target = _resolved(out)
    for label, value in inputs.items():
        for path in value if isinstance(value, (list, tuple)) else [value]:
            if path is None or not Path(path).exists():
                continue
            given = _resolved(path)
            if given == target or (holding and target in given.parents):
                where = "is" if given == target else "holds"
                raise QRProbeInputError(f"{what} {str(out)!r} {where} the input {label} {str(path)!r}; an output "
                                        "never replaces an input — choose another path")
    if images is not None and Path(images).is_dir():
        folder = _resolved(images)
        if target == folder or folder in target.parents:
            raise QRProbeInputError(f"{what} {str(out)!r} lies inside the image folder {str(images)!r}; a later "
                                    "run would read its files as images — choose a path outside it")


def _check_replaceable(final: Path, overwrite: bool, kind: str | None = None) -> None:
    check_replaceable(final, overwrite, kind, "output directory")


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, *, overwrite: bool = False,
                     kind: str | None = None) -> Iterator[Path]:
    """Yield a temporary directory next to ``final``; on success it replaces ``final``.

    The output's lock is held throughout (:func:`writing`). An existing non-empty ``final`` is an error, unless
    ``overwrite`` and it is an artifact of ``kind`` (a key of :data:`ARTIFACT_MARKERS`) that qrprobe wrote.
    On any exception the temporary directory is removed and ``final`` is left as it was.
    """
    final = Path(final)
    with writing(final, "output directory"):
        clean_stale(final)
        _check_replaceable(final, overwrite, kind)
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
