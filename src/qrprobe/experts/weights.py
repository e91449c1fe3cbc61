"""Where an expert's weights come from: a local file (``--weights``) or a download cached on disk.

Downloads happen only when no local file is given, the expert has a public URL, and downloads are allowed
(``download=True`` and the environment variable ``QRPROBE_OFFLINE`` unset). The cache directory is
``$QRPROBE_CACHE`` or ``~/.cache/qrprobe/experts``. Every failure is a :class:`QRProbeInputError` that
tells the user how to pass a local file.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._network import url_offline_reason
from ..errors import QRProbeInputError


def cache_dir() -> Path:
    """The download cache (created on demand)."""
    root = os.environ.get("QRPROBE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "qrprobe")
    return Path(root) / "experts"


def downloads_allowed(download: bool = True) -> bool:
    """False when the caller or the ``QRPROBE_OFFLINE`` environment variable forbids downloads."""
    return bool(download) and os.environ.get("QRPROBE_OFFLINE", "").strip().lower() not in ("1", "true", "yes")


def resolve_weights(expert: str, weights: str | os.PathLike | None, *, url: str | None = None,
                    download: bool = True, what: str = "weights", option: str = "weights") -> Path:
    """Return a local weights file for ``expert``.

    Parameters
    ----------
    expert : the expert's name (for messages: ``--weights EXPERT=PATH``)
    weights : a local file given by the user, or None
    url : a public download URL, or None when no public weights exist
    download : allow downloading ``url`` into the cache
    what : what the file is, in words, for messages
    option : the expert option that takes the file (``weights``, ``attributes``...)
    """
    how = (f"--weights {expert}=PATH" if option == "weights" else f"--set {expert}.{option}=PATH")
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise QRProbeInputError(f"expert {expert!r}: {what} file {str(path)!r} not found")
        return path
    if url is None:
        raise QRProbeInputError(
            f"expert {expert!r} needs {what}, and none are published for download; pass a local file with "
            f"{how}")
    target = cache_dir() / url.rstrip("/").rsplit("/", 1)[-1]
    if target.is_file():
        return target
    if not downloads_allowed(download):
        raise QRProbeInputError(
            f"expert {expert!r} needs {what} ({url}); downloads are off (offline) — download the file "
            f"yourself and pass it with {how}")
    return _download(url, target, expert, what, how)


def _download(url: str, target: Path, expert: str, what: str, how: str) -> Path:
    import torch.hub

    offline = url_offline_reason(url)
    if offline is not None:
        raise QRProbeInputError(f"expert {expert!r} needs {what} ({url}); offline: {offline} — download the file "
                                f"elsewhere and pass it with {how}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        torch.hub.download_url_to_file(url, str(partial), progress=True)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise QRProbeInputError(
            f"expert {expert!r}: could not download its {what} from {url} ({type(exc).__name__}: {first}); "
            f"without internet, download the file elsewhere and pass it with {how}") from None
    os.replace(partial, target)
    return target


def file_identity(path: str | os.PathLike | None) -> dict | None:
    """Name, size and modification time of a weights file (cheap provenance, hashed for resuming)."""
    if path is None:
        return None
    p = Path(path)
    st = p.stat()
    return {"path": str(p.resolve()), "bytes": st.st_size, "mtime": int(st.st_mtime)}
