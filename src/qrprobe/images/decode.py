"""Decoding image files into RGB PIL images, with a clear reason when a file cannot be used.

A truncated, corrupt or non-image file raises :class:`ImageDecodeError`; the extraction loop catches it,
skips the image and lists it in the store's manifest. Truncated files are never silently padded
(``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is left alone).
"""

from __future__ import annotations

import io
import warnings

#: File extensions (lower case, with the dot) that the folder and tar readers treat as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif")


class ImageDecodeError(Exception):
    """An image file could not be read or decoded; the message says why."""


def decode_image(data: bytes) -> PIL.Image.Image:  # noqa: F821 - PIL is imported lazily
    """Decode encoded image bytes into a fully loaded RGB image.

    Parameters
    ----------
    data : the file's bytes (JPEG, PNG, ...).

    Returns
    -------
    PIL.Image.Image in mode ``"RGB"`` (palette, grey and alpha images are converted; alpha is dropped).

    Raises
    ------
    ImageDecodeError
        The bytes are empty, not an image, truncated or otherwise undecodable.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageDecodeError("empty file")
    try:
        with warnings.catch_warnings():
            # PIL warns (rather than fails) on some malformed EXIF/metadata; the pixels are what matter.
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                return img.convert("RGB") if img.mode != "RGB" else img.copy()
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"image too large: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc) or type(exc).__name__
        if "truncated" in text.lower():
            raise ImageDecodeError(f"truncated image ({text})") from None
        raise ImageDecodeError(f"cannot decode image ({text})") from None


def read_file_bytes(path: str) -> bytes:
    """Return the bytes of ``path``, or raise :class:`ImageDecodeError` saying why it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ImageDecodeError("file not found") from None
    except IsADirectoryError:
        raise ImageDecodeError("is a directory, not a file") from None
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file ({exc.strerror or exc})") from None
