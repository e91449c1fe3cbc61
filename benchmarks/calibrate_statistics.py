"""Calibration of qrprobe's intervals and paired tests on generated data (figures in benchmarks/RESULTS.md).

For each of ``--datasets`` independent datasets (``qrprobe.synthetic.make_concept_clusters``, new images and
concepts each time) three results are computed on the same images and concepts:

- ``A``: the features, clustering seeds 0 … R-1;
- ``A2``: the same features, seeds 1000 …: an *identical representation* (a difference is seed noise only);
- ``P``: the features of a share ``--planted`` of the images permuted among themselves, seeds 2000 …: a
  representation that is worse by construction (those images' clusters no longer follow their concepts).

Reported per metric and per variance rule: the false-positive rate of the paired test A vs A2 at the 5% level
(nominal 0.05), its power for A vs P, the coverage of A's 95% interval of the expected score (estimated by
the mean over all datasets of A and A2), and the ratio of the mean estimated standard error to the spread of
A's score across datasets. Rules: ``qrprobe`` (the library's), ``seeds-only`` (a t-test over the R per-
clustering values, no image bootstrap) and ``two-level`` (percentile bootstrap resampling the clusterings and
the images together, the naive design). Single-threaded torch (a loaded 2-core machine otherwise spends most
of its time in thread contention).

    PYTHONPATH=src python benchmarks/calibrate_statistics.py --datasets 200 --out calib.npz
    PYTHONPATH=src python benchmarks/calibrate_statistics.py --datasets 200 --noise 0.5 --k 32 --restarts 3 \
        --drop-groups Scene
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from qrprobe.engine.evaluate import evaluate
from qrprobe.engine.stats.bootstrap import REPLICATE_METRICS
from qrprobe.engine.stats.uncertainty import difference_estimate, mean_estimate
from qrprobe.synthetic import make_concept_clusters

METRICS = ("nmi", "ami", "top1", "map", "mi_bits")


def run(args: argparse.Namespace) -> dict[str, np.ndarray]:
    kw = dict(k=args.k, clusterings=args.clusterings, iters=20, restarts=args.restarts, epochs=args.epochs,
              milestones=(args.epochs - 3, args.epochs - 1), device="cpu", null_repeats=0,
              bootstrap=args.replicates)
    idx = [REPLICATE_METRICS.index(m) for m in METRICS]
    store = {f"{w}_{p}": [] for w in ("A", "A2", "P") for p in ("values", "reps")}
    for d in range(args.datasets):
        x, bank, _ = make_concept_clusters(args.n, dim=32, noise=args.noise, seed=d)
        if args.drop_groups:
            bank = bank.drop_groups(args.drop_groups.split(","))
        rng = np.random.default_rng([d, 7])
        rows = rng.choice(args.n, int(args.planted * args.n), replace=False)
        planted = x.copy()
        planted[rows] = x[rng.permutation(rows)]
        for tag, feats, seed in (("A", x, 0), ("A2", x, 1000), ("P", planted, 2000)):
            res = evaluate(feats, bank, seed=seed, **kw)
            store[f"{tag}_values"].append([res.summary[m]["values"] for m in METRICS])
            store[f"{tag}_reps"].append(np.asarray(res.replicates)[:, idx, :].transpose(1, 0, 2))
        if (d + 1) % 10 == 0:
            print(f"{d + 1}/{args.datasets} datasets", flush=True)
    return {k: np.asarray(v) for k, v in store.items()}  # values (D, metrics, R); reps (D, metrics, R, B)


# ---------------------------------------------------------------------------------------- the rules compared
def seeds_only(va, vb):
    """Welch t-test / t-interval over the per-clustering values (no image bootstrap)."""
    from scipy import stats

    if vb is None:
        mean, se, df = va.mean(), va.std(ddof=1) / np.sqrt(len(va)), len(va) - 1
    else:
        sa, sb = va.var(ddof=1) / len(va), vb.var(ddof=1) / len(vb)
        mean, se = va.mean() - vb.mean(), np.sqrt(sa + sb)
        df = (sa + sb) ** 2 / (sa**2 / (len(va) - 1) + sb**2 / (len(vb) - 1))
    q = stats.t.ppf(0.975, df)
    p = 2 * stats.t.sf(abs(mean) / se, df) if se > 0 else 1.0
    return mean - q * se, mean + q * se, p, se


def two_level(va, xa, vb, xb, seed=0):
    """Percentile bootstrap: replicate b takes R clusterings with replacement and the images' weights b."""
    r, b = xa.shape
    draws = np.random.default_rng(seed).integers(0, r, (b, r))
    cols = np.arange(b)[:, None]
    ta = xa[draws, cols].mean(axis=1)
    t = ta if xb is None else ta - xb[draws, cols].mean(axis=1)
    low, high = np.percentile(t, [2.5, 97.5])
    p = min(1.0, 2 * min(np.mean(t <= 0), np.mean(t >= 0)))
    return low, high, p, t.std(ddof=1)


def library(va, xa, vb, xb):
    est = mean_estimate(va, xa) if vb is None else difference_estimate(va, xa, vb, xb, shared_clusterings=False)
    return est.ci_low, est.ci_high, est.p_value, est.se


RULES = {"qrprobe": library, "seeds-only": lambda va, xa, vb, xb: seeds_only(va, vb), "two-level": two_level}


def analyse(data: dict[str, np.ndarray]) -> list[str]:
    lines = ["| metric | rule | FPR A vs A2 (5%) | power A vs P | coverage of A's 95% CI "
             "| mean se / sd across datasets |", "|---|---|---|---|---|---|"]
    n = data["A_values"].shape[0]
    for i, m in enumerate(METRICS):
        truth = np.concatenate([data["A_values"][:, i].mean(axis=1), data["A2_values"][:, i].mean(axis=1)]).mean()
        spread = data["A_values"][:, i].mean(axis=1).std(ddof=1)
        for name, rule in RULES.items():
            fp = power = cover = 0
            ses = []
            for d in range(n):
                va, xa = data["A_values"][d, i], data["A_reps"][d, i]
                low, high, _, se = rule(va, xa, None, None)
                cover += low <= truth <= high
                ses.append(se)
                fp += rule(va, xa, data["A2_values"][d, i], data["A2_reps"][d, i])[2] < 0.05
                power += rule(va, xa, data["P_values"][d, i], data["P_reps"][d, i])[2] < 0.05
            lines.append(f"| {m} | {name} | {fp / n:.3f} | {power / n:.3f} | {cover / n:.3f} | "
                         f"{np.mean(ses) / spread:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--noise", type=float, default=2.0, help="feature noise of the generated data")
    parser.add_argument("--restarts", type=int, default=1)
    parser.add_argument("--drop-groups", default="", help="concept groups left out (e.g. Scene: the probe cannot "
                        "tell the clusters of one object apart, test sampling dominates the variance)")
    parser.add_argument("--clusterings", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--planted", type=float, default=0.15, help="share of images whose features are permuted")
    parser.add_argument("--out", default=None, help="save the raw arrays (.npz); --load reads them instead")
    parser.add_argument("--load", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.load:
        data = dict(np.load(args.load))
    else:
        start = time.perf_counter()
        data = run(args)
        print(f"{args.datasets} datasets × 3 results in {time.perf_counter() - start:.0f} s")
        if args.out:
            np.savez_compressed(args.out, **data)
    print(f"N={args.n}, K={args.k}, noise={args.noise}, restarts={args.restarts}, dropped groups "
          f"{args.drop_groups or 'none'}, R={args.clusterings}, B={args.replicates}, "
          f"planted share {args.planted}, {data['A_values'].shape[0]} datasets")
    print("\n".join(analyse(data)))


if __name__ == "__main__":
    main()
