"""A torch ``Dataset`` over an :class:`~qrprobe.images.ImageSource` that never raises on a bad image.

Each item is ``(row, tensor, None)`` or, when the image cannot be read or decoded, ``(row, None, reason)``;
:func:`collate_skipping` stacks the good ones and keeps the reasons of the bad ones, so one corrupt file
costs one row, not the batch.

With ``decode_margin`` > 0 a large JPEG is decoded at a reduced size where the transform states its first
resize (:mod:`.reduce`). :class:`SharedImageDataset` reads and decodes each image once for several transforms
(the models of a study extracted together) and yields one tensor per transform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset, default_collate

from .decode import ImageDecodeError
from .reduce import ReducedLoader
from .source import ImageSource


class ImageDataset(Dataset):
    """Decoded and preprocessed images of a source.

    Parameters
    ----------
    source : the image collection.
    preprocess : PIL RGB image -> float tensor of a fixed shape (for example (3, 224, 224)).
    decode_margin : > 0: decode a large JPEG at 1/2, 1/4 or 1/8 of its size keeping this many times the
        transform's first resize target (:mod:`.reduce`); 0: always in full.
    """

    def __init__(self, source: ImageSource, preprocess: Callable, decode_margin: float = 0.0) -> None:
        self._load = source.loader()
        self._reduced = ReducedLoader(source.reader, [preprocess], decode_margin) if decode_margin else None
        self._n = len(source)
        self._preprocess = preprocess

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, row: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            image = self._load(row) if self._reduced is None else self._reduced(row)[0]
        except ImageDecodeError as exc:
            return row, None, str(exc)
        try:
            tensor = self._preprocess(image if self._reduced is None else image.for_transform(self._preprocess))
        except Exception as exc:  # a preprocessing failure on one odd image (e.g. 1x1 pixels) skips it
            return row, None, f"preprocessing failed ({type(exc).__name__}: {exc})"
        return row, tensor, None


class SharedImageDataset(Dataset):
    """Each image read once for several transforms, and decoded once per distinct reduction they need: item
    ``(row, [tensor or None per transform], [reason or None per transform])``. Transform ``j`` gets exactly what
    ``ImageDataset(source, preprocesses[j], decode_margin)`` gives (the same tensor, or the same reason), so
    stores extracted together equal stores extracted one by one. :func:`collate_shared` batches the items.
    """

    def __init__(self, source: ImageSource, preprocesses: Sequence[Callable], decode_margin: float = 0.0) -> None:
        self._load = ReducedLoader(source.reader, preprocesses, decode_margin)
        self._n = len(source)
        self._preprocesses = list(preprocesses)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, row: int) -> tuple[int, list[torch.Tensor | None], list[str | None]]:
        k = len(self._preprocesses)
        try:
            decoded = self._load(row)
        except ImageDecodeError as exc:
            return row, [None] * k, [str(exc)] * k
        tensors: list[torch.Tensor | None] = []
        reasons: list[str | None] = []
        for preprocess, scaled in zip(self._preprocesses, decoded, strict=True):
            try:
                tensors.append(preprocess(scaled.for_transform(preprocess)))
                reasons.append(None)
            except Exception as exc:  # as ImageDataset: this transform skips the row
                tensors.append(None)
                reasons.append(f"preprocessing failed ({type(exc).__name__}: {exc})")
        return row, tensors, reasons


def collate_shared(items: Sequence[tuple[int, list, list]]) -> list[tuple[torch.Tensor, torch.Tensor | None,
                                                                            list[tuple[int, str]]]]:
    """Batch :class:`SharedImageDataset` items: one :func:`collate_skipping` result per transform."""
    k = len(items[0][1]) if items else 0
    return [collate_skipping([(row, tensors[j], reasons[j]) for row, tensors, reasons in items]) for j in range(k)]


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
