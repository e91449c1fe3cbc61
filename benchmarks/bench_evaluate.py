"""Benchmark of the engine on ImageNet-shaped generated data, beside the obvious way, in one run.

Stages, each run in a fresh subprocess so that its peak memory (max RSS, and peak CUDA memory on a GPU) is
its own:

    kmeans   ours: qrprobe's torch K-means   | reference: faiss-cpu ``Kmeans`` (same K, iterations, restarts,
                                             |   all points, same seed)
    probe    ours: sparse reverse probe      | reference: a dense ``torch.nn.Linear`` trained on the dense
                                             |   N x M float concept matrix (same SGD schedule and epochs)
    metrics  ours: ``qrprobe.metrics``       | reference: scikit-learn's NMI, AMI, accuracy and per-class AP

plus ``standardize`` and ``split`` (ours only). It prints a table of seconds and peak memory per stage with
the ratio reference / ours (> 1: ours is faster / smaller).

Usage (the paper's shape; reduce --iters/--restarts/--epochs on a small machine and say so)::

    python benchmarks/bench_evaluate.py --n 100000 --dim 2048 --k 1000 --concepts 2500 --ones 30 \
        --iters 10 --restarts 1 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _stage(args: argparse.Namespace) -> dict:
    """Run one stage in this process and return its timing."""
    import numpy as np
    import scipy.sparse as sp
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(args.data)
    device = torch.device(args.device)
    out: dict = {"stage": args.stage}
    if args.stage == "generate":
        from qrprobe.synthetic import make_imagenet_shaped

        t = time.perf_counter()
        features, concepts = make_imagenet_shaped(args.n, args.dim, args.concepts, args.ones, args.k,
                                                  noise=args.noise)
        np.save(data / "features.npy", features)
        sp.save_npz(data / "concepts.npz", concepts, compressed=False)
        out["seconds"] = time.perf_counter() - t
        return out
    if args.stage in ("standardize", "kmeans-ours", "kmeans-faiss"):
        x = np.load(data / "features.npy", mmap_mode="r")
    if args.stage == "standardize":
        from qrprobe.engine.kmeans.quantize import Standardizer

        t = time.perf_counter()
        z = Standardizer().fit_transform(x)
        out["seconds"] = time.perf_counter() - t
        np.save(data / "standardized.npy", z)
    elif args.stage == "kmeans-ours":
        from qrprobe.engine.kmeans.quantize import KMeans

        z = np.load(data / "standardized.npy")
        t = time.perf_counter()
        km = KMeans(args.k, iters=args.iters, restarts=args.restarts, seed=0, device=args.device).fit(z)
        if device.type == "cuda":
            torch.cuda.synchronize()
        out["seconds"] = time.perf_counter() - t
        out["inertia"] = km.inertia_
        # Lloyd stops early at an exact fixed point; count the assignment passes actually made
        out["lloyd_iterations"] = km.result_.n_iter * args.restarts
        np.save(data / "labels.npy", km.labels_)
    elif args.stage == "kmeans-faiss":
        import faiss

        z = np.load(data / "standardized.npy")
        t = time.perf_counter()
        km = faiss.Kmeans(z.shape[1], args.k, niter=args.iters, nredo=args.restarts, seed=1,
                          max_points_per_centroid=len(z) // args.k + 1, verbose=False)
        km.train(z)
        dist, _ = km.index.search(z, 1)
        out["seconds"] = time.perf_counter() - t
        out["inertia"] = float(dist.sum())
        out["lloyd_iterations"] = args.iters * args.restarts  # faiss always runs every iteration
    elif args.stage == "split":
        from qrprobe.engine.probe.split import stratified_split

        labels = np.load(data / "labels.npy")
        t = time.perf_counter()
        split = stratified_split(labels, 0)
        out["seconds"] = time.perf_counter() - t
        np.savez(data / "split.npz", train=split.train, val=split.val, test=split.test)
    elif args.stage in ("probe-ours", "probe-dense"):
        from qrprobe.engine.config import ProbeConfig

        labels = np.load(data / "labels.npy")
        split = np.load(data / "split.npz")
        concepts = sp.load_npz(data / "concepts.npz").tocsr()
        cfg = ProbeConfig(epochs=args.epochs)
        if args.stage == "probe-ours":
            from qrprobe.engine.probe.reverse_probe import ReverseProbe

            t = time.perf_counter()
            probe = ReverseProbe(cfg, seed=0, device=args.device).fit(
                concepts[split["train"]], labels[split["train"]], concepts[split["val"]], labels[split["val"]],
                n_classes=args.k)
            log_proba = probe.predict_log_proba(concepts[split["test"]])
            out["seconds"] = time.perf_counter() - t
        else:
            out["seconds"], log_proba = _dense_probe(concepts, labels, split, cfg, args.k, device)
        out["seconds_per_epoch"] = out["seconds"] / args.epochs
        np.save(data / f"{args.stage}-log_proba.npy", log_proba)
    elif args.stage in ("metrics-ours", "metrics-sklearn"):
        labels = np.load(data / "labels.npy")
        y = labels[np.load(data / "split.npz")["test"]]
        log_proba = np.load(data / "probe-ours-log_proba.npy")
        t = time.perf_counter()
        if args.stage == "metrics-ours":
            from qrprobe.metrics import score_predictions

            out["scores"] = score_predictions(y, log_proba)
        else:
            from sklearn import metrics as skm

            pred = log_proba.argmax(1)
            aps = [skm.average_precision_score(y == c, log_proba[:, c]) for c in np.unique(y)]
            out["scores"] = {"nmi": 100 * skm.normalized_mutual_info_score(y, pred),
                             "ami": 100 * skm.adjusted_mutual_info_score(y, pred),
                             "top1": 100 * skm.accuracy_score(y, pred), "map": 100 * float(np.mean(aps))}
        out["seconds"] = time.perf_counter() - t
    out["peak_rss_mib"] = _peak_rss_mib()
    if device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _dense_probe(concepts, labels, split, cfg, k, device):
    """The obvious probe: a dense float matrix and ``nn.Linear``, same schedule."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    t = time.perf_counter()
    x_train = torch.from_numpy(concepts[split["train"]].toarray().astype(np.float32)).to(device)
    x_val = torch.from_numpy(concepts[split["val"]].toarray().astype(np.float32)).to(device)
    y_train = torch.from_numpy(labels[split["train"]]).to(device)
    y_val = torch.from_numpy(labels[split["val"]]).to(device)
    layer = torch.nn.Linear(x_train.shape[1], k).to(device)
    opt = torch.optim.SGD(layer.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.milestones), cfg.lr_decay)
    best = (float("inf"), None)
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(y_train), device=device)
        for s in range(0, len(perm), cfg.batch_size):
            idx = perm[s:s + cfg.batch_size]
            loss = F.cross_entropy(layer(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        with torch.no_grad():
            val = float(F.cross_entropy(layer(x_val), y_val))
        if val < best[0]:
            best = (val, {n: p.clone() for n, p in layer.state_dict().items()})
    layer.load_state_dict(best[1])
    with torch.no_grad():
        x_test = torch.from_numpy(concepts[split["test"]].toarray().astype(np.float32)).to(device)
        log_proba = F.log_softmax(layer(x_test), dim=1).cpu().numpy()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, log_proba


def _run_stage(stage: str, args: argparse.Namespace, data: Path) -> dict:
    # Each stage runs in a fresh interpreter: on Linux a child inherits its parent's peak RSS, so the parent
    # never holds the data itself.
    cmd = [sys.executable, __file__, "--stage", stage, "--data", str(data), "--k", str(args.k),
           "--iters", str(args.iters), "--restarts", str(args.restarts), "--epochs", str(args.epochs),
           "--device", args.device, "--threads", str(args.threads), "--n", str(args.n), "--dim", str(args.dim),
           "--concepts", str(args.concepts), "--ones", str(args.ones), "--noise", str(args.noise)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"stage": stage, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--concepts", type=int, default=2500)
    parser.add_argument("--ones", type=int, default=30, help="ones per concept row")
    parser.add_argument("--noise", type=float, default=2.0,
                        help="feature noise around the latent centres (2.0: overlapping clusters, so that Lloyd "
                             "does not converge within a few iterations)")
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="also write the raw figures as JSON")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(_stage(args)))
        return

    with tempfile.TemporaryDirectory(prefix="qrprobe-bench-") as tmp:
        data = Path(tmp)
        gen = _run_stage("generate", args, data)
        if "error" in gen:
            raise SystemExit(f"data generation failed: {gen['error']}")
        print(f"data: N={args.n} D={args.dim} K={args.k} M={args.concepts} ones/row={args.ones} "
              f"(generated in {gen['seconds']:.1f} s); K-means {args.iters} iterations x "
              f"{args.restarts} restarts; probe {args.epochs} epochs; device {args.device}; "
              f"{os.cpu_count()} CPUs", flush=True)
        pairs = [("standardize", None), ("kmeans-ours", "kmeans-faiss"), ("split", None),
                 ("probe-ours", "probe-dense"), ("metrics-ours", "metrics-sklearn")]
        rows = []
        for ours, ref in pairs:
            a = _run_stage(ours, args, data)
            b = _run_stage(ref, args, data) if ref and not args.skip_reference else None
            rows.append((ours, a, ref, b))
            print(f"  {ours}: {a}" + (f"\n  {ref}: {b}" if b else ""), file=sys.stderr, flush=True)
    print()
    print("| stage | ours (s) | reference (s) | time ratio ref/ours | ours peak RSS (MiB) | ref peak RSS (MiB) |"
          " memory ratio |")
    print("|---|---|---|---|---|---|---|")
    for ours, a, ref, b in rows:
        stage = ours.rsplit("-", 1)[0] if "-" in ours else ours
        if "error" in a:
            print(f"| {stage} | error: {a['error']} | | | | | |")
            continue
        cells = [f"{a['seconds']:.2f}", "", "", f"{a['peak_rss_mib']:.0f}", "", ""]
        if b and "error" not in b:
            cells[1] = f"{b['seconds']:.2f} ({ref})"
            cells[2] = f"{b['seconds'] / a['seconds']:.1f}x"
            cells[4] = f"{b['peak_rss_mib']:.0f}"
            cells[5] = f"{b['peak_rss_mib'] / a['peak_rss_mib']:.2f}x"
        elif b:
            cells[1] = f"error: {b['error']}"
        print(f"| {stage} | " + " | ".join(cells) + " |")
    extra = {r[0]: r[1] for r in rows}
    if "peak_cuda_mib" in extra.get("kmeans-ours", {}):
        print(f"\npeak CUDA memory: k-means {extra['kmeans-ours']['peak_cuda_mib']:.0f} MiB, "
              f"probe {extra['probe-ours'].get('peak_cuda_mib', 0):.0f} MiB")
    for name in ("kmeans-ours", "kmeans-faiss"):
        for r in rows:
            for label, res in ((r[0], r[1]), (r[2], r[3])):
                if label == name and res and "inertia" in res:
                    per = res["seconds"] / max(res["lloyd_iterations"], 1)
                    print(f"{name}: inertia {res['inertia']:.4g}, {res['lloyd_iterations']} Lloyd iterations, "
                          f"{per:.3f} s per iteration")
    k_ours, k_ref = extra.get("kmeans-ours", {}), next((r[3] for r in rows if r[2] == "kmeans-faiss"), None)
    if k_ref and "lloyd_iterations" in k_ours and "lloyd_iterations" in k_ref:
        ratio = (k_ref["seconds"] / k_ref["lloyd_iterations"]) / (k_ours["seconds"] / k_ours["lloyd_iterations"])
        print(f"k-means time per Lloyd iteration, faiss / ours: {ratio:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
