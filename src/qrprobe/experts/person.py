"""``person``: a person is visible. MediaPipe's BlazePose detector, backed up by its BlazeFace detector.

``mediapipe==0.10.14`` ships the pose detector with the full landmark model (``pose_landmark_full.tflite``;
the lite and heavy variants are downloaded at run time and so are not used) and the face detectors.
A person is present when the pose pipeline finds a body with detector confidence ``>= pose_confidence``,
or (``use_faces``) when BlazeFace finds a face with confidence ``>= face_confidence``.

(decided, measured on 500 CIFAR-10 test images, a dataset without people as a class): at MediaPipe's
default pose confidence 0.5 the pose pipeline fires on 27 % of them (animals, vehicles); at 0.7 on 1.8 %,
while ``skimage.data.astronaut()`` is still found. A face is strong evidence of a person, so the face
detector recovers portraits the body detector misses (``skimage.data.camera()``). MediaPipe's selfie
segmentation was not used: it marks most of a cat photo as person.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import QRProbeInputError
from .base import Expert, ExpertOutput
from .faces import import_mediapipe, quiet_native_stderr, warm_up


class PersonExpert(Expert):
    """One concept, ``person``.

    Parameters
    ----------
    pose_confidence : minimum confidence of MediaPipe's body detector (``min_detection_confidence``)
    use_faces : also count an image with a detected face
    face_confidence : minimum BlazeFace (full-range) confidence when ``use_faces``
    """

    registry_name = "person"
    default_group = "Objects"

    def __init__(self, *, pose_confidence: float = 0.7, use_faces: bool = True, face_confidence: float = 0.5,
                 name: str | None = None, group: str | None = None) -> None:
        super().__init__(name=name, group=group)
        for what, v in (("pose_confidence", pose_confidence), ("face_confidence", face_confidence)):
            if not 0.0 <= float(v) <= 1.0:
                raise QRProbeInputError(f"person.{what} must be in [0, 1], got {v}")
        self.pose_confidence = float(pose_confidence)
        self.use_faces = bool(use_faces)
        self.face_confidence = float(face_confidence)
        self.rule = (f"body detected (confidence >= {self.pose_confidence:g})"
                     + (f" or face detected (confidence >= {self.face_confidence:g})" if self.use_faces else ""))
        self._pose: Any = None  # loaded on first use
        self._face: Any = None

    @property
    def concepts(self) -> list[str]:
        return ["person"]

    def thresholds(self) -> list[float]:
        return [self.pose_confidence]

    def prepare(self, image_ids=None, labels=None) -> None:
        if self._pose is None:
            mp = import_mediapipe()
            with quiet_native_stderr():
                self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                                    min_detection_confidence=self.pose_confidence)
                if self.use_faces:
                    self._face = mp.solutions.face_detection.FaceDetection(
                        model_selection=1, min_detection_confidence=self.face_confidence)
            warm_up(self._pose, self._face)
        self._prepared = True

    def _present(self, image: np.ndarray) -> bool:
        if self._pose.process(image).pose_landmarks:
            return True
        return bool(self._face is not None and self._face.process(image).detections)

    def _predict(self, images, image_ids) -> ExpertOutput:
        return ExpertOutput(np.array([[self._present(im)] for im in images], dtype=bool))

    def config(self) -> dict:
        return {**super().config(), "pose_confidence": self.pose_confidence, "use_faces": self.use_faces,
                "face_confidence": self.face_confidence, "model": "pose_landmark_full + face_detection_full_range"}
