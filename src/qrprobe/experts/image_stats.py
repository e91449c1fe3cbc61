"""``image-stats``: photographic properties from image statistics.

A stand-in for the paper's CLIP photographic-style prompts when no CLIP weights are available. Seven concepts,
each an absolute threshold on one statistic of the image, computed on a working copy whose shorter side is at
most ``work_size`` pixels (box-filter downscaling; smaller images are used as they are), in [0, 1] units:

=================  =====================================================================  ===========
concept            statistic                                                              default
=================  =====================================================================  ===========
greyscale          99th percentile over pixels of max(R,G,B) - min(R,G,B)                 <= 0.06
dark               mean CIELAB lightness L* / 100                                          < 0.30
bright             mean CIELAB lightness L* / 100                                          > 0.75
low saturation     mean HSV saturation, and not greyscale                                  < 0.12
high saturation    mean HSV saturation                                                     > 0.50
blurry             variance of the Laplacian of the luma (0.299 R + 0.587 G + 0.114 B),    < 0.005
                   among images whose luma varies (standard deviation >= 0.05)
high detail        share of pixels whose Sobel gradient magnitude (/8) exceeds 0.1         > 0.40
=================  =====================================================================  ===========

(decided) The defaults were set so that each concept covers a few percent of CIFAR-10 and that the
scikit-image sample photos fall where a person would put them (a Gaussian-blurred photo is blurry, a
greyscale photo is greyscale); they are parameters.
"""

from __future__ import annotations

import numpy as np

from ..errors import QRProbeInputError
from .base import Expert, ExpertOutput
from .color import srgb_to_lab

IMAGE_STAT_CONCEPTS = ("greyscale", "dark", "bright", "low saturation", "high saturation", "blurry",
                       "high detail")


def _downscale(image: np.ndarray, short_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    if min(h, w) <= short_side:
        return image
    from PIL import Image

    r = short_side / min(h, w)
    size = (max(1, round(w * r)), max(1, round(h * r)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def _laplacian(x: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian of the interior pixels, shape (H-2, W-2)."""
    return x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:] - 4 * x[1:-1, 1:-1]


def _sobel_magnitude(x: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of the interior pixels divided by 8 (so a unit step gives 0.5)."""
    gx = (x[:-2, 2:] + 2 * x[1:-1, 2:] + x[2:, 2:]) - (x[:-2, :-2] + 2 * x[1:-1, :-2] + x[2:, :-2])
    gy = (x[2:, :-2] + 2 * x[2:, 1:-1] + x[2:, 2:]) - (x[:-2, :-2] + 2 * x[:-2, 1:-1] + x[:-2, 2:])
    return np.hypot(gx, gy) / 8.0


def image_statistics(image: np.ndarray, work_size: int = 128) -> dict[str, float]:
    """The statistics the concepts threshold, for one RGB uint8 image (H, W, 3); all in [0, 1] units."""
    small = _downscale(image, work_size)
    x = small.astype(np.float32) / 255.0
    mx, mn = x.max(axis=2), x.min(axis=2)
    spread = mx - mn
    saturation = np.where(mx > 0, spread / np.maximum(mx, 1e-6), 0.0)
    luma = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lightness = srgb_to_lab(small)[..., 0] / 100.0
    if min(luma.shape) >= 3:
        lap_var = float(_laplacian(luma).var())
        detail = float((_sobel_magnitude(luma) > 0.1).mean())
    else:  # too small for a 3x3 stencil: no evidence of blur or detail
        lap_var, detail = float("inf"), 0.0
    return {"chroma_p99": float(np.percentile(spread, 99)), "lightness": float(lightness.mean()),
            "saturation": float(saturation.mean()), "laplacian_var": lap_var, "luma_std": float(luma.std()),
            "detail": detail}


class ImageStatsExpert(Expert):
    """Greyscale, dark, bright, low/high saturation, blurry and high-detail images (thresholds above)."""

    registry_name = "image-stats"
    default_group = "Other"
    rule = "statistic vs threshold"

    def __init__(self, *, greyscale_chroma: float = 0.06, dark_lightness: float = 0.30,
                 bright_lightness: float = 0.75, low_saturation: float = 0.12, high_saturation: float = 0.50,
                 blur_laplacian: float = 0.005, blur_min_contrast: float = 0.05, detail_share: float = 0.40,
                 work_size: int = 128, name: str | None = None, group: str | None = None) -> None:
        super().__init__(name=name, group=group)
        self.params = {"greyscale_chroma": float(greyscale_chroma), "dark_lightness": float(dark_lightness),
                       "bright_lightness": float(bright_lightness), "low_saturation": float(low_saturation),
                       "high_saturation": float(high_saturation), "blur_laplacian": float(blur_laplacian),
                       "blur_min_contrast": float(blur_min_contrast), "detail_share": float(detail_share)}
        if int(work_size) < 8:
            raise QRProbeInputError(f"image-stats.work_size must be at least 8, got {work_size}")
        self.work_size = int(work_size)

    @property
    def concepts(self) -> list[str]:
        return list(IMAGE_STAT_CONCEPTS)

    def thresholds(self) -> list[float]:
        p = self.params
        return [p["greyscale_chroma"], p["dark_lightness"], p["bright_lightness"], p["low_saturation"],
                p["high_saturation"], p["blur_laplacian"], p["detail_share"]]

    def _predict(self, images, image_ids) -> ExpertOutput:
        p = self.params
        rows, binary = [], []
        for im in images:
            s = image_statistics(im, self.work_size)
            grey = s["chroma_p99"] <= p["greyscale_chroma"]
            blurry = s["laplacian_var"] < p["blur_laplacian"] and s["luma_std"] >= p["blur_min_contrast"]
            binary.append([grey, s["lightness"] < p["dark_lightness"], s["lightness"] > p["bright_lightness"],
                           (not grey) and s["saturation"] < p["low_saturation"],
                           s["saturation"] > p["high_saturation"], blurry, s["detail"] > p["detail_share"]])
            rows.append([s["chroma_p99"], s["lightness"], s["lightness"], s["saturation"], s["saturation"],
                         min(s["laplacian_var"], 1e6), s["detail"]])
        return ExpertOutput(np.asarray(binary, dtype=bool), np.asarray(rows, dtype=np.float32))

    def config(self) -> dict:
        return {**super().config(), **self.params, "work_size": self.work_size}
