"""Reduced-size JPEG decoding for transforms that start by shrinking the image.

A JPEG can be decoded at 1/2, 1/4 or 1/8 of its size straight from its DCT coefficients (libjpeg's scaled
decoding, Pillow's ``Image.draft``): several times faster than a full decode of a camera-size photo, which a
model's transform then throws away by resizing the shorter side to 256 pixels or so. The reduction is used only
where it cannot show in the transform's output beyond a stated tolerance:

- the transform says what its first step is (``first_resize(width, height) -> (size, filter)``, as
  :class:`qrprobe.models.preprocess.ImagePreprocess` and the torchvision transforms wrapped by
  ``LibraryPreprocess`` do); a transform that does not say is given the full decode;
- the reduced image keeps at least ``margin`` times the pixels of that resize target on its shorter side
  (:data:`DRAFT_MARGIN` = 2 by default, the gap Pillow's own ``Image.thumbnail`` uses);
- the first resize is then done here, from the reduced image, with the exact box it covers in the full image
  (``Image.resize(box=...)``, as ``thumbnail`` does), to exactly the size the transform would produce from the
  full image; the transform's own resize then has nothing to do (same size), and its crop, scaling and
  normalisation run as always.

At margin 2 the transform's output differs from the full decode's by 0.2/255 on average, at most a few levels
at the 99th percentile: Pillow's ``resize(reducing_gap=2)`` gives the same difference. At margin 4 by 0.02/255
(``tests/test_decode_reduced.py`` bounds both; ``docs/extraction.md``). Margin 0 turns the reduction off.

:class:`ReducedLoader` is the picklable ``row -> [decoded image per transform]`` that the extraction's datasets
call; for several transforms (the models of a study extracted together, :mod:`qrprobe.features.extract_shared`)
the image is decoded once per distinct reduction, and each transform gets exactly what it would get alone.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .decode import ImageDecodeError, decode_image, load_rgb

if TYPE_CHECKING:
    import PIL.Image

#: The default margin: a reduced decode keeps at least this many times the transform's resize target.
DRAFT_MARGIN = 2.0
_DRAFT_SCALES = (8, 4, 2)
_FILTERS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")


def draft_scale(width: int, height: int, decode_side: int | None) -> int:
    """The largest JPEG reduction (8, 4, 2, or 1: none) that keeps the shorter side of a ``width`` x ``height``
    image at least ``decode_side`` pixels (None or 0: no reduction)."""
    if not decode_side:
        return 1
    short = min(width, height)
    return next((s for s in _DRAFT_SCALES if short // s >= decode_side), 1)


@dataclass(frozen=True)
class Scaled:
    """A decoded RGB image that may be reduced: ``image`` shows the full ``full_size`` (width, height) image at
    1/``scale`` (its last row and column may cover less than ``scale`` full-size pixels)."""

    image: PIL.Image.Image
    full_size: tuple[int, int]
    scale: int = 1

    def for_transform(self, preprocess: Callable) -> PIL.Image.Image:
        """The image to give ``preprocess``: as decoded when full size, else resized from the exact box it covers
        to the size ``preprocess``'s first step makes of the full image (so that step has nothing left to do)."""
        if self.scale == 1:
            return self.image
        step = first_resize(preprocess, *self.full_size)
        if step is None:  # cannot happen for a decode planned from the same transforms; stay correct anyway
            raise ValueError("a reduced decode was made for a transform that does not state its first resize")
        from PIL import Image

        size, name = step
        w, h = self.full_size
        box = (0.0, 0.0, w / self.scale, h / self.scale)
        return self.image.resize(size, getattr(Image.Resampling, name.upper()), box=box)


def first_resize(preprocess: Callable, width: int, height: int) -> tuple[tuple[int, int], str] | None:
    """``((width, height), filter name)`` that ``preprocess`` first resizes a ``width`` x ``height`` image to,
    or None when it does not say (``preprocess.first_resize`` absent or returning None)."""
    method = getattr(preprocess, "first_resize", None)
    step = method(width, height) if callable(method) else None
    if step is None:
        return None
    (tw, th), name = step
    if name not in _FILTERS or tw <= 0 or th <= 0:
        return None
    return (int(tw), int(th)), name


def decode_side(preprocesses: Sequence[Callable], width: int, height: int, margin: float) -> int | None:
    """The shorter side (pixels) a reduced decode of a ``width`` x ``height`` image must keep for every one of
    ``preprocesses``: ``margin`` times the largest shorter side of their first resizes; None (decode in full)
    when ``margin`` is 0 or any transform does not state its first resize."""
    if not margin or not preprocesses:
        return None
    sides = []
    for preprocess in preprocesses:
        step = first_resize(preprocess, width, height)
        if step is None:
            return None
        sides.append(min(step[0]))
    return math.ceil(margin * max(sides))


def decode_scaled(data: bytes, preprocesses: Sequence[Callable], margin: float = DRAFT_MARGIN) -> Scaled:
    """Decode image bytes, a JPEG at the largest reduction that keeps ``margin`` times what every transform of
    ``preprocesses`` resizes to (:func:`decode_side`); other formats, and JPEGs not large enough, in full.

    Raises :class:`~.decode.ImageDecodeError` (as :func:`~.decode.decode_image`) when the bytes are unusable.
    """
    return decode_each(data, [list(preprocesses)], margin)[0]


def decode_each(data: bytes, groups: Sequence[Sequence[Callable]], margin: float = DRAFT_MARGIN) -> list[Scaled]:
    """One :class:`Scaled` per group of transforms, each exactly what :func:`decode_scaled` gives that group;
    the bytes are decoded once per distinct reduction (once in all when the groups need the same one)."""
    from PIL import Image

    full: tuple[int, int] | None = None
    if data and margin and any(groups):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(io.BytesIO(data)) as probe:
                    full = probe.size if probe.format == "JPEG" else None
        except Exception:  # the full decode below says what is wrong, in its words
            full = None
    scales = [1] * len(groups)
    if full is not None:
        width, height = full
        scales = [draft_scale(width, height, decode_side(g, width, height, margin)) for g in groups]
    decoded: dict[int, Scaled] = {}
    for scale in sorted(set(scales)):
        if scale > 1 and full is not None:
            image = decode_image(data, draft=(full[0] // scale, full[1] // scale))
            if image.size == tuple(math.ceil(v / scale) for v in full):
                decoded[scale] = Scaled(image, full, scale)
                continue
            if image.size == full and 1 not in decoded:  # the decoder would not reduce: this is the full decode
                decoded[1] = Scaled(image, full, 1)
        if 1 not in decoded:  # not reduced, or a decoder that would not reduce: the full decode
            image = decode_image(data)
            decoded[1] = Scaled(image, image.size, 1)
        decoded[scale] = decoded[1]
    return [decoded[s] for s in scales]


class ReducedLoader:
    """Picklable ``row -> [Scaled per transform]``: read a source's row and decode it for each of the given
    transforms exactly as it would be decoded for that transform alone (:func:`decode_scaled`), once per
    distinct reduction (:func:`decode_each`); in-memory images are used as they are.

    Raises :class:`~.decode.ImageDecodeError` with the reason when the row cannot be used.
    """

    def __init__(self, reader, preprocesses: Sequence[Callable], margin: float = DRAFT_MARGIN) -> None:
        self.reader = reader
        self.preprocesses = list(preprocesses)
        self.margin = float(margin)

    def __call__(self, row: int) -> list[Scaled]:
        item = self.reader(row)
        if isinstance(item, (bytes, bytearray, memoryview)):
            return decode_each(bytes(item), [[p] for p in self.preprocesses], self.margin)
        image = load_rgb(item)
        return [Scaled(image, image.size, 1)] * len(self.preprocesses)


__all__ = ["DRAFT_MARGIN", "ImageDecodeError", "ReducedLoader", "Scaled", "decode_each", "decode_scaled", "decode_side",
           "draft_scale", "first_resize"]
