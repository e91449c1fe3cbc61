"""The result of a reverse-probing evaluation, and its directory on disk.

``results.json`` holds the scores, the resolved configuration, the seeds and the library versions; the arrays
that later analyses need (cluster ids, splits, probe predictions and coefficients, centroids and the
standardization) sit beside it as ``.npy`` files. ``docs/CONTRACTS.md`` lists every file and shape.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._atomic import atomic_directory
from ._files import read_marker, reading, result_array_problems
from .errors import QRProbeInputError
from .progress import warn

FORMAT = "qrprobe.result/1"
METRICS = ("nmi", "ami", "top1", "map", "mi_bits", "cluster_entropy_bits", "cross_entropy_bits", "mi_ratio",
           "nmi_geometric", "nmi_max")
HEADLINE = ("nmi", "ami", "top1", "map", "mi_bits")
LABELS = {"nmi": "NMI", "ami": "AMI", "top1": "top-1", "map": "mAP", "mi_bits": "MI (bits)",
          "cluster_entropy_bits": "H (bits)", "cross_entropy_bits": "CE (bits)", "mi_ratio": "MI/H (%)",
          "nmi_geometric": "NMI (geometric)", "nmi_max": "NMI (max)",
          # chance-corrected (qrprobe.engine.stats.corrected): the score minus what no information scores
          "nmi_corrected": "NMI − chance", "top1_corrected": "top-1 − chance", "map_corrected": "mAP − chance",
          "mi_corrected_bits": "MI − prior (bits)"}
STD_NOTE = "population standard deviation over clusterings (numpy ddof=0)"
_ARRAYS = ("clusterings", "splits", "predictions", "coef", "bias", "centroids", "replicates", "null_replicates")


def _finite(value: object) -> bool:
    try:
        return bool(np.isfinite(float(value)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


_WARNED: set[str] = set()  # result directories whose undefined scores were already reported in this process


def _flag_undefined_scores(res: Result, where: Path) -> None:
    """A result read with NaN (or infinite) scores: add a warning flag (``inputs.flags``, which marks its rows in
    comparisons and reports) unless evaluate already recorded one, and say so on stderr once per directory."""
    bad = res.undefined_scores()
    if not bad:
        return
    message = (f"undefined (NaN or infinite) scores of {', '.join(bad)}: these numbers are not comparable and "
               "are ranked last")
    if isinstance(res.inputs, dict):
        flags = res.inputs.setdefault("flags", [])
        if not any(isinstance(f, dict) and f.get("code") == "undefined_score" for f in flags):
            flags.append({"code": "undefined_score", "level": "warning", "message": message, "clusterings": []})
            res.inputs.setdefault("warnings", []).append(message)
    key = str(where.resolve())
    if key not in _WARNED:
        _WARNED.add(key)
        warn(f"result {str(where)!r}{f' ({res.name})' if res.name else ''}: {message}")


def summarize(per_clustering: list[dict], metrics: tuple[str, ...] = METRICS) -> dict[str, dict]:
    """``{metric: {"mean", "std", "values"}}`` over clusterings (std: population, ddof=0)."""
    out = {}
    for m in metrics:
        values = [float(r[m]) for r in per_clustering if m in r]
        if values:
            out[m] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}
    return out


@dataclass
class Result:
    """Scores of R clusterings of one representation, with everything needed to reproduce and analyse them.

    Attributes
    ----------
    summary : ``{metric: {"mean", "std", "values"}}``; percentages ×100, information in bits
    per_clustering : one dict per clustering (seed, scores, inertia, best epoch, split sizes, small clusters)
    config : the resolved protocol configuration; seeds : one per clustering; versions : library versions
    inputs : provenance of the features and concepts; name : a label for tables (e.g. the model)
    clusterings : (R, N) int32 cluster ids; splits : (R, N) int8 (0 train, 1 val, 2 test)
    predictions : (R, N) int32 probe argmax; coef : (R, M, K) float32; bias : (R, K) float32
    centroids : (R, K, D) float32 in standardized space; standardizer : {"mean", "scale"}, (D,) each
    image_ids, paths : (N,) str or None; concepts : the concept table (M rows) or None
    replicates, null_replicates : (R, metrics, B) float64 bootstrap replicates of each clustering's scores and
        of its null (metrics in the order of ``statistics["bootstrap"]["metrics"]``), or None
    statistics : intervals' method, bootstrap and null settings and costs, baselines, small-sample warnings
        (``docs/statistics.md``); empty for results written before intervals existed
    timings : wall-clock seconds per stage of :func:`~qrprobe.evaluate` (``inputs``, ``quantize``, ``probe``,
        ``null``, ``statistics``, ``total``); empty for results written before timings were recorded
    """

    summary: dict
    per_clustering: list[dict]
    config: dict
    seeds: list[int]
    versions: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    name: str = ""
    clusterings: np.ndarray | None = None
    splits: np.ndarray | None = None
    predictions: np.ndarray | None = None
    coef: np.ndarray | None = None
    bias: np.ndarray | None = None
    centroids: np.ndarray | None = None
    standardizer: dict | None = None
    image_ids: np.ndarray | None = None
    paths: np.ndarray | None = None
    concepts: pd.DataFrame | None = None
    replicates: np.ndarray | None = None
    null_replicates: np.ndarray | None = None
    statistics: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def mean(self, metric: str) -> float:
        return self.summary[metric]["mean"]

    def __eq__(self, other: object) -> bool:
        """Equal content: the same scores, configuration, provenance and name (compared as saved in
        ``results.json``) and equal arrays, image ids and concept table. A saved-then-loaded result equals the
        original; two evaluations equal each other when they agree in every number (timings aside, which
        measure the run, not the result)."""
        if not isinstance(other, Result):
            return NotImplemented
        mine, theirs = (json.loads(json.dumps(_json_safe({**r.to_dict(), "timings": None})))
                        for r in (self, other))
        if mine != theirs:
            return False
        for name in (*_ARRAYS, "image_ids", "paths"):
            if not _same_array(getattr(self, name), getattr(other, name), text=name in ("image_ids", "paths")):
                return False
        mine_std, their_std = self.standardizer or {}, other.standardizer or {}
        if (self.standardizer is None) != (other.standardizer is None) or set(mine_std) != set(their_std):
            return False
        if not all(_same_array(mine_std[k], their_std[k]) for k in mine_std):
            return False
        return _same_table(self.concepts, other.concepts)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by content

    def __repr__(self) -> str:
        scores = ", ".join(f"{LABELS[m]} {format_mean_std(self.summary[m], m)}"
                           for m in HEADLINE if m in self.summary)
        arrays = [n for n in _ARRAYS if getattr(self, n) is not None]
        return (f"Result(name={self.name!r}, K={self.config.get('k')}, R={len(self.seeds)}: {scores}; "
                f"arrays: {', '.join(arrays) or 'none'})")

    def to_frame(self) -> pd.DataFrame:
        """One row per clustering: seed and every score (``nmi`` … ``mi_bits``, entropy, cross-entropy …)."""
        columns = ["clustering", "seed", *[m for m in METRICS if any(m in r for r in self.per_clustering)]]
        return pd.DataFrame([{c: r.get(c) for c in columns} for r in self.per_clustering], columns=columns)

    def summary_frame(self) -> pd.DataFrame:
        """One row per metric: ``mean``, ``std`` over clusterings, the number of clusterings ``n`` and, when the
        result has them, the interval (``ci_low``, ``ci_high``), the null's mean and the baseline."""
        extra = ("ci_low", "ci_high", "null_mean", "baseline")
        rows = [{"metric": m, "mean": e["mean"], "std": e["std"], "n": len(e.get("values", [])),
                 **{k: e[k] for k in extra if k in e}} for m, e in self.summary.items()]
        return pd.DataFrame(rows).set_index("metric")

    def to_dict(self) -> dict:
        """The JSON-serialisable part (everything but the arrays)."""
        return {"format": FORMAT, "name": self.name, "summary": self.summary, "std": STD_NOTE,
                "per_clustering": self.per_clustering, "config": self.config, "seeds": self.seeds,
                "inputs": self.inputs, "statistics": self.statistics, "timings": self.timings,
                "versions": self.versions}

    def to_markdown(self, metrics: tuple[str, ...] = HEADLINE) -> str:
        """A one-row Markdown table of mean ± std."""
        return markdown_table([self], metrics)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False,
             extra: Callable[[Path], None] | None = None) -> Path:
        """Write ``results.json`` and the arrays to the directory ``path`` (atomically).

        ``extra(tmp)`` may add files (e.g. ``results.md``) before the directory is renamed into place.
        """
        with atomic_directory(path, overwrite=overwrite, kind=FORMAT.split("/")[0]) as tmp:
            if extra is not None:
                extra(tmp)
            for name in _ARRAYS:
                value = getattr(self, name)
                if value is not None:
                    np.save(tmp / f"{name}.npy", value)
            if self.standardizer is not None:
                np.savez(tmp / "standardizer.npz", **self.standardizer)
            if self.image_ids is not None:
                index = {"image_id": np.asarray(self.image_ids, dtype=str)}
                if self.paths is not None:
                    index["path"] = np.asarray(self.paths, dtype=str)
                pd.DataFrame(index).to_parquet(tmp / "index.parquet", index=False)
            if self.concepts is not None:
                self.concepts.to_parquet(tmp / "concepts.parquet", index=False)
            (tmp / "results.json").write_text(json.dumps(_json_safe(self.to_dict()), indent=2))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, arrays: bool = True) -> Result:
        """Read a result directory (``arrays=False`` reads only ``results.json``; ``.npy`` are memory-mapped)."""
        path = Path(path)
        rpath = path / "results.json" if path.is_dir() else path
        if not rpath.is_file():
            raise QRProbeInputError(f"{str(path)!r} is not a result directory (no results.json)")
        data = read_marker(rpath.parent, rpath.name, FORMAT, "a result directory")
        with reading(rpath, "a qrprobe result (results.json)"):
            res = cls._load(rpath, data, arrays)
        problems = result_array_problems(res)
        if problems:
            raise QRProbeInputError(f"result directory {str(rpath.parent)!r} is inconsistent: {'; '.join(problems)}")
        _flag_undefined_scores(res, rpath.parent)
        return res

    def undefined_scores(self) -> list[str]:
        """The headline metrics (labels, e.g. ``NMI``) with a score that is not a finite number (NaN, ±inf) in
        the summary's mean or in any clustering."""
        bad = []
        for m in HEADLINE:
            values = [row.get(m) for row in self.per_clustering if m in row]
            mean = (self.summary.get(m) or {}).get("mean") if isinstance(self.summary.get(m), dict) else None
            if mean is not None:
                values.append(mean)
            if any(not _finite(v) for v in values):
                bad.append(LABELS[m])
        return bad

    @classmethod
    def _load(cls, rpath: Path, data: dict, arrays: bool) -> Result:
        res = cls(summary=data["summary"], per_clustering=data["per_clustering"], config=data["config"],
                  seeds=data["seeds"], versions=data.get("versions", {}), inputs=data.get("inputs", {}),
                  name=data.get("name", ""), statistics=data.get("statistics") or {},
                  timings=data.get("timings") or {})
        base = rpath.parent
        if arrays:
            for name in _ARRAYS:
                if (base / f"{name}.npy").is_file():
                    with reading(base / f"{name}.npy", f"the {name} array of a result (.npy)"):
                        setattr(res, name, np.load(base / f"{name}.npy", mmap_mode="r", allow_pickle=False))
            if (base / "standardizer.npz").is_file():
                with reading(base / "standardizer.npz", "a result's standardizer (.npz of arrays)"), \
                        np.load(base / "standardizer.npz", allow_pickle=False) as z:
                    res.standardizer = {k: z[k] for k in z.files}
            if (base / "index.parquet").is_file():
                with reading(base / "index.parquet", "a result's image index (parquet)"):
                    index = pd.read_parquet(base / "index.parquet")
                    res.image_ids = index["image_id"].to_numpy(dtype=object)
                    res.paths = index["path"].to_numpy(dtype=object) if "path" in index else None
            if (base / "concepts.parquet").is_file():
                with reading(base / "concepts.parquet", "a result's concept table (parquet)"):
                    res.concepts = pd.read_parquet(base / "concepts.parquet")
        return res


def _same_array(a: np.ndarray | None, b: np.ndarray | None, text: bool = False) -> bool:
    """Whether two optional arrays are equal (NaN equal to NaN; ``text``: compared as strings)."""
    if a is None or b is None:
        return a is None and b is None
    if text:
        return np.array_equal(np.asarray(a, dtype=str), np.asarray(b, dtype=str))
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f" and b.dtype.kind == "f")


def _same_table(a: pd.DataFrame | None, b: pd.DataFrame | None) -> bool:
    """Whether two concept tables hold the same rows and values (dtypes aside: a Parquet round trip may store
    text columns with another dtype)."""
    if a is None or b is None:
        return a is None and b is None
    if list(a.columns) != list(b.columns) or a.shape != b.shape:
        return False
    return all(np.array_equal(a[c].to_numpy(dtype=object), b[c].to_numpy(dtype=object)) for c in a.columns)


def _json_safe(obj):
    """Replace NaN/inf (not valid JSON) by None, recursively; numpy scalars by Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def metric_digits(metric: str) -> int:
    """Decimals shown for ``metric`` wherever a score is printed (terminal and Markdown tables, report tables,
    figure labels): 3 for information in bits (``mi_bits`` …, also as ``delta_mi_bits``), 2 for the
    percentages (NMI, AMI, top-1, mAP, MI/H ×100)."""
    return 3 if metric.removeprefix("delta_").endswith("bits") else 2


def format_metric(value: float | None, metric: str, signed: bool = False) -> str:
    """``value`` of ``metric`` with :func:`metric_digits` decimals (``+`` shown when ``signed``); ``–`` for a
    missing or non-finite value."""
    if value is None or not math.isfinite(float(value)):
        return "–"
    digits = metric_digits(metric)
    value = float(value) if round(float(value), digits) != 0 else 0.0  # no "-0.000" for a tiny negative
    return f"{value:{'+' if signed else ''}.{digits}f}"


def format_mean_std(entry: dict, metric: str = "nmi", interval: bool = False) -> str:
    """``mean ± std`` of a summary entry of ``metric`` (the ``± std`` left out for a single clustering, which
    has no spread); with ``interval`` and when the entry has one, ``[ci_low, ci_high]`` after it."""
    mean, std = entry["mean"], entry["std"]
    if mean is None:
        return "n/a"
    text = format_metric(mean, metric)
    if std is not None and len(entry.get("values") or [0, 0]) > 1:
        text += f" ± {format_metric(std, metric)}"
    low, high = entry.get("ci_low"), entry.get("ci_high")
    if interval and low is not None and high is not None:
        text += f" [{format_metric(low, metric)}, {format_metric(high, metric)}]"
    return text


def markdown_cell(text: object) -> str:
    """Escape a Markdown table cell: backslashes, pipes, HTML brackets and line breaks (names come from
    users: a model called ``a|b`` must not add a column)."""
    s = str(text).replace("\\", "\\\\").replace("|", "\\|")
    s = s.replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(s.splitlines())


def markdown_table(results: list[Result], metrics: tuple[str, ...] = HEADLINE, intervals: bool = False) -> str:
    """Markdown table, one row per result: name, K, clusterings and mean ± std of ``metrics`` (with the 95%
    interval in brackets where the result has one and ``intervals``); names escaped (:func:`markdown_cell`) and
    marked ``⚠`` where the result has warning flags (``inputs.flags``: degenerate or unreliable scores)."""
    head = ["representation", "K", "R", *[LABELS.get(m, m) for m in metrics]]
    lines = ["| " + " | ".join(markdown_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    for r in results:
        flagged = any(f.get("level") == "warning" for f in r.inputs.get("flags", []))
        cells = [(r.name or "-") + (" ⚠" if flagged else ""), str(r.config.get("k", "")), str(len(r.seeds))]
        for m in metrics:
            cells.append(format_mean_std(r.summary[m], m, intervals) if m in r.summary else "")
        lines.append("| " + " | ".join(markdown_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def statistics_lines(result: Result, metrics: tuple[str, ...] = HEADLINE) -> list[str]:
    """Plain lines saying how to read a result's scores: the interval's method, the chance level (null) and
    the baselines of each metric, and the small-sample warnings. Empty for results without statistics."""
    stats = result.statistics or {}
    lines = []
    boot = stats.get("bootstrap") or {}
    if boot.get("replicates"):
        lines.append(f"[low, high]: {100 * stats.get('level', 0.95):.0f}% interval over test images "
                     f"({boot['replicates']} bootstrap replicates) and clustering seeds ({len(result.seeds)})")
    null = stats.get("null") or {}
    parts = [f"{LABELS.get(m, m)} {format_metric(result.summary[m]['null_mean'], m)}"
             for m in metrics if result.summary.get(m, {}).get("null_mean") is not None]
    if parts:
        lines.append(f"chance (concepts shuffled across images, {null.get('repeats')} repeat(s), "
                     f"{null.get('seconds', 0):.1f} s): " + ", ".join(parts))
    parts = [f"{LABELS.get(m, m)} {format_metric(result.summary[m]['baseline'], m)} "
             f"({result.summary[m].get('baseline_kind', '')})"
             for m in metrics if result.summary.get(m, {}).get("baseline") is not None]
    if parts:
        lines.append("baselines: " + ", ".join(parts))
    lines.extend(f"warning: {w}" for w in stats.get("warnings", []))
    return lines
