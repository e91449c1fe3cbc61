"""Thumbnails of images named by path (from a Result's or feature store's ``index.parquet``).

A path is a file, or ``SHARD.tar::MEMBER`` for an image inside a tar shard (how ``qrprobe.images`` names
webdataset samples). A path that is empty, missing or unreadable gives ``None`` rather than an error: reports
on results whose images have moved still render, and say how many images were skipped.
"""

from __future__ import annotations

import functools
import io
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import require
from .section import Thumbnail


@functools.lru_cache(maxsize=8)
def _tar_members(shard: str) -> dict[str, tuple[int, int]]:
    """``{member name: (data offset, size)}`` of a tar shard, read once per shard."""
    with tarfile.open(shard, "r:") as tar:
        return {m.name: (m.offset_data, m.size) for m in tar.getmembers() if m.isfile()}


def read_image_bytes(path: str) -> bytes | None:
    """The bytes of a file path or of a ``SHARD.tar::MEMBER`` path, or None when they cannot be read."""
    try:
        if "::" in path:
            shard, member = path.split("::", 1)
            where = _tar_members(shard).get(member)
            if where is None:
                return None
            with open(shard, "rb") as f:
                f.seek(where[0])
                return f.read(where[1])
        p = Path(path)
        return p.read_bytes() if p.is_file() else None
    except (OSError, tarfile.TarError):
        return None


def load_thumbnail(path: str | None, size: int = 96, quality: int = 85) -> bytes | None:
    """JPEG bytes of the image at ``path`` fitted into a ``size`` × ``size`` square, or None if unreadable."""
    if not path:
        return None
    data = read_image_bytes(str(path))
    if data is None:
        return None
    image_mod = require("PIL.Image", "report", "image thumbnails")
    try:
        with image_mod.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
            img.thumbnail((size, size))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=quality)
            return buf.getvalue()
    except (OSError, ValueError, image_mod.DecompressionBombError):
        return None


def thumbnails_for_rows(rows: Sequence[int], paths: np.ndarray | None, image_ids: np.ndarray | None = None,
                        size: int = 96) -> tuple[list[Thumbnail], int]:
    """Thumbnails of the images at ``rows``; returns them and the number that could not be read."""
    thumbs, missing = [], 0
    for row in rows:
        row = int(row)
        path = None if paths is None else paths[row]
        label = str(image_ids[row]) if image_ids is not None else (str(path) if path else f"row {row}")
        jpeg = load_thumbnail(path, size)
        missing += jpeg is None
        thumbs.append(Thumbnail(label, jpeg))
    return thumbs, missing


def decode(jpeg: bytes):
    """A thumbnail's pixels as a PIL image (for matplotlib figures)."""
    image_mod = require("PIL.Image", "report", "image thumbnails")
    return image_mod.open(io.BytesIO(jpeg)).convert("RGB")


#: A thumbnail whose grey levels have a standard deviation below this (0-255 scale) is near-blank: a faint
#: drawing on white, an empty scan. Shown only when its cluster has nothing else to show.
BLANK_STD = 12.0


def is_near_blank(jpeg: bytes | None, threshold: float = BLANK_STD) -> bool:
    """Whether a thumbnail is (nearly) one flat colour: grey-level standard deviation below ``threshold``."""
    if not jpeg:
        return False
    grey = np.asarray(decode(jpeg).convert("L"), dtype=np.float32)
    return bool(grey.std() < threshold)


class DistinctExamples:
    """Example images that a report shows once each: the same cluster in several pairs (and in the cluster
    summaries, and in other sections) gets other images every time, while its images last.

    ``labels`` is the explained clustering ((N,) cluster of every row), or None (then only the analysis's own
    picks are available, minus those already shown). ``image_ids`` ((N,) ids of the rows) and ``shown_ids``
    (ids shown elsewhere in the report; the set is updated with every pick) make the rule hold across
    sections: pass one set to every section of a report.
    """

    def __init__(self, labels: np.ndarray | None, seed: int = 0, *, image_ids: np.ndarray | None = None,
                 shown_ids: set[str] | None = None) -> None:
        self.labels = None if labels is None else np.asarray(labels)
        self.seed = seed
        self.shown: set[int] = set()
        self.image_ids = None if image_ids is None else np.asarray(image_ids).astype(str)
        self.shown_ids = shown_ids if shown_ids is not None else set()

    def _seen(self, row: int) -> bool:
        return row in self.shown or (self.image_ids is not None and self.image_ids[row] in self.shown_ids)

    def candidates(self, cluster: int, preferred: Sequence[int]) -> list[int]:
        """Every row that may still be shown for ``cluster``: ``preferred`` (the analysis's sample) first, then
        the cluster's other members in a seeded random order; none shown before."""
        rows = list(dict.fromkeys(int(r) for r in preferred if not self._seen(int(r))))
        if self.labels is not None:
            members = np.flatnonzero(self.labels == cluster)
            order = np.random.default_rng([self.seed, int(cluster)]).permutation(members)
            taken = set(rows)
            rows += [int(r) for r in order if int(r) not in taken and not self._seen(int(r))]
        return rows

    def mark(self, rows: Sequence[int]) -> None:
        """Record ``rows`` as shown (here and, by id, in the report)."""
        self.shown.update(int(r) for r in rows)
        if self.image_ids is not None:
            self.shown_ids.update(self.image_ids[int(r)] for r in rows)

    def pick(self, cluster: int, preferred: Sequence[int]) -> list[int]:
        """As many rows of ``cluster`` as ``preferred`` holds, none shown before (:meth:`candidates`, in
        order). Sorted; may be fewer."""
        rows = self.candidates(cluster, preferred)[: len(preferred)]
        self.mark(rows)
        return sorted(rows)


def distinct_thumbnails(examples: DistinctExamples, cluster: int, preferred: Sequence[int],
                        paths: np.ndarray, image_ids: np.ndarray | None = None, size: int = 96,
                        max_tries: int = 60) -> tuple[list[Thumbnail], int, int]:
    """Thumbnails of ``len(preferred)`` images of ``cluster`` not shown before, near-blank ones
    (:func:`is_near_blank`) only where the cluster's first ``max_tries`` candidates hold too few others, and an
    unreadable image (an empty box) only where nothing else is left. Returns the thumbnails (in row order), how
    many of the images tried could not be read (shown or replaced) and how many shown are near-blank."""
    n = len(preferred)
    chosen: list[int] = []
    blank: list[int] = []
    unreadable: list[int] = []
    jpegs: dict[int, bytes | None] = {}
    for row in examples.candidates(cluster, preferred)[:max_tries]:
        if len(chosen) >= n:
            break
        jpeg = load_thumbnail(paths[row], size)
        jpegs[row] = jpeg
        if jpeg is None:
            unreadable.append(row)
        elif is_near_blank(jpeg):
            blank.append(row)
        else:
            chosen.append(row)
    fill = [*blank, *unreadable][: max(0, n - len(chosen))]
    rows = sorted(chosen + fill)
    examples.mark(rows)
    thumbs = [Thumbnail(str(image_ids[r]) if image_ids is not None else (str(paths[r]) or f"row {r}"), jpegs[r])
              for r in rows]
    return thumbs, len(unreadable), sum(r in blank for r in rows)


def remove_repeated_thumbnails(sections: Sequence) -> set[str]:
    """Keep the first showing of every image across ``sections`` (in order; an image is known by its label,
    the image id) and drop later ones, with any thumbnail row left empty. Returns the labels shown, for
    sections made afterwards (:class:`DistinctExamples`' ``shown_ids``)."""
    labels: set[str] = set()
    for section in sections:
        for block in section.blocks:
            rows = []
            for row in block.thumbnail_rows:
                row.thumbnails = [t for t in row.thumbnails if t.label not in labels]
                labels.update(t.label for t in row.thumbnails)
                if row.thumbnails:
                    rows.append(row)
            block.thumbnail_rows = rows
    return labels
