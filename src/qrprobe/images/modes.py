"""Converting a PIL image of any mode into 8-bit RGB, keeping the information of deep and float images.

Pillow's own ``convert("RGB")`` clips 16-bit and 32-bit images at 255 and truncates float images, so a 16-bit
PNG becomes almost white and a float TIFF in [0, 1] black: constant inputs for every model. The rules here,
mode by mode (``v`` is a pixel value; results are rounded to the nearest integer):

- ``RGB``: unchanged.
- ``1``, ``L``, ``P``, ``RGBA``, ``RGBX``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ``LA``, ``PA``: Pillow's own
  conversion (palette looked up, grey replicated, CMYK/YCbCr/LAB/HSV converted). Alpha is dropped, palette
  transparency too: a transparent pixel keeps the colour stored under it, as before for RGBA.
- ``La``, ``RGBa`` (premultiplied alpha): un-premultiplied, then alpha dropped.
- ``I;16``, ``I;16L``, ``I;16B``, ``I;16N`` (16-bit grey): the full range, ``v / 257`` (65535 -> 255).
- ``I`` (32-bit integers, what Pillow gives for some 16-bit files): values all within [0, 65535] as 16-bit
  (``v / 257``); other ranges mapped linearly from [min, max] to [0, 255].
- ``F`` (32-bit float): values all within [0, 1] scaled by 255 (the convention of float images); other
  ranges mapped linearly from [min, max] to [0, 255]. NaN and infinite values become 0 and do not count in
  the range. (decided) Not always [0, 1], because float files written from 8-bit data hold [0, 255] and
  would turn white; not always min-max, because a [0, 1] image would lose its absolute brightness.
- A deep image with one value only, outside these ranges, is clipped to [0, 255].
- Any other mode: Pillow's conversion, or an error naming the mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import PIL.Image

#: Modes that Pillow converts to RGB without losing range.
_PILLOW_CONVERTS = frozenset({"1", "L", "P", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "LA", "PA"})
_UINT16_MAX = 65535


def to_rgb(image) -> PIL.Image.Image:
    """Return ``image`` (a loaded PIL image of any mode) as an RGB PIL image, following the table above.

    Raises ``ValueError`` for a mode that cannot be converted (the decoder turns it into a reason).
    """
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _PILLOW_CONVERTS:
        return image.convert("RGB")
    if mode == "La":
        return image.convert("LA").convert("RGB")
    if mode.startswith("I;16"):
        grey = np.asarray(image).astype(np.float64) / 257.0
    elif mode == "I":
        grey = _scale_to_byte(np.asarray(image).astype(np.float64), _UINT16_MAX)
    elif mode == "F":
        grey = _scale_to_byte(np.asarray(image).astype(np.float64), 1.0)
    else:
        try:
            return image.convert("RGB")
        except ValueError as exc:
            raise ValueError(f"unsupported image mode {mode!r} ({exc})") from None
    byte = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(byte[:, :, None], 3, axis=2), "RGB")


def _scale_to_byte(values: np.ndarray, natural_max: float) -> np.ndarray:
    """Map values to [0, 255] floats: by ``255 / natural_max`` when they lie in [0, natural_max], else by
    their own range. Non-finite values become 0 and take no part in the range."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros_like(values)
    lo, hi = float(values[finite].min()), float(values[finite].max())
    if lo >= 0 and hi <= natural_max:
        scaled = values * (255.0 / natural_max)
    elif hi == lo:
        scaled = values
    else:
        scaled = (values - lo) * (255.0 / (hi - lo))
    return np.where(finite, scaled, 0.0)


def rgb_array(image) -> np.ndarray:
    """An image as a C-contiguous uint8 array (H, W, 3).

    ``image`` is a PIL image (any mode, converted by :func:`to_rgb`) or a numpy uint8 array (H, W),
    (H, W, 1), (H, W, 3) or (H, W, 4) (grey replicated, alpha dropped). Arrays of other dtypes raise
    ``TypeError``: their range is not known, so they are rejected rather than guessed.
    """
    if not isinstance(image, np.ndarray):
        if not hasattr(image, "mode"):
            raise TypeError(f"expected a numpy array or a PIL image, got {type(image).__name__}")
        image = np.asarray(to_rgb(image))
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise TypeError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    return np.ascontiguousarray(image)
