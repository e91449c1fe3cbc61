"""The expert interface: a model or a rule that names which concepts an image shows.

An :class:`Expert` has a name, a concept group, its concept names and its own preprocessing. It maps a batch
of decoded RGB images to a binary matrix (B × M) and, where it has them, to scores (B × M). The labelling
loop (:mod:`qrprobe.experts.label`) calls :meth:`Expert.prepare` once with the image collection, then
:meth:`Expert.predict` on every batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import QRProbeInputError

#: The concept groups of the paper (Table 1) plus ``Labels`` for ground truth.
PAPER_GROUPS = ("Labels", "Objects", "Scene", "Material", "Texture", "Other")


@dataclass
class ExpertOutput:
    """What an expert says about a batch of B images.

    Attributes
    ----------
    binary : numpy.ndarray of bool, shape (B, M)
        Concept present (True) or absent, after the expert's conversion rule.
    scores : numpy.ndarray of float32, shape (B, M), or None
        The raw scores the rule was applied to (probabilities, similarities, area fractions...).
    """

    binary: np.ndarray
    scores: np.ndarray | None = None


class Expert:
    """Base class of all experts.

    Subclasses set the class attributes below, implement :meth:`_predict` and, when the concepts are only
    known once the collection is seen (ground-truth labels), :meth:`prepare`.

    Class attributes
    ----------------
    registry_name : str, the name users select the expert by (``qrprobe label --experts NAME``)
    default_group : str, one of :data:`PAPER_GROUPS` or any user group
    rule : str, the conversion rule in words (recorded in the concept table)
    """

    registry_name: str = "expert"
    default_group: str = "Other"
    rule: str = ""

    def __init__(self, *, name: str | None = None, group: str | None = None) -> None:
        self.name = str(name or self.registry_name)
        self.group = str(group or self.default_group)
        if not self.name or not self.group:
            raise QRProbeInputError("an expert needs a non-empty name and group")
        self._prepared = False

    # ------------------------------------------------------------------ to override
    @property
    def concepts(self) -> list[str]:
        """The expert's raw concept names, in column order (length M)."""
        raise NotImplementedError

    def thresholds(self) -> list[float]:
        """The threshold each concept's rule used (NaN where the rule has none), length M."""
        return [math.nan] * len(self.concepts)

    def concept_groups(self) -> list[str]:
        """The group of each concept (length M); all the expert's group unless a user table says otherwise."""
        return [self.group] * len(self.concepts)

    def prepare(self, image_ids: Sequence[str] | None = None, labels: Sequence[str] | None = None) -> None:
        """Load models / read tables; called once before labelling.

        Parameters
        ----------
        image_ids : the collection's image ids (length N), when known
        labels : the source's ground-truth label of each image (length N), when it has them
        """
        self._prepared = True

    def _predict(self, images: list[np.ndarray], image_ids: list[str]) -> ExpertOutput:
        raise NotImplementedError

    def config(self) -> dict:
        """Everything that determines the output, JSON-serialisable (recorded and hashed for resuming)."""
        return {"name": self.name, "expert": self.registry_name, "group": self.group}

    # ------------------------------------------------------------------ public
    def predict(self, images: Sequence, image_ids: Sequence[str] | None = None) -> ExpertOutput:
        """Label a batch.

        Parameters
        ----------
        images : sequence of B images, each a numpy uint8 array (H, W, 3) in RGB or a PIL image
        image_ids : the images' ids (length B); needed by experts that look labels up (``labels``)

        Returns
        -------
        ExpertOutput with ``binary`` (B, M) bool and optional ``scores`` (B, M) float32.
        """
        if not self._prepared:
            self.prepare()
        arrays = [as_rgb_array(im) for im in images]
        ids = [str(i) for i in image_ids] if image_ids is not None else [str(i) for i in range(len(arrays))]
        if len(ids) != len(arrays):
            raise QRProbeInputError(f"expert {self.name!r}: {len(arrays)} images but {len(ids)} image ids")
        m = len(self.concepts)
        if not arrays:
            return ExpertOutput(np.zeros((0, m), bool), None)
        out = self._predict(arrays, ids)
        return check_output(out, len(arrays), m, self.name)

    def concept_table(self) -> pd.DataFrame:
        """One row per concept: ``name`` (raw), ``group``, ``expert``, ``concept``, ``threshold``, ``rule``."""
        names = list(self.concepts)
        return pd.DataFrame({
            "name": names,
            "group": self.concept_groups(),
            "expert": self.name,
            "concept": names,
            "threshold": np.asarray(self.thresholds(), dtype=np.float64),
            "rule": self.rule,
        })

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, group={self.group!r}, concepts={len(self.concepts)})"


class ClassListExpert(Expert):
    """An expert whose concepts are a model's class list (``_names``, set by the subclass) read with a rule
    (``rule_name``): ``threshold`` records ``threshold`` as every concept's threshold, other rules none."""

    _names: list[str]
    rule_name: str = ""
    threshold: float = math.nan

    @property
    def concepts(self) -> list[str]:
        return list(self._names)

    def thresholds(self) -> list[float]:
        return [self.threshold if self.rule_name == "threshold" else math.nan] * len(self._names)


def as_rgb_array(image) -> np.ndarray:
    """Return ``image`` as a C-contiguous uint8 array (H, W, 3) in RGB.

    Accepts a PIL image (any mode), or a numpy array (H, W), (H, W, 3) or (H, W, 4) of uint8 (alpha dropped,
    grey replicated). Other dtypes are rejected rather than guessed.
    """
    from ..images.modes import rgb_array

    try:
        return rgb_array(image)
    except TypeError as exc:
        raise QRProbeInputError(str(exc)) from None


def check_output(out: ExpertOutput, n: int, m: int, name: str) -> ExpertOutput:
    """Verify an expert's output shapes and values; a bug here must never become a silently wrong bank."""
    binary = np.asarray(out.binary)
    if binary.shape != (n, m):
        raise RuntimeError(f"expert {name!r} returned a {binary.shape} matrix for {n} images x {m} concepts")
    if binary.dtype != bool:
        if np.any((binary != 0) & (binary != 1)):
            raise RuntimeError(f"expert {name!r} returned non-binary values")
        binary = binary.astype(bool)
    scores = out.scores
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float32)
        if scores.shape != (n, m):
            raise RuntimeError(f"expert {name!r} returned scores of shape {scores.shape}, expected {(n, m)}")
        if not np.all(np.isfinite(scores)):
            raise QRProbeInputError(f"expert {name!r} produced non-finite scores (NaN or inf); "
                                    "check its weights file")
    return ExpertOutput(binary, scores)
