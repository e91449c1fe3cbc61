"""The interface of a distance engine of the exact 16-bit K-means, and the error bound every engine proves.

An engine holds the current centroids arranged in G groups of W slots (a group is a set of nearby centroids;
padding slots never win) and answers, for listed rows x of the stored features,

- ``group_min2(rows, need)``: per (row, needed group) the smallest and second-smallest ``v_j = ‖c_j‖² − 2 x·c_j``
  over the group and the centroid of the smallest (so ``‖x − c_j‖² = ‖x‖² + v_j``);
- ``own(rows, labels)``: ``v`` for one given centroid per row;
- ``group_error(norms)`` / ``own_error(norms, labels)``: bounds E with ``|v_computed − v_exact| ≤ E``;
- ``exact_dots(rows, ids)``: float64 ``x·c`` (exact products, float64 sums) for the rows the bounds leave
  undecided.

The bound: with x̂ the row as the engine multiplies it, ĉ the centroid rounded to the engine's input type, and
accumulation in floating point of unit roundoff u over D products,
    |x·c − fl(x̂·ĉ)| ≤ ‖x‖·‖c − ĉ‖ + ‖x − x̂‖·‖ĉ‖ + γ_D·‖x̂‖·‖ĉ‖          (Cauchy–Schwarz; γ_D = D·u / (1 − D·u))
plus the float32 rounding of ‖c‖² and of ‖c‖² − 2 x·ĉ, so E = ‖x‖·A_j + ‖x − x̂‖·C_j + B_j per centroid j (per
group: the largest A, C and B of its members). :class:`Engine` computes A, B and C from two answers of the
engine, :meth:`Engine.gamma` (γ of its accumulation) and :meth:`Engine.rounded` (ĉ), and
:meth:`Engine.row_error` (‖x − x̂‖, None where the rows are multiplied as stored).

This bound is what keeps the labels exact: :class:`~qrprobe.engine.kmeans.exact.BoundedLloyd` settles a row from
an engine's values only when its best candidate beats every other by more than their bounds, and recomputes the
rest in float64. A bound that is too small somewhere gives wrong labels; one too large only sends more rows to the
float64 check. The engines themselves are listed, with where they can run, in :mod:`qrprobe.engine.kmeans.engines`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

U32 = 2.0**-24  # unit roundoff of float32
CUDA_U = 2.0**-22  # assumed per-addition error of tensor-core float32 accumulation (4× float32's, a margin)
_TINY = 2.0**-100  # products and partial sums flushed to zero by the hardware (DAZ/FTZ), summed over D


def gamma(n: int, u: float = U32) -> float:
    """γ_n = n·u / (1 − n·u): relative error bound of a sum of n products accumulated in floating point."""
    return n * u / (1 - n * u)


class Engine:
    """Common state: slots (G·W) → centroid ids (−1 for padding), per-slot error coefficients.

    A new engine implements :meth:`gamma`, :meth:`rounded`, :meth:`_prepare`, :meth:`group_min2` and :meth:`own`
    (and :meth:`row_error` if it rounds the stored rows before multiplying); everything else is shared.
    """

    #: The compiled library the engine runs on, which the exact centroid sums then use too (None: torch sums).
    kernel: Any = None
    #: Whether the engine runs whole assignment passes itself (``assign_pass``, the compiled kernel).
    fused_pass = False

    def __init__(self, x: torch.Tensor, width: int) -> None:
        self.x = x
        self.width = width
        self.device = x.device

    # -- centroids
    def set_centroids(self, centroids: torch.Tensor, slot_ids: torch.Tensor) -> None:
        """Take ``centroids`` (K, D) float32 arranged by ``slot_ids`` (G·W,) int64 (−1: padding)."""
        self.k = centroids.shape[0]
        self.slot_ids = slot_ids
        self.groups = len(slot_ids) // self.width
        self.slot_of = torch.empty(self.k, dtype=torch.int64, device=slot_ids.device)
        real = slot_ids >= 0
        self.slot_of[slot_ids[real]] = torch.nonzero(real).flatten()
        self.group_of = torch.div(self.slot_of, self.width, rounding_mode="floor")
        c64 = centroids.double()
        self.c32 = centroids.contiguous()
        self.c64 = c64
        self.csq64 = (c64 * c64).sum(1)  # (K,)
        rounded = self.rounded(centroids).double()
        c_err = (c64 - rounded).norm(dim=1)
        c_norm = rounded.norm(dim=1)
        g = self.gamma()
        # E = ‖x‖·A + ‖x − x̂‖·C + B: centroid rounding, row rounding and accumulation (×2 for
        # v = ‖c‖² − 2 x·c, with ‖x̂‖ ≤ ‖x‖ + ‖x − x̂‖), the float32 rounding of ‖c‖² and of the subtraction, and
        # flushed subnormals
        self.coef_a = 2 * (c_err + g * c_norm) + 4 * U32 * c_norm
        self.coef_c = 2 * (1 + g) * c_norm + 4 * U32 * c_norm
        self.coef_b = 2 * U32 * self.csq64 + 2 * _TINY * centroids.shape[1]
        self.group_a, self.group_c, self.group_b = (self._group_max(v, slot_ids)
                                                    for v in (self.coef_a, self.coef_c, self.coef_b))
        self._prepare(centroids)

    def _group_max(self, per_centroid: torch.Tensor, slot_ids: torch.Tensor) -> torch.Tensor:
        per_slot = torch.zeros(len(slot_ids), dtype=torch.float64, device=slot_ids.device)
        real = slot_ids >= 0
        per_slot[real] = per_centroid[slot_ids[real]]
        return per_slot.view(self.groups, self.width).amax(1)

    def row_error(self, x: torch.Tensor) -> torch.Tensor | None:
        """‖x − x̂‖ per row of stored rows ``x`` where the engine rounds them before multiplying, else None."""
        return None

    def group_error(self, norms: torch.Tensor, row_err: torch.Tensor | None = None) -> torch.Tensor:
        """(n, G) float64 bound on the error of ``group_min2`` values for rows of norm ``norms`` (n,) float64
        and rounding error ``row_err`` (n,) (None: the engine multiplies the rows exactly)."""
        e = norms.unsqueeze(1) * self.group_a + self.group_b
        return e if row_err is None else e + row_err.unsqueeze(1) * self.group_c

    def own_error(self, norms: torch.Tensor, labels: torch.Tensor, row_err: torch.Tensor | None = None
                  ) -> torch.Tensor:
        """(n,) float64 bound on the error of ``own`` values."""
        e = norms * self.coef_a[labels] + self.coef_b[labels]
        return e if row_err is None else e + row_err * self.coef_c[labels]

    def centroid_ids(self, slots: torch.Tensor) -> torch.Tensor:
        return self.slot_ids[slots.long()]

    # -- to implement
    def gamma(self) -> float:
        raise NotImplementedError

    def rounded(self, centroids: torch.Tensor) -> torch.Tensor:
        """The centroids as the engine multiplies them (rounded to its input type), float32."""
        raise NotImplementedError

    def _prepare(self, centroids: torch.Tensor) -> None:
        raise NotImplementedError

    def group_min2(self, rows: torch.Tensor, need: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """``m1, ids, m2, done``: (n, G) float32, int64 centroid ids, float32, bool (groups computed)."""
        raise NotImplementedError

    def own(self, rows: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``v`` of one given centroid per row: (n,) float32 for rows ``rows`` and centroid ids ``labels``."""
        raise NotImplementedError

    def assign_pass(self, rows: torch.Tensor, xsq: torch.Tensor, norm: torch.Tensor, row_err: torch.Tensor | None,
                    labels: torch.Tensor, ub: torch.Tensor, lb: torch.Tensor, drift: torch.Tensor | None,
                    group_drift: torch.Tensor | None) -> torch.Tensor:
        """Only where :attr:`fused_pass`: a whole assignment pass, labels and bounds updated in place."""
        raise NotImplementedError

    def exact_dots(self, rows: torch.Tensor, ids: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """``x_row · c_id`` in float64 for pairs (rows[i], ids[i]) of stored rows and current centroids: exact
        products, float64 sums. (m,) float64."""
        out = torch.empty(len(rows), dtype=torch.float64, device=self.device)
        for s in range(0, len(rows), chunk):
            out[s:s + chunk] = (self.x[rows[s:s + chunk]].double() * self.c64[ids[s:s + chunk]]).sum(1)
        return out


def slot_matrix(centroids: torch.Tensor, slot_ids: torch.Tensor, width_d: int) -> torch.Tensor:
    """(G·W, width_d) float32: the centroid of each slot (zero rows for padding, zero columns beyond D)."""
    out = torch.zeros((len(slot_ids), width_d), dtype=torch.float32, device=centroids.device)
    real = slot_ids >= 0
    out[real, :centroids.shape[1]] = centroids[slot_ids[real]]
    return out


def slot_csq(csq64: torch.Tensor, slot_ids: torch.Tensor) -> torch.Tensor:
    """(G·W,) float32: ‖c‖² of each slot's centroid (inf for padding, which then never wins)."""
    out = torch.full((len(slot_ids),), math.inf, dtype=torch.float32, device=slot_ids.device)
    real = slot_ids >= 0
    out[real] = csq64[slot_ids[real]].float()
    return out


__all__ = ["CUDA_U", "U32", "Engine", "gamma", "slot_csq", "slot_matrix"]
