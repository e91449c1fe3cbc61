"""In-memory images (numpy uint8 arrays or PIL images) as an :class:`ImageSource`.

``image_id`` defaults to the position (``"0"``, ``"1"``, ...). The source's :meth:`~ImageSource.inputs_hash`
covers the pixels (the first 4096 bytes of each image's RGB array) and the ids, since there is no file
listing to hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ..errors import QRProbeInputError
from .modes import rgb_array
from .source import ImageSource


class MemoryReader:
    """``row -> image`` over a list of arrays or PIL images (the loader converts them to RGB)."""

    def __init__(self, images: Sequence) -> None:
        self.images = list(images)

    def __call__(self, row: int):
        return self.images[row]

    def select(self, rows: np.ndarray) -> MemoryReader:
        return MemoryReader([self.images[int(r)] for r in rows])

    def content_hash(self, image_ids: Sequence[str]) -> str:
        """Hash of the ids and the first 4096 bytes of every image's RGB pixels (16 hex digits)."""
        h = hashlib.sha256()
        for image_id, image in zip(image_ids, self.images, strict=True):
            h.update(image_id.encode())
            h.update(rgb_array(image).tobytes()[:4096])
        return h.hexdigest()[:16]


def memory_source(images: Sequence, image_ids: Sequence[str] | None = None,
                  labels: Sequence[str] | None = None) -> ImageSource:
    """A source over in-memory images: numpy uint8 arrays (H, W), (H, W, 3) or (H, W, 4), or PIL images.

    Arrays of another dtype or shape are an input error naming the first such image (their value range is
    unknown, so they are not guessed).
    """
    images = list(images)
    n = len(images)
    ids = [str(i) for i in (image_ids if image_ids is not None else range(n))]
    if len(ids) != n:
        raise QRProbeInputError(f"{n} images but {len(ids)} image ids")
    for i, image in enumerate(images):
        if isinstance(image, np.ndarray):
            try:
                rgb_array(image)
            except TypeError as exc:
                raise QRProbeInputError(f"IMAGES: image {ids[i]!r}: {exc}") from None
        elif not hasattr(image, "mode"):
            raise QRProbeInputError(f"IMAGES: image {ids[i]!r}: expected a numpy array or a PIL image, "
                                    f"got {type(image).__name__}")
    return ImageSource("memory", f"<{n} in-memory images>", ids, [""] * n,
                       None if labels is None else [str(v) for v in labels], reader=MemoryReader(images))
