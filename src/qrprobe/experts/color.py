"""``color``: the 11 basic colour terms (Berlin & Kay) named per pixel in CIELAB.

Every pixel gets the colour term of its nearest prototype colour in CIELAB (Euclidean ΔE*ab); a colour is
present when it covers at least ``min_fraction`` of the image. The prototypes (below) are named sRGB colours
chosen by hand for each term, several per term so that light, dark and desaturated variants are covered
(decided: the paper uses Bau et al.'s colour concepts, whose per-pixel colour naming table is not
distributed with any package available here). The pixel → term mapping is a lookup table over sRGB quantised
to 6 bits per channel, built once.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import QRProbeInputError
from .base import Expert, ExpertOutput
from .rules import area_fractions_to_presence

COLOR_TERMS = ("black", "blue", "brown", "grey", "green", "orange", "pink", "purple", "red", "white", "yellow")

#: Prototype sRGB colours of each term (from the CSS/X11 named colours, plus a few extra shades).
PROTOTYPES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "black": ((0, 0, 0), (22, 22, 22), (30, 26, 24)),
    "grey": ((128, 128, 128), (96, 96, 96), (169, 169, 169), (112, 128, 144), (105, 105, 105),
             (192, 192, 192), (70, 70, 70)),
    "white": ((255, 255, 255), (240, 240, 240), (245, 245, 220), (255, 250, 240), (225, 225, 225),
              (240, 248, 255)),
    "red": ((255, 0, 0), (200, 0, 0), (139, 0, 0), (105, 8, 8), (220, 20, 60), (178, 34, 34), (205, 55, 45)),
    "orange": ((255, 165, 0), (255, 140, 0), (255, 127, 80), (230, 115, 30), (255, 99, 30), (244, 164, 96)),
    "yellow": ((255, 255, 0), (255, 215, 0), (240, 230, 140), (255, 255, 150), (218, 200, 50),
               (238, 232, 170)),
    "green": ((0, 128, 0), (0, 255, 0), (34, 139, 34), (107, 142, 35), (144, 238, 144), (0, 100, 0),
              (85, 107, 47), (46, 139, 87), (154, 205, 50), (60, 90, 50), (128, 128, 0)),
    "blue": ((0, 0, 255), (0, 0, 139), (65, 105, 225), (135, 206, 235), (70, 130, 180), (0, 191, 255),
             (25, 25, 112), (30, 144, 255), (0, 128, 128), (0, 206, 209), (100, 149, 237), (176, 196, 222)),
    "purple": ((128, 0, 128), (148, 0, 211), (138, 43, 226), (186, 85, 211), (75, 0, 130), (147, 112, 219),
               (106, 90, 205), (216, 191, 216)),
    "pink": ((255, 192, 203), (255, 105, 180), (255, 20, 147), (219, 112, 147), (255, 182, 193),
             (255, 0, 255), (238, 130, 238), (250, 128, 114)),
    "brown": ((139, 69, 19), (160, 82, 45), (165, 42, 42), (210, 105, 30), (128, 64, 0), (101, 67, 33),
              (188, 143, 143), (210, 180, 140), (120, 90, 60), (85, 60, 40), (150, 120, 90), (184, 134, 11)),
}

_LUT_BITS = 6


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert sRGB (..., 3) in [0, 255] to CIELAB (..., 3) under D65 (L* in [0, 100])."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = linear @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


@functools.lru_cache(maxsize=1)
def color_lookup_table() -> np.ndarray:
    """Colour-term index (into :data:`COLOR_TERMS`) of every 6-bit-per-channel sRGB cell, shape (64**3,)."""
    levels = (np.arange(2 ** _LUT_BITS) + 0.5) * (256 / 2 ** _LUT_BITS)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    lab = srgb_to_lab(grid).astype(np.float32)
    protos, owners = [], []
    for t, term in enumerate(COLOR_TERMS):
        for rgb in PROTOTYPES[term]:
            protos.append(rgb)
            owners.append(t)
    proto_lab = srgb_to_lab(np.asarray(protos, dtype=np.float64)).astype(np.float32)
    nearest = np.empty(len(lab), dtype=np.int64)
    for start in range(0, len(lab), 16384):  # chunks keep the distance matrix small (16384 x P)
        chunk = lab[start:start + 16384]
        d = (chunk ** 2).sum(1)[:, None] - 2 * chunk @ proto_lab.T + (proto_lab ** 2).sum(1)[None, :]
        nearest[start:start + 16384] = np.argmin(d, axis=1)
    return np.asarray(owners, dtype=np.uint8)[nearest]


def color_names(image: np.ndarray) -> np.ndarray:
    """Per-pixel colour-term index of an RGB uint8 image (H, W, 3) -> (H, W) uint8."""
    q = (np.asarray(image, dtype=np.uint8) >> (8 - _LUT_BITS)).astype(np.int32)
    idx = (q[..., 0] << (2 * _LUT_BITS)) | (q[..., 1] << _LUT_BITS) | q[..., 2]
    return color_lookup_table()[idx]


def color_fractions(image: np.ndarray, max_pixels: int = 262144) -> np.ndarray:
    """Fraction of the image's pixels named by each colour term, shape (11,), summing to 1.

    Images larger than ``max_pixels`` are subsampled on a regular grid (the fractions barely change).
    """
    h, w = image.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
    names = color_names(image[::step, ::step])
    return np.bincount(names.ravel(), minlength=len(COLOR_TERMS)).astype(np.float32) / names.size


class ColorExpert(Expert):
    """The 11 basic colour terms, present when they cover at least ``min_fraction`` of the image.

    Parameters
    ----------
    min_fraction : minimum share of the pixels (0-1] a colour must cover to count as present
    """

    registry_name = "color"
    default_group = "Texture"

    def __init__(self, *, min_fraction: float = 0.05, name: str | None = None, group: str | None = None) -> None:
        super().__init__(name=name, group=group)
        if not 0.0 < float(min_fraction) <= 1.0:
            raise QRProbeInputError(f"color.min_fraction must be in (0, 1], got {min_fraction}")
        self.min_fraction = float(min_fraction)
        self.rule = f"pixel share >= {self.min_fraction:g}"

    @property
    def concepts(self) -> list[str]:
        return list(COLOR_TERMS)

    def thresholds(self) -> list[float]:
        return [self.min_fraction] * len(COLOR_TERMS)

    def _predict(self, images, image_ids) -> ExpertOutput:
        fractions = np.stack([color_fractions(im) for im in images])
        return ExpertOutput(area_fractions_to_presence(fractions, self.min_fraction), fractions)

    def config(self) -> dict:
        return {**super().config(), "min_fraction": self.min_fraction, "lut_bits": _LUT_BITS}
