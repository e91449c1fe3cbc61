"""What the MI estimate says when the concepts say nothing, or carry junk: the paper's SGD before and after the
class prior became a candidate (epoch 0), and the L-BFGS solver.

Generated data (default): ``qrprobe.synthetic.make_concept_clusters`` — N images whose ground-truth cluster is
one of 8 objects × 4 scenes (K = 32, used as the labelling). Concept sets:

    independent   64 concepts drawn independently of everything (Bernoulli 0.2)
    informative   12 noisy indicators: the object (8) and the scene (4), each replaced by a random one in 40%
                  of the rows (about 1.5 bits of the 5)
    + junk        the informative concepts and 200 independent ones (Bernoulli 0.2)

Real data (``--real DIR``): ``DIR/features``, a feature store (``qrprobe extract``), clustered by K-means
(``--k``, one clustering), and ``DIR/concepts``, a concept bank (``qrprobe label``) as the informative set; the
independent and junk concepts are drawn as for the generated data. E.g. 5,000 CIFAR-10 test images::

    qrprobe extract efficientnet-lite0 list.csv -o DIR/features
    qrprobe label list.csv --experts labels,color,image-stats -o DIR/concepts
    python benchmarks/probe_mi.py --real DIR --k 50 --repeats 3

Each concept set is probed on ``--repeats`` splits (seeds 0 …); MI = H(test clusters) − CE(probe, test), in
bits (``qrprobe.metrics.score_predictions``). Rows: SGD as before (epochs 1 … 100 only), SGD now (the prior is
epoch 0), L-BFGS with the L2 penalty (SGD's objective) and with the L1 penalty.

    python benchmarks/probe_mi.py --n 5000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.sparse as sp

NOISE = 0.4  # share of the rows whose object (scene) indicator shows a random object (scene)


def generated(n: int, seed: int = 0) -> tuple[np.ndarray, dict[str, sp.csr_matrix]]:
    from qrprobe.synthetic import make_concept_clusters

    _, _, labels = make_concept_clusters(n, n_noise=0, seed=seed)  # labels = object * 4 + scene
    rng = np.random.default_rng(seed + 1)
    seen = []
    for truth, values in ((labels // 4, 8), (labels % 4, 4)):  # each seen right, or replaced by a random value
        replaced = rng.random(n) < NOISE
        seen.append(np.eye(values, dtype=np.uint8)[np.where(replaced, rng.integers(0, values, n), truth)])
    return labels, _with_random_sets(sp.csr_matrix(np.hstack(seen)), rng)


def real(folder: str, k: int, seed: int = 0) -> tuple[np.ndarray, dict[str, sp.csr_matrix]]:
    """K-means clusters of ``folder/features`` (a feature store) and the concepts of ``folder/concepts`` (a
    concept bank), with 64 independent and 200 junk concepts drawn as for the generated data."""
    from pathlib import Path

    from qrprobe.concepts.bank import ConceptBank
    from qrprobe.engine.config import ProtocolConfig
    from qrprobe.engine.protocol import prepare_inputs, quantize

    root = Path(folder)
    inputs = prepare_inputs(root / "features", ConceptBank.load(root / "concepts"))
    labels = quantize(inputs.features, ProtocolConfig(k=k, clusterings=1, seed=seed, device="cpu")).labels[0]
    informative = inputs.concepts.matrix.tocsr()
    return labels, _with_random_sets(informative, np.random.default_rng(seed + 1))


def _with_random_sets(informative: sp.csr_matrix, rng: np.random.Generator) -> dict[str, sp.csr_matrix]:
    n = informative.shape[0]
    independent = sp.csr_matrix((rng.random((n, 64)) < 0.2).astype(np.uint8))
    junk = sp.csr_matrix((rng.random((n, 200)) < 0.2).astype(np.uint8))
    return {"independent (64)": independent, f"informative ({informative.shape[1]})": informative,
            "informative + 200 junk": sp.hstack([informative, junk], format="csr")}


def probe_once(labels: np.ndarray, concepts: sp.csr_matrix, seed: int, mode: str, epochs: int) -> dict:
    from qrprobe.engine.config import ProbeConfig
    from qrprobe.engine.probe.reverse_probe import ReverseProbe
    from qrprobe.engine.probe.split import stratified_split
    from qrprobe.metrics import score_predictions

    split = stratified_split(labels, seed)
    cfg = ProbeConfig(epochs=epochs, solver="lbfgs" if mode.startswith("lbfgs") else "sgd",
                      lbfgs_penalty="l1" if mode == "lbfgs-l1" else "l2")
    probe = ReverseProbe(cfg, seed=seed, device="cpu")
    probe.prior_candidate = mode != "sgd-before"
    k = int(labels.max()) + 1
    t = time.perf_counter()
    probe.fit(concepts[split.train], labels[split.train], concepts[split.val], labels[split.val], n_classes=k)
    seconds = time.perf_counter() - t
    scores = score_predictions(labels[split.test], probe.predict_log_proba(concepts[split.test]))
    return {"mi": scores["mi_bits"], "ce": scores["cross_entropy_bits"], "h": scores["cluster_entropy_bits"],
            "prior": probe.selected_prior_, "epoch": probe.best_epoch_, "wd": probe.weight_decay_, "s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--real", metavar="DIR")
    parser.add_argument("--k", type=int, default=100, help="K-means clusters of the real data")
    parser.add_argument("--modes", default="sgd-before,sgd,lbfgs,lbfgs-l1",
                        help="probes to run: sgd-before, sgd, lbfgs (L2), lbfgs-l1")
    args = parser.parse_args()
    labels, sets = real(args.real, args.k) if args.real else generated(args.n)
    print(f"{'real: ' + args.real if args.real else 'generated'}: N={len(labels)}, K={labels.max() + 1}, "
          f"{args.repeats} splits; MI and CE in bits (mean over splits, min … max)")
    print()
    print("| concepts | probe | MI (bits) | CE (bits) | H (bits) | prior kept | epoch / weight decay | s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, concepts in sets.items():
        for mode in args.modes.split(","):
            runs = [probe_once(labels, concepts, seed, mode, args.epochs) for seed in range(args.repeats)]
            mi = [r["mi"] for r in runs]
            picks = ", ".join(("prior" if r["prior"] else f"{r['wd']:.1e}") if mode.startswith("lbfgs")
                              else str(r["epoch"]) for r in runs)
            label = {"sgd-before": "SGD, before (epochs 1-100)", "sgd": "SGD, prior = epoch 0",
                     "lbfgs": "L-BFGS, L2", "lbfgs-l1": "L-BFGS, L1"}[mode]
            print(f"| {name} | {label} | {statistics.mean(mi):.3f} ({min(mi):.3f} … {max(mi):.3f}) | "
                  f"{statistics.mean(r['ce'] for r in runs):.3f} | {statistics.mean(r['h'] for r in runs):.3f} | "
                  f"{sum(r['prior'] for r in runs)}/{len(runs)} | {picks} | "
                  f"{statistics.mean(r['s'] for r in runs):.1f} |", flush=True)


if __name__ == "__main__":
    main()
