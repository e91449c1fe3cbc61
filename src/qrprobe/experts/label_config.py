"""The labelling's parameters: the one schema of ``qrprobe label``'s run flags, a study's ``labelling:`` keys, the
keyword parameters of :func:`~qrprobe.experts.label.run_labelling` and the concept bank's identity.

:class:`LabelConfig` is a frozen dataclass of :func:`qrprobe.schema.param` fields, as
:class:`~qrprobe.features.config.ExtractConfig` is for the extraction: the flags of ``qrprobe label``, the
study's ``labelling:`` section (the fields with ``study=True``), the signature of ``run_labelling`` /
``label_images`` and the bank's run key (the fields marked ``key``) are made from it. What is labelled (the
images, the experts and their options, groups, weights and kinds) is given beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..chunks import backend_param
from ..raycluster import RayOptions
from ..schema import int_at_least, optional_int_at_least, param, parse_int_at_least, validate

RUN = "run"  # the flag group


@dataclass(frozen=True)
class LabelConfig:
    """How images are labelled (``qrprobe label --help``; defaults as there)."""

    batch_size: int = param(64, "images decoded and labelled together", check=int_at_least(1), key=False,
                            group=RUN)
    workers: int = param(2, "image-decoding threads", check=int_at_least(1), key=False, group=RUN)
    threads: int | None = param(None, "torch CPU threads", check=optional_int_at_least(1), shown="torch's",
                                parse=parse_int_at_least(1), study=False, key=False, group=RUN)
    chunk_size: int = param(2048, "images per resume step", check=int_at_least(1), study=False, key=True, group=RUN)
    max_side: int | None = param(None, "downscale images whose longer side exceeds PX before labelling",
                                 check=optional_int_at_least(1), metavar="PX", shown="keep", study=False, key=True,
                                 group=RUN)
    limit: int | None = param(None, "label only the first N images", check=optional_int_at_least(1), metavar="N",
                              shown="all", study=False, key=False, group=RUN)
    save_scores: bool = param(False, "also write raw expert scores (scores/*.npy)", switch=True, study=False,
                              key=False, group=RUN)
    resume: bool = param(True, "reuse the finished chunks of an interrupted run with the same configuration",
                         switch="ignore the finished chunks of an interrupted run", study=False, key=False,
                         group=RUN)
    backend: str = backend_param()
    ray: RayOptions | None = param(None, "how the Ray backend uses Ray (qrprobe.raycluster.RayOptions)",
                                   shown="a local Ray runtime", cli=False, study=False, key=False)
    overwrite: bool = param(False, "replace an existing bank that qrprobe wrote", cli=False, study=False, key=False)
    progress: bool = param(True, "progress bars and lines", cli=False, study=False, key=False)

    def __post_init__(self) -> None:
        validate(self)


__all__ = ["LabelConfig"]
