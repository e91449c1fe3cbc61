"""Per-dimension standardization of features, streamed block by block, and the one standardized copy K-means
clusters.

The raw features (an ndarray, a memory map or a sharded store read slice by slice) are never copied whole:
statistics are accumulated in float64 over blocks of at most 64 MiB, and :func:`standardized_copy` writes the
standardized values block by block into a single preallocated array of the storage precision (float32,
float16 or bfloat16). Pages of a memory-mapped source are released after each block, so the mapped file does
not stay resident beside the copy.

Storage precision (``kmeans_precision``): ``float32`` keeps today's values bit for bit; ``float16`` and
``bfloat16`` halve the memory. ``auto`` (the default) takes float16 at every size (issue 20: the exact 16-bit path was
3.95× faster than float32 Lloyd at 50k × 2048 on a quiet machine, 1.7× at 1.5k × 768; 11 significant bits
against bfloat16's 8: on real features its clusterings stay ~4× closer to float32 storage; see
docs/protocol.md). It does not depend on the machine: with or without the compiled kernel the 16-bit path
computes the same labels, so a study gives the same clustering everywhere. A 16-bit copy is rounded from
float64 through float32, and a bfloat16 magnitude below 2⁻¹⁷ is stored as 0, so that every stored 16-bit
value is an integer multiple of 2⁻²⁴ (centroid sums are then exact in int64, see
:mod:`qrprobe.engine.kmeans.sums`).
"""

from __future__ import annotations

import mmap
from typing import Any, Protocol

import numpy as np
import torch

from ...errors import ParameterError, QRProbeInputError

PRECISIONS = ("auto", "float32", "float16", "bfloat16")
AUTO_PRECISION = "float16"  # what auto resolves to, at every size
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Rows(Protocol):
    """An (N, D) array read by contiguous row slices: an ndarray, a memory map or a sharded store
    (:class:`qrprobe.engine.inputs.ShardedRows`)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, rows: slice, /) -> Any: ...
BF16_FLUSH = 2.0**-17  # bfloat16 magnitudes below this are stored as 0 (every value a multiple of 2**-24)


def resolve_precision(precision: str, n: int, d: int) -> str:
    """The storage precision for an (n, d) collection: ``precision`` itself, or :data:`AUTO_PRECISION` (float16)
    for ``auto``, whatever the size (``n``, ``d`` are kept for callers that size by shape)."""
    if precision not in PRECISIONS:
        raise ParameterError("kmeans_precision", f"expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return AUTO_PRECISION


def torch_dtype(precision: str) -> torch.dtype:
    return _DTYPES[precision]


def rows_per_block(d: int, block_bytes: int = 64 * 2**20) -> int:
    """Rows of a (rows, d) float64 block of at most ``block_bytes``."""
    return max(1, block_bytes // (8 * max(d, 1)))


def _mapped_parts(features) -> list[tuple[np.memmap, int]]:
    """The read-only file mappings behind ``features`` with the row at which each starts: the array itself if
    it is a memory map, or the shards of a sharded store (``ShardedRows``)."""
    if isinstance(features, np.memmap):
        return [(features, 0)]
    shards, starts = getattr(features, "_shards", None), getattr(features, "_starts", None)
    if shards is None or starts is None:
        return []
    return [(s, int(start)) for s, start in zip(shards, starts, strict=False) if isinstance(s, np.memmap)]


def release_rows(features, start: int, stop: int) -> None:
    """Drop the resident pages of rows ``start:stop`` of a memory-mapped source from this process (they stay in
    the page cache and are read again on access); a no-op for arrays in memory.

    Only read-only shared mappings are released: their pages are clean copies of the file.
    """
    for part, first in _mapped_parts(features):
        mm = getattr(part, "_mmap", None)
        if (not isinstance(mm, mmap.mmap) or part.base is not mm or part.mode != "r" or part.ndim != 2
                or not part.flags.c_contiguous):
            continue  # only a whole read-only mapped array, whose bytes start at a known place
        lo, hi = max(start - first, 0), min(stop - first, part.shape[0])
        if lo >= hi:
            continue
        row_bytes = part.strides[0]
        data_at = part.offset % mmap.ALLOCATIONGRANULARITY  # where the array's bytes begin in the mapping
        begin = data_at + lo * row_bytes
        end = data_at + hi * row_bytes
        begin -= begin % mmap.PAGESIZE
        try:
            mm.madvise(mmap.MADV_DONTNEED, begin, end - begin)
        except (OSError, ValueError, AttributeError):
            return


class Standardizer:
    """Per-dimension standardization: ``(x − mean) / std`` over the collection it is fitted on.

    A dimension with zero variance maps to 0. Statistics are accumulated in float64 over row chunks (of at
    most 64 MiB unless ``chunk_rows`` says otherwise), so a memory-mapped or sharded array is never copied
    whole.

    Attributes (after ``fit``): ``mean_`` and ``scale_``, float64 arrays of shape (D,).
    """

    def __init__(self, chunk_rows: int | None = None) -> None:
        self.chunk_rows = chunk_rows

    def _rows(self, d: int) -> int:
        return self.chunk_rows or rows_per_block(d)

    def fit(self, features: Rows, progress: bool = False) -> Standardizer:
        """Mean and scale of ``features`` (N, D): two streamed passes (a progress bar over both if asked)."""
        from ...progress import bar as progress_bar

        n, d = features.shape
        step = self._rows(d)
        total = np.zeros(d)
        total_sq = np.zeros(d)
        bar = progress_bar(2 * n, "standardize: statistics", enabled=progress, unit="row", unit_scale=True)
        with bar:
            for start in range(0, n, step):
                block = np.asarray(features[start:start + step], dtype=np.float64)
                release_rows(features, start, start + step)
                total += block.sum(axis=0)
                bar.update(len(block))
            mean = total / n
            for start in range(0, n, step):
                block = np.asarray(features[start:start + step], dtype=np.float64) - mean
                release_rows(features, start, start + step)
                total_sq += np.square(block).sum(axis=0)
                bar.update(len(block))
        std = np.sqrt(total_sq / n)
        self.mean_ = mean
        self.scale_ = np.where(std > 0, std, np.inf)  # x / inf = 0 for a constant dimension
        return self

    def _check_dim(self, d: int) -> None:
        if d != len(self.mean_):
            raise QRProbeInputError(f"features have {d} dimensions, the standardizer was fitted on {len(self.mean_)}")

    def blocks(self, features: Rows):
        """Yield ``(start, standardized float64 block)`` over the rows of ``features``."""
        n, d = features.shape
        self._check_dim(d)
        step = self._rows(d)
        for start in range(0, n, step):
            block = np.array(features[start:start + step], dtype=np.float64)  # a copy: never modify the input
            release_rows(features, start, start + step)
            block -= self.mean_
            block /= self.scale_
            yield start, block

    def transform(self, features: Rows, dtype=np.float32) -> np.ndarray:
        """Return standardized features, shape (N, D), in ``dtype``."""
        out = np.empty(features.shape, dtype=dtype)
        for start, block in self.blocks(features):
            out[start:start + len(block)] = block
        return out

    def fit_transform(self, features: Rows, dtype=np.float32) -> np.ndarray:
        return self.fit(features).transform(features, dtype)


def to_storage(block: np.ndarray, precision: str) -> torch.Tensor:
    """Round a float64 block to the storage precision (through float32; bfloat16 magnitudes below
    :data:`BF16_FLUSH` become 0)."""
    t = torch.from_numpy(np.asarray(block, dtype=np.float32))
    if precision == "bfloat16":
        t = torch.where(t.abs() < BF16_FLUSH, 0.0, t)
    return t.to(_DTYPES[precision])


def standardized_copy(features, standardizer: Standardizer, precision: str, device: torch.device | str = "cpu",
                      progress: bool = False) -> torch.Tensor:
    """The standardized features as one (N, D) tensor of ``precision`` on ``device``, written block by block.

    For ``float32`` the values equal ``standardizer.transform(features)`` bit for bit. On a GPU, each block is
    standardized on the CPU and copied over, so only the copy itself lives on the device.
    """
    from ...progress import bar as progress_bar

    n, d = features.shape
    device = torch.device(device)
    if precision == "float32" and device.type == "cpu":
        return torch.from_numpy(standardizer.transform(features))
    out = torch.empty((n, d), dtype=_DTYPES[precision], device=device)
    with progress_bar(n, f"standardize: {precision} copy", enabled=progress, unit="row", unit_scale=True) as bar:
        for start, block in standardizer.blocks(features):
            out[start:start + len(block)] = to_storage(block, precision).to(device)
            bar.update(len(block))
    return out


def apply_standardization(features: Rows, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Apply saved statistics (``mean``, ``scale`` of shape (D,); ``scale`` 0 marks a constant dimension, mapped
    to 0) to ``features`` (N, D), block by block; returns float32 (N, D)."""
    mean = np.asarray(mean, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    if features.shape[1] != len(mean):
        raise QRProbeInputError(
            f"features have {features.shape[1]} dimensions but the saved standardization has {len(mean)} "
            "(features of the same model and layer are needed)")
    standardizer = Standardizer()
    standardizer.mean_ = mean
    standardizer.scale_ = np.where(scale > 0, scale, np.inf)
    return standardizer.transform(features)


def check_finite(features: Rows, what: str = "features", chunk_rows: int | None = None) -> None:
    """Raise naming the first row with a NaN or infinite value."""
    chunk_rows = chunk_rows or rows_per_block(features.shape[1])
    for start in range(0, features.shape[0], chunk_rows):
        block = np.asarray(features[start:start + chunk_rows])
        release_rows(features, start, start + chunk_rows)
        bad = ~np.isfinite(block)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise QRProbeInputError(
                f"{what}: non-finite value {block[row, col]} at row {start + row}, column {col} "
                "(features must be finite numbers)")
