"""Exact Lloyd on 16-bit stored features, with Yinyang bounds and fast approximate distances.

Same iterations as :mod:`qrprobe.engine.kmeans.lloyd` (assign, stop at an exact fixed point, move centroids to their
means, re-seed empty clusters with the farthest points), but:

- assignments are the exact nearest centroids of the stored values (:mod:`qrprobe.engine.kmeans.bounds`):
  approximate distances from a fast product (:mod:`qrprobe.engine.kmeans.engines`) settle most points, and the
  few whose best two candidates are too close to call are recomputed in float64;
- points whose Yinyang bounds prove they keep their centroid cost no product at all, and a point that must be
  checked is multiplied only with the centroid groups that could hold a closer centroid;
- centroids are exact means: int64 sums updated by the points that moved (:mod:`qrprobe.engine.kmeans.sums`).

So the labels equal those of a plain float64 Lloyd on the same stored values from the same initial centroids,
on any device and whichever engine ran.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from .bounds import (
    down32,
    group_pairs,
    grow_,
    lower_dist,
    make_groups,
    one_thread,
    pick_lowest,
    shrink_,
    up32,
    upper_dist,
)
from .engines import Engine
from .sums import SCALE_BITS, CentroidSums

ROWS_PER_CALL = 32768  # rows per engine call: bounds the (rows × groups) outputs alive at once


@dataclass
class Stats:
    """Work done, for benchmarks: rows whose groups were multiplied, (row, group) products needed, rows settled
    exactly in float64, and (row, group) products computed (with the kernel's tile padding), per assignment
    pass."""

    rows_checked: list[int]
    pairs: list[int]
    exact_rows: list[int]
    padded: list[int]
    seconds: list[tuple[float, ...]]  # kernel only: thread-seconds on bounds, products, settling
    candidates: list[int]  # kernel only: candidates computed in float64


class BoundedLloyd:
    """Lloyd on the rows ``rows`` of ``x`` (stored 16-bit features, (N, D)) with the distance engine ``engine``.

    ``xsq`` (n,) float64: exact squared norms of those rows (computed once per data set by the caller);
    ``row_err`` (n,) float64: how far the engine rounds each row before multiplying (None: not at all).
    """

    def __init__(self, x: torch.Tensor, rows: torch.Tensor, xsq: torch.Tensor, engine: Engine, k: int,
                 row_err: torch.Tensor | None = None) -> None:
        self.x, self.rows, self.xsq, self.engine, self.k, self.row_err = x, rows, xsq, engine, k, row_err
        self.norm = xsq.sqrt()
        self.n = len(rows)
        self.stats = Stats([], [], [], [], [], [])

    # ------------------------------------------------------------------------------------ given centroids
    def assign_all(self, centroids: torch.Tensor) -> torch.Tensor:
        """The exact nearest centroid of every row of this run to ``centroids`` (K, D) float32, in one full
        pass: labels (n,) int64 (also kept in ``self.labels``, so that :meth:`inertia` follows)."""
        self.use_centroids(centroids)
        self._full()
        return self.labels

    def inertia_of(self, centroids: torch.Tensor, labels: torch.Tensor) -> float:
        """Sum over the rows of this run of the float64 squared distance to their centroid under ``labels``."""
        self.use_centroids(centroids)
        self.labels = labels
        return self.inertia()

    def use_centroids(self, centroids: torch.Tensor) -> None:
        """Take ``centroids`` (K, D) float32, grouped afresh (as at the start of :meth:`run`)."""
        self.slot_ids = make_groups(centroids, self.engine.width)
        self._set_centroids(centroids)

    # ------------------------------------------------------------------------------------ centroids
    def _set_centroids(self, centroids: torch.Tensor) -> None:
        self.c = centroids
        self.engine.set_centroids(centroids, self.slot_ids)
        self.csq64 = self.engine.csq64
        self.group_of = self.engine.group_of

    def exact_sq(self, local: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Float64 ``‖x‖² − 2 x·c + ‖c‖²`` of rows ``local`` (indices into this run's rows) to centroids ``ids``."""
        return self.xsq[local] - 2 * self.engine.exact_dots(self.rows[local], ids) + self.csq64[ids]

    # ------------------------------------------------------------------------------------ one decision
    def _decide(self, at: torch.Tensor, m1, ids, m2, done, own=None):
        """Settle rows ``at`` (indices into this run's rows) from group minima (n, G) and, in a bounded pass,
        their current centroid's value ``own = (value, error, label)``. Returns new labels, float64 upper
        bounds of their distances, and float64 lower bounds per computed group (inf elsewhere)."""
        xsq = self.xsq[at]
        err = self.engine.group_error(self.norm[at], None if self.row_err is None else self.row_err[at])
        inf = torch.tensor(math.inf, dtype=torch.float64, device=m1.device)
        v1 = torch.where(done, m1.double(), inf)
        v2 = torch.where(done, m2.double(), inf)
        r = torch.arange(len(at), device=m1.device)
        g_best = v1.argmin(1)
        best, best_err, label = v1[r, g_best], err[r, g_best], ids[r, g_best]
        if own is not None:
            own_v, own_err, own_lab = own[0].double(), own[1], own[2]
            take = own_v < best
            best, best_err, label = (torch.where(take, own_v, best), torch.where(take, own_err, best_err),
                                     torch.where(take, own_lab, label))
        reach = best + best_err  # the true best value is at most this
        first_low = v1 - err  # lower bound of each group's smallest value
        rest_low = v2 - err  # lower bound of every other member
        other_low = torch.where(ids == label.unsqueeze(1), rest_low, first_low)
        settled = (other_low > reach.unsqueeze(1)).all(1)
        if own is not None:
            settled &= (own_lab == label) | (own_v - own_err > reach)
        upper = upper_dist(xsq, best, best_err)
        unsure = torch.nonzero(~settled).flatten()
        if len(unsure):
            label, upper = self._exact(at, unsure, label, upper, reach, first_low, rest_low, ids, own)
        lows = torch.where(ids == label.unsqueeze(1), rest_low, first_low)  # every member but the label
        lower = torch.where(done, lower_dist(xsq.unsqueeze(1), lows, torch.zeros_like(lows)), inf)
        self.stats.exact_rows[-1] += len(unsure)
        return label, upper, lower

    def _exact(self, at, unsure, label, upper, reach, first_low, rest_low, ids, own):
        """Float64 argmin over every candidate within reach of rows ``unsure`` (local indices into ``at``)."""
        local = at[unsure]
        reach_u = reach[unsure].unsqueeze(1)
        whole = rest_low[unsure] <= reach_u  # groups whose second member is within reach: every member
        single = (first_low[unsure] <= reach_u) & ~whole  # only the group's smallest
        o_g, g_g = torch.nonzero(whole, as_tuple=True)
        o_s, g_s = torch.nonzero(single, as_tuple=True)
        every = torch.arange(len(unsure), device=at.device)
        w_owner, w_ids = group_pairs(self.slot_ids, self.engine.width, o_g, g_g)
        owners = [w_owner, o_s, every]
        cids = [w_ids, ids[unsure][o_s, g_s], label[unsure]]
        if own is not None:
            owners.append(every)
            cids.append(own[2][unsure])
        owner, cid = torch.cat(owners), torch.cat(cids)
        dist = self.exact_sq(local[owner], cid)
        scale = self.xsq[local][owner] + self.csq64[cid]
        chosen = pick_lowest(owner, cid, dist, scale, len(unsure))
        best = torch.full((len(unsure),), math.inf, dtype=torch.float64, device=at.device)
        best.scatter_reduce_(0, owner, dist.masked_fill(cid != chosen[owner], math.inf), reduce="amin")
        label, upper = label.clone(), upper.clone()
        label[unsure] = chosen
        upper[unsure] = (best + 1e-9 * (self.xsq[local] + self.csq64[chosen])).clamp_min(0).sqrt()
        return label, upper

    # ------------------------------------------------------------------------------------ assignment passes
    def _full(self) -> None:
        """Assign every row from scratch (all groups) and set its bounds."""
        self.labels = torch.empty(self.n, dtype=torch.int64, device=self.x.device)
        self.ub = torch.empty(self.n, dtype=torch.float32, device=self.x.device)
        self.lb = torch.empty((self.n, self.engine.groups), dtype=torch.float32, device=self.x.device)
        if self.engine.fused_pass:
            self._record(self.engine.assign_pass(self.rows, self.xsq, self.norm, self.row_err, self.labels, self.ub,
                                                 self.lb, None, None))
            return
        self.stats.rows_checked.append(self.n)
        self.stats.pairs.append(self.n * self.engine.groups)
        self.stats.padded.append(self.n * self.engine.groups)
        self.stats.exact_rows.append(0)
        for s in range(0, self.n, ROWS_PER_CALL):
            at = torch.arange(s, min(self.n, s + ROWS_PER_CALL), device=self.x.device)
            m1, ids, m2, done = self.engine.group_min2(self.rows[at], None)
            label, upper, lower = self._decide(at, m1, ids, m2, done)
            self.labels[at], self.ub[at], self.lb[at] = label, up32(upper), down32(lower)

    def _record(self, stats: torch.Tensor) -> None:
        checked, pairs, exact, padded, *ns, cand = (int(v) for v in stats)
        self.stats.seconds.append(tuple(t / 1e9 for t in ns))
        self.stats.candidates.append(cand)
        self.stats.rows_checked.append(checked)
        self.stats.pairs.append(pairs)
        self.stats.exact_rows.append(exact)
        self.stats.padded.append(padded)

    def _bounded(self, drift: torch.Tensor) -> torch.Tensor:
        """Assign after the centroids moved by ``drift`` (K,) float64; return the indices of rows that changed
        centroid (their previous labels in ``self.previous``)."""
        dev = self.x.device
        step = up32(drift)
        group_step = torch.zeros(self.engine.groups, dtype=torch.float32, device=dev)
        group_step.scatter_reduce_(0, self.group_of, step, reduce="amax")
        if self.engine.fused_pass:
            before = self.labels.clone()
            self._record(self.engine.assign_pass(self.rows, self.xsq, self.norm, self.row_err, self.labels, self.ub,
                                                 self.lb, step, group_step))
            moved = torch.nonzero(self.labels != before).flatten()
            self.previous = before[moved]
            return moved
        grow_(self.ub, step[self.labels])
        shrink_(self.lb, group_step)
        suspect = torch.nonzero(self.ub >= self.lb.min(1).values).flatten()
        checked, pairs = 0, 0
        self.stats.exact_rows.append(0)
        moved_parts, old_parts = [], []
        for s in range(0, len(suspect), ROWS_PER_CALL):
            at = suspect[s:s + ROWS_PER_CALL]
            lab = self.labels[at]
            own_v = self.engine.own(self.rows[at], lab)
            own_err = self.engine.own_error(self.norm[at], lab, None if self.row_err is None else self.row_err[at])
            self.ub[at] = up32(upper_dist(self.xsq[at], own_v, own_err))
            need = self.lb[at] <= self.ub[at].unsqueeze(1)
            keep = torch.nonzero(need.any(1)).flatten()
            if not len(keep):
                continue
            at, need, lab = at[keep], need[keep], lab[keep]
            own = (own_v[keep], own_err[keep], lab)
            m1, ids, m2, done = self.engine.group_min2(self.rows[at], need)
            checked += len(at)
            pairs += int(done.sum())
            label, upper, lower = self._decide(at, m1, ids, m2, done, own)
            lb = self.lb[at]
            lb = torch.where(done, down32(lower), lb)
            changed = label != lab
            if changed.any():
                # the old centroid is now one of the others of its group: keep that group's bound below it
                c_rows = torch.nonzero(changed & ~done[torch.arange(len(at), device=dev), self.group_of[lab]])
                c_rows = c_rows.flatten()
                g_old = self.group_of[lab[c_rows]]
                old_low = down32(lower_dist(self.xsq[at[c_rows]], own[0][c_rows], own[1][c_rows]))
                lb[c_rows, g_old] = torch.minimum(lb[c_rows, g_old], old_low)
                moved_parts.append(at[changed])
                old_parts.append(lab[changed])
            self.lb[at] = lb
            self.ub[at] = up32(upper)
            self.labels[at] = label
        self.stats.rows_checked.append(checked)
        self.stats.pairs.append(pairs)
        self.stats.padded.append(checked * self.engine.groups)  # torch multiplies whole rows
        moved = torch.cat(moved_parts) if moved_parts else torch.empty(0, dtype=torch.int64, device=dev)
        self.previous = torch.cat(old_parts) if old_parts else moved.clone()
        return moved

    # ------------------------------------------------------------------------------------ Lloyd
    def run(self, init: torch.Tensor, n_iter: int, bar=None,
            early_stop: float | None = None) -> tuple[torch.Tensor, int, int]:
        """Lloyd from ``init`` (K, D) float32. Returns the final centroids (K, D) float32, the iterations done
        and the number of empty clusters re-seeded; ``self.labels`` holds the final assignment.

        ``early_stop``: stop once an assignment lowers the objective (the sum of squared distances to the
        centroids it was made with) by at most this fraction of the previous one, keeping those centroids
        (faiss's ``early_stop_threshold``); None: only at an exact fixed point."""
        self.slot_ids = make_groups(init, self.engine.width)
        self._set_centroids(init.float())
        sums = CentroidSums(self.x, self.k, kernel=self.engine.kernel)
        n_reseeded, it, fixed = 0, 0, False
        previous_obj = math.inf
        drift: torch.Tensor  # set at the end of each iteration, read by the next
        for it in range(1, n_iter + 1):
            if it == 1:
                self._full()
                sums.reset(self.rows, self.labels)
            else:
                moved = self._bounded(drift)  # noqa: F821 - set at the end of the previous iteration
                if bar is not None:
                    bar.update(1)
                if not self._any_moved(moved):
                    fixed = True  # exact fixed point: centroids would not move again
                    break
                sums.move(self.rows[moved], self.previous, self.labels[moved])
            if it == 1 and bar is not None:
                bar.update(1)
            if early_stop is not None:
                with one_thread() if self.x.device.type == "cpu" else contextlib.nullcontext():  # K × D work
                    obj = self.objective(sums)
                if previous_obj < math.inf and previous_obj - obj <= early_stop * previous_obj:
                    fixed = True  # plateau: labels are the assignment to the current centroids, kept
                    break
                previous_obj = obj
            with one_thread() if self.x.device.type == "cpu" else contextlib.nullcontext():  # K × D work
                centroids, counts = self._means(sums)
                empty = torch.nonzero(counts == 0).flatten()
            if len(empty):
                # re-seed each empty cluster with one of the points farthest from its centroid
                centroids[empty] = self._farthest(len(empty))
                n_reseeded += len(empty)
            with one_thread() if self.x.device.type == "cpu" else contextlib.nullcontext():
                drift = (centroids.double() - self.c.double()).norm(dim=1)
                self._set_centroids(centroids)
        if bar is not None:
            bar.update(n_iter - it)
        if not fixed:
            self._bounded(drift)  # the assignment to the final centroids
        return self.c, it, n_reseeded

    # Steps that look at every row: overridden where the rows are spread over processes
    # (qrprobe.engine.kmeans.distributed.exact).
    def _any_moved(self, moved: torch.Tensor) -> bool:
        """Whether any row changed centroid (``moved``: the rows of this run that did)."""
        return bool(len(moved))

    def _means(self, sums: CentroidSums) -> tuple[torch.Tensor, torch.Tensor]:
        """The new centroids (K, D) float32 (an empty cluster keeps its centroid) and the counts (K,)."""
        return sums.centroids(self.c), sums.counts

    def _farthest(self, m: int) -> torch.Tensor:
        """The ``m`` rows farthest from their centroids (ties: the lower row), (m, D) float32."""
        far = torch.sort(self.own_sq_dist(), descending=True, stable=True).indices[:m]
        return self.x[self.rows[far]].float()

    def own_sq_dist(self, chunk: int = 1 << 20) -> torch.Tensor:
        """Float64 squared distance of every row to its centroid, (n,)."""
        return torch.cat([self.exact_sq(at, self.labels[at])
                          for at in torch.arange(self.n, device=self.x.device).split(chunk)])

    def objective(self, sums: CentroidSums) -> float:
        """Sum of squared distances of the rows to the current centroids under the current labels, from the
        cluster sums in O(K·D): Σ‖x‖² − 2 Σ_k c_k·S_k + Σ_k n_k ‖c_k‖² (float64; rounding about 1e-12 of
        Σ‖x‖², enough to detect a plateau — :meth:`inertia` is the exact figure)."""
        if not hasattr(self, "_xsq_total"):
            self._xsq_total = float(self.xsq.sum())
        s = sums.sums.double() * 2.0**-SCALE_BITS
        c = self.c.double()
        return self._xsq_total - 2 * float((c * s).sum()) + float((sums.counts.double() * (c * c).sum(1)).sum())

    def inertia(self) -> float:
        """Exact sum of squared distances of the rows to their centroids (float64)."""
        return float(self.own_sq_dist().sum())
