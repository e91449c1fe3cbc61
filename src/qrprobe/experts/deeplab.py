"""``coco-stuff``: DeepLab-v2 ResNet-101 trained on COCO-Stuff 164k (kazuto1011/deeplab-pytorch's published
``deeplabv2_resnet101_msc-cocostuff164k-100000.pth``), the paper's architecture for its COCO things (group
Objects) and COCO-Stuff stuff (group Material) experts, run once for both.

Layout (key names and shapes as the published file; written here from deeplab-pytorch's description, checked
by ``tests/test_experts_published.py``): the multi-scale wrapper's ``base.`` prefix, then ``layer1.conv1``
(7 x 7 conv 3->64 stride 2 + BN, each a ``conv``/``bn`` pair), a 3 x 3 max-pool (stride 2, ceil mode),
``layer2``-``layer5`` residual layers of 3, 4, 23, 3 bottleneck blocks (``blockN.reduce``, ``.conv3x3``,
``.increase`` and, in each first block, ``.shortcut``; strides 1, 2, 1, 1 and dilations 1, 1, 2, 4), and
``aspp.c0``-``c3``: four 3 x 3 convs 2048->182 with dilations 6, 12, 18, 24 whose outputs are summed.

Input: BGR, 0-255, minus ``(104.008, 116.669, 122.675)``, resized so the longer side is ``size`` (513 as the
publisher's demo). With ``msc`` (default) the logits at scales 1, 0.5 and 0.75 are upsampled to the first's
size and their pixel-wise maximum taken (the published MSC inference). Channel c is COCO-Stuff class id c + 1
(channel 0 = person); ids 1-91 are things, 92-182 stuff. Rule (the paper's "every predicted class"): a class is
present when the per-pixel argmax gives it more than ``min_fraction`` of the pixels (0: any pixel).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..device import resolve_device
from ..errors import QRProbeInputError
from ._torch import load_weights_into, torch_module
from .base import Expert, ExpertOutput
from .categories import read_class_list
from .published import published
from .weights import file_identity, resolve_weights

MEAN_BGR = (104.008, 116.669, 122.675)
N_CLASSES = 182
PARTS = ("both", "things", "stuff")


def build_deeplabv2(n_classes: int = N_CLASSES, n_blocks=(3, 4, 23, 3), rates=(6, 12, 18, 24)):
    """A randomly initialised DeepLab-v2 (inside the ``base`` of its multi-scale wrapper) with deeplab-pytorch's
    module names; ``forward(x)`` gives (B, n_classes, H/8, W/8) logits at one scale."""
    torch = torch_module()
    nn: Any = torch.nn

    def conv_bn(c_in, c_out, k, stride, pad, dil, relu=True):
        m = nn.Sequential()
        m.add_module("conv", nn.Conv2d(c_in, c_out, k, stride, pad, dil, bias=False))
        m.add_module("bn", nn.BatchNorm2d(c_out, eps=1e-5))
        if relu:
            m.add_module("relu", nn.ReLU())
        return m

    class _Bottleneck(nn.Module):
        def __init__(self, c_in, c_out, stride, dil, downsample):
            super().__init__()
            mid = c_out // 4
            self.reduce = conv_bn(c_in, mid, 1, stride, 0, 1)
            self.conv3x3 = conv_bn(mid, mid, 3, 1, dil, dil)
            self.increase = conv_bn(mid, c_out, 1, 1, 0, 1, relu=False)
            self.shortcut = conv_bn(c_in, c_out, 1, stride, 0, 1, relu=False) if downsample else None

        def forward(self, x):
            h = self.increase(self.conv3x3(self.reduce(x)))
            return torch.relu(h + (self.shortcut(x) if self.shortcut is not None else x))

    def res_layer(n, c_in, c_out, stride, dil):
        m = nn.Sequential()
        for i in range(n):
            m.add_module(f"block{i + 1}", _Bottleneck(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1,
                                                      dil, i == 0))
        return m

    class _Aspp(nn.Module):
        def __init__(self):
            super().__init__()
            for i, r in enumerate(rates):
                self.add_module(f"c{i}", nn.Conv2d(2048, n_classes, 3, 1, r, r, bias=True))

        def forward(self, x):
            return sum(m(x) for m in self.children())

    base = nn.Sequential()
    stem = nn.Sequential()
    stem.add_module("conv1", conv_bn(3, 64, 7, 2, 3, 1))
    stem.add_module("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))
    base.add_module("layer1", stem)
    base.add_module("layer2", res_layer(n_blocks[0], 64, 256, 1, 1))
    base.add_module("layer3", res_layer(n_blocks[1], 256, 512, 2, 1))
    base.add_module("layer4", res_layer(n_blocks[2], 512, 1024, 1, 2))
    base.add_module("layer5", res_layer(n_blocks[3], 1024, 2048, 1, 4))
    base.add_module("aspp", _Aspp())

    class _Msc(nn.Module):
        def __init__(self):
            super().__init__()
            self.base = base

        def forward(self, x):
            return self.base(x)

    return _Msc()


def msc_logits(model, x, scales=(0.5, 0.75)):
    """The published multi-scale inference: max over the logits at scale 1 and ``scales`` (upsampled)."""
    torch = torch_module()
    functional = torch.nn.functional
    logits = model(x)
    size = logits.shape[2:]
    outs = [logits]
    for s in scales:
        h = functional.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        outs.append(functional.interpolate(model(h), size=size, mode="bilinear", align_corners=False))
    return torch.stack(outs).max(dim=0)[0]


class CocoStuffExpert(Expert):
    """COCO-Stuff 164k classes present in the image (DeepLab-v2 R101): things (Objects) and stuff (Material).

    Parameters
    ----------
    part : ``"both"`` (182 concepts: 91 things in group Objects, 91 stuff in group Material), ``"things"`` or
        ``"stuff"``
    weights : a local checkpoint (default: the verified download)
    size : longer image side fed to the network (pixels)
    msc : multi-scale inference (scales 1, 0.5, 0.75), as published
    min_fraction : pixel share a class needs (0: any pixel, the paper's rule)
    """

    registry_name = "coco-stuff"
    default_group = "Material"

    def __init__(self, *, part: str = "both", weights: str | None = None, size: int = 513, msc: bool = True,
                 min_fraction: float = 0.0, download: bool = True, device: str = "cpu",
                 name: str | None = None, group: str | None = None) -> None:
        super().__init__(name=name, group=group)
        if part not in PARTS:
            raise QRProbeInputError(f"{self.name}.part must be one of {PARTS}, got {part!r}")
        if not 0.0 <= float(min_fraction) < 1.0:
            raise QRProbeInputError(f"{self.name}.min_fraction must be in [0, 1), got {min_fraction}")
        if int(size) < 32:
            raise QRProbeInputError(f"{self.name}.size must be >= 32, got {size}")
        self.part, self.size, self.msc, self.min_fraction = part, int(size), bool(msc), float(min_fraction)
        self.weights = None if weights is None else os.fspath(weights)
        self.download, self.device = bool(download), device
        ids: list[int] = []
        names: list[str] = []
        self._groups: list[str] = []
        for spec, grp in (("coco-things-91", "Objects"), ("coco-stuff", "Material")):
            if part in ("both", "things" if grp == "Objects" else "stuff"):
                list_ids, list_names = read_class_list(spec)
                ids += list(list_ids or [])
                names += list(list_names)
                self._groups += [group or grp] * len(list_names)
        self.class_ids = np.asarray(ids, dtype=np.int64)
        self._names = names
        self.rule = f"pixel share > {self.min_fraction:g} of the per-pixel argmax"
        self._model: Any = None
        self.load_report: dict | None = None

    @property
    def concepts(self) -> list[str]:
        return list(self._names)

    def concept_groups(self) -> list[str]:
        return list(self._groups)

    def thresholds(self) -> list[float]:
        return [self.min_fraction] * len(self._names)

    def prepare(self, image_ids=None, labels=None) -> None:
        if self._model is None:
            path = resolve_weights(self.name, self.weights, download=self.download,
                                   what="DeepLab-v2 COCO-Stuff weights", entry=published("coco-stuff"))
            model = build_deeplabv2()
            self.load_report = load_weights_into(model, path, self.name, "DeepLab-v2 ResNet-101, 182 classes")
            self.weights_file = path
            self.device = str(resolve_device(self.device))
            self._model = model.eval().to(self.device)
        self._prepared = True

    def _input(self, image: np.ndarray):
        from PIL import Image

        torch = torch_module()
        h, w = image.shape[:2]
        r = self.size / max(h, w)
        resized = Image.fromarray(image).resize((max(1, round(w * r)), max(1, round(h * r))),
                                                Image.Resampling.BILINEAR)
        x = np.asarray(resized, dtype=np.float32)[:, :, ::-1] - np.asarray(MEAN_BGR, dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]

    def class_shares(self, image: np.ndarray) -> np.ndarray:
        """(182,) share of the pixels whose argmax is each channel (at the logits' resolution)."""
        torch = torch_module()
        with torch.inference_mode():
            x = self._input(image).to(self.device)
            logits = msc_logits(self._model, x) if self.msc else self._model(x)
            labels = logits[0].argmax(0).cpu().numpy().ravel()
        return np.bincount(labels, minlength=N_CLASSES)[:N_CLASSES] / max(1, labels.size)

    def _predict(self, images, image_ids) -> ExpertOutput:
        shares = np.stack([self.class_shares(im) for im in images])[:, self.class_ids - 1].astype(np.float32)
        return ExpertOutput(shares > self.min_fraction, shares)

    def config(self) -> dict:
        path = getattr(self, "weights_file", None) or self.weights
        return {**super().config(), "part": self.part, "size": self.size, "msc": self.msc,
                "min_fraction": self.min_fraction, "weights": file_identity(path) if path else None}
