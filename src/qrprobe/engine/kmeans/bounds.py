"""Bounds of the exact 16-bit K-means: centroid groups, directed rounding, and deciding an assignment from
approximate distances with error bounds, exactly.

Yinyang bounds (Ding et al., ICML 2015, "Yinyang K-means"): centroids are split into G groups of nearby
centroids; each point keeps an upper bound ``ub`` on its distance to its own centroid and, per group, a lower
bound ``lb[g]`` on its distance to every other centroid of that group. When centroids move by ``δ_j``, ``ub``
grows by its centroid's ``δ`` and ``lb[g]`` shrinks by the group's largest ``δ`` (triangle inequality). A
group with ``lb[g] > ub`` cannot hold a closer centroid and is skipped; a point with every group skipped keeps
its centroid without any distance computed. Distances here are Euclidean (not squared).

The decision is exact: a point's nearest centroid is the exact argmin of ``‖x − c_j‖²`` over the stored
values, where distances within :data:`TIE_REL` · (‖x‖² + ‖c‖²) of the smallest are ties won by the lowest
centroid index.
Approximate values settle a point when the best candidate's upper bound is below every other candidate's
lower bound; otherwise the candidates within reach are recomputed in float64 (exact products, float64 sums)
and the smallest is taken (:func:`pick_lowest`).
"""

from __future__ import annotations

import math

import torch

TIE_REL = 1e-10  # float64 ‖x‖² − 2x·c + ‖c‖² over D ≤ 10⁵ errs by < 2.3e-11·(‖x‖² + ‖c‖²): below half of this
_SLACK = 1e-9  # relative slack for float64 evaluation of bounds


# ------------------------------------------------------------------------------------------ directed rounding
def down32(t: torch.Tensor) -> torch.Tensor:
    """float32 values ≤ the non-negative float64 ``t``."""
    return (t * (1 - 2.0**-20)).float()


def up32(t: torch.Tensor) -> torch.Tensor:
    """float32 values ≥ the non-negative float64 ``t``."""
    return (t * (1 + 2.0**-20)).float()


def shrink_(lb: torch.Tensor, by: torch.Tensor) -> None:
    """``lb ← max(lb − by, 0)`` in float32, rounded down (``by`` already rounded up)."""
    lb.sub_(by).mul_(1 - 2.0**-22).clamp_min_(0)  # (1 + u)²(1 − 2⁻²²) < 1 covers the two roundings


def grow_(ub: torch.Tensor, by: torch.Tensor) -> None:
    """``ub ← ub + by`` in float32, rounded up."""
    ub.add_(by).mul_(1 + 2.0**-22)


def lower_dist(xsq: torch.Tensor, v: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    """float64 lower bound of ‖x − c‖ from ‖x‖² (float64), v ≈ ‖c‖² − 2x·c and its error bound."""
    v = v.double()
    d2 = xsq + v - err
    return (d2 - _SLACK * (xsq + v.abs() + err)).clamp_min(0).sqrt()


def upper_dist(xsq: torch.Tensor, v: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    v = v.double()
    d2 = xsq + v + err
    return (d2 + _SLACK * (xsq + v.abs() + err)).clamp_min(0).sqrt()


class one_thread:
    """Within: torch's CPU operations on one thread (for many small operations, where a second thread only
    adds synchronisation, and stalls when the machine is busy); the setting is restored after."""

    def __enter__(self) -> None:
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.before)


# ------------------------------------------------------------------------------------------ groups
def _bisect(c: torch.Tensor, ids: torch.Tensor, n_groups: int, out: list[torch.Tensor]) -> None:
    if n_groups == 1:
        out.append(ids)
        return
    pts = c[ids] - c[ids].mean(0)
    direction = pts[torch.argmax((pts * pts).sum(1))].clone()  # power iteration from the farthest point
    for _ in range(4):
        direction = pts.T @ (pts @ direction)
        direction /= direction.norm().clamp_min(1e-30)
    order = torch.argsort(pts @ direction, stable=True)
    left = n_groups // 2
    cut = round(len(ids) * left / n_groups)
    _bisect(c, ids[order[:cut]], left, out)
    _bisect(c, ids[order[cut:]], n_groups - left, out)


def make_groups(centroids: torch.Tensor, width: int) -> torch.Tensor:
    """Split K centroids into G = ⌈K / width⌉ groups of at most ``width`` nearby centroids, by halving the set
    along its principal direction (balanced, deterministic). Returns slot → centroid id, (G·width,) int64,
    −1 for padding. Only speed depends on the grouping, never the result."""
    k = centroids.shape[0]
    groups = math.ceil(k / width)
    parts: list[torch.Tensor] = []
    with one_thread():  # many tiny products: threads only wait on each other
        _bisect(centroids.float().cpu(), torch.arange(k), groups, parts)
    slots = torch.full((groups * width,), -1, dtype=torch.int64)
    for g, ids in enumerate(parts):
        slots[g * width:g * width + len(ids)] = torch.sort(ids).values
    return slots.to(centroids.device)


def group_pairs(slot_ids: torch.Tensor, width: int, owner: torch.Tensor, group: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Expand (owner, group) pairs into (owner, centroid id) pairs over each group's real members."""
    ids = slot_ids[group.unsqueeze(1) * width + torch.arange(width, device=group.device)]
    real = ids >= 0
    return owner.unsqueeze(1).expand_as(ids)[real], ids[real]


# ------------------------------------------------------------------------------------------ exact choice
def pick_lowest(owner: torch.Tensor, ids: torch.Tensor, dist: torch.Tensor, scale: torch.Tensor,
                n: int) -> torch.Tensor:
    """Per owner 0…n−1, the id of the smallest ``dist`` among its pairs; distances within
    ``TIE_REL · scale`` (scale = ‖x‖² + ‖c‖², what float64 rounding is relative to) of the smallest are ties,
    won by the lowest id. Every owner must have a pair. Returns (n,) int64."""
    best = torch.full((n,), math.inf, dtype=torch.float64, device=dist.device)
    best.scatter_reduce_(0, owner, dist, reduce="amin")
    tied = dist <= best[owner] + TIE_REL * scale
    chosen = torch.full((n,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=dist.device)
    chosen.scatter_reduce_(0, owner[tied], ids[tied], reduce="amin")
    return chosen
