"""An ordered image collection with stable ids: :class:`ImageSource`, and how its rows are read and decoded.

A source is a listing (parallel columns ``image_ids``, ``paths``, ``labels``, ``sizes``) plus a *reader*: a
small picklable callable ``row -> item`` where the item is the encoded bytes of a file or tar member, or an
in-memory image. :class:`ImageLoader` turns a row into an RGB PIL image (read, decode, optionally downscale);
it is what the extraction's DataLoader workers and the labelling threads call, and what a distributed
backend would ship to its workers with a list of rows::

    loader = source.loader()            # picklable
    images = [loader(row) for row in rows]   # ImageDecodeError names why a row cannot be used

The modules beside this one build sources: :mod:`.folder`, :mod:`.filelist` (file lists and path lists),
:mod:`.tar` (webdataset shards), :mod:`.memory` (arrays and PIL images); :func:`qrprobe.images.open_images`
picks one.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import QRProbeInputError
from .decode import fit_within, load_rgb
from .files import read_file_bytes

if TYPE_CHECKING:
    import PIL.Image


class FileReader:
    """Picklable ``row -> bytes`` for file-backed sources; paths kept as one compact bytes array."""

    def __init__(self, paths: Sequence[str]) -> None:
        self._paths = np.array([os.fsencode(p) for p in paths], dtype=bytes) if len(paths) else np.array([], "S1")

    def __call__(self, row: int) -> bytes:
        return read_file_bytes(os.fsdecode(self._paths[row]))

    def select(self, rows: np.ndarray) -> FileReader:
        out = FileReader([])
        out._paths = self._paths[rows]
        return out


@dataclass
class ImageSource:
    """An ordered image collection.

    Attributes
    ----------
    kind : ``"folder"``, ``"file-list"``, ``"tar"``, ``"paths"`` or ``"memory"``
    location : the folder, list file or shard pattern the user gave (a description for in-memory images)
    image_ids : list of str, length N, unique
    paths : list of str, length N; a file path, ``"SHARD.tar::MEMBER"`` for tar shards, ``""`` in memory
    labels : list of str (length N) or None when the source has no ground-truth labels
    sizes : int64 array (N,), file sizes in bytes (-1 when unknown)
    reader : picklable ``row -> bytes`` (or an in-memory image), with ``select(rows)``; files by default
    rejected : ``{"image_id", "path", "reason"}`` of listed things that are not usable images (not image
        files, FIFOs, folders already listed, members lost from a damaged tar, ...)
    """

    kind: str
    location: str
    image_ids: list[str]
    paths: list[str]
    labels: list[str] | None = None
    sizes: np.ndarray | None = None
    reader: Any = None  # duck-typed: FileReader, a tar reader, in-memory images
    rejected: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        for what, column in (("paths", self.paths), ("labels", self.labels)):
            if column is not None and len(column) != n:
                raise QRProbeInputError(f"{self.location}: {n} images but {len(column)} {what}")
        if self.sizes is None:
            self.sizes = np.full(n, -1, dtype=np.int64)
        if self.reader is None:
            self.reader = FileReader(self.paths)
        dups = [i for i, count in Counter(self.image_ids).items() if count > 1]
        if dups:
            raise QRProbeInputError(f"{self.location}: duplicate image ids {sorted(set(dups))[:5]} "
                                    "(each image id must appear once)")

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def read_bytes(self, row: int) -> bytes:
        """The encoded bytes of image ``row``; :class:`ImageDecodeError` when unreadable (file sources only)."""
        item = self.reader(row)
        if not isinstance(item, bytes):
            raise TypeError(f"{self.kind} sources hold decoded images, not encoded bytes")
        return item

    def load(self, row: int) -> PIL.Image.Image:
        """Image ``row`` as an RGB PIL image; :class:`ImageDecodeError` says why it cannot be used."""
        return load_rgb(self.reader(row))

    def loader(self, max_side: int | None = None) -> ImageLoader:
        """A picklable ``row -> RGB PIL image`` (downscaled to ``max_side`` pixels when given)."""
        return ImageLoader(self.reader, max_side)

    def select(self, rows: Sequence[int] | np.ndarray) -> ImageSource:
        """A source with only the given rows (in the given order); ``rejected`` is kept."""
        rows = np.asarray(rows, dtype=np.int64)
        assert self.sizes is not None  # set by __post_init__
        return ImageSource(
            kind=self.kind, location=self.location,
            image_ids=[self.image_ids[i] for i in rows], paths=[self.paths[i] for i in rows],
            labels=None if self.labels is None else [self.labels[i] for i in rows],
            sizes=self.sizes[rows], reader=self.reader.select(rows), rejected=list(self.rejected))

    def inputs_hash(self) -> str:
        """Hash of what determines the images: the listing (ids, paths, labels, sizes) of files, the pixels
        of in-memory images. Equal listings give equal hashes (16 hex digits)."""
        content_hash = getattr(self.reader, "content_hash", None)
        if content_hash is not None:
            return content_hash(self.image_ids)
        h = hashlib.sha256()
        labels = self.labels or [""] * len(self)
        assert self.sizes is not None  # set by __post_init__
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


class ImageLoader:
    """Picklable ``row -> RGB PIL image`` of a source: read, decode, downscale to ``max_side`` when given.

    Raises :class:`~qrprobe.images.ImageDecodeError` with the reason when the row cannot be used.
    """

    def __init__(self, reader, max_side: int | None = None) -> None:
        self.reader = reader
        self.max_side = max_side

    def __call__(self, row: int):
        return fit_within(load_rgb(self.reader(row)), self.max_side)
