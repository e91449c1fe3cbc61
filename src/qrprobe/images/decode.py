"""Decoding images into RGB PIL images, with a clear reason when one cannot be used.

A truncated, corrupt or non-image file raises :class:`ImageDecodeError`; the extraction and labelling loops
catch it, skip the image and list it with the reason. Truncated files are never silently padded
(``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is left alone). Every Pillow mode is converted to RGB by
:func:`qrprobe.images.modes.to_rgb` (16-bit and float images scaled, not clipped).
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import PIL.Image

#: File extensions (lower case, with the dot) that the folder and tar readers treat as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif")


class ImageDecodeError(Exception):
    """An image could not be read or decoded; the message says why."""


def decode_image(data: bytes, *, draft: tuple[int, int] | None = None) -> PIL.Image.Image:
    """Decode encoded image bytes into a fully loaded RGB image.

    Parameters
    ----------
    data : the file's bytes (JPEG, PNG, TIFF, ...).
    draft : (width, height): let a JPEG decode at the largest reduction (1/2, 1/4, 1/8) that keeps at least
        this size (Pillow's ``Image.draft``; :mod:`.reduce` plans it); other formats ignore it.

    Returns
    -------
    PIL.Image.Image in mode ``"RGB"`` (see :mod:`qrprobe.images.modes` for how each mode is converted).

    Raises
    ------
    ImageDecodeError
        The bytes are empty, not an image, truncated, too large or otherwise undecodable.
    """
    from PIL import Image, UnidentifiedImageError

    from .modes import to_rgb

    if not data:
        raise ImageDecodeError("empty file")
    try:
        with warnings.catch_warnings():
            # PIL warns (rather than fails) on some malformed EXIF/metadata; the pixels are what matter.
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                if draft is not None:
                    img.draft(None, draft)
                img.load()
                rgb = to_rgb(img)
                return rgb.copy() if rgb is img else rgb
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"image too large: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc) or type(exc).__name__
        if "truncated" in text.lower():
            raise ImageDecodeError(f"truncated image ({text})") from None
        raise ImageDecodeError(f"cannot decode image ({text})") from None


def load_rgb(item) -> PIL.Image.Image:
    """An RGB PIL image from what a source's reader returns: encoded bytes, a PIL image or a uint8 array.

    Raises :class:`ImageDecodeError` with the reason when the item cannot be used.
    """
    from PIL import Image

    from .modes import rgb_array, to_rgb

    if isinstance(item, (bytes, bytearray, memoryview)):
        return decode_image(bytes(item))
    try:
        if isinstance(item, np.ndarray):
            return Image.fromarray(rgb_array(item), "RGB")
        return to_rgb(item)
    except (TypeError, ValueError) as exc:
        raise ImageDecodeError(str(exc)) from None


def fit_within(image, max_side: int | None):
    """``image`` downscaled (bicubic, aspect kept) so that its longer side is at most ``max_side`` pixels;
    the image itself when it already fits or ``max_side`` is None. The input is never modified."""
    if not max_side or max(image.size) <= max_side:
        return image
    from PIL import Image

    small = image.copy()
    small.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return small
