"""Cost of the statistics at large N: scoring with the mAP influence, the bootstrap replicates, and what the
exact alternatives would cost (figures in benchmarks/RESULTS.md).

For one clustering's test split of ``n`` images and ``K`` clusters (a probe output drawn at random, the
true cluster favoured), measured side by side in one run:

- ``score``: the point metrics as before (``score_predictions`` without the influence: NMI, AMI, top-1, mAP,
  MI) against ``score_details`` (the same plus every image's mAP influence, one pass), medians of
  ``--rounds`` alternating rounds;
- ``replicates``: ``split_replicates`` for ``B`` replicates (hash weights, weighted contingency tables,
  weighted means, linearised mAP);
- the exact alternatives, timed on a few replicates / classes and extrapolated linearly to all of them:
  weighted mAP (a cumulative sum over every class's full ranking per replicate) and AMI with its expected
  mutual information recomputed per replicate.

    PYTHONPATH=src python benchmarks/bench_statistics.py --n 20000 100000 256000 --k 1000 --replicates 200
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from qrprobe import metrics
from qrprobe.engine.stats.bootstrap import image_keys, poisson_weights, split_replicates
from qrprobe.synthetic import make_probe_output


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def old_scores(y, lp):
    """The point metrics without the influence (what score_predictions computed before the statistics)."""
    pred = lp.argmax(axis=1)
    return (metrics.normalized_mutual_info(y, pred), metrics.adjusted_mutual_info(y, pred),
            metrics.top1_accuracy(y, pred), metrics.mean_average_precision(y, lp),
            metrics.cross_entropy_bits(y, lp))


def exact_weighted_map_seconds(y, lp, w, classes: int) -> float:
    """Seconds of the exact weighted AP of ``classes`` classes under every replicate in ``w`` (n, b)."""
    start = time.perf_counter()
    for c in range(classes):
        order = np.argsort(-lp[:, c], kind="mergesort")
        hits = (y[order] == c)[:, None]
        ww = w[order].astype(np.float64)
        tp = np.cumsum(ww * hits, axis=0)
        total = np.cumsum(ww, axis=0)
        _ = (ww * hits * tp / np.maximum(total, 1)).sum(axis=0) / np.maximum((ww * hits).sum(axis=0), 1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of before / with influence")
    args = parser.parse_args()
    b = args.replicates
    print("| n test | K | score (before) s | score + influence s | ratio | replicates (B) s | exact weighted mAP, "
          "extrapolated s | exact AMI per replicate, extrapolated s | peak RSS GiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.n:
        y, lp = make_probe_output(n, args.k)
        olds, news = [], []
        for _ in range(args.rounds):  # alternate, so that a change of load hits both
            olds.append(timed(old_scores, y, lp)[0])
            t, (scores, details) = timed(metrics.score_details, y, lp)
            news.append(t)
        t_old, t_new = float(np.median(olds)), float(np.median(news))
        keys = image_keys(None, n)
        t_rep, _ = timed(split_replicates, details, keys, b, scores["map"])
        few_reps, few_classes = 8, 5
        w = poisson_weights(keys, 0, few_reps)
        t_exact_map = exact_weighted_map_seconds(y, lp, w, few_classes) * (args.k / few_classes) * (b / few_reps)
        idx = np.repeat(np.arange(n), w[:, 0])
        t_ami, _ = timed(metrics.adjusted_mutual_info, y[idx], details.y_pred[idx])
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"| {n} | {args.k} | {t_old:.1f} | {t_new:.1f} | {t_new / t_old:.2f} | {t_rep:.1f} | "
              f"{t_exact_map:.0f} | {t_ami * b:.0f} | {rss:.1f} |", flush=True)


if __name__ == "__main__":
    main()
