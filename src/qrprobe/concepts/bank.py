"""The concept bank: which human-nameable concepts each image shows.

Kept whole (about 380 lines): one class, its constructors, selections and directory format, read together.

A :class:`ConceptBank` is an N × M binary matrix kept sparse (``scipy.sparse.csr_matrix`` of ``uint8``),
a concept table with one row per column (``name``, ``group``, ``expert`` and optional extra columns such as
``threshold``) and, optionally, the ``image_id`` of every row.

On disk (``ConceptBank.save`` / ``ConceptBank.load``) it is a directory::

    manifest.json      format, shape, groups, content hash, library versions, free-form ``info``
    concepts.parquet   column index -> name, group, expert[, threshold, ...]
    matrix.npz         scipy CSR, N x M, values 0/1
    index.parquet      row -> image_id            (absent when the bank has no image ids)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._atomic import atomic_directory
from .._files import read_marker, reading
from .._versions import library_versions
from ..errors import QRProbeInputError

FORMAT = "qrprobe.concept-bank/1"
DEFAULT_GROUP = "Labels"
DEFAULT_EXPERT = "user"
_TABLE_COLUMNS = ("name", "group", "expert")


def _as_binary_csr(matrix, what: str) -> sp.csr_matrix:
    """Convert a dense or sparse 0/1 matrix to a canonical uint8 CSR matrix, or raise naming ``what``."""
    csr: sp.csr_matrix | None
    if sp.issparse(matrix):
        # scipy-stubs narrow issparse() to an ABC that csr_matrix's overloads do not list
        csr = sp.csr_matrix(cast(Any, matrix))
        csr.sum_duplicates()
        values = csr.data
    else:
        arr = np.asarray(matrix)
        if arr.ndim != 2:
            raise QRProbeInputError(f"{what}: expected a 2-D matrix (images x concepts), got shape {arr.shape}")
        values = arr
        csr = None
    if values.dtype == bool:
        bad = False
    else:
        try:
            bad = bool(np.any((values != 0) & (values != 1)))
        except TypeError as exc:
            raise QRProbeInputError(f"{what}: expected numeric 0/1 values, got dtype {values.dtype}") from exc
    if bad:
        flat = np.asarray(values).ravel()
        odd = flat[(flat != 0) & (flat != 1)][:5]
        raise QRProbeInputError(f"{what}: concept values must be binary (0 or 1); found {odd.tolist()}")
    if csr is None:
        csr = sp.csr_matrix(np.asarray(values) != 0, dtype=np.uint8)
    else:
        csr = csr.astype(np.uint8)
    csr.eliminate_zeros()
    csr.sort_indices()
    return csr


def _check_unique(values: Sequence | np.ndarray, what: str) -> None:
    s = pd.Series(values)
    dup = s[s.duplicated()]
    if len(dup):
        raise QRProbeInputError(f"duplicate {what}: {sorted(set(map(str, dup)))[:5]} (each must appear once)")


@dataclass
class ConceptBank:
    """N images × M concepts, binary and sparse, with a concept table and optional image ids.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix, shape (N, M), dtype uint8, values 0/1
    concepts : pandas.DataFrame, M rows, columns ``name``, ``group``, ``expert`` (+ optional extras)
    image_ids : numpy.ndarray of str, shape (N,), or None when rows are only positional
    info : dict, free-form provenance (which experts, thresholds, source) saved in the manifest
    """

    matrix: sp.csr_matrix
    concepts: pd.DataFrame
    image_ids: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.matrix = _as_binary_csr(self.matrix, "concept matrix")
        table = pd.DataFrame(self.concepts).reset_index(drop=True)
        for col in _TABLE_COLUMNS:
            if col not in table.columns:
                raise QRProbeInputError(f"concept table: missing column {col!r} (needs {list(_TABLE_COLUMNS)})")
        table = table.astype(dict.fromkeys(_TABLE_COLUMNS, str))
        self.concepts = table[[*_TABLE_COLUMNS, *[c for c in table.columns if c not in _TABLE_COLUMNS]]]
        n, m = self.matrix.shape
        if len(self.concepts) != m:
            raise QRProbeInputError(
                f"concept table has {len(self.concepts)} rows but the matrix has {m} columns")
        if (self.concepts["name"].str.len() == 0).any():
            raise QRProbeInputError("concept table: empty concept name")
        _check_unique(self.concepts["name"].tolist(), "concept names")
        if self.image_ids is not None:
            ids = np.asarray([str(i) for i in self.image_ids], dtype=object)
            if len(ids) != n:
                raise QRProbeInputError(f"{len(ids)} image ids for a concept matrix of {n} rows")
            _check_unique(ids, "image ids in the concept bank")
            self.image_ids = ids

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_matrix(
        cls,
        matrix,
        names: Sequence[str],
        groups: Sequence[str] | str = DEFAULT_GROUP,
        experts: Sequence[str] | str = DEFAULT_EXPERT,
        image_ids: Sequence[str] | None = None,
        info: dict | None = None,
    ) -> ConceptBank:
        """Build a bank from a dense array or scipy sparse matrix (N × M, 0/1) and M concept names."""
        names = [str(n) for n in names]
        m = len(names)
        groups = [groups] * m if isinstance(groups, str) else list(groups)
        experts = [experts] * m if isinstance(experts, str) else list(experts)
        if len(groups) != m or len(experts) != m:
            raise QRProbeInputError(f"{m} concept names but {len(groups)} groups and {len(experts)} experts")
        table = pd.DataFrame({"name": names, "group": groups, "expert": experts})
        return cls(matrix, table, None if image_ids is None else np.asarray(image_ids, dtype=object),
                   dict(info or {}))

    @classmethod
    def from_long_table(
        cls,
        table: pd.DataFrame | str | os.PathLike,
        image_ids: Sequence[str] | np.ndarray | None = None,
        default_group: str = DEFAULT_GROUP,
        expert: str = DEFAULT_EXPERT,
    ) -> ConceptBank:
        """Build a bank from a long table with columns ``image_id, concept[, group]``.

        ``table`` is a DataFrame or the path of a CSV / TSV / parquet file. Each row says that an image shows a
        concept. Rows are the images of ``image_ids`` when given (images absent from the table get an all-zero
        row; ids in the table but not in ``image_ids`` are an error), else the table's images in order of first
        appearance.
        """
        source = "long table"
        if not isinstance(table, pd.DataFrame):
            source = str(table)
        frame = table if isinstance(table, pd.DataFrame) else read_table(table)
        for col in ("image_id", "concept"):
            if col not in frame.columns:
                raise QRProbeInputError(
                    f"{source}: missing column {col!r}; expected columns image_id, concept[, group], "
                    f"found {list(frame.columns)}")
        if frame[["image_id", "concept"]].isna().any().any():
            raise QRProbeInputError(f"{source}: empty image_id or concept value")
        frame = frame.astype({"image_id": str, "concept": str})
        if "group" in frame.columns:
            groups = frame["group"].fillna(default_group).astype(str)
        else:
            groups = pd.Series(default_group, index=frame.index)
        concept_group = pd.DataFrame({"concept": frame["concept"], "group": groups}).drop_duplicates()
        clash = concept_group[concept_group["concept"].duplicated()]
        if len(clash):
            raise QRProbeInputError(
                f"{source}: concept {clash['concept'].iloc[0]!r} is given more than one group")
        names = concept_group["concept"].tolist()
        col_of = {n: j for j, n in enumerate(names)}
        ids: np.ndarray
        if image_ids is None:
            ids = frame["image_id"].unique()
        else:
            ids = np.asarray([str(i) for i in image_ids], dtype=object)
            _check_unique(ids, "image ids")
        row_of = pd.Series(np.arange(len(ids)), index=pd.Index(ids))
        unknown = ~frame["image_id"].isin(row_of.index)
        if unknown.any():
            raise QRProbeInputError(
                f"{source}: {int(unknown.sum())} rows name image ids that are not among the images, e.g. "
                f"{frame['image_id'][unknown].iloc[:3].tolist()}")
        rows = row_of.loc[frame["image_id"]].to_numpy()
        cols = frame["concept"].map(col_of).to_numpy()
        matrix = sp.csr_matrix((np.ones(len(rows), np.uint8), (rows, cols)), shape=(len(ids), len(names)))
        matrix.data[:] = 1  # an (image, concept) pair listed twice is still one concept
        return cls(matrix, pd.DataFrame({"name": names, "group": concept_group["group"].tolist(),
                                         "expert": expert}),
                   np.asarray(ids, dtype=object), {"source": source})

    # ------------------------------------------------------------------ properties
    @property
    def n_images(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_concepts(self) -> int:
        return self.matrix.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def names(self) -> list[str]:
        return self.concepts["name"].tolist()

    @property
    def groups(self) -> list[str]:
        """Concept groups in order of first appearance."""
        return list(pd.unique(self.concepts["group"]))

    def display_names(self) -> list[str]:
        """Readable names, ``[Group/expert] name``."""
        c = self.concepts
        return [f"[{g}/{e}] {n}" for n, g, e in zip(c["name"], c["group"], c["expert"], strict=True)]

    def frequencies(self) -> np.ndarray:
        """Fraction of images showing each concept, shape (M,)."""
        return np.asarray(self.matrix.sum(axis=0)).ravel() / max(self.n_images, 1)

    # ------------------------------------------------------------------ selection
    def _check_groups(self, groups: Iterable[str]) -> list[str]:
        groups = [str(g) for g in groups]
        known = self.groups
        unknown = [g for g in groups if g not in known]
        if unknown:
            raise QRProbeInputError(f"unknown concept group(s) {unknown}; this bank has groups {known}")
        return groups

    def select_columns(self, mask: np.ndarray) -> ConceptBank:
        """Keep the concept columns where ``mask`` (shape (M,), bool) is true."""
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        return ConceptBank(self.matrix[:, idx], self.concepts.iloc[idx].reset_index(drop=True),
                           self.image_ids, dict(self.info))

    def select_groups(self, groups: Iterable[str]) -> ConceptBank:
        """Keep only the concepts of the named groups (unknown names are an error)."""
        groups = self._check_groups(groups)
        return self.select_columns(self.concepts["group"].isin(groups).to_numpy())

    def drop_groups(self, groups: Iterable[str]) -> ConceptBank:
        """Drop the concepts of the named groups (unknown names are an error)."""
        groups = self._check_groups(groups)
        return self.select_columns(~self.concepts["group"].isin(groups).to_numpy())

    def select_rows(self, rows: np.ndarray) -> ConceptBank:
        """Keep the image rows ``rows`` (integer indices, in that order)."""
        rows = np.asarray(rows)
        ids = None if self.image_ids is None else self.image_ids[rows]
        return ConceptBank(self.matrix[rows], self.concepts.copy(), ids, dict(self.info))

    @staticmethod
    def concat(banks: Sequence[ConceptBank]) -> ConceptBank:
        """Stack banks over the same images side by side (concepts of all, in order)."""
        if not banks:
            raise QRProbeInputError("no concept banks to concatenate")
        first = banks[0]
        for b in banks[1:]:
            if b.n_images != first.n_images:
                raise QRProbeInputError(f"cannot concatenate banks of {first.n_images} and {b.n_images} images")
            same = (b.image_ids is None and first.image_ids is None) or (
                b.image_ids is not None and first.image_ids is not None
                and np.array_equal(b.image_ids, first.image_ids))
            if not same:
                raise QRProbeInputError("cannot concatenate concept banks whose image ids differ")
        matrix = sp.hstack([b.matrix for b in banks], format="csr")
        table = pd.concat([b.concepts for b in banks], ignore_index=True)
        info = {"parts": [b.info for b in banks],
                # the experts of all parts, so provenance checks (e.g. circularity) see every expert
                "experts": [e for b in banks for e in b.info.get("experts", [])]}
        return ConceptBank(matrix, table, first.image_ids, info)

    # ------------------------------------------------------------------ checks
    def check_usable(self) -> None:
        """Raise unless the bank can train a probe: at least one concept that some images show and others do
        not (a concept present in every image, or in none, cannot inform it)."""
        if self.n_concepts == 0:
            raise QRProbeInputError("the concept matrix has no concepts (0 columns)")
        if self.n_images == 0:
            raise QRProbeInputError("the concept matrix has no images (0 rows)")
        if self.matrix.nnz == 0:
            raise QRProbeInputError("the concept matrix is all zeros: no image shows any concept")
        counts = np.asarray(self.matrix.getnnz(axis=0)).ravel()
        if np.all((counts == 0) | (counts == self.n_images)):
            always = [n for n, c in zip(self.display_names(), counts, strict=True) if c == self.n_images]
            raise QRProbeInputError(
                f"no concept varies across the {self.n_images} images: {len(always)} of the {self.n_concepts} "
                f"concepts are present in every image (e.g. {always[:3]}) and the others in none, so a probe "
                "can learn nothing from them; use concepts that some images show and others do not")

    def content_hash(self) -> str:
        """SHA-256 of the matrix, the concept table and the ids (hex, first 16 characters)."""
        h = hashlib.sha256()
        m = self.matrix
        for arr in (np.asarray(m.shape, np.int64), m.indptr.astype(np.int64), m.indices.astype(np.int64)):
            h.update(arr.tobytes())
        h.update(self.concepts.to_csv(index=False).encode())
        if self.image_ids is not None:
            h.update("\n".join(self.image_ids).encode())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the bank directory (atomically: a temporary name renamed when complete)."""
        manifest = {
            "format": FORMAT,
            "n_images": self.n_images,
            "n_concepts": self.n_concepts,
            "nnz": int(self.matrix.nnz),
            "groups": self.groups,
            "has_image_ids": self.image_ids is not None,
            "content_hash": self.content_hash(),
            "versions": library_versions(),
            "info": self.info,
        }
        with atomic_directory(path, overwrite=overwrite, kind=FORMAT.split("/")[0]) as tmp:
            sp.save_npz(tmp / "matrix.npz", self.matrix, compressed=True)
            self.concepts.to_parquet(tmp / "concepts.parquet", index=False)
            if self.image_ids is not None:
                pd.DataFrame({"image_id": self.image_ids.astype(str)}).to_parquet(
                    tmp / "index.parquet", index=False)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ConceptBank:
        """Read a bank directory written by :meth:`save`."""
        path = Path(path)
        manifest = read_marker(path, "manifest.json", FORMAT, "a concept bank directory")
        for name in ("matrix.npz", "concepts.parquet"):
            if not (path / name).is_file():
                raise QRProbeInputError(f"concept bank {str(path)!r} is incomplete: {name} is missing")
        with reading(path / "matrix.npz", "a sparse concept matrix"):
            matrix = sp.csr_matrix(sp.load_npz(path / "matrix.npz"))
        with reading(path / "concepts.parquet", "a concept table"):
            concepts = pd.read_parquet(path / "concepts.parquet")
        ids = None
        if (path / "index.parquet").is_file():
            with reading(path / "index.parquet", "an image index with an image_id column"):
                ids = pd.read_parquet(path / "index.parquet")["image_id"].astype(str).to_numpy(dtype=object)
        info = manifest.get("info", {})
        return cls(matrix, concepts, ids, info if isinstance(info, dict) else {})

    def __repr__(self) -> str:
        return (f"ConceptBank({self.n_images} images x {self.n_concepts} concepts, nnz={self.matrix.nnz}, "
                f"groups={self.groups})")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV, TSV or parquet table, raising a clear error when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise QRProbeInputError(f"file not found: {str(path)!r}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".tsv", ".tab"):
            return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[""])
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as exc:
        raise QRProbeInputError(f"{str(path)!r}: cannot read as a table ({exc})") from exc
