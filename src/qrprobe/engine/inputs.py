"""Reading the two inputs of an evaluation and matching their rows.

FEATURES is a ``.npy`` array (N × D) or a feature-store directory. CONCEPTS is a concept-bank directory, a
long table (``image_id, concept[, group]`` as CSV, TSV or parquet) or a dense 0/1 ``.npy`` (N × M) whose
concept names come from a names file (one concept a line, ``group<TAB>name``; a line without a tab is a
concept of the group ``Labels``).

Rows are matched by ``image_id`` when both sides have ids (the two id sets must be equal; the concept rows are
re-ordered to the features' order), and by position when neither has. When only one side has ids, rows are
matched by position if the counts agree (recorded as ``matched_by: "position"``). A long table lists only the
images that show some concept, so features' images missing from it get an all-zero concept row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._files import reading
from ..concepts.bank import DEFAULT_GROUP, ConceptBank, read_table
from ..errors import QRProbeInputError
from ..features.store import FeatureStore

_TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq", ".txt")


class ShardedRows:
    """The shards of a feature store seen as one (N, D) array that is read slice by slice, never whole.

    Supports ``shape``, ``dtype``, ``len()`` and row slicing ``rows[a:b]`` (a new float array), which is all the
    standardization and the finiteness check need: a store larger than memory is streamed.
    """

    def __init__(self, store: FeatureStore) -> None:
        self._shards = list(store.iter_shards())
        self._starts = np.cumsum([0] + [len(s) for s in self._shards])
        self.shape = (int(self._starts[-1]), store.dim)
        self.dtype = self._shards[0].dtype if self._shards else np.dtype(np.float32)
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Materialise all rows (``np.asarray(rows)``); prefer slicing for large stores."""
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("ShardedRows supports contiguous row slices only")
        start, stop, _ = rows.indices(self.shape[0])
        parts = []
        for i, shard in enumerate(self._shards):
            lo, hi = max(start, self._starts[i]), min(stop, self._starts[i + 1])
            if lo < hi:
                parts.append(np.asarray(shard[lo - self._starts[i]:hi - self._starts[i]]))
        return np.concatenate(parts) if parts else np.empty((0, self.shape[1]), self.dtype)


@dataclass
class Features:
    """Features: ``array`` (N, D) (an ndarray, a memory map or :class:`ShardedRows`), ``image_ids`` (N,) or None,
    ``paths`` (N,) or None, provenance."""

    array: np.ndarray | ShardedRows
    image_ids: np.ndarray | None
    paths: np.ndarray | None
    provenance: dict


def load_features(source: str | os.PathLike | np.ndarray | FeatureStore) -> Features:
    """Read FEATURES: an array, a ``.npy`` file or a feature-store directory."""
    if isinstance(source, FeatureStore):
        store = source
    elif isinstance(source, np.ndarray):
        return Features(_check_2d(source, "features"), None, None, {"kind": "array"})
    else:
        path = Path(source)
        if not path.exists():
            raise QRProbeInputError(f"FEATURES: file not found: {str(path)!r}")
        if path.is_dir():
            store = FeatureStore.open(path)
        elif path.suffix == ".npy":
            with reading(path, "FEATURES, a .npy array (images x dimensions)"):
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            return Features(_check_2d(array, f"FEATURES {str(path)!r}"), None, None,
                            {"kind": "npy", "path": str(path)})
        else:
            raise QRProbeInputError(f"FEATURES {str(path)!r}: expected a .npy file or a feature-store directory")
    array = ShardedRows(store)
    prov = {"kind": "feature-store", "path": str(store.path), "model": store.manifest.get("model"),
            "layer": store.manifest.get("layer"), "content_hash": store.manifest.get("content_hash")}
    return Features(array, store.image_ids, store.paths, prov)


def _check_2d(array: np.ndarray, what: str) -> np.ndarray:
    if array.ndim != 2:
        raise QRProbeInputError(f"{what}: expected a 2-D array (images x dimensions), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise QRProbeInputError(f"{what}: expected real numbers, got dtype {array.dtype}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise QRProbeInputError(f"{what}: empty array of shape {array.shape}")
    if array.dtype.itemsize > 4 and np.issubdtype(array.dtype, np.floating):
        _check_magnitude(array, what)
    return array


#: Larger values overflow the float64 sums of squares of the standardization (the largest float64 is 1.8e308).
MAX_MAGNITUDE = 1e150


def _check_magnitude(array: np.ndarray, what: str, rows: int = 65536) -> None:
    """Refuse float64 features too large to standardize (their squares overflow), block by block. Smaller
    float types cannot hold such values."""
    for start in range(0, array.shape[0], rows):
        block = np.abs(np.asarray(array[start:start + rows]))
        with np.errstate(invalid="ignore"):
            big = block > MAX_MAGNITUDE
        if big.any():
            row, col = np.argwhere(big)[0]
            raise QRProbeInputError(f"{what}: value {array[start + row, col]:.3g} at row {start + row}, column {col} "
                                    f"is too large to standardize (|x| > {MAX_MAGNITUDE:g}); rescale the features")


def read_concept_names(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Read a names file: one concept a line, ``group<TAB>name`` (no tab: group ``Labels``)."""
    path = Path(path)
    if not path.is_file():
        raise QRProbeInputError(f"--concept-names: file not found: {str(path)!r}")
    names, groups = [], []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        group, _, name = line.rpartition("\t") if "\t" in line else (DEFAULT_GROUP, "", line)
        if not name.strip() or not group.strip():
            raise QRProbeInputError(f"{path}:{lineno}: expected 'group<TAB>name', got {line!r}")
        names.append(name.strip())
        groups.append(group.strip())
    return names, groups


def load_concepts(source: str | os.PathLike | ConceptBank, *, concept_names: str | os.PathLike | None = None,
                  image_ids: np.ndarray | None = None, n_images: int | None = None) -> ConceptBank:
    """Read CONCEPTS (see the module docstring).

    ``image_ids`` (the features' ids, if any) fix the rows of a long table; ``n_images`` lets a long table be
    matched to id-less features when its ids are the row numbers ``0 … N-1``.
    """
    if isinstance(source, ConceptBank):
        return source
    path = Path(source)
    if not path.exists():
        raise QRProbeInputError(f"CONCEPTS: file not found: {str(path)!r}")
    if path.is_dir():
        return ConceptBank.load(path)
    if path.suffix == ".npy":
        if concept_names is None:
            raise QRProbeInputError(
                f"CONCEPTS {str(path)!r} is a dense matrix: pass --concept-names FILE (one 'group<TAB>name' a line)")
        with reading(path, "CONCEPTS, a .npy 0/1 matrix (images x concepts)"):
            matrix = np.load(path, allow_pickle=False)
        if matrix.ndim != 2:
            raise QRProbeInputError(f"CONCEPTS {str(path)!r}: expected a 2-D 0/1 matrix, got shape {matrix.shape}")
        names, groups = read_concept_names(concept_names)
        if len(names) != matrix.shape[1]:
            raise QRProbeInputError(
                f"--concept-names {str(concept_names)!r} lists {len(names)} concepts but CONCEPTS "
                f"{str(path)!r} has {matrix.shape[1]} columns")
        try:
            return ConceptBank.from_matrix(matrix, names, groups, info={"source": str(path)})
        except QRProbeInputError as exc:
            raise QRProbeInputError(f"CONCEPTS {str(path)!r}: {exc}") from exc
    if path.suffix.lower() in _TABLE_SUFFIXES:
        table = read_table(path)
        rows = image_ids
        if rows is None and n_images is not None:
            positional = [str(i) for i in range(n_images)]
            if not table.get("image_id", pd.Series(dtype=str)).astype(str).isin(positional).all():
                raise QRProbeInputError(
                    f"CONCEPTS {str(path)!r}: the features have no image ids, so the long table's image_id "
                    f"column must hold row numbers 0 … {n_images - 1}")
            rows = np.asarray(positional, dtype=object)
        try:
            bank = ConceptBank.from_long_table(table, image_ids=rows)
        except QRProbeInputError as exc:
            raise QRProbeInputError(f"CONCEPTS {str(path)!r}: {exc}") from exc
        bank.info["source"] = str(path)
        return bank
    raise QRProbeInputError(
        f"CONCEPTS {str(path)!r}: expected a concept-bank directory, a long table (.csv/.tsv/.parquet) "
        "or a dense .npy matrix")


def align(features: Features, bank: ConceptBank) -> tuple[Features, ConceptBank, str]:
    """Match concept rows to feature rows; return both (concept rows re-ordered) and how they were matched."""
    n = features.array.shape[0]
    if features.image_ids is not None and bank.image_ids is not None:
        ids = pd.Index(bank.image_ids)
        if not ids.is_unique:
            raise QRProbeInputError("duplicate image ids in CONCEPTS")
        feat_ids = pd.Index(features.image_ids)
        if not feat_ids.is_unique:
            raise QRProbeInputError("duplicate image ids in FEATURES")
        missing = feat_ids.difference(ids, sort=False)
        extra = ids.difference(feat_ids, sort=False)
        if len(missing) or len(extra):
            raise QRProbeInputError(
                f"image ids differ: {len(missing)} feature images have no concept row (e.g. "
                f"{list(missing[:3])}) and {len(extra)} concept rows have no features (e.g. {list(extra[:3])})")
        order = ids.get_indexer(feat_ids)
        return features, bank.select_rows(order), "image_id"
    if bank.n_images != n:
        raise QRProbeInputError(
            f"row count mismatch: FEATURES has {n} rows but CONCEPTS has {bank.n_images} "
            "(rows are matched by position when the inputs carry no common image ids)")
    how = "position"
    if features.image_ids is None and bank.image_ids is not None:
        features = Features(features.array, bank.image_ids, features.paths, features.provenance)
    return features, bank, how


@dataclass
class RowIntersection:
    """What :func:`intersect_rows` kept and dropped: the image ids dropped from each input (those the other
    input lacks), e.g. images that failed to decode in one stage of a study."""

    dropped_from_features: list[str]
    dropped_from_concepts: list[str]

    @property
    def n_dropped(self) -> int:
        return len(self.dropped_from_features) + len(self.dropped_from_concepts)

    def message(self, features: str = "the features", concepts: str = "the concept bank") -> str:
        """One line for the log, or ``""`` when nothing was dropped."""
        parts = []
        for ids, what, other in ((self.dropped_from_features, features, concepts),
                                 (self.dropped_from_concepts, concepts, features)):
            if ids:
                parts.append(f"{len(ids)} image(s) of {what} have no row in {other} and are left out "
                             f"(e.g. {ids[:3]})")
        return "; ".join(parts)


def intersect_rows(features: Features, bank: ConceptBank) -> tuple[Features, ConceptBank, RowIntersection]:
    """Keep the images both inputs have (matched by image id, in the features' order) and say what was dropped.

    The explicit alternative to :func:`align`, which refuses inputs whose ids differ: the caller must report
    the returned :class:`RowIntersection`. Both inputs need image ids.
    """
    if features.image_ids is None or bank.image_ids is None:
        raise QRProbeInputError("rows can only be intersected by image id, and an input has no image ids")
    feat_ids = pd.Index(np.asarray(features.image_ids).astype(str))
    bank_ids = pd.Index(np.asarray(bank.image_ids).astype(str))
    for ids, what in ((feat_ids, "FEATURES"), (bank_ids, "CONCEPTS")):
        if not ids.is_unique:
            raise QRProbeInputError(f"duplicate image ids in {what}")
    in_bank = feat_ids.isin(bank_ids)
    report = RowIntersection([str(i) for i in feat_ids[~in_bank]],
                             [str(i) for i in bank_ids[~bank_ids.isin(feat_ids)]])
    if not in_bank.any():
        raise QRProbeInputError("the features and the concepts share no image ids")
    if report.dropped_from_features:
        keep = np.flatnonzero(in_bank)
        features = Features(np.asarray(features.array[:])[keep], features.image_ids[keep],
                            None if features.paths is None else features.paths[keep], features.provenance)
    order = bank_ids.get_indexer(pd.Index(np.asarray(features.image_ids).astype(str)))
    if report.dropped_from_concepts or not np.array_equal(order, np.arange(len(order))):
        bank = bank.select_rows(order)
    return features, bank, report


def intersect_banks(banks: list[ConceptBank]) -> tuple[list[ConceptBank], int]:
    """The banks restricted to the image ids all of them have, in the first bank's order; and how many images
    were dropped. Every bank needs image ids."""
    if any(b.image_ids is None for b in banks):
        raise QRProbeInputError("concept banks without image ids cannot be matched to each other")
    ids = [pd.Index(np.asarray(b.image_ids).astype(str)) for b in banks]
    common = ids[0]
    for other in ids[1:]:
        common = common[common.isin(other)]
    if len(common) == 0:
        raise QRProbeInputError("the concept banks share no image ids")
    out = [b.select_rows(i.get_indexer(common)) for b, i in zip(banks, ids, strict=True)]
    return out, int(sum(len(i) for i in ids) - len(common) * len(ids))
