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
lower bound; otherwise the candidates within reach are recomputed in float64 (:func:`exact_sq_dist`).
"""

from __future__ import annotations

import math

import numpy as np
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


# ------------------------------------------------------------------------------------------ groups
def make_groups(centroids: torch.Tensor, width: int, seed: int = 0, n_iter: int = 5) -> torch.Tensor:
    """Split K centroids into G = ⌈K / width⌉ groups of at most ``width`` nearby centroids (a few rounds of
    capacity-constrained K-means on the centroids). Returns slot → centroid id, (G·width,) int64, −1 for
    padding. Only speed depends on the grouping, never the result."""
    k = centroids.shape[0]
    groups = math.ceil(k / width)
    c = centroids.float().cpu()
    rng = np.random.default_rng(seed)
    centres = c[torch.from_numpy(rng.choice(k, groups, replace=False))].clone()
    member = torch.zeros(k, dtype=torch.int64)
    for _ in range(n_iter):
        dist = torch.cdist(c, centres)  # (K, G)
        order = torch.argsort(dist.flatten(), stable=True)
        member.fill_(-1)
        room = torch.full((groups,), width, dtype=torch.int64)
        placed = 0
        for flat in order.tolist():  # greedy: closest (centroid, group) pairs first, while the group has room
            j, g = divmod(flat, groups)
            if member[j] < 0 and room[g] > 0:
                member[j] = g
                room[g] -= 1
                placed += 1
                if placed == k:
                    break
        for g in range(groups):
            mine = member == g
            if mine.any():
                centres[g] = c[mine].mean(0)
    slots = torch.full((groups * width,), -1, dtype=torch.int64)
    for g in range(groups):
        ids = torch.nonzero(member == g).flatten()
        slots[g * width:g * width + len(ids)] = ids
    return slots.to(centroids.device)


# ------------------------------------------------------------------------------------------ exact distances
def exact_sq_dist(x: torch.Tensor, rows: torch.Tensor, centroids: torch.Tensor, ids: torch.Tensor,
                  chunk: int = 4096) -> torch.Tensor:
    """Float64 ``‖x_row − c_id‖²`` summed from the differences, for pairs (rows[i], ids[i]): (m,) float64.
    Used for inertia and for ranking points by distance (re-seeding)."""
    out = torch.empty(len(rows), dtype=torch.float64, device=x.device)
    for s in range(0, len(rows), chunk):
        diff = x[rows[s:s + chunk]].double() - centroids[ids[s:s + chunk]].double()
        out[s:s + chunk] = (diff * diff).sum(1)
    return out


def exact_pair_dist(x: torch.Tensor, rows: torch.Tensor, xsq: torch.Tensor, c64: torch.Tensor,
                    csq: torch.Tensor, owner: torch.Tensor, ids: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Float64 ``‖x‖² − 2 x·c + ‖c‖²`` for pairs (rows[owner[i]], ids[i]), as :func:`exact_group_dist`."""
    out = torch.empty(len(owner), dtype=torch.float64, device=x.device)
    for s in range(0, len(owner), chunk):
        o, j = owner[s:s + chunk], ids[s:s + chunk]
        out[s:s + chunk] = xsq[o] - 2 * (x[rows[o]].double() * c64[j]).sum(1) + csq[j]
    return out


def exact_group_dist(x: torch.Tensor, rows: torch.Tensor, xsq: torch.Tensor, owner: torch.Tensor,
                     group: torch.Tensor, slots64: torch.Tensor, slot_csq: torch.Tensor, slot_ids: torch.Tensor,
                     width: int, chunk: int = 2048) -> tuple[torch.Tensor, ...]:
    """Float64 ``‖x − c‖²`` (as ‖x‖² − 2 x·c + ‖c‖²) of each (owner, group) pair's row against every centroid of
    the group. ``owner`` indexes ``rows``/``xsq``; slots64 (G·W, D) float64. Returns flat (owner, id, dist)."""
    owners, ids, dists = [], [], []
    for g in torch.unique(group).tolist():
        mine = owner[group == g]
        c = slots64[g * width:(g + 1) * width]
        real = slot_ids[g * width:(g + 1) * width] >= 0
        for s in range(0, len(mine), chunk):
            o = mine[s:s + chunk]
            d = xsq[o].unsqueeze(1) - 2 * (x[rows[o]].double() @ c.T) + slot_csq[g * width:(g + 1) * width]
            owners.append(o.unsqueeze(1).expand_as(d)[:, real].flatten())
            ids.append(slot_ids[g * width:(g + 1) * width][real].expand(len(o), -1).flatten())
            dists.append(d[:, real].flatten())
    if not owners:
        empty = torch.empty(0, dtype=torch.int64, device=x.device)
        return empty, empty, torch.empty(0, dtype=torch.float64, device=x.device)
    return torch.cat(owners), torch.cat(ids), torch.cat(dists)


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
