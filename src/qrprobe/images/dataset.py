"""A torch ``Dataset`` over an :class:`~qrprobe.images.ImageSource` that never raises on a bad image.

Each item is ``(row, tensor, None)`` or, when the image cannot be read or decoded, ``(row, None, reason)``;
:func:`collate_skipping` stacks the good ones and keeps the reasons of the bad ones, so one corrupt file
costs one row, not the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset, default_collate

from .decode import ImageDecodeError
from .source import ImageSource


class ImageDataset(Dataset):
    """Decoded and preprocessed images of a source.

    Parameters
    ----------
    source : the image collection.
    preprocess : PIL RGB image -> float tensor of a fixed shape (for example (3, 224, 224)).
    """

    def __init__(self, source: ImageSource, preprocess: Callable) -> None:
        self._load = source.loader()
        self._n = len(source)
        self._preprocess = preprocess

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, row: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            image = self._load(row)
        except ImageDecodeError as exc:
            return row, None, str(exc)
        try:
            tensor = self._preprocess(image)
        except Exception as exc:  # a preprocessing failure on one odd image (e.g. 1x1 pixels) skips it
            return row, None, f"preprocessing failed ({type(exc).__name__}: {exc})"
        return row, tensor, None


def collate_skipping(items: Sequence[tuple[int, torch.Tensor | None, str | None]]
                     ) -> tuple[torch.Tensor, torch.Tensor | None, list[tuple[int, str]]]:
    """Batch the decodable items.

    Returns
    -------
    rows : int64 tensor (B,), source rows of the stacked images, in input order
    images : tensor (B, ...) or None when no item of the batch could be decoded
    failures : list of ``(row, reason)``
    """
    good = [(r, t) for r, t, _ in items if t is not None]
    failures = [(r, reason or "unreadable") for r, t, reason in items if t is None]
    rows = torch.tensor([r for r, _ in good], dtype=torch.int64)
    # default_collate stacks straight into shared memory inside a worker: no extra copy on the way out
    images = default_collate([t for _, t in good]) if good else None
    return rows, images, failures
