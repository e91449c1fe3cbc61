"""The feature store: one feature vector per image, in memory-mappable shards.

Directory layout::

    manifest.json        format, model, layer, dim, dtype, preprocessing, n, shards, versions, content hash
    index.parquet        row -> image_id, path[, label]
    features-00000.npy   float16 or float32, shape (rows_in_shard, dim); shards concatenate in order

:func:`write_feature_store` writes a complete store from an array; :class:`FeatureStoreWriter` writes one
chunk by chunk and can resume an interrupted extraction; :class:`FeatureStore` reads one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from .._atomic import atomic_directory, atomic_write_text
from .._files import member, read_marker, reading
from .._versions import library_versions
from .._workdir import ChunkedWorkDir
from ..errors import QRProbeInputError

FORMAT = "qrprobe.feature-store/1"
SHARD_PATTERN = "features-{:05d}.npy"
DEFAULT_SHARD_ROWS = 65536
_DTYPES = ("float16", "float32")


def shard_hash(h: hashlib._Hash, array: np.ndarray) -> None:
    """Feed one shard's bytes into a running content hash."""
    h.update(np.ascontiguousarray(array).tobytes())


@dataclass
class FeatureStore:
    """A read-only view of a feature-store directory.

    Attributes
    ----------
    path : Path
    manifest : dict, the parsed ``manifest.json``
    image_ids : numpy.ndarray of str, shape (N,)
    paths : numpy.ndarray of str, shape (N,), the image paths (may be empty strings)
    labels : numpy.ndarray of str, shape (N,), ground-truth labels of the image source, or None
    """

    path: Path
    manifest: dict
    image_ids: np.ndarray
    paths: np.ndarray
    labels: np.ndarray | None = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> FeatureStore:
        """Open a complete store; raise :class:`QRProbeInputError` naming what is missing or wrong."""
        path = Path(path)
        mpath = path / "manifest.json"
        manifest = read_marker(path, "manifest.json", FORMAT, "a feature store")
        if not manifest.get("complete", True):
            raise QRProbeInputError(f"feature store {str(path)!r} is incomplete (extraction did not finish)")
        if not (path / "index.parquet").is_file():
            raise QRProbeInputError(f"feature store {str(path)!r} is incomplete: index.parquet is missing")
        with reading(mpath, "a feature store's manifest (n, dim, dtype, shards)"):
            n, dim, shards = int(manifest["n"]), int(manifest["dim"]), list(manifest["shards"])
            files = [(member(path, s["file"], "feature store"), int(s["rows"])) for s in shards]
        for file, rows in files:
            if not file.is_file():
                raise QRProbeInputError(f"feature store {str(path)!r} is incomplete: {file.name} is missing")
            with reading(file, "a feature shard (.npy)"):
                shape = np.load(file, mmap_mode="r", allow_pickle=False).shape
            if shape != (rows, dim):
                raise QRProbeInputError(f"{file}: shape {shape}, the manifest says ({rows}, {dim})")
        if sum(rows for _, rows in files) != n:
            raise QRProbeInputError(f"{mpath}: the shards hold {sum(r for _, r in files)} rows, n={n}")
        with reading(path / "index.parquet", "an image index with an image_id column"):
            index = pd.read_parquet(path / "index.parquet")
            ids = index["image_id"].astype(str).to_numpy(dtype=object)
        if len(index) != n:
            raise QRProbeInputError(f"{path / 'index.parquet'}: {len(index)} rows, manifest says n={n}")
        paths = index["path"].astype(str).to_numpy(dtype=object) if "path" in index else np.full(n, "", object)
        labels = index["label"].astype(str).to_numpy(dtype=object) if "label" in index else None
        return cls(path, manifest, ids, paths, labels)

    @property
    def n(self) -> int:
        return int(self.manifest["n"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def dtype(self) -> str:
        return str(self.manifest["dtype"])

    def iter_shards(self) -> Iterator[np.ndarray]:
        """Yield each shard as a read-only memory map, shape (rows, dim)."""
        for shard in self.manifest["shards"]:
            yield np.load(member(self.path, shard["file"], "feature store"), mmap_mode="r", allow_pickle=False)

    def load(self, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
        """Return all features as one in-memory array, shape (N, dim), in ``dtype``."""
        out = np.empty((self.n, self.dim), dtype=dtype)
        start = 0
        for shard in self.iter_shards():
            out[start:start + len(shard)] = shard
            start += len(shard)
        return out

    def __repr__(self) -> str:
        return (f"FeatureStore({str(self.path)!r}, n={self.n}, dim={self.dim}, dtype={self.dtype}, "
                f"model={self.manifest.get('model')!r})")


def write_feature_store(
    path: str | os.PathLike,
    features: np.ndarray,
    image_ids: Sequence[str] | None = None,
    paths: Sequence[str] | None = None,
    *,
    model: str = "",
    layer: str = "",
    preprocessing: dict | None = None,
    dtype: str = "float32",
    shard_rows: int = DEFAULT_SHARD_ROWS,
    extra: dict | None = None,
    overwrite: bool = False,
) -> FeatureStore:
    """Write ``features`` (N × D) as a complete store at ``path`` (atomically) and open it.

    ``image_ids`` default to ``"0" … "N-1"``; ``paths`` default to empty strings.
    """
    if dtype not in _DTYPES:
        raise QRProbeInputError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    features = np.asarray(features)
    if features.ndim != 2:
        raise QRProbeInputError(f"features must be 2-D (images x dims), got shape {features.shape}")
    n, d = features.shape
    ids = [str(i) for i in range(n)] if image_ids is None else [str(i) for i in image_ids]
    if len(ids) != n:
        raise QRProbeInputError(f"{len(ids)} image ids for {n} feature rows")
    if len(set(ids)) != n:
        raise QRProbeInputError("duplicate image ids in the feature store")
    paths = [""] * n if paths is None else [str(p) for p in paths]
    h = hashlib.sha256()
    shards = []
    with atomic_directory(path, overwrite=overwrite, kind=FORMAT.split("/")[0]) as tmp:
        for i, start in enumerate(range(0, max(n, 1), shard_rows)):
            block = np.ascontiguousarray(features[start:start + shard_rows], dtype=dtype)
            name = SHARD_PATTERN.format(i)
            np.save(tmp / name, block)
            shard_hash(h, block)
            shards.append({"file": name, "rows": len(block)})
        pd.DataFrame({"image_id": ids, "path": paths}).to_parquet(tmp / "index.parquet", index=False)
        manifest = {
            "format": FORMAT, "complete": True, "model": model, "layer": layer, "dim": d, "dtype": dtype,
            "n": n, "preprocessing": preprocessing or {}, "shards": shards,
            "content_hash": h.hexdigest()[:16], "versions": library_versions(), **(extra or {}),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return FeatureStore.open(path)


# ---------------------------------------------------------------- incremental, resumable writing

PARTIAL_SUFFIX = ChunkedWorkDir.SUFFIX
_CHUNK_SHARD = "chunk-{:06d}.npy"
_CHUNK_INDEX = "chunk-{:06d}.parquet"


def partial_path(final: str | os.PathLike) -> Path:
    """Where an in-progress store for ``final`` lives: a hidden sibling ``.NAME.partial``."""
    return ChunkedWorkDir.partial_path(final)


def read_manifest(path: str | os.PathLike) -> dict | None:
    """The parsed ``manifest.json`` of a directory, or None when it has none (or an unreadable one)."""
    mpath = Path(path) / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


class FeatureStoreWriter:
    """Write a feature store chunk by chunk, so that an interrupted run resumes where it stopped.

    The input images are cut into fixed chunks (chunk ``c`` = input rows ``[c * S, (c + 1) * S)``); each
    chunk's features become one shard. Work happens in the resumable work folder :func:`partial_path`
    (``.NAME.partial``, a :class:`~qrprobe._workdir.ChunkedWorkDir`), whose ``manifest.json``
    (``complete: false``) lists the committed chunks. Re-opening with the same ``config_hash``, ``dim`` and
    ``dtype`` resumes; anything else starts afresh. :meth:`finish` numbers the shards, writes
    ``index.parquet`` and the complete manifest, and renames the folder to its final name.

    Parameters
    ----------
    final : the store's final directory.
    config_hash : identity of (model, layer, preprocessing, dtype, inputs, chunk size); resuming needs equality.
    dim : feature dimension D.
    dtype : ``"float16"`` or ``"float32"``.
    header : manifest fields describing the store (model, layer, preprocessing, source, ...).
    """

    def __init__(self, final: str | os.PathLike, *, config_hash: str, dim: int, dtype: str,
                 header: dict | None = None) -> None:
        if dtype not in _DTYPES:
            raise QRProbeInputError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        self.final = Path(final)
        self.config_hash = config_hash
        self.dim = int(dim)
        self.dtype = dtype
        self.header = dict(header or {})
        self._work = ChunkedWorkDir(
            self.final, identity={"config_hash": config_hash, "dim": self.dim, "dtype": dtype},
            header={"format": FORMAT, "complete": False, **self.header}, state_name="manifest.json")
        self.work = self._work.path

    @property
    def chunks(self) -> dict[int, dict]:
        """Committed chunks: ``{chunk: {"file", "index_file", "rows", "skipped", ...}}``."""
        return self._work.chunks

    @property
    def resumed_chunks(self) -> set[int]:
        """Chunks already committed (by this or an earlier, interrupted run)."""
        return set(self._work.chunks)

    def commit_chunk(self, chunk: int, features: np.ndarray, image_ids: Sequence[str], paths: Sequence[str],
                     labels: Sequence[str] | None = None, skipped: Sequence[dict] = ()) -> None:
        """Durably record chunk ``chunk``: features (rows, D), their ids/paths/labels, and skipped images."""
        features = np.ascontiguousarray(features, dtype=self.dtype).reshape(-1, self.dim)
        rows = len(features)
        if len(image_ids) != rows or len(paths) != rows or (labels is not None and len(labels) != rows):
            raise ValueError("features, image_ids, paths and labels of a chunk must have the same length")
        shard_name, index_name = _CHUNK_SHARD.format(chunk), _CHUNK_INDEX.format(chunk)
        index = {"image_id": [str(i) for i in image_ids], "path": [str(p) for p in paths]}
        if labels is not None:
            index["label"] = [str(v) for v in labels]
        files = {shard_name: lambda path: _save_npy(path, features)} if rows else {}
        files[index_name] = lambda path: pd.DataFrame(index).to_parquet(path, index=False)
        self._work.commit(chunk, files, {"file": shard_name, "index_file": index_name, "rows": rows,
                                         "skipped": list(skipped)})

    def finish(self, *, n_chunks: int, extra: dict | None = None, overwrite: bool = False,
               rejected: Sequence[dict] = ()) -> FeatureStore:
        """Assemble the complete store (all ``n_chunks`` chunks must be committed) and move it into place.

        The manifest's ``skipped`` lists ``rejected`` (inputs that were never images) followed by the images
        that the chunks could not decode, each as ``{"image_id", "path", "reason"}``.
        """
        missing = [c for c in range(n_chunks) if c not in self.chunks]
        if missing:
            raise RuntimeError(f"cannot finish the feature store: chunks {missing[:10]} were never written")
        h = hashlib.sha256()
        shards: list[dict] = []
        indexes: list[pd.DataFrame] = []
        skipped = list(rejected)
        for c in range(n_chunks):
            entry = self.chunks[c]
            skipped.extend(entry.get("skipped", []))
            indexes.append(pd.read_parquet(self.work / entry["index_file"]))
            if not entry["rows"]:
                continue
            name = SHARD_PATTERN.format(len(shards))
            os.replace(self.work / entry["file"], self.work / name)
            shard_hash(h, np.load(self.work / name, mmap_mode="r"))
            shards.append({"file": name, "rows": entry["rows"]})
        index = pd.concat(indexes, ignore_index=True) if indexes else pd.DataFrame({"image_id": [], "path": []})
        if index["image_id"].duplicated().any():
            raise QRProbeInputError("duplicate image ids in the feature store")
        index.to_parquet(self.work / "index.parquet", index=False)
        for c in range(n_chunks):
            (self.work / self.chunks[c]["index_file"]).unlink(missing_ok=True)
        manifest = {"format": FORMAT, "complete": True, **self.header, "config_hash": self.config_hash,
                    "dim": self.dim, "dtype": self.dtype, "n": len(index), "shards": shards,
                    "content_hash": h.hexdigest()[:16], "versions": library_versions(),
                    "n_skipped": len(skipped), "skipped": skipped, **(extra or {})}
        atomic_write_text(self.work / "manifest.json", json.dumps(manifest, indent=2, default=str))
        self._work.move_into_place(overwrite=overwrite, kind=FORMAT.split("/")[0])
        return FeatureStore.open(self.final)

    def abandon(self) -> None:
        """Delete the in-progress directory."""
        self._work.remove()


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to a temporary name
        np.save(f, array)
