"""Cheaper K-means schedules and what they cost in inertia, over seeds: the objective-plateau early stop
(``kmeans_early_stop``) and the restart screen (``kmeans_restart_screen``: every restart runs T iterations, only
the best goes on) against the paper's schedule (fixed iterations, stopping only at an exact fixed point).

For each seed, one clustering of ``--restarts`` restarts (the lowest inertia kept, as the protocol) per setting,
on one shared 16-bit copy (or ``--precision float32``) of generated features (:func:`qrprobe.synthetic.
mixture_blocks`, as ``bench_kmeans.py``), side by side in one process. Printed per setting: seconds, Lloyd
iterations of the kept restart, and the final inertia relative to the paper's schedule (mean, worst over seeds).

Usage::

    python benchmarks/bench_kmeans_schedule.py --n 20000 --dim 512 --k 200 --seeds 5 --restarts 5
    python benchmarks/bench_kmeans_schedule.py --thresholds none --screens 5,10,20
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

from qrprobe.engine.kmeans.quantize import KMeans, Stored
from qrprobe.engine.kmeans.standardize import Standardizer, standardized_copy
from qrprobe.synthetic import mixture_blocks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--restarts", type=int, default=5)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--precision", default="float16", choices=("float16", "bfloat16", "float32"))
    p.add_argument("--thresholds", default="none,0,1e-4,1e-3", help="kmeans_early_stop values (none: off)")
    p.add_argument("--screens", default="", help="kmeans_restart_screen values T, each a setting of its own")
    p.add_argument("--data", metavar="NPY", help="features from this .npy file (memory-mapped; e.g. the one "
                   "bench_kmeans.py caches) instead of generated ones; --n and --dim then follow the file")
    args = p.parse_args()
    if args.data:
        raw = np.load(args.data, mmap_mode="r")
        args.n, args.dim = raw.shape
    else:
        raw = np.concatenate([x for _, x, _ in mixture_blocks(args.n, args.dim, 0)])
    std = Standardizer().fit(raw)
    stored = Stored(standardized_copy(raw, std, args.precision, "cpu"), args.precision)
    settings: list[tuple[str, dict]] = [
        ("off" if t == "none" else f"early stop {t}", {"kmeans_early_stop": None if t == "none" else float(t)})
        for t in args.thresholds.split(",") if t]
    settings += [(f"restart screen {t}", {"kmeans_restart_screen": int(t)}) for t in args.screens.split(",") if t]
    print(f"N={args.n} D={args.dim} K={args.k} restarts={args.restarts} seeds={args.seeds} "
          f"precision={args.precision}; load {os.getloadavg()[0]:.1f}")
    rows: dict = {label: {"s": [], "it": [], "inertia": []} for label, _ in settings}
    for seed in range(args.seeds):
        order = settings if seed % 2 == 0 else settings[::-1]  # alternate, so load drift hits all alike
        for label, options in order:
            t = time.perf_counter()
            km = KMeans(args.k, iters=args.iters, restarts=args.restarts, seed=seed, device="cpu",
                        **options).fit_stored(stored)
            rows[label]["s"].append(time.perf_counter() - t)
            rows[label]["it"].append(km.result_.n_iter)
            rows[label]["inertia"].append(km.inertia_)
    first = settings[0][0]
    base = np.array(rows[first]["inertia"])
    base_s = sum(rows[first]["s"])
    print("| setting | seconds (all seeds) | time / first setting | iterations of kept restart (mean) | "
          "inertia vs first setting: mean | worst |")
    print("|---|---|---|---|---|---|")
    for label, _ in settings:
        r = rows[label]
        rel = np.array(r["inertia"]) / base - 1
        print(f"| {label} | {sum(r['s']):.1f} | {sum(r['s']) / base_s:.2f} | "
              f"{np.mean(r['it']):.1f} | {rel.mean():+.4%} | {rel.max():+.4%} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"load after: {os.getloadavg()[0]:.1f}; peak RSS {peak:.2f} GiB")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
