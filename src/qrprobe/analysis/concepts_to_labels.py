"""Concepts → labels (paper App. D.1): how well the concept set itself predicts the ground-truth labels.

The reverse probe is trained to predict each image's ground-truth class (instead of its cluster) from its
concepts. The paper reports top-1 46.8, NMI 64.2, AMI 54.2 on ImageNet with all concepts but the labels, and
notes that the score drops when the object concepts overlapping the labels are excluded too.

The labels come either from a separate labelling (``labels``) or from a one-hot label group of the concept
bank (``label_group``); in the latter case that group is removed from the probe's inputs (it would predict
itself), and images with no label concept are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..concepts.bank import ConceptBank
from ..engine.config import ProbeConfig
from ..errors import QRProbeInputError
from ..results import Result
from .self_labels import self_labels


def labels_from_group(concepts: ConceptBank, group: str) -> tuple[np.ndarray, np.ndarray]:
    """The class of each image from a one-hot group: returns (rows that have exactly one label, label names).

    Images with none of the group's concepts are skipped; an image with several is an error (the group is not
    single-label).
    """
    sub = concepts.select_groups([group])
    counts = np.asarray(sub.matrix.sum(axis=1)).ravel()
    if (counts > 1).any():
        raise QRProbeInputError(
            f"--label-group {group!r}: {int((counts > 1).sum())} images have several of its concepts; a label "
            "group must give at most one label per image")
    rows = np.flatnonzero(counts == 1)
    if len(rows) == 0:
        raise QRProbeInputError(f"--label-group {group!r}: no image has a label")
    cols = sub.matrix[rows].indices  # one index per row, rows in order (CSR, sorted)
    return rows, np.asarray(sub.names, dtype=object)[cols]


def concepts_to_labels(concepts: ConceptBank, labels: Sequence | np.ndarray | None = None, *,
                       label_group: str | None = None,
                       exclude_groups: Sequence[str] = (), repeats: int = 5, seed: int = 0,
                       probe: ProbeConfig | None = None, test_fraction: float = 0.2, val_fraction: float = 0.2,
                       device: str = "auto", name: str = "concepts → labels", progress: bool = False) -> Result:
    """Probe the ground-truth labels from the concepts.

    Parameters
    ----------
    concepts : ConceptBank with N rows.
    labels : (N,) ground-truth labels; or None with ``label_group``.
    label_group : take the labels from this one-hot group of ``concepts`` (and drop it from the inputs).
    exclude_groups : further groups left out of the inputs (e.g. object concepts overlapping the labels).
    repeats, seed, probe, test_fraction, val_fraction, device : as :func:`~qrprobe.analysis.self_labels`.

    Returns
    -------
    Result (``config["labelling"]["kind"] == "ground-truth"``).
    """
    if (labels is None) == (label_group is None):
        raise QRProbeInputError("give either the labels or --label-group (exactly one of them)")
    bank = concepts
    drop = [str(g) for g in exclude_groups]
    source = "labels"
    if label_group is not None:
        rows, labels = labels_from_group(bank, label_group)
        bank = bank.select_rows(rows) if len(rows) < bank.n_images else bank
        drop = [label_group, *[g for g in drop if g != label_group]]
        source = f"concept group {label_group!r}"
    if drop:
        bank = bank.drop_groups(drop)
    if bank.n_concepts == 0:
        raise QRProbeInputError("no concepts are left once the label and excluded groups are removed")
    assert labels is not None  # given, or read from the label group
    result = self_labels(labels, bank, repeats=repeats, seed=seed, probe=probe, test_fraction=test_fraction,
                         val_fraction=val_fraction, device=device, name=name, source=source, progress=progress)
    result.config["labelling"]["kind"] = "ground-truth"
    result.config["excluded_groups"] = drop
    return result
