"""Image collections: a folder tree, a file list, or tar shards in the webdataset layout.

Every source lists its images once, in a deterministic order, as an :class:`ImageSource`: parallel columns
``image_ids``, ``paths``, ``labels`` (or None), ``sizes`` and, for tar shards, where each image's bytes lie.
``image_id`` is stable across runs and machines:

- folder: the path relative to the root, with ``/`` separators (``"cat/0001.jpg"``); when images sit in
  sub-folders, the first sub-folder is the image's ground-truth label;
- file list: the ``image_id`` column (the path as written when the list has none);
- tar shards: the webdataset key (the member name up to the first dot of its file name).

Files that are listed but are not images (a ``notes.txt`` in the folder, a tar sample without an image
member) are kept in :attr:`ImageSource.rejected` so the extraction can report them.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import QRProbeInputError
from .decode import IMAGE_EXTENSIONS, ImageDecodeError, read_file_bytes

_LIST_SUFFIXES = (".csv", ".tsv", ".txt", ".lst", ".list")
_TAR_SUFFIXES = (".tar",)
_WDS_IMAGE_EXTS = tuple(e.lstrip(".") for e in IMAGE_EXTENSIONS)
_WDS_LABEL_EXTS = ("cls", "cls.txt", "label", "label.txt", "class", "class.txt")
_PATH_COLUMNS = ("path", "file", "filename", "filepath", "image", "image_path")
_ID_COLUMNS = ("image_id", "id", "key")
_LABEL_COLUMNS = ("label", "class", "category", "target")


@dataclass
class ImageSource:
    """An ordered image collection.

    Attributes
    ----------
    kind : ``"folder"``, ``"file-list"``, ``"tar"`` or ``"paths"``
    location : the folder, list file or shard pattern the user gave
    image_ids : list of str, length N, unique
    paths : list of str, length N; a file path, or ``"SHARD.tar::MEMBER"`` for tar shards
    labels : list of str (length N) or None when the source has no ground-truth labels
    sizes : int64 array (N,), file sizes in bytes (-1 when unknown)
    tar_files : list of str, the shards (tar sources only)
    tar_index : int64 array (N, 3): shard number, byte offset, byte length of each image (tar sources only)
    rejected : list of ``{"image_id", "path", "reason"}`` for listed files that are not images
    """

    kind: str
    location: str
    image_ids: list[str]
    paths: list[str]
    labels: list[str] | None = None
    sizes: np.ndarray | None = None
    tar_files: list[str] = field(default_factory=list)
    tar_index: np.ndarray | None = None
    rejected: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        if len(self.paths) != n or (self.labels is not None and len(self.labels) != n):
            raise ValueError("image_ids, paths and labels must have the same length")
        if self.sizes is None:
            self.sizes = np.full(n, -1, dtype=np.int64)
        seen: set[str] = set()
        dups = [i for i in self.image_ids if i in seen or seen.add(i)]
        if dups:
            raise QRProbeInputError(f"{self.location}: duplicate image ids {sorted(set(dups))[:5]} "
                                    "(each image id must appear once)")

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def read_bytes(self, i: int) -> bytes:
        """Return the encoded bytes of image ``i``; raise :class:`ImageDecodeError` when unreadable."""
        return make_reader(self)(i)

    def select(self, rows: Sequence[int] | np.ndarray) -> ImageSource:
        """A source with only the given rows (in the given order); ``rejected`` is kept."""
        rows = np.asarray(rows, dtype=np.int64)
        return ImageSource(
            kind=self.kind, location=self.location,
            image_ids=[self.image_ids[i] for i in rows], paths=[self.paths[i] for i in rows],
            labels=None if self.labels is None else [self.labels[i] for i in rows],
            sizes=self.sizes[rows], tar_files=list(self.tar_files),
            tar_index=None if self.tar_index is None else self.tar_index[rows],
            rejected=list(self.rejected))

    def inputs_hash(self) -> str:
        """Hash of the listing (ids, paths, labels, sizes): equal listings give equal hashes."""
        h = hashlib.sha256()
        labels = self.labels or [""] * len(self)
        for image_id, path, label, size in zip(self.image_ids, self.paths, labels, self.sizes.tolist(), strict=True):
            h.update(f"{image_id}\0{path}\0{label}\0{size}\n".encode())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        """What the manifest records about the source."""
        return {"kind": self.kind, "location": self.location, "n_images": len(self),
                "n_rejected": len(self.rejected), "has_labels": self.has_labels,
                "inputs_hash": self.inputs_hash()}

    def __repr__(self) -> str:
        return (f"ImageSource(kind={self.kind!r}, location={self.location!r}, n={len(self)}, "
                f"labels={self.has_labels}, rejected={len(self.rejected)})")


class _FileReader:
    """Picklable ``i -> bytes`` for file-backed sources; paths kept as one compact bytes array."""

    def __init__(self, paths: Sequence[str]) -> None:
        self._paths = np.array([os.fsencode(p) for p in paths], dtype=bytes) if len(paths) else np.array([], "S1")

    def __call__(self, i: int) -> bytes:
        return read_file_bytes(os.fsdecode(self._paths[i]))


class _TarReader:
    """Picklable ``i -> bytes`` for tar sources: seek to the member's data and read it."""

    def __init__(self, tar_files: Sequence[str], tar_index: np.ndarray) -> None:
        self._files = list(tar_files)
        self._index = np.asarray(tar_index, dtype=np.int64)

    def __call__(self, i: int) -> bytes:
        shard, offset, length = (int(v) for v in self._index[i])
        try:
            with open(self._files[shard], "rb") as f:
                f.seek(offset)
                data = f.read(length)
        except OSError as exc:
            raise ImageDecodeError(f"cannot read tar shard ({exc.strerror or exc})") from None
        if len(data) != length:
            raise ImageDecodeError("tar member is truncated")
        return data


def make_reader(source: ImageSource):
    """A picklable callable ``i -> bytes`` for the source's images (safe to send to worker processes)."""
    if source.kind == "tar":
        return _TarReader(source.tar_files, source.tar_index)
    return _FileReader(source.paths)


# ---------------------------------------------------------------- folder


def folder_source(root: str | os.PathLike) -> ImageSource:
    """All image files under ``root`` (recursively), sorted by relative path.

    Images inside sub-folders get the first sub-folder's name as label; when no image sits in a
    sub-folder the source has no labels. Hidden files and folders (name starting with ``.``) are ignored;
    other files whose extension is not an image extension are listed in ``rejected``.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise QRProbeInputError(f"IMAGES: {str(root)!r} is not a directory")
    found: list[tuple[str, str, int]] = []
    rejected: list[dict] = []
    for dirpath, dirnames, filenames in os.walk(root_path, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root_path)
        for name in filenames:
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            rel = name if rel_dir == "." else f"{Path(rel_dir).as_posix()}/{name}"
            ext = os.path.splitext(name)[1].lower()
            if ext not in IMAGE_EXTENSIONS:
                rejected.append({"image_id": rel, "path": os.path.abspath(full),
                                 "reason": f"not an image file (extension {ext or 'none'!r})"})
                continue
            try:
                size = os.stat(full).st_size
            except OSError:
                size = -1
            found.append((rel, os.path.abspath(full), size))
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


# ---------------------------------------------------------------- file list


def file_list_source(list_path: str | os.PathLike) -> ImageSource:
    """Images named in a CSV or text list: ``image_id, path[, label]`` (or just ``path``) per row.

    A CSV/TSV with a header names its columns (``path`` required; ``image_id`` and ``label`` optional);
    without a header, or in a text list, the columns are positional: ``path`` | ``image_id, path`` |
    ``image_id, path, label``, separated by tabs, commas or (text lists) white space. Blank lines and lines
    starting with ``#`` are ignored. Relative paths are relative to the list file's folder.
    """
    list_path = Path(list_path)
    if not list_path.is_file():
        raise QRProbeInputError(f"IMAGES: file list {str(list_path)!r} not found")
    rows = _read_list_rows(list_path)
    if not rows:
        raise QRProbeInputError(f"IMAGES: file list {str(list_path)!r} names no images")
    base = list_path.parent
    ids, paths, labels = [], [], []
    for lineno, row in rows:
        if len(row) == 1:
            image_id, path, label = row[0], row[0], None
        elif len(row) in (2, 3):
            image_id, path = row[0], row[1]
            label = row[2] if len(row) == 3 else None
        else:
            raise QRProbeInputError(f"{list_path}:{lineno}: expected 'path', 'image_id, path' or "
                                    f"'image_id, path, label', got {len(row)} fields")
        if not path:
            raise QRProbeInputError(f"{list_path}:{lineno}: empty path")
        full = path if os.path.isabs(path) else os.path.join(base, path)
        ids.append(str(image_id))
        paths.append(os.path.abspath(full))
        labels.append(None if label is None else str(label))
    has_labels = any(lab is not None for lab in labels)
    sizes = np.array([_size_or_unknown(p) for p in paths], dtype=np.int64)
    return ImageSource("file-list", str(list_path), ids, paths,
                       [lab or "" for lab in labels] if has_labels else None, sizes)


def _size_or_unknown(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def _read_list_rows(list_path: Path) -> list[tuple[int, list[str]]]:
    """Parse a file list into ``(line_number, fields)`` in the canonical order ``[id,] path[, label]``."""
    import csv

    text = list_path.read_text(encoding="utf-8-sig")
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines())
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return []
    suffix = list_path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        delimiter = "\t" if suffix == ".tsv" else ","
        parsed = [(n, [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]) for n, line in lines]
        header = [c.lower() for c in parsed[0][1]]
        path_col = next((header.index(c) for c in _PATH_COLUMNS if c in header), None)
        if path_col is None:
            return parsed
        id_col = next((header.index(c) for c in _ID_COLUMNS if c in header), None)
        label_col = next((header.index(c) for c in _LABEL_COLUMNS if c in header), None)
        out = []
        for n, cells in parsed[1:]:
            if len(cells) != len(header):
                raise QRProbeInputError(f"{list_path}:{n}: {len(cells)} fields, the header has {len(header)}")
            row = [cells[id_col] if id_col is not None else cells[path_col], cells[path_col]]
            if label_col is not None:
                row.append(cells[label_col])
            out.append((n, row))
        return out
    out = []
    for n, line in lines:
        line = line.strip()
        if "\t" in line:
            cells = line.split("\t")
        elif "," in line:
            cells = next(csv.reader([line]))
        else:
            cells = line.split()
        out.append((n, [c.strip() for c in cells]))
    return out


# ---------------------------------------------------------------- tar shards (webdataset layout)

_BRACE = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_shard_pattern(pattern: str) -> list[str]:
    """Expand ``shards-{000..009}.tar`` (zero-padded ranges) and shell globs into a sorted list of files."""
    m = _BRACE.search(pattern)
    if m:
        lo, hi = m.group(1), m.group(2)
        width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
        out: list[str] = []
        for v in range(int(lo), int(hi) + 1):
            out.extend(expand_shard_pattern(pattern[:m.start()] + str(v).zfill(width) + pattern[m.end():]))
        return out
    if any(ch in pattern for ch in "*?["):
        return sorted(glob.glob(pattern))
    return [pattern]


def _split_key(member_name: str) -> tuple[str, str]:
    """webdataset convention: ``dir/key.ext1.ext2`` -> (``dir/key``, ``ext1.ext2``)."""
    directory, _, base = member_name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{directory}/{stem}" if directory else stem
    return key, ext.lower() if dot else ""


def tar_source(shards: str | os.PathLike | Sequence[str | os.PathLike]) -> ImageSource:
    """Images in uncompressed tar shards laid out as webdataset samples.

    Members sharing a key form a sample; the first member with an image extension is the image, a
    ``.cls``/``.label`` member (text) its label. Samples without an image are listed in ``rejected``.
    ``shards`` is a pattern (``data/shard-{0000..0099}.tar``, a glob), a directory holding ``*.tar``, one
    ``.tar`` file or a list of them.
    """
    if isinstance(shards, (str, os.PathLike)):
        spec = str(shards)
        files = (sorted(glob.glob(os.path.join(spec, "*.tar"))) if os.path.isdir(spec)
                 else expand_shard_pattern(spec))
    else:
        spec = ",".join(str(s) for s in shards)
        files = [str(s) for s in shards]
    if not files:
        raise QRProbeInputError(f"IMAGES: no tar shards match {spec!r}")
    for f in files:
        if not os.path.isfile(f):
            raise QRProbeInputError(f"IMAGES: tar shard {f!r} not found")
    ids: list[str] = []
    paths: list[str] = []
    labels: list[str] = []
    index: list[tuple[int, int, int]] = []
    rejected: list[dict] = []
    for shard_no, tar_path in enumerate(files):
        samples = _scan_tar(tar_path)
        with open(tar_path, "rb") as fh:
            for key, members in samples.items():
                image_ext = next((e for e in members if e in _WDS_IMAGE_EXTS), None)
                if image_ext is None:
                    rejected.append({"image_id": key, "path": f"{tar_path}::{key}",
                                     "reason": f"sample has no image member (members: {sorted(members)})"})
                    continue
                name, offset, size = members[image_ext]
                label_ext = next((e for e in _WDS_LABEL_EXTS if e in members), None)
                label = ""
                if label_ext is not None:
                    _, loff, lsize = members[label_ext]
                    fh.seek(loff)
                    label = fh.read(lsize).decode("utf-8", errors="replace").strip()
                ids.append(key)
                paths.append(f"{os.path.abspath(tar_path)}::{name}")
                labels.append(label)
                index.append((shard_no, offset, size))
    if not ids:
        raise QRProbeInputError(f"IMAGES: the tar shards {spec!r} hold no image samples")
    has_labels = any(labels)
    tar_index = np.array(index, dtype=np.int64).reshape(-1, 3)
    return ImageSource("tar", spec, ids, paths, labels if has_labels else None, tar_index[:, 2].copy(),
                       tar_files=[os.path.abspath(f) for f in files], tar_index=tar_index, rejected=rejected)


def _scan_tar(tar_path: str) -> dict[str, dict[str, tuple[str, int, int]]]:
    """``{key: {ext: (member_name, data_offset, size)}}`` in archive order."""
    samples: dict[str, dict[str, tuple[str, int, int]]] = {}
    try:
        with tarfile.open(tar_path, mode="r:") as tf:
            for member in tf:
                if not member.isfile():
                    continue
                key, ext = _split_key(member.name)
                if key.rpartition("/")[2].startswith(".") or not ext:
                    continue
                samples.setdefault(key, {})[ext] = (member.name, member.offset_data, member.size)
    except tarfile.ReadError as exc:
        raise QRProbeInputError(f"IMAGES: {tar_path!r} is not an uncompressed tar file ({exc}); "
                                "compressed shards are not supported, use plain .tar") from None
    return samples


# ---------------------------------------------------------------- explicit paths and auto-detection


def paths_source(paths: Sequence[str | os.PathLike], image_ids: Sequence[str] | None = None,
                 labels: Sequence[str] | None = None) -> ImageSource:
    """An in-memory list of image files; ids default to the paths as given."""
    given = [str(p) for p in paths]
    ids = list(given) if image_ids is None else [str(i) for i in image_ids]
    full = [os.path.abspath(p) for p in given]
    return ImageSource("paths", f"<{len(given)} paths>", ids, full,
                       None if labels is None else [str(v) for v in labels],
                       np.array([_size_or_unknown(p) for p in full], dtype=np.int64))


def open_images(spec: str | os.PathLike | Sequence[str | os.PathLike] | ImageSource) -> ImageSource:
    """Open IMAGES whatever its form: a folder, a file list, tar shard(s) or a list of image paths.

    A directory that holds ``*.tar`` files and no images is read as tar shards; a ``.csv``/``.tsv``/
    ``.txt``/``.lst`` file as a file list; a ``.tar`` file or a pattern (``{000..009}``, ``*``) as shards.
    """
    if isinstance(spec, ImageSource):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        items = [str(s) for s in spec]
        if items and all(s.endswith(_TAR_SUFFIXES) for s in items):
            return tar_source(items)
        return paths_source(items)
    text = str(spec)
    if os.path.isdir(text):
        has_tars = bool(glob.glob(os.path.join(text, "*.tar")))
        has_images = any(os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS for n in os.listdir(text))
        has_dirs = any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(text))
        if has_tars and not has_images and not has_dirs:
            return tar_source(text)
        return folder_source(text)
    if text.endswith(_TAR_SUFFIXES) or _BRACE.search(text) or any(ch in text for ch in "*?["):
        return tar_source(text)
    if os.path.isfile(text):
        if text.lower().endswith(_LIST_SUFFIXES):
            return file_list_source(text)
        raise QRProbeInputError(f"IMAGES: {text!r} is a file but not a file list (.csv, .tsv, .txt, .lst) "
                                "or a .tar shard")
    raise QRProbeInputError(f"IMAGES: {text!r} not found (expected a folder, a file list or tar shards)")
