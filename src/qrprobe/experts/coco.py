"""MS-COCO experts from torchvision: object detection (``coco``) and semantic segmentation (``coco-seg``).

``coco``: a torchvision detector trained on COCO (default ``fasterrcnn_resnet50_fpn_v2``; any of
``fasterrcnn_*``, ``retinanet_*``, ``fcos_*``, ``ssd*``, ``maskrcnn_*``), 80 thing categories; a category is
present when one of its detections scores above ``threshold`` (0.5, as the paper's Open Images detector).

``coco-seg``: a torchvision segmentation model trained on the COCO subset with the 20 Pascal-VOC categories
(default ``deeplabv3_resnet50``; also ``deeplabv3_resnet101``, ``deeplabv3_mobilenet_v3_large``,
``fcn_resnet50``, ``fcn_resnet101``, ``lraspp_mobilenet_v3_large``); a category is present when it covers more
than ``min_fraction`` of the pixels (0: any pixel, the paper's choice). torchvision publishes no COCO-Stuff
model, but one of these architectures trained on COCO-Stuff (a user's state dict) gives the paper's two
segmentation experts through the shipped class lists: ``classes=coco-things-91`` (the 91 things, group
Objects) and ``classes=coco-stuff`` (the 91 stuff categories, group Material), with ``first_id`` the class id
of output channel 0 and ``num_classes`` the model's number of channels (182 for COCO-Stuff-164k with channel 0
= person). The same lists serve the ``onnx-segmenter`` expert for an exported model (e.g. DeepLab-v2).

Weights: ``--weights EXPERT=PATH`` (a torchvision state dict), else torchvision's own download (internet;
VOC categories only).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..device import resolve_device
from ..errors import QRProbeInputError, require
from ._torch import load_weights_into, torch_module
from .base import Expert, ExpertOutput
from .categories import channel_columns, read_class_list
from .rules import detections_to_presence, segmentation_to_presence
from .weights import downloads_allowed, file_identity

DETECTORS = ("fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn",
             "fasterrcnn_mobilenet_v3_large_320_fpn", "retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2",
             "fcos_resnet50_fpn", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large", "maskrcnn_resnet50_fpn",
             "maskrcnn_resnet50_fpn_v2")
SEGMENTERS = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large", "fcn_resnet50",
              "fcn_resnet101", "lraspp_mobilenet_v3_large")


class _TorchvisionCocoExpert(Expert):
    """Shared loading: architecture from torchvision, weights from a file or torchvision's hub."""

    default_group = "Objects"
    architectures: tuple[str, ...] = ()
    classes_list = ""

    def __init__(self, *, arch: str, weights: str | None, download: bool, device: str, batch_size: int,
                 name: str | None, group: str | None, classes: str | None = None) -> None:
        super().__init__(name=name, group=group)
        if arch not in self.architectures:
            raise QRProbeInputError(f"{self.name}.arch must be one of {list(self.architectures)}, got {arch!r}")
        self.arch = arch
        self.weights = None if weights is None else os.fspath(weights)
        self.download = bool(download)
        self.device, self.batch_size = device, int(batch_size)
        self.classes_list = classes or self.classes_list
        ids, names = read_class_list(self.classes_list)
        if ids is None:
            raise QRProbeInputError(f"{self.name}.classes: {self.classes_list!r} needs 'id<TAB>name' lines "
                                    "(the ids are the model's class numbers)")
        self.class_ids = np.asarray(ids, dtype=np.int64)
        self._names = names
        self._model: Any = None  # loaded on first use
        self.load_report: dict | None = None

    @property
    def concepts(self) -> list[str]:
        return list(self._names)

    def _column_of_label(self, n_labels: int) -> np.ndarray:
        """Map the model's label index -> concept column (-1 for unused ids and background)."""
        col = np.full(max(n_labels, int(self.class_ids.max()) + 1), -1, dtype=np.int64)
        col[self.class_ids] = np.arange(len(self.class_ids))
        return col

    def _build(self, **kwargs):
        tv = require("torchvision", "vision", f"the {self.name} expert")
        if self.weights is not None:
            if not os.path.isfile(self.weights):
                raise QRProbeInputError(f"expert {self.name!r}: weights file {self.weights!r} not found")
            model = tv.models.get_model(self.arch, weights=None, weights_backbone=None, **kwargs)
            self.load_report = load_weights_into(model, self.weights, self.name, self.arch)
            return model
        if not downloads_allowed(self.download):
            raise QRProbeInputError(f"expert {self.name!r} needs {self.arch} weights; downloads are off (offline) "
                                    f"— pass a local torchvision checkpoint with --weights {self.name}=PATH")
        try:
            return tv.models.get_model(self.arch, weights="DEFAULT")
        except Exception as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise QRProbeInputError(f"expert {self.name!r}: could not download torchvision's {self.arch} weights "
                                    f"({type(exc).__name__}: {first}); pass a local checkpoint with --weights "
                                    f"{self.name}=PATH") from None

    def _config(self) -> dict:
        return {**super().config(), "arch": self.arch,
                "weights": file_identity(self.weights) if self.weights else "torchvision DEFAULT"}


class CocoDetectionExpert(_TorchvisionCocoExpert):
    """The 80 COCO thing categories, present when detected with score > ``threshold``."""

    registry_name = "coco"
    architectures = DETECTORS
    classes_list = "coco-things"

    def __init__(self, *, arch: str = "fasterrcnn_resnet50_fpn_v2", weights: str | None = None,
                 threshold: float = 0.5, download: bool = True, device: str = "cpu", batch_size: int = 4,
                 name: str | None = None, group: str | None = None) -> None:
        super().__init__(arch=arch, weights=weights, download=download, device=device, batch_size=batch_size,
                         name=name, group=group)
        if not 0.0 <= float(threshold) <= 1.0:
            raise QRProbeInputError(f"{self.name}.threshold must be in [0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.rule = f"detection score > {self.threshold:g}"

    def thresholds(self) -> list[float]:
        return [self.threshold] * len(self._names)

    def prepare(self, image_ids=None, labels=None) -> None:
        if self._model is None:
            model = self._build(num_classes=91)
            self.device = str(resolve_device(self.device))
            self._model = model.eval().to(self.device)
        self._prepared = True

    def _predict(self, images, image_ids) -> ExpertOutput:
        torch = torch_module()
        classes, scores = [], []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = [torch.from_numpy(im).permute(2, 0, 1).float().div(255).to(self.device)
                         for im in images[start:start + self.batch_size]]
                for det in self._model(batch):
                    classes.append(det["labels"].cpu().numpy())
                    scores.append(det["scores"].float().cpu().numpy())
        col = self._column_of_label(91)
        mapped = [np.where((c >= 0) & (c < len(col)), col[np.clip(c, 0, len(col) - 1)], -1) for c in classes]
        binary, best = detections_to_presence(mapped, scores, len(self._names), self.threshold)
        return ExpertOutput(binary, best)

    def config(self) -> dict:
        return {**self._config(), "threshold": self.threshold}


class CocoSegmentationExpert(_TorchvisionCocoExpert):
    """Classes present when they cover pixels: the 20 Pascal-VOC categories of torchvision's COCO segmenters,
    or (``classes=coco-things-91`` / ``coco-stuff``, user weights) those of a COCO-Stuff segmenter.

    Parameters
    ----------
    classes : an ``id<TAB>name`` class list (shipped name or file); ``coco-voc`` by default
    first_id : the class id of output channel 0 (channel = id - first_id): 0 for ``coco-voc`` (channel 0 is
        background), 1 for a COCO-Stuff model whose channel 0 is person
    num_classes : the model's output channels; default ``max(id) - first_id + 1`` (21 for ``coco-voc``)
    """

    registry_name = "coco-seg"
    architectures = SEGMENTERS
    classes_list = "coco-voc"

    def __init__(self, *, arch: str = "deeplabv3_resnet50", weights: str | None = None,
                 min_fraction: float = 0.0, resize: int = 520, classes: str = "coco-voc", first_id: int = 0,
                 num_classes: int | None = None, download: bool = True, device: str = "cpu",
                 batch_size: int = 4, name: str | None = None, group: str | None = None) -> None:
        super().__init__(arch=arch, weights=weights, download=download, device=device, batch_size=batch_size,
                         name=name, group=group, classes=classes)
        if not 0.0 <= float(min_fraction) < 1.0:
            raise QRProbeInputError(f"{self.name}.min_fraction must be in [0, 1), got {min_fraction}")
        self.first_id = int(first_id)
        self.num_classes = (int(num_classes) if num_classes is not None
                            else int(self.class_ids.max()) - self.first_id + 1)
        self._channel_column = channel_columns(self.class_ids, len(self._names), self.num_classes, self.first_id,
                                               f"{self.name}.classes")
        if self.classes_list != "coco-voc" and self.weights is None:
            raise QRProbeInputError(f"expert {self.name!r}: torchvision publishes segmenters for the VOC "
                                    f"categories only; classes={self.classes_list!r} needs a checkpoint trained "
                                    f"for them: --weights {self.name}=PATH")
        self.min_fraction = float(min_fraction)
        self.resize = int(resize)
        self.rule = f"pixel share > {self.min_fraction:g}"

    def thresholds(self) -> list[float]:
        return [self.min_fraction] * len(self._names)

    def prepare(self, image_ids=None, labels=None) -> None:
        if self._model is None:
            kwargs = {"num_classes": self.num_classes}
            if not self.arch.startswith("lraspp"):
                kwargs["aux_loss"] = True  # torchvision's COCO checkpoints carry the auxiliary head
            model = self._build(**kwargs)
            self.device = str(resolve_device(self.device))
            self._model = model.eval().to(self.device)
            from ..models.preprocess import ImagePreprocess

            self._preprocess = ImagePreprocess(resize=self.resize, crop=0)
        self._prepared = True

    def _predict(self, images, image_ids) -> ExpertOutput:
        from PIL import Image

        torch = torch_module()
        maps = []
        with torch.inference_mode():
            for im in images:  # one at a time: images keep their aspect ratios
                x = self._preprocess(Image.fromarray(im))[None].to(self.device)
                maps.append(self._model(x)["out"][0].argmax(0).cpu().numpy())
        mapped = [self._channel_column[m] for m in maps]
        binary, fractions = segmentation_to_presence(mapped, len(self._names), self.min_fraction)
        return ExpertOutput(binary, fractions)

    def config(self) -> dict:
        extra = {} if self.classes_list == "coco-voc" else {
            "classes": self.classes_list, "first_id": self.first_id, "num_classes": self.num_classes}
        return {**self._config(), "min_fraction": self.min_fraction, "resize": self.resize, **extra}
