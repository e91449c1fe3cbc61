"""Calibration of the chance-corrected comparison: same information, different cluster sizes (issue 19).

For each of ``--datasets`` generated datasets, two representations of the same ``--n`` images are evaluated on
the same concepts:

- ``balanced``: K well-separated Gaussian blobs of equal size;
- ``catch-all``: the same blobs, except that one holds ``--catch-all`` of the images (a catch-all cluster).

Which blob an image falls in is drawn independently of its concepts in both, so both representations carry
the same information about the concepts (none) while their cluster-size distributions differ: raw NMI (its
chance level grows as the test table gets uneven), top-1 (the majority cluster's share) and mAP differ, and
a comparison that ranks by raw scores finds "significant" differences that are cluster sizes only. The
concepts are a ``qrprobe.synthetic.make_concept_clusters`` bank (realistic frequencies), generated apart from
the blobs.

Reported per metric: the mean raw and corrected difference (catch-all − balanced), the share of datasets in
which the adjacent-pair rule calls the pair significant at 5% when ranking by the raw score (with the rule
"a raw gap no larger than the chance-level difference is never significant", and without it: the plain paired
test), and when ranking by the corrected score (the default), with the share of ties (both probes kept the
cluster prior: no test). Single-threaded torch.

    PYTHONPATH=src nice -n 5 python benchmarks/calibrate_corrected.py --datasets 200 --out corrected.npz
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from qrprobe.analysis.significance import adjacent_significance, paired_difference
from qrprobe.engine.evaluate import evaluate
from qrprobe.engine.stats.corrected import corrected_name
from qrprobe.synthetic import make_concept_clusters

METRICS = ("nmi", "top1", "map", "mi_bits")


def blobs(n: int, k: int, share: float | None, rng: np.random.Generator, dim: int = 8) -> np.ndarray:
    """(n, dim) features: K blobs 20 standard deviations apart; with ``share``, blob 0 holds that share."""
    if share is None:
        labels = rng.permutation(np.arange(n) % k)
    else:
        big = round(share * n)
        labels = rng.permutation(np.r_[np.zeros(big, int), 1 + np.arange(n - big) % (k - 1)])
    centres = rng.normal(size=(k, dim)) * 20.0
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32)


def run(args: argparse.Namespace) -> dict[str, np.ndarray]:
    kw = dict(k=args.k, clusterings=args.clusterings, iters=20, restarts=2, kmeans_init="k-means++",
              epochs=args.epochs, milestones=(args.epochs - 3, args.epochs - 1), device="cpu", null_repeats=0,
              bootstrap=args.replicates, progress=False)
    out: dict[str, list] = {key: [] for key in ("raw_diff", "corrected_diff", "raw_sig", "raw_sig_plain",
                                                "corrected_sig", "corrected_sig_plain", "corrected_tie", "kept_prior",
                                                "largest")}
    start = time.perf_counter()
    for d in range(args.datasets):
        rng = np.random.default_rng([d, 19])
        _, bank, _ = make_concept_clusters(args.n, dim=16, seed=d)
        res = {}
        for tag, share, seed in (("catch-all", args.catch_all, 0), ("balanced", None, 1000)):
            res[tag] = evaluate(blobs(args.n, args.k, share, rng), bank, seed=seed, name=tag, **kw)
        a, b = res["catch-all"], res["balanced"]
        row = {key: [] for key in out}
        for m in METRICS:
            c = corrected_name(m)
            row["raw_diff"].append(a.summary[m]["mean"] - b.summary[m]["mean"])
            row["corrected_diff"].append(a.summary[c]["mean"] - b.summary[c]["mean"])
            row["raw_sig_plain"].append(paired_difference(a, b, m).p_value < 0.05)
            row["corrected_sig_plain"].append(paired_difference(a, b, c).p_value < 0.05)
            for key, metric in (("raw_sig", m), ("corrected_sig", c)):
                # the pair in the order a ranking by this metric puts it (higher first)
                first = a.summary[metric]["mean"] >= b.summary[metric]["mean"]
                pair = [a, b] if first else [b, a]
                names = [r.name for r in pair]
                table = adjacent_significance(pair, names, names, metric)
                row[key].append(bool(table["significant"].iloc[0]))
                if key == "corrected_sig":
                    row["corrected_tie"].append(str(table["note"].iloc[0]).startswith("tie"))
        row["kept_prior"] = [len((r.statistics or {}).get("prior_kept", [])) / len(r.seeds) for r in (a, b)]
        row["largest"] = [float(np.mean([np.bincount(c).max() / len(c) for c in r.clusterings])) for r in (a, b)]
        for key in out:
            out[key].append(row[key])
        if (d + 1) % 10 == 0:
            print(f"{d + 1}/{args.datasets} datasets, {time.perf_counter() - start:.0f} s", flush=True)
    return {key: np.asarray(v) for key, v in out.items()}


def analyse(data: dict[str, np.ndarray]) -> list[str]:
    n = len(data["raw_diff"])
    lines = [f"{n} datasets; probes that kept the cluster prior: catch-all {data['kept_prior'][:, 0].mean():.0%}, "
             f"balanced {data['kept_prior'][:, 1].mean():.0%} of clusterings; largest cluster: catch-all "
             f"{data['largest'][:, 0].mean():.0%}, balanced {data['largest'][:, 1].mean():.0%} of the images", "",
             "| metric | raw diff | corrected diff | raw: plain test p<0.05 | raw: with the chance-gap rule | "
             "corrected: plain test p<0.05 | corrected (default) significant | corrected: ties |",
             "|---|---|---|---|---|---|---|---|"]
    for i, m in enumerate(METRICS):
        lines.append(f"| {m} | {data['raw_diff'][:, i].mean():+.3f} | {data['corrected_diff'][:, i].mean():+.3f} | "
                     f"{data['raw_sig_plain'][:, i].mean():.1%} | {data['raw_sig'][:, i].mean():.1%} | "
                     f"{data['corrected_sig_plain'][:, i].mean():.1%} | "
                     f"{data['corrected_sig'][:, i].mean():.1%} | {data['corrected_tie'][:, i].mean():.1%} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--n", type=int, default=800)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--catch-all", type=float, default=0.4, help="share of the images in the catch-all blob")
    parser.add_argument("--clusterings", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--out", default=None, help="save the raw arrays (.npz); --load reads them instead")
    parser.add_argument("--load", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.load:
        data = dict(np.load(args.load))
    else:
        data = run(args)
        if args.out:
            np.savez(args.out, **data)
    print("\n".join(analyse(data)))


if __name__ == "__main__":
    main()
