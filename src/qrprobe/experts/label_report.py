"""What a labelling run did (:class:`LabelReport`) and what the concept bank's manifest records about it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from .base import Expert


@dataclass
class LabelReport:
    """What a labelling run did.

    Attributes
    ----------
    n_listed : images in the source
    n_labelled : rows of the bank (listed minus skipped)
    skipped : ``{"image_id", "path", "reason"}`` of images that could not be read or decoded
    rejected : entries of the source that are not usable images (from the source listing)
    resumed_images : images whose labels came from a previous, interrupted run
    seconds : wall-clock seconds, this run, in each expert and waiting for decoded images (``"decode"``;
        decoding overlaps with the experts, so this is the part it did not hide)
    never_present, always_present : display names of concepts that are constant over the bank
    images_this_run : images decoded and labelled by this run (not resumed, not reused)
    reused : the complete bank at the output already had this configuration and was returned as it was
    """

    n_listed: int = 0
    n_labelled: int = 0
    skipped: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    resumed_images: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    images_this_run: int = 0
    never_present: list[str] = field(default_factory=list)
    always_present: list[str] = field(default_factory=list)
    reused: bool = False

    def images_per_second(self) -> dict[str, float]:
        """Throughput of decoding and of each expert over this run's images."""
        return {k: (self.images_this_run / v if v > 0 else math.inf) for k, v in self.seconds.items()}

    def as_dict(self) -> dict:
        out = asdict(self)
        out["images_per_second"] = {k: round(v, 2) for k, v in self.images_per_second().items()
                                    if math.isfinite(v)}
        return out

    @classmethod
    def from_saved(cls, saved: dict) -> LabelReport:
        """The report recorded in a bank's ``info["labelling"]``, marked as reused."""
        report = cls(**{k: v for k, v in saved.items() if k in cls.__dataclass_fields__})
        report.reused = True
        return report


def bank_info(source, experts: Sequence[Expert], report: LabelReport) -> dict:
    """The bank's ``info``: the source, each expert's configuration, the labelling report."""
    describe = getattr(source, "describe", None)
    return {
        "created_by": "qrprobe label",
        "source": describe() if describe else {},
        "experts": [{"name": e.name, "expert": e.registry_name, "group": e.group, "n_concepts": len(e.concepts),
                     "rule": e.rule, "config": e.config(),
                     "load_report": getattr(e, "load_report", None)} for e in experts],
        "labelling": report.as_dict(),
    }
