"""One row of the paper's Table 2 timed end to end: the full protocol of ``qrprobe.evaluate`` on generated
ImageNet-shaped data, with the K-means references a user could pick instead, each fitted once on the same data.

The row (defaults: the paper's ImageNet shape) is K = 1000, 5 clusterings × 5 restarts × 100 Lloyd iterations,
the probe's 100 epochs, the null probe (chance level) and 200 bootstrap replicates. Printed: the seconds of each
stage of ``evaluate`` (inputs, quantize, probe, null, statistics, total), peak RSS and peak CUDA memory, and a
side-by-side table of one K-means clustering (one restart, to convergence with each tool's defaults, and 100
iterations) for ours and every reference installed here: faiss (GPU when the device is CUDA and faiss-gpu is
installed, else CPU), ``fastkmeans`` and ``flash_kmeans`` (GPU only). References that are missing are listed,
not faked.

Usage::

    python benchmarks/table2_row.py                          # 1.28M x 2048 (needs ~25 GiB RAM), device auto
    python benchmarks/table2_row.py --n 3000 --dim 16 --k 8 --concepts 40 --ones 4 --epochs 3 --device cpu

``benchmarks/gpu_checks.sh`` runs it on a lent GPU; ``tests/test_gpu_checks_script.py`` runs that script on the
CPU at a tiny size.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import time
from pathlib import Path


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _kmeans_ours(x, k: int, iters: int, seed: int, device: str) -> tuple[float, float, int]:
    """(seconds, inertia, Lloyd iterations) of one qrprobe clustering, one restart, on standardized ``x``."""
    from qrprobe.engine.kmeans import KMeans

    t = time.perf_counter()
    km = KMeans(k=k, iters=iters, restarts=1, seed=seed, device=device).fit(x)
    return time.perf_counter() - t, float(km.inertia_), int(km.result_.n_iter)


def _kmeans_faiss(x, k: int, iters: int, seed: int, gpu: bool, early_stop: bool) -> tuple[float, float, int]:
    import faiss

    t = time.perf_counter()
    km = faiss.Kmeans(x.shape[1], k, niter=iters, nredo=1, seed=seed, gpu=gpu, verbose=False,
                      max_points_per_centroid=10**9)
    if not early_stop and hasattr(km.cp, "early_stop_threshold"):
        km.cp.early_stop_threshold = -1.0  # never stop early: the paper's fixed iterations
    km.train(x)
    seconds = time.perf_counter() - t
    stats = km.iteration_stats
    return seconds, float(km.obj[-1]), len(stats) if stats is not None else iters


def _references(device: str) -> list[str]:
    present = []
    if importlib.util.find_spec("faiss") is not None:
        import faiss

        gpu = device.startswith("cuda") and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
        present.append("faiss-gpu" if gpu else "faiss-cpu")
    for mod in ("fastkmeans", "flash_kmeans"):
        if importlib.util.find_spec(mod) is not None and (device.startswith("cuda") or mod == "fastkmeans"):
            present.append(mod)
    return present


def _kmeans_other(name: str, x, k: int, iters: int, seed: int, device: str) -> tuple[float, float, int]:
    import numpy as np
    import torch

    t = time.perf_counter()
    if name == "fastkmeans":
        from fastkmeans import FastKMeans

        km = FastKMeans(d=x.shape[1], k=k, niter=iters, seed=seed, gpu=device.startswith("cuda"),
                        max_points_per_centroid=None, verbose=False)
        km.train(x)
        centroids = np.asarray(km.centroids, np.float32)
    else:
        from flash_kmeans import batch_kmeans_Euclid

        xt = torch.from_numpy(x).to(device)[None]
        _, c, _ = batch_kmeans_Euclid(xt, k, max_iters=iters, tol=0.0)
        centroids = c[0].float().cpu().numpy()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    d2 = ((x[:, None, :] - centroids[None]) ** 2).sum(-1) if len(x) * k <= 5e6 else None
    inertia = float(d2.min(1).sum()) if d2 is not None else float("nan")
    return seconds, inertia, iters


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_280_000, help="images (rows)")
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--concepts", type=int, default=2500)
    p.add_argument("--ones", type=int, default=30, help="active concepts per image")
    p.add_argument("--clusterings", type=int, default=5)
    p.add_argument("--restarts", type=int, default=5)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--noise", type=float, default=2.0, help="feature noise of the generated data (as bench_evaluate)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--no-references", action="store_true", help="skip the K-means references")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args()

    import numpy as np
    import torch

    import qrprobe
    from qrprobe.concepts import ConceptBank
    from qrprobe.synthetic import make_imagenet_shaped

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    gpu_name = torch.cuda.get_device_name(0) if device.startswith("cuda") else ""
    print(f"Table-2 row: N={args.n:,} D={args.dim} K={args.k} M={args.concepts} ({args.ones} active); "
          f"{args.clusterings} clusterings x {args.restarts} restarts x {args.iters} iterations; "
          f"{args.epochs} epochs; bootstrap {args.bootstrap}; device {device} {gpu_name}; "
          f"{os.cpu_count()} CPUs; qrprobe {qrprobe.__version__}", flush=True)
    t = time.perf_counter()
    features, concepts = make_imagenet_shaped(args.n, args.dim, args.concepts, args.ones, min(args.k, args.n),
                                              noise=args.noise)
    bank = ConceptBank.from_matrix(concepts, [f"c{j}" for j in range(args.concepts)])
    print(f"generated in {time.perf_counter() - t:.1f} s", flush=True)

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    result = qrprobe.evaluate(features, bank, k=args.k, clusterings=args.clusterings, restarts=args.restarts,
                              iters=args.iters, epochs=args.epochs, bootstrap=args.bootstrap, device=device,
                              name="table2-row", keep_arrays=False)
    figures: dict = {"args": vars(args), "device": f"{device} {gpu_name}".strip(), "timings": result.timings,
                     "peak_rss_gib": round(_peak_rss_gib(), 2)}
    if device.startswith("cuda"):
        figures["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print("\n| stage | seconds |\n|---|---|")
    for stage, seconds in result.timings.items():
        print(f"| {stage} | {seconds:.1f} |")
    print(f"\npeak RSS {figures['peak_rss_gib']} GiB" +
          (f", peak CUDA {figures['peak_cuda_gib']} GiB" if "peak_cuda_gib" in figures else ""))
    print(f"\n{result.to_markdown()}")

    if not args.no_references:
        x = features - features.mean(0)
        x /= np.maximum(x.std(0), 1e-12)
        x = np.ascontiguousarray(x, dtype=np.float32)
        del features
        refs = _references(device)
        missing = sorted({"faiss", "fastkmeans", "flash_kmeans"} - {r.split("-")[0] for r in refs})
        print(f"\nK-means, one clustering, one restart, same standardized data (references here: "
              f"{', '.join(refs) or 'none'}; not installed or not applicable: {', '.join(missing) or 'none'})")
        print("| implementation | schedule | seconds | iterations | inertia | ratio (reference / ours) |")
        print("|---|---|---|---|---|---|")
        ours = _kmeans_ours(x, args.k, args.iters, 0, device)
        figures["kmeans"] = {"ours": ours}
        print(f"| qrprobe | to convergence (<= {args.iters}) | {ours[0]:.1f} | {ours[2]} | {ours[1]:.6g} | 1.0x |")
        for ref in refs:
            runs = ([("faiss defaults (early stop)", True), (f"{args.iters} iterations", False)]
                    if ref.startswith("faiss") else [(f"{args.iters} iterations", False)])
            for schedule, early in runs:
                try:
                    got = (_kmeans_faiss(x, args.k, args.iters, 0, ref == "faiss-gpu", early)
                           if ref.startswith("faiss") else _kmeans_other(ref, x, args.k, args.iters, 0, device))
                except Exception as exc:  # a reference that fails is reported, not fatal
                    print(f"| {ref} | {schedule} | failed: {type(exc).__name__}: {exc} | | | |")
                    continue
                figures["kmeans"][f"{ref} {schedule}"] = got
                print(f"| {ref} | {schedule} | {got[0]:.1f} | {got[2]} | {got[1]:.6g} | {got[0] / ours[0]:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
