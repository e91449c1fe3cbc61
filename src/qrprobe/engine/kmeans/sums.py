"""Exact centroid sums of 16-bit stored features, in int64 fixed point.

Every stored float16 value, and every stored bfloat16 value (magnitudes below 2⁻¹⁷ are stored as 0,
:mod:`qrprobe.engine.kmeans.standardize`), is an integer multiple of 2⁻²⁴. Scaled by 2²⁴ it is an exact integer of
magnitude below 2⁴⁰, so the sum of a cluster's points is exact in int64 whatever the order of addition: a sum
updated by only the points that moved equals one recomputed from scratch, on the CPU and on a GPU (atomic
additions of integers commute). A centroid is then ``float32(float64(sum) · 2⁻²⁴ / count)``, one fixed
formula.
"""

from __future__ import annotations

import torch

from ...errors import ParameterError

SCALE_BITS = 24
_INT64_ROOM = 2.0**62  # |sum| must stay below this (a margin under 2**63)


def check_sum_range(n: int, max_abs: float) -> None:
    """Raise when ``n`` values of magnitude up to ``max_abs`` could overflow an int64 fixed-point sum."""
    if n * max_abs * 2.0**SCALE_BITS >= _INT64_ROOM:
        raise ParameterError(
            "kmeans_precision",
            f"{n} rows with standardized values up to {max_abs:.3g} are too many for exact 16-bit centroid sums; "
            "use float32")


def fixed_point(x16: torch.Tensor) -> torch.Tensor:
    """Rows of 16-bit values as exact int64 multiples of 2⁻²⁴ (float32 holds them exactly; the scaling by a
    power of two is exact)."""
    return (x16.float() * 2.0**SCALE_BITS).to(torch.int64)


class CentroidSums:
    """Per-cluster int64 sums (K, D) and counts (K,) of the rows of ``x16`` (N, D), kept up to date as labels
    change: in the compiled kernel when given (``kernel``, CPU), else with torch, ``chunk`` rows converted at a
    time (8 bytes per value while converted)."""

    def __init__(self, x16: torch.Tensor, k: int, chunk: int = 4096, kernel=None) -> None:
        self.x16 = x16
        self.k = k
        self.chunk = chunk
        self.kernel = kernel if x16.device.type == "cpu" and x16.is_contiguous() else None
        self.sums = torch.zeros((k, x16.shape[1]), dtype=torch.int64, device=x16.device)
        self.counts = torch.zeros(k, dtype=torch.int64, device=x16.device)

    def _add(self, rows: torch.Tensor, labels: torch.Tensor, sign: int) -> None:
        if self.kernel is not None and sign > 0:
            self.kernel.sums_move(self.x16, rows, None, labels, self.sums)
            self.counts.index_add_(0, labels, torch.ones_like(labels))
            return
        for s in range(0, len(rows), self.chunk):
            r, lab = rows[s:s + self.chunk], labels[s:s + self.chunk]
            values = fixed_point(self.x16[r])
            self.sums.index_add_(0, lab, values if sign > 0 else values.neg_())
            self.counts.index_add_(0, lab, torch.full_like(lab, sign))

    def reset(self, rows: torch.Tensor, labels: torch.Tensor) -> None:
        """Sums of ``rows`` (indices into ``x16``) under ``labels`` from scratch."""
        self.sums.zero_()
        self.counts.zero_()
        self._add(rows, labels, 1)

    def move(self, rows: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> None:
        """Rows ``rows`` moved from clusters ``old`` to ``new``."""
        if not len(rows):
            return
        if self.kernel is not None:
            self.kernel.sums_move(self.x16, rows, old, new, self.sums)
            self.counts.index_add_(0, old, torch.full_like(old, -1))
            self.counts.index_add_(0, new, torch.ones_like(new))
            return
        self._add(rows, old, -1)
        self._add(rows, new, 1)

    def centroids(self, previous: torch.Tensor) -> torch.Tensor:
        """The means (K, D) float32 of non-empty clusters; an empty cluster keeps its row of ``previous``."""
        mean = (self.sums.double() * 2.0**-SCALE_BITS / self.counts.clamp_min(1).double().unsqueeze(1)).float()
        return torch.where((self.counts > 0).unsqueeze(1), mean, previous)
