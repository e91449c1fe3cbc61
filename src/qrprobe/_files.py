"""Reading qrprobe's own files (manifests, arrays, tables) when they may be damaged or forged.

- :func:`read_marker`: an artifact directory's JSON marker file (``manifest.json``, ``results.json``), checked
  to be there, to be a JSON object and to name the expected format;
- :func:`reading`: a context in which any failure to parse a file (a truncated ``.npy``, a corrupt ``.npz`` or
  parquet file, JSON that is not JSON or lacks a field) becomes one :class:`~qrprobe.errors.QRProbeInputError`
  naming the file and what it should have been, instead of a traceback;
- :func:`member`: a file named inside a manifest (a store's shard, a section's table) must be a plain name in
  its directory, never ``../x`` or an absolute path;
- :func:`result_array_problems`: the arrays of a result directory must agree with each other in shape.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from .errors import QRProbeError, QRProbeInputError

_PARSE_ERRORS = (OSError, ValueError, EOFError, KeyError, IndexError, TypeError, AttributeError, zipfile.BadZipFile)


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn a failure to read or parse ``path`` inside the block into an input error naming it as ``what``
    (``"a concept bank"``); qrprobe's own errors pass through unchanged."""
    try:
        yield
    except QRProbeError:
        raise
    except _PARSE_ERRORS as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        if "allow_pickle" in str(exc) or "pickled" in str(exc):  # numpy's hint to load it unsafely: not for us
            detail = "not a numpy array file (.npy/.npz): no valid header, or object arrays, which qrprobe never loads"
        elif isinstance(exc, zipfile.BadZipFile):
            detail = f"not a valid .npz (zip) archive: {exc}"
        raise QRProbeInputError(f"{str(path)!r} cannot be read as {what} ({detail.splitlines()[0][:300]}); "
                                "the file is damaged or was not written by qrprobe") from None


def read_marker(directory: str | os.PathLike, name: str, expected_format: str, what: str) -> dict:
    """The JSON object in the marker file ``name`` of the artifact directory ``directory``, whose ``format`` must
    be ``expected_format``; ``what`` is the artifact (``"a concept bank directory"``). A missing file, one that
    cannot be parsed, and another format are input errors naming the path."""
    path = Path(directory) / name
    if not path.is_file():
        raise QRProbeInputError(f"{str(directory)!r} is not {what} (no {name})")
    with reading(path, f"the {name} of {what}"):
        data = json.loads(path.read_text(encoding="utf-8"))
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt != expected_format:
        raise QRProbeInputError(f"{path}: format {fmt!r}, expected {expected_format!r}")
    return data


def member(base: str | os.PathLike, name: object, what: str) -> Path:
    """The path of the file ``name`` that a manifest of the directory ``base`` lists: a plain file name (no
    folder part, not ``..``, not absolute), so a forged manifest cannot point outside ``base``."""
    text = str(name)
    if (not isinstance(name, str) or not text or text in (".", "..") or "/" in text or "\\" in text
            or "\0" in text or os.path.isabs(text)):
        raise QRProbeInputError(f"{what} {str(base)!r}: its manifest names the file {text!r}, which is not a plain "
                                "file name inside the directory; refusing to read outside it")
    return Path(base) / text


def result_array_problems(result) -> list[str]:
    """What is inconsistent among a loaded result's arrays (empty when nothing is).

    Shapes: ``clusterings``, ``splits``, ``predictions`` (R, N); ``coef`` (R, M, K); ``bias`` (R, K);
    ``centroids`` (R, K, D); with R the number of seeds, N the number of indexed images (when indexed),
    M the concepts of the concept table and K the configured number of clusters.
    """
    fields = {"summary": dict, "per_clustering": list, "config": dict, "seeds": list, "inputs": dict}
    wrong = [f"{name} is not a {kind.__name__}" for name, kind in fields.items()
             if not isinstance(getattr(result, name), kind)]
    if wrong:
        return wrong
    number = (int, float, type(None))  # None: a NaN written as JSON null
    wrong = [f"summary.{m} has no numeric mean and std" for m, e in result.summary.items()
             if not (isinstance(e, dict) and all(isinstance(e.get(v), number) for v in ("mean", "std")))]
    k = result.config.get("k")
    if not isinstance(k, int) or k < 1 or not all(isinstance(s, int) for s in result.seeds):
        wrong.append("config.k or the seeds are not integers")
    if wrong:
        return wrong
    r = len(result.seeds)
    n = None if result.image_ids is None else len(result.image_ids)
    m = None if result.concepts is None else len(result.concepts)
    expected = {"clusterings": (r, n), "splits": (r, n), "predictions": (r, n), "coef": (r, m, k),
                "bias": (r, k), "centroids": (r, k, None)}
    problems = []
    for name, shape in expected.items():
        array = getattr(result, name)
        if array is None:
            continue
        got = tuple(array.shape)
        if len(got) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got, strict=False)):
            want = "(" + ", ".join("?" if e is None else str(e) for e in shape) + ")"
            problems.append(f"{name}.npy has shape {got}, expected {want}")
    rows = {getattr(result, a).shape[1] for a in ("clusterings", "splits", "predictions")
            if getattr(result, a) is not None and getattr(result, a).ndim == 2}
    if len(rows) > 1:
        problems.append(f"clusterings, splits and predictions disagree on the number of images ({sorted(rows)})")
    for name in ("clusterings", "predictions"):
        ids = getattr(result, name)
        if ids is not None and not problems and ids.size and (ids.min() < 0 or ids.max() >= k):
            problems.append(f"{name}.npy holds cluster ids outside 0 … {k - 1}")
    return problems


__all__ = ["member", "reading", "result_array_problems"]
