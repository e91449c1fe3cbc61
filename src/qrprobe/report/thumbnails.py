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


class DistinctExamples:
    """Example images that a report shows once each: the same cluster in several pairs (and in the cluster
    summaries) gets other images every time, while its images last.

    ``labels`` is the explained clustering ((N,) cluster of every row), or None (then only the analysis's own
    picks are available, minus those already shown).
    """

    def __init__(self, labels: np.ndarray | None, seed: int = 0) -> None:
        self.labels = None if labels is None else np.asarray(labels)
        self.seed = seed
        self.shown: set[int] = set()

    def pick(self, cluster: int, preferred: Sequence[int]) -> list[int]:
        """As many rows of ``cluster`` as ``preferred`` holds, none shown before: ``preferred`` (the analysis's
        sample) first, then other members of the cluster in a seeded random order. Sorted; may be fewer."""
        n = len(preferred)
        rows = [int(r) for r in preferred if int(r) not in self.shown]
        if len(rows) < n and self.labels is not None:
            members = np.flatnonzero(self.labels == cluster)
            order = np.random.default_rng([self.seed, int(cluster)]).permutation(members)
            taken = set(rows)
            rows += [int(r) for r in order if int(r) not in self.shown and int(r) not in taken][: n - len(rows)]
        self.shown.update(rows)
        return sorted(rows)
