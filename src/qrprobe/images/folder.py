"""Images in a folder tree: ``image_id`` is the path relative to the root (``"cat/0001.jpg"``).

When images sit in sub-folders, the first sub-folder is the image's ground-truth label. The walk lists every
folder once: the real folders of the tree first, then folders reached through symbolic links, each only if
it was not listed already (so a link back to an ancestor, or two links to one folder, list nothing twice).
Links are followed in sorted order, so the listing is the same on every machine. Whatever is not used is
reported in ``rejected`` with the reason: non-image files, FIFOs and devices, files over the size cap, names
that are not valid UTF-8, folders that cannot be listed or were already listed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import QRProbeInputError
from .decode import IMAGE_EXTENSIONS
from .files import is_utf8, not_regular_reason, printable
from .source import ImageSource


def folder_source(root: str | os.PathLike) -> ImageSource:
    """All image files under ``root`` (recursively), sorted by relative path.

    Images inside sub-folders get the first sub-folder's name as label; when no image sits in a
    sub-folder the source has no labels. Hidden files and folders (name starting with ``.``) are ignored;
    other unusable entries are listed in ``rejected``.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise QRProbeInputError(f"IMAGES: {str(root)!r} is not a directory")
    files, rejected = _walk(str(root_path))
    found: list[tuple[str, str, int]] = []
    for rel, full in files:
        ext = os.path.splitext(rel)[1].lower()
        if ext not in IMAGE_EXTENSIONS:
            rejected.append(_entry(rel, full, f"not an image file (extension {ext or 'none'!r})"))
            continue
        try:
            st = os.stat(full)
        except OSError:  # a dangling link: listed, and reported as unreadable when read
            found.append((rel, os.path.abspath(full), -1))
            continue
        reason = not_regular_reason(st)
        if reason:
            rejected.append(_entry(rel, full, reason))
            continue
        found.append((rel, os.path.abspath(full), st.st_size))
    found.sort(key=lambda t: t[0])
    rejected.sort(key=lambda r: r["image_id"])
    if not found:
        raise QRProbeInputError(f"IMAGES: no image files under {str(root)!r} "
                                f"(looked for {', '.join(IMAGE_EXTENSIONS)})")
    ids = [r for r, _, _ in found]
    labels = [r.split("/", 1)[0] if "/" in r else "" for r in ids]
    has_labels = any(lab for lab in labels)
    return ImageSource("folder", str(root), ids, [p for _, p, _ in found],
                       labels if has_labels else None,
                       np.array([s for _, _, s in found], dtype=np.int64), rejected=rejected)


def _entry(rel: str, full: str, reason: str) -> dict:
    return {"image_id": printable(rel), "path": printable(os.path.abspath(full)), "reason": reason}


def _walk(root: str) -> tuple[list[tuple[str, str]], list[dict]]:
    """``(relative path, path)`` of every non-hidden file under ``root``, each folder listed once; and the
    rejected entries (undecodable names, unlistable or repeated folders)."""
    files: list[tuple[str, str]] = []
    rejected: list[dict] = []
    listed: set[tuple[int, int]] = set()
    links: list[tuple[str, str]] = []  # symbolic links to folders, followed once the real tree is listed

    def list_tree(rel_top: str, top: str) -> bool:
        """List the real folders under ``top``; False when ``top`` itself was listed before."""
        stack = [(rel_top, top)]
        while stack:
            rel_dir, path = stack.pop()
            try:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) in listed:
                    if path == top:
                        return False
                    rejected.append(_entry(rel_dir, path, "folder already listed (reached twice); not listed again"))
                    continue
                listed.add((st.st_dev, st.st_ino))
                entries = sorted(os.scandir(path), key=lambda e: e.name)
            except OSError as exc:
                rejected.append(_entry(rel_dir or ".", path, f"cannot list folder ({exc.strerror or exc})"))
                continue
            subdirs = []
            for e in entries:
                if e.name.startswith("."):
                    continue
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                if not is_utf8(e.name):
                    rejected.append(_entry(rel, e.path, "name is not valid UTF-8 (rename it to use it)"))
                elif _is_dir(e, follow=False):
                    subdirs.append((rel, e.path))
                elif e.is_symlink() and _is_dir(e, follow=True):
                    links.append((rel, e.path))
                else:
                    files.append((rel, e.path))
            stack.extend(reversed(subdirs))
        return True

    list_tree("", root)
    for rel, path in links:  # grows while links inside linked folders are found
        if not list_tree(rel, path):
            rejected.append(_entry(rel, path, "link to a folder that is already listed (a loop or a second "
                                              "link); not followed"))
    return files, rejected


def _is_dir(entry: os.DirEntry, *, follow: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False
