"""Classical reference representations, computed per image in the data-loading workers.

- :class:`PixelFeatures`: the image squashed to ``size`` x ``size`` (box filter), RGB values in [0, 1],
  flattened: 3 * size^2 dims.
- :class:`ColorHistogram`: the joint RGB histogram with ``bins`` levels per channel, as proportions of the
  pixels: bins^3 dims (computed on a copy at most 128 pixels on a side).
- :class:`HogFeatures`: histograms of oriented gradients (Dalal & Triggs, 2005; scikit-image) of the grey
  image resized (shorter side) and centre-cropped to ``size`` pixels.

Each is a picklable callable PIL RGB image -> float32 tensor (dim,) with a ``describe()`` for the manifest;
the model that follows is the identity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .preprocess import ImagePreprocess


@dataclass(frozen=True)
class PixelFeatures:
    size: int = 16

    @property
    def dim(self) -> int:
        return 3 * self.size * self.size

    def __call__(self, image) -> torch.Tensor:
        from PIL import Image

        small = image.resize((self.size, self.size), Image.Resampling.BOX)
        return torch.from_numpy(np.asarray(small, dtype=np.float32).reshape(-1) / 255.0)

    def describe(self) -> dict:
        return {"kind": "pixels", **asdict(self), "resample": "box", "scale": "[0, 1]"}


@dataclass(frozen=True)
class ColorHistogram:
    bins: int = 8
    max_side: int = 128

    @property
    def dim(self) -> int:
        return self.bins ** 3

    def __call__(self, image) -> torch.Tensor:
        from PIL import Image

        if max(image.size) > self.max_side:
            image = image.copy()
            image.thumbnail((self.max_side, self.max_side), Image.Resampling.BOX)
        q = np.asarray(image, dtype=np.uint16).reshape(-1, 3) * self.bins // 256
        codes = (q[:, 0] * self.bins + q[:, 1]) * self.bins + q[:, 2]
        counts = np.bincount(codes, minlength=self.dim).astype(np.float32)
        return torch.from_numpy(counts / max(1, len(codes)))

    def describe(self) -> dict:
        return {"kind": "color-histogram", "space": "RGB", **asdict(self), "normalisation": "proportion"}


@dataclass(frozen=True)
class HogFeatures:
    size: int = 64
    orientations: int = 9
    cell: int = 8
    block: int = 2

    @property
    def dim(self) -> int:
        cells = self.size // self.cell
        blocks = cells - self.block + 1
        return blocks * blocks * self.block * self.block * self.orientations

    def __call__(self, image) -> torch.Tensor:
        from skimage.feature import hog

        geometry = ImagePreprocess(resize=self.size, crop=self.size, interpolation="bilinear")
        grey = np.asarray(geometry.resize_and_crop(image).convert("L"), dtype=np.float32) / 255.0
        vec = hog(grey, orientations=self.orientations, pixels_per_cell=(self.cell, self.cell),
                  cells_per_block=(self.block, self.block), block_norm="L2-Hys", feature_vector=True)
        return torch.from_numpy(vec.astype(np.float32))

    def describe(self) -> dict:
        return {"kind": "hog", **asdict(self), "block_norm": "L2-Hys", "resize": "shorter side + centre crop"}
