"""Exported models as experts (onnxruntime): ``onnx-detector`` and ``onnx-segmenter``.

The user gives the ONNX file (``--weights EXPERT=model.onnx``), its class list (``classes=FILE`` or a
shipped list such as ``coco-things``, ``coco-stuff``) and how its output is laid out:

=================  ====================================================================================
layout             output(s)
=================  ====================================================================================
``rows``           one output of detections ``(N, 6)`` or ``(B, N, 6)``: x1, y1, x2, y2, score, class
``boxes-scores-``  three outputs: boxes ``(B?, N, 4)``, scores ``(B?, N)``, classes ``(B?, N)``
``classes``
``yolo``           one output ``(B, 4 + C, A)`` or ``(B, A, 4 + C)``: box then C class scores per anchor
                   (YOLOv8 style, scores already in [0, 1])
``yolo-obj``       one output ``(B, A, 5 + C)``: box, objectness, C class scores (YOLOv5 style; score =
                   objectness x class score)
``segmentation``   (segmenter) one output ``(B, C, H, W)`` of class scores; the per-pixel argmax is the class
=================  ====================================================================================

Detector rule: a class is present when one of its detections scores above ``threshold`` (no NMS is needed
to decide presence). Segmenter rule: a class is present when it covers more than ``min_fraction`` of the
pixels. Input: the image resized to ``size`` x ``size`` (``size=0``: the model's fixed input size), RGB or BGR,
``x * scale`` then ``(x - mean) / std`` per channel, NCHW float32.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import QRProbeInputError
from .base import Expert, ExpertOutput
from .categories import channel_columns, read_class_list
from .rules import detections_to_presence, segmentation_to_presence
from .text import onnx_session
from .weights import file_identity, resolve_weights

DETECTOR_LAYOUTS = ("rows", "boxes-scores-classes", "yolo", "yolo-obj")


def _floats(text: str | tuple | list, what: str) -> tuple[float, float, float]:
    if isinstance(text, (tuple, list)):
        values = [float(v) for v in text]
    else:
        try:
            values = [float(v) for v in str(text).replace(" ", "").split(",") if v]
        except ValueError:
            raise QRProbeInputError(f"{what}: expected three comma-separated numbers, got {text!r}") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise QRProbeInputError(f"{what}: expected 1 or 3 numbers, got {text!r}")
    return values[0], values[1], values[2]


class _OnnxExpert(Expert):
    """Shared parts: class list, session, input preprocessing."""

    default_group = "Objects"

    def __init__(self, *, weights: str | None, classes: str | None, use_ids: bool, size: int, bgr: bool,
                 scale: float, mean: str, std: str, threads: int | None, name: str | None,
                 group: str | None) -> None:
        super().__init__(name=name, group=group)
        if classes is None:
            raise QRProbeInputError(f"expert {self.name!r} needs its class list: --set {self.name}.classes=FILE "
                                    "(one name per line, in the model's class order) or a shipped list name")
        ids, names = read_class_list(classes)
        self.classes_spec = classes
        self._names = names
        self.use_ids = bool(use_ids)
        if self.use_ids and ids is None:
            raise QRProbeInputError(f"{self.name}.use_ids: the class list {classes!r} has no id column")
        self.class_ids = np.asarray(ids if self.use_ids else range(len(names)), dtype=np.int64)
        self.weights = None if weights is None else os.fspath(weights)
        self.size, self.bgr, self.scale = int(size), bool(bgr), float(scale)
        self.mean = _floats(mean, f"{self.name}.mean")
        self.std = _floats(std, f"{self.name}.std")
        self.threads = threads
        self._session: Any = None  # loaded on first use

    @property
    def concepts(self) -> list[str]:
        return list(self._names)

    def prepare(self, image_ids=None, labels=None) -> None:
        if self._session is None:
            path = resolve_weights(self.name, self.weights, what="an ONNX model file")
            try:
                self._session = onnx_session(str(path), self.threads)
            except QRProbeInputError:
                raise
            except Exception as exc:
                first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
                raise QRProbeInputError(f"expert {self.name!r}: cannot load {str(path)!r} as an ONNX model "
                                        f"({first})") from None
            shape = self._session.get_inputs()[0].shape
            fixed = [d for d in shape[2:] if isinstance(d, int)]
            if self.size == 0:
                if len(fixed) != 2:
                    raise QRProbeInputError(f"expert {self.name!r}: the model's input size is not fixed "
                                            f"({shape}); give --set {self.name}.size=N")
                self._hw = (fixed[0], fixed[1])
            else:
                self._hw = (self.size, self.size)
            self._fixed_batch = isinstance(shape[0], int)
        self._prepared = True

    def _input(self, images) -> np.ndarray:
        from PIL import Image

        h, w = self._hw
        out = []
        for im in images:
            x: np.ndarray = np.asarray(Image.fromarray(im).resize((w, h), Image.Resampling.BILINEAR), np.float32)
            if self.bgr:
                x = x[:, :, ::-1]
            x = (x * self.scale - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
            out.append(x.transpose(2, 0, 1))
        return np.ascontiguousarray(np.stack(out), dtype=np.float32)

    def _run(self, images) -> list[list[np.ndarray]]:
        """Per image, the list of the model's outputs for that image (batch dimension removed)."""
        name = self._session.get_inputs()[0].name
        step = 1 if self._fixed_batch else 16
        per_image: list[list[np.ndarray]] = []
        for start in range(0, len(images), step):
            x = self._input(images[start:start + step])
            outs = self._session.run(None, {name: x})
            for i in range(x.shape[0]):
                per_image.append([self._slice(o, i, x.shape[0]) for o in outs])
        return per_image

    def _slice(self, out: np.ndarray, i: int, batch: int) -> np.ndarray:
        raise NotImplementedError

    def _column(self, classes: np.ndarray) -> np.ndarray:
        """Model class numbers -> concept columns (-1 when the number is not in the class list)."""
        lookup = {int(c): j for j, c in enumerate(self.class_ids)}
        return np.array([lookup.get(int(c), -1) for c in np.asarray(classes).ravel()], dtype=np.int64)

    def _base_config(self) -> dict:
        return {**super().config(), "classes": self.classes_spec, "use_ids": self.use_ids, "size": self.size,
                "bgr": self.bgr, "scale": self.scale, "mean": self.mean, "std": self.std,
                "weights": file_identity(self.weights) if self.weights else None}


class OnnxDetectorExpert(_OnnxExpert):
    """Any exported detector: classes present when detected with a score above ``threshold``.

    Parameters
    ----------
    weights : the ``.onnx`` file
    classes : class list (file or shipped name), in the model's class order
    layout : output layout (see the module docstring)
    threshold : detection score threshold (strict)
    use_ids : the list's ``id<TAB>name`` ids are the model's class numbers (else the line order is)
    size, bgr, scale, mean, std : input preprocessing
    """

    registry_name = "onnx-detector"

    def __init__(self, *, weights: str | None = None, classes: str | None = None, layout: str = "rows",
                 threshold: float = 0.5, use_ids: bool = False, size: int = 640, bgr: bool = False,
                 scale: float = 1 / 255, mean: str = "0", std: str = "1", threads: int | None = None,
                 name: str | None = None, group: str | None = None) -> None:
        super().__init__(weights=weights, classes=classes, use_ids=use_ids, size=size, bgr=bgr, scale=scale,
                         mean=mean, std=std, threads=threads, name=name, group=group)
        if layout not in DETECTOR_LAYOUTS:
            raise QRProbeInputError(f"{self.name}.layout must be one of {DETECTOR_LAYOUTS}, got {layout!r}")
        self.layout = layout
        self.threshold = float(threshold)
        self.rule = f"detection score > {self.threshold:g}"

    def thresholds(self) -> list[float]:
        return [self.threshold] * len(self._names)

    def _slice(self, out: np.ndarray, i: int, batch: int) -> np.ndarray:
        out = np.asarray(out)
        batched = {"rows": 3, "boxes-scores-classes": None, "yolo": 3, "yolo-obj": 3}[self.layout]
        if batched is None:  # boxes (B?, N, 4), scores and classes (B?, N): batched when it has a B axis
            has_batch = out.ndim == 3 or (out.ndim == 2 and out.shape[-1] != 4)
        else:
            has_batch = out.ndim == batched
        if has_batch:
            return out[i]
        if batch != 1:
            self._bad(out.shape, "outputs without a batch axis need one image per run")
        return out

    def _bad(self, shape, expected: str):
        raise QRProbeInputError(f"expert {self.name!r}: output of shape {tuple(shape)} does not match layout "
                                f"{self.layout!r} ({expected})")

    def _decode(self, outs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(classes, scores) of one image's detections, classes as concept columns."""
        n = len(self._names)
        if self.layout == "rows":
            rows = outs[0]
            if rows.ndim != 2 or rows.shape[1] < 6:
                self._bad(rows.shape, "rows of x1, y1, x2, y2, score, class")
            return self._column(np.rint(rows[:, 5])), rows[:, 4]
        if self.layout == "boxes-scores-classes":
            if len(outs) < 3:
                self._bad(outs[0].shape, "three outputs: boxes, scores, classes")
            return self._column(np.rint(outs[2])), np.asarray(outs[1]).ravel()
        pred = outs[0]
        width = n + (4 if self.layout == "yolo" else 5)
        if pred.ndim != 2 or width not in pred.shape:
            self._bad(pred.shape, f"(4 + C, A) or (A, 4 + C) with C = {n}" if self.layout == "yolo"
                      else f"(A, 5 + C) with C = {n}")
        if pred.shape[1] != width:
            pred = pred.T
        cls = pred[:, 4:] if self.layout == "yolo" else pred[:, 5:] * pred[:, 4:5]
        best = cls.max(axis=0)  # each class's best anchor score
        return self._column(np.arange(n)), best

    def _predict(self, images, image_ids) -> ExpertOutput:
        decoded = [self._decode(outs) for outs in self._run(images)]
        binary, best = detections_to_presence([c for c, _ in decoded], [s for _, s in decoded],
                                              len(self._names), self.threshold)
        return ExpertOutput(binary, best)

    def config(self) -> dict:
        return {**self._base_config(), "layout": self.layout, "threshold": self.threshold}


class OnnxSegmenterExpert(_OnnxExpert):
    """Any exported semantic segmenter ``(B, C, H, W)``: classes present when they cover pixels.

    Parameters
    ----------
    weights : the ``.onnx`` file
    classes : class list in the model's channel order, or (``use_ids``) an ``id<TAB>name`` list such as the
        shipped ``coco-things-91`` and ``coco-stuff``
    min_fraction : a class must cover more than this share of the pixels
    ignore : comma-separated class names that never count (e.g. ``background,unlabeled``)
    use_ids : read each class from channel ``id - first_id`` of a model that may have more channels than the
        list has classes (the per-pixel argmax runs over all channels). A COCO-Stuff model with 182 channels
        (channel 0 = person, id 1) gives the paper's two experts: ``classes=coco-things-91`` and
        ``classes=coco-stuff``, both with ``use_ids=true, first_id=1``.
    first_id : the class id of channel 0
    size, bgr, scale, mean, std : input preprocessing (ImageNet normalisation by default)
    """

    registry_name = "onnx-segmenter"
    default_group = "Material"

    def __init__(self, *, weights: str | None = None, classes: str | None = None, min_fraction: float = 0.0,
                 ignore: str = "", use_ids: bool = False, first_id: int = 0, size: int = 512, bgr: bool = False,
                 scale: float = 1 / 255, mean: str = "0.485,0.456,0.406", std: str = "0.229,0.224,0.225",
                 threads: int | None = None, name: str | None = None, group: str | None = None) -> None:
        super().__init__(weights=weights, classes=classes, use_ids=use_ids, size=size, bgr=bgr, scale=scale,
                         mean=mean, std=std, threads=threads, name=name, group=group)
        self.first_id = int(first_id)
        self.min_fraction = float(min_fraction)
        self.ignore = [s.strip() for s in str(ignore).split(",") if s.strip()]
        unknown = [s for s in self.ignore if s not in self._names]
        if unknown:
            raise QRProbeInputError(f"{self.name}.ignore: {unknown} are not in the class list")
        self.rule = f"pixel share > {self.min_fraction:g}"

    def thresholds(self) -> list[float]:
        return [self.min_fraction] * len(self._names)

    def _slice(self, out: np.ndarray, i: int, batch: int) -> np.ndarray:
        return out[i]

    def _predict(self, images, image_ids) -> ExpertOutput:
        maps = []
        for outs in self._run(images):
            scores = outs[0]
            if scores.ndim != 3 or (scores.shape[0] != len(self._names) and not self.use_ids):
                raise QRProbeInputError(f"expert {self.name!r}: output of shape {scores.shape} per image, "
                                        f"expected ({len(self._names)}, H, W)")
            col = channel_columns(self.class_ids if self.use_ids else None, len(self._names), scores.shape[0],
                                  self.first_id, f"expert {self.name!r}")
            maps.append(col[scores.argmax(axis=0)])
        ignore = [self._names.index(s) for s in self.ignore]
        binary, fractions = segmentation_to_presence(maps, len(self._names), self.min_fraction, ignore)
        return ExpertOutput(binary, fractions)

    def config(self) -> dict:
        extra = {"first_id": self.first_id} if self.use_ids else {}
        return {**self._base_config(), "min_fraction": self.min_fraction, "ignore": self.ignore, **extra}
