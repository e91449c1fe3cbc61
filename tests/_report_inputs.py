"""Result and analysis directories for the report tests (built from the cached generated results)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from _analysis_synth import evaluated, write_images
from qrprobe.analysis.breakdown import Breakdown
from qrprobe.report.sections import breakdown_section


def _fake_breakdown() -> Breakdown:
    metrics = ("nmi", "ami", "top1", "map", "mi_bits")

    def row(value: float) -> dict:
        return {f"{m}_{s}": (value if s == "mean" else 0.1) for m in metrics for s in ("mean", "std")}

    cumulative = pd.DataFrame([
        {"step": "Labels", "groups": "Labels", "with_labels": True, "n_concepts": 4, **row(70.0)},
        {"step": "Scene", "groups": "Labels + Scene", "with_labels": True, "n_concepts": 7, **row(97.0)},
        {"step": "Scene", "groups": "Scene", "with_labels": False, "n_concepts": 3, **row(50.0)},
    ])
    single = pd.DataFrame([
        {"group": "Labels", "n_concepts": 4, **row(70.0), **{f"delta_{k}": 0.0 for k in row(0)}},
        {"group": "+Scene", "n_concepts": 7, **row(97.0), **{f"delta_{k}": v for k, v in row(27.0).items()}},
    ])
    return Breakdown(cumulative, single, ["Scene"], "Labels", {"k": 12}, "synthetic")


def make_report_inputs(root: Path) -> dict[str, Path]:
    """Directories: ``full`` (with image paths, some files missing), ``labels`` (no paths), ``k6`` (same model
    at another K), ``bare`` (no arrays), ``breakdown`` (an analysis directory)."""
    root = Path(root)
    data, full = evaluated("full")
    keep = np.flatnonzero(np.arange(len(data.objects)) % 5 != 0)  # every fifth image file is missing
    paths = write_images(root / "images", data, keep)
    out = {}
    out["full"] = dataclasses.replace(full, paths=np.asarray(paths, dtype=object), name="model <A>").save(
        root / "full")
    _, labels = evaluated("labels")
    out["labels"] = dataclasses.replace(labels, name="labels-only").save(root / "labels")
    _, k6 = evaluated("k6")
    out["k6"] = dataclasses.replace(k6, name="model <A>").save(root / "k6")
    bare = type(full)(full.summary, full.per_clustering, full.config, full.seeds, name="bare")
    out["bare"] = bare.save(root / "bare")
    out["breakdown"] = breakdown_section(_fake_breakdown()).save(root / "breakdown")
    return out
