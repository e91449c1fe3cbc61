"""``faces``: a human face is visible. MediaPipe's BlazeFace detector or OpenCV's Haar cascade.

Both models ship inside their wheels: ``mediapipe==0.10.14`` (``face_detection_full_range_sparse.tflite``
and ``face_detection_short_range.tflite``; MediaPipe 1.x ships no models) and ``opencv-python-headless<5``
(``haarcascade_frontalface_default.xml`` in ``cv2.data``; OpenCV 5 ships no cascades).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Any

import numpy as np

from ..errors import QRProbeInputError, require
from .base import Expert, ExpertOutput

FACE_BACKENDS = ("mediapipe", "opencv")


def import_mediapipe():
    """Import MediaPipe quietly (its C++ logging goes to stderr otherwise)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # mediapipe 0.10.14 calls a protobuf API that newer protobuf releases deprecate, on every image
    warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
    mp = require("mediapipe", "experts", "the faces and person experts")
    if not hasattr(mp, "solutions"):
        raise QRProbeInputError(
            f"mediapipe {getattr(mp, '__version__', '?')} has no bundled models (mediapipe.solutions); "
            "install mediapipe==0.10.14 or use faces.backend=opencv")
    return mp


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence file descriptor 2 (MediaPipe's C++ start-up logging ignores Python's logging settings)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def warm_up(*graphs) -> None:
    """Run each MediaPipe graph once on a small grey image with start-up logging silenced."""
    dummy = np.full((64, 64, 3), 128, np.uint8)
    with quiet_native_stderr():
        for g in graphs:
            if g is not None:
                g.process(dummy)


class FaceExpert(Expert):
    """One concept, ``face``.

    Parameters
    ----------
    backend : ``"mediapipe"`` (BlazeFace, default) or ``"opencv"`` (Haar cascade, frontal faces)
    threshold : minimum detection confidence (MediaPipe only)
    full_range : MediaPipe's full-range model (faces up to about 5 m) rather than the short-range one
    min_neighbors, min_size : Haar cascade parameters (``min_size`` as a fraction of the shorter side)
    """

    registry_name = "faces"
    default_group = "Objects"

    def __init__(self, *, backend: str = "mediapipe", threshold: float = 0.5, full_range: bool = True,
                 min_neighbors: int = 5, min_size: float = 0.05, name: str | None = None,
                 group: str | None = None) -> None:
        super().__init__(name=name, group=group)
        if backend not in FACE_BACKENDS:
            raise QRProbeInputError(f"faces.backend must be one of {FACE_BACKENDS}, got {backend!r}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise QRProbeInputError(f"faces.threshold must be in [0, 1], got {threshold}")
        self.backend = backend
        self.threshold = float(threshold)
        self.full_range = bool(full_range)
        self.min_neighbors = int(min_neighbors)
        self.min_size = float(min_size)
        self.rule = (f"face detected with confidence >= {self.threshold:g}" if backend == "mediapipe"
                     else f"Haar cascade hit (min_neighbors={self.min_neighbors})")
        self._model: Any = None  # loaded on first use

    @property
    def concepts(self) -> list[str]:
        return ["face"]

    def thresholds(self) -> list[float]:
        return [self.threshold if self.backend == "mediapipe" else float("nan")]

    def prepare(self, image_ids=None, labels=None) -> None:
        if self._model is None:
            if self.backend == "mediapipe":
                mp = import_mediapipe()
                with quiet_native_stderr():
                    self._model = mp.solutions.face_detection.FaceDetection(
                        model_selection=1 if self.full_range else 0, min_detection_confidence=self.threshold)
                warm_up(self._model)
            else:
                cv2 = require("cv2", "experts", "the faces expert (opencv backend)")
                path = os.path.join(getattr(getattr(cv2, "data", None), "haarcascades", ""),
                                    "haarcascade_frontalface_default.xml")
                cascade = cv2.CascadeClassifier(path)
                if cascade.empty():
                    raise QRProbeInputError(f"OpenCV's face cascade is missing ({path}); install "
                                            "opencv-python-headless<5, whose wheels ship the cascades")
                self._model = cascade
        self._prepared = True

    def _score(self, image: np.ndarray) -> float:
        if self.backend == "mediapipe":
            result = self._model.process(image)
            return max((float(d.score[0]) for d in (result.detections or [])), default=0.0)
        import cv2

        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        side = max(1, int(self.min_size * min(grey.shape)))
        faces = self._model.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=self.min_neighbors,
                                             minSize=(side, side))
        return 1.0 if len(faces) else 0.0

    def _predict(self, images, image_ids) -> ExpertOutput:
        scores = np.array([[self._score(im)] for im in images], dtype=np.float32)
        present = scores > 0 if self.backend == "opencv" else scores >= self.threshold
        return ExpertOutput(present, scores)

    def config(self) -> dict:
        return {**super().config(), "backend": self.backend, "threshold": self.threshold,
                "full_range": self.full_range, "min_neighbors": self.min_neighbors, "min_size": self.min_size}
