"""Self-labels (paper Table 6): probe a given labelling of the images instead of K-means clusters.

Any labelling works: a self-labelling model's pseudo-labels (SeLa, SCAN), ground-truth classes (see
:mod:`qrprobe.analysis.concepts_to_labels`), or clusters made elsewhere. The labelling is probed with the
engine's :func:`~qrprobe.engine.protocol.probe_labels` ``repeats`` times (split and probe seeds ``seed + r``),
and the outcome is a regular :class:`~qrprobe.results.Result` (``config["labelling"]`` says where the labels
came from), so it can be saved, compared with K-means Results and put in a report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._files import reading
from .._versions import library_versions
from ..concepts.bank import ConceptBank, read_table
from ..engine.config import ProbeConfig
from ..engine.degenerate import result_flags, warning_messages
from ..engine.protocol import ProbeOutcome, probe_labels
from ..errors import QRProbeInputError
from ..progress import warn
from ..results import Result, summarize


def encode_labels(labels: Sequence | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Map arbitrary labels (ints or strings) to ``0 … C-1``; returns the codes (N,) and the C class names.

    Integer labels keep their order (class ``i`` is the ``i``-th smallest value present).
    """
    values = pd.Series(np.asarray(labels, dtype=object))
    if values.isna().any():
        raise QRProbeInputError(f"labels: {int(values.isna().sum())} images have no label")
    numeric = pd.to_numeric(values, errors="coerce")
    if not numeric.isna().any() and np.all(numeric == np.round(numeric)):
        codes, classes = pd.factorize(numeric.astype(np.int64), sort=True)
    else:
        codes, classes = pd.factorize(values.astype(str), sort=True)
    return codes.astype(np.int64), [str(c) for c in classes]


def read_labels(path: str | os.PathLike, image_ids: np.ndarray | None = None,
                column: str = "label") -> np.ndarray:
    """Read a labelling: a 1-D ``.npy`` or a table with a ``label`` column (and ``image_id`` to match rows).

    With ``image_id`` in the table and ``image_ids`` given (the concept rows), labels are re-ordered to those
    ids; every id must be labelled. Returns the raw labels, shape (N,), object or integer.
    """
    path = Path(path)
    if not path.is_file():
        raise QRProbeInputError(f"LABELS: file not found: {str(path)!r}")
    if path.suffix == ".npy":
        with reading(path, "LABELS, a 1-D .npy array"):
            arr = np.load(path, allow_pickle=False)
        if arr.ndim != 1:
            raise QRProbeInputError(f"LABELS {str(path)!r}: expected a 1-D array (one label per image), "
                                    f"got shape {arr.shape}")
        return arr
    table = read_table(path)
    if column not in table.columns:
        raise QRProbeInputError(f"LABELS {str(path)!r}: no column {column!r}; found {list(table.columns)}")
    if "image_id" in table.columns and image_ids is not None:
        index = pd.Index(table["image_id"].astype(str))
        if not index.is_unique:
            raise QRProbeInputError(f"LABELS {str(path)!r}: an image_id is listed twice")
        pos = index.get_indexer(pd.Index([str(i) for i in image_ids]))
        if (pos < 0).any():
            missing = np.asarray(image_ids)[pos < 0][:3].tolist()
            raise QRProbeInputError(f"LABELS {str(path)!r}: {int((pos < 0).sum())} images have no label, "
                                    f"e.g. {missing}")
        return table[column].to_numpy(dtype=object)[pos]
    return table[column].to_numpy(dtype=object)


def result_from_outcomes(labels: np.ndarray, outcomes: Sequence[ProbeOutcome], seeds: Sequence[int],
                         bank: ConceptBank, *, config: dict, name: str, inputs: dict | None = None,
                         paths: np.ndarray | None = None) -> Result:
    """Pack probes of one fixed labelling into a Result (clusterings = the labelling, repeated)."""
    n = len(labels)
    per = [{"clustering": r, "seed": int(s), "k": config["k"], **o.scores}
           for r, (s, o) in enumerate(zip(seeds, outcomes, strict=True))]
    labels = np.asarray(labels)
    flags = result_flags(np.tile(labels, (len(outcomes), 1)), int(config["k"]), per,
                         [len(np.unique(labels[o.split.test])) for o in outcomes], bank)
    inputs = {**(inputs or {}), "warnings": warning_messages(flags), "flags": [f.to_dict() for f in flags]}
    for message in inputs["warnings"]:
        warn(message)
    return Result(
        summary=summarize(per), per_clustering=per, config=config, seeds=[int(s) for s in seeds],
        versions=library_versions(), inputs=inputs, name=name,
        clusterings=np.tile(np.asarray(labels, np.int32), (len(outcomes), 1)),
        splits=np.stack([o.split.as_codes(n) for o in outcomes]),
        predictions=np.stack([o.predictions.astype(np.int32) for o in outcomes]),
        coef=np.stack([o.probe.coef_ for o in outcomes]), bias=np.stack([o.probe.intercept_ for o in outcomes]),
        image_ids=bank.image_ids, paths=paths, concepts=bank.concepts.copy())


def self_labels(labels: Sequence | np.ndarray, concepts: ConceptBank, *, repeats: int = 5, seed: int = 0,
                probe: ProbeConfig | None = None, test_fraction: float = 0.2, val_fraction: float = 0.2,
                device: str = "auto", name: str = "self-labels", source: str = "",
                progress: bool = False) -> Result:
    """Reverse-probe a given labelling of the images.

    Parameters
    ----------
    labels : (N,) one label per concept row (ints or strings; re-coded to ``0 … C-1``).
    concepts : ConceptBank with N rows.
    repeats : number of (split, probe) repetitions, seeds ``seed + r``; mean ± std over them.
    probe : the probe schedule (default: the paper's).
    source : where the labels came from (recorded in ``config["labelling"]``).

    Returns
    -------
    Result whose clusterings are the labelling (one row per repetition).
    """
    codes, classes = encode_labels(labels)
    if len(codes) != concepts.n_images:
        raise QRProbeInputError(f"{len(codes)} labels for {concepts.n_images} concept rows")
    if len(classes) < 2:
        raise QRProbeInputError("labels: a labelling needs at least 2 classes")
    if repeats < 1:
        raise QRProbeInputError(f"--repeats must be at least 1, got {repeats}")
    concepts.check_usable()
    probe = probe or ProbeConfig()
    seeds = [seed + r for r in range(repeats)]
    outcomes = [probe_labels(codes, concepts, seed=s, n_classes=len(classes), probe=probe,
                             test_fraction=test_fraction, val_fraction=val_fraction, device=device,
                             progress=progress) for s in seeds]
    config = {"k": len(classes), "clusterings": repeats, "seed": seed, "test_fraction": test_fraction,
              "val_fraction": val_fraction, "probe": probe.to_dict(), "device": device,
              "labelling": {"kind": "given", "source": source, "n_classes": len(classes),
                            "classes": classes[:50]}}
    inputs = {"concepts": {"source": concepts.info.get("source"), "n_concepts": concepts.n_concepts,
                           "groups": concepts.groups, "content_hash": concepts.content_hash()},
              "labels": {"source": source, "n": len(codes)}}
    return result_from_outcomes(codes, outcomes, seeds, concepts, config=config, name=name, inputs=inputs)
