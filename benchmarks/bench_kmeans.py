"""K-means at the paper's shape, ours beside the references, in one run: generated data anyone can rebuild.

Contenders (each in its own subprocess, so its peak memory is its own; rounds alternate their order):

    ours        qrprobe's protocol K-means with its default settings (``kmeans_precision="auto"``: the float16
                exact path at every size; until issue 20 it was float32 Lloyd while the float32 copy was at most
                1 GiB)
    ours-f16    a float16 copy of the standardized features, exact Lloyd (Yinyang bounds, bf16 products with
                float32 accumulation on the CPU / tensor cores on a GPU, float64 check)
    ours-bf16   the same with a bfloat16 copy
    ours-es     ``ours`` with ``kmeans_early_stop=0`` (faiss's default stopping rule: the objective no longer
                decreases)
    ours-f16-es ``ours-f16`` with ``kmeans_early_stop=0``
    ours-fp32   qrprobe's float32 path (plain float32 Lloyd, the results of earlier releases)
    faiss       faiss ``Kmeans`` (CPU or GPU build) on the float32 standardized features, sub-sampling off,
                its other defaults kept: faiss ≥ 1.15 stops early once its objective no longer decreases
                (``early_stop_threshold`` 0). Its time for ``--iters`` iterations without early stop is
                printed beside it (its seconds per iteration × ``--iters``: its cost per iteration is constant)
    flash       flash-kmeans (Triton, GPU), float16 features          [--device cuda]
    fastkmeans  fastkmeans (GPU), float32 features                      [--device cuda]

Every contender starts from the same K rows (drawn as qrprobe's ``init="random"`` draws them), runs at most
``--iters`` Lloyd iterations — a whole fit, each tool with its own stopping rule (ours: an exact fixed point, or
the plateau with ``-es``; faiss: its default early stop) — and one restart. Reported: seconds for
standardization and for the whole K-means fit, iterations, seconds per iteration, a reference's time for
``--iters`` iterations, the inertia of its labels and centroids on the float32 standardized features (the same
yardstick for all), peak RSS, the load average before and after. Ratios are contender / ``ours`` (or the first
``ours-*`` listed) per round, for whole fits and for the ``--iters`` figure (> 1: ours is faster).

The data: ``--n`` rows of ``--dim`` float16 features, ReLU of a random projection of a 64-d Gaussian mixture
with 5,000 components of Zipf-like sizes plus noise — non-negative, correlated, and with no clean K-cluster
structure, so Lloyd keeps moving points for many iterations as on real image features
(:func:`qrprobe.synthetic.mixture_blocks`; the same rows as before it moved there).

Usage (one command)::

    python benchmarks/bench_kmeans.py --n 256000 --dim 2048 --k 1000 --iters 100 \\
        --contenders ours,faiss --rounds 1 --data bench-data
    python benchmarks/bench_kmeans.py --n 1280000 --device cuda --contenders ours,faiss,flash,fastkmeans
    python benchmarks/bench_kmeans.py --n 1280000 --write-store paper-scale   # for `qrprobe evaluate`
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

import numpy as np

from qrprobe.synthetic import mixture_blocks


def generate(path: Path, n: int, d: int, seed: int = 0) -> None:
    """Write the generated features (n, d) float16 to ``path`` (.npy), block by block."""
    out = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float16, shape=(n, d))
    for start, x, _ in mixture_blocks(n, d, seed):
        out[start:start + len(x)] = x
    out.flush()
    del out
    os.replace(path.with_suffix(".tmp.npy"), path)


def write_store(folder: Path, n: int, d: int, seed: int = 0, n_concepts: int = 2500, ones: int = 30) -> None:
    """The generated features as a float16 feature store ``folder/features`` (written shard by shard, never
    whole in memory) and a concept bank ``folder/concepts``: ``ones`` concepts per image, half of them the
    preferred concepts of its mixture component, so the probe has something to learn."""
    import scipy.sparse as sp

    from qrprobe.concepts.bank import ConceptBank
    from qrprobe.features.store import FeatureStoreWriter

    writer = FeatureStoreWriter(folder / "features", config_hash=f"bench-{n}-{d}-{seed}", dim=d, dtype="float16",
                                header={"model": "generated (benchmarks/bench_kmeans.py)", "layer": ""})
    preferred = np.random.default_rng([seed, 999]).integers(0, n_concepts, (5000, ones))
    cols = []
    for c, (start, x, comp) in enumerate(mixture_blocks(n, d, seed)):
        ids = [f"img{i:08d}" for i in range(start, start + len(x))]
        writer.commit_chunk(c, x, ids, [""] * len(x))
        r = np.random.default_rng([seed, 7, c])
        cols.append(np.concatenate([preferred[comp][:, :ones // 2],
                                    r.integers(0, n_concepts, (len(x), ones - ones // 2))], axis=1))
    writer.finish(n_chunks=c + 1, overwrite=True)
    cols = np.concatenate(cols)
    rows = np.repeat(np.arange(n), ones)
    matrix = sp.csr_matrix((np.ones(rows.size, np.uint8), (rows, cols.ravel())), shape=(n, n_concepts))
    matrix.data[:] = 1
    ConceptBank.from_matrix(matrix, [f"concept {i}" for i in range(n_concepts)],
                            image_ids=[f"img{i:08d}" for i in range(n)]).save(folder / "concepts", overwrite=True)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _IterTimer:
    """A progress-bar stand-in that records the time of each Lloyd iteration."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = time.perf_counter()

    def update(self, k: int) -> None:
        if k:
            now = time.perf_counter()
            self.times.append(now - self._t)
            self._t = now

    def set_postfix_str(self, *_: object) -> None:
        pass

    def set_description(self, *_: object) -> None:
        pass


def _inertia_f32(raw: np.ndarray, mean: np.ndarray, scale: np.ndarray, centroids: np.ndarray,
                 labels: np.ndarray) -> float:
    """Σ ‖z − c_label‖² over the float32 standardized features, in float64, streamed."""
    total = 0.0
    c = centroids.astype(np.float64)
    for s in range(0, raw.shape[0], 4096):
        z = ((raw[s:s + 4096].astype(np.float64) - mean) / scale).astype(np.float32).astype(np.float64)
        z -= c[labels[s:s + 4096]]
        total += float(np.einsum("ij,ij->", z, z))
    return total


def _stage(args: argparse.Namespace) -> dict:
    import torch

    from qrprobe.engine.kmeans.quantize import KMeans, Stored
    from qrprobe.engine.kmeans.standardize import Standardizer, standardized_copy

    if args.threads:
        torch.set_num_threads(args.threads)
    raw = np.load(args.data_file, mmap_mode="r")
    n, d = raw.shape
    init_rows = np.random.default_rng(args.seed).choice(n, args.k, replace=False)
    out: dict = {"contender": args.stage, "load_before": os.getloadavg()[0]}
    t0 = time.perf_counter()
    std = Standardizer().fit(raw)
    scale = np.where(np.isinf(std.scale_), 1.0, std.scale_)
    timer = _IterTimer()
    if args.stage.startswith("ours"):
        from qrprobe.engine.kmeans.standardize import resolve_precision

        name = args.stage.removesuffix("-es")
        precision = {"ours": resolve_precision("auto", n, d), "ours-f16": "float16", "ours-bf16": "bfloat16",
                     "ours-fp32": "float32"}[name]
        out["precision"] = precision
        stored = Stored(standardized_copy(raw, std, precision, args.device), precision)
        out["standardize_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        km = KMeans(args.k, iters=args.iters, restarts=1, seed=args.seed, device=args.device,
                    kmeans_early_stop=0.0 if args.stage.endswith("-es") else None)
        km.fit_stored(stored, bar=timer)
        out["kmeans_s"] = time.perf_counter() - t1
        labels, centroids = km.labels_, km.cluster_centers_
        out["iterations"] = km.result_.n_iter
        out["inertia_own"] = km.inertia_
        if getattr(km, "work_", None):
            w = km.work_[0]
            out["work"] = {"rows": w.rows_checked, "pairs": w.pairs, "exact": w.exact_rows, "padded": w.padded,
                           "groups": stored.engine(args.k).groups, "engine": type(stored.engine(args.k)).__name__}
        del stored
    else:
        z = std.transform(raw)
        out["standardize_s"] = time.perf_counter() - t0
        init = z[init_rows]
        t1 = time.perf_counter()
        if args.stage == "faiss":
            import faiss

            gpu = args.device.startswith("cuda")
            km = faiss.Kmeans(d, args.k, niter=args.iters, nredo=1, seed=args.seed, verbose=False, gpu=gpu,
                              max_points_per_centroid=n // args.k + 1, min_points_per_centroid=1)
            km.train(z, init_centroids=init)
            _, idx = km.index.search(z, 1)
            labels, centroids = idx[:, 0].astype(np.int64), np.asarray(km.centroids)
            stats = km.iteration_stats
            # faiss's "time" is cumulative since the start of training
            out["faiss_iter_s"] = [s["time"] for s in stats]
            out["faiss_iterations"] = len(stats)
        elif args.stage == "flash":
            from flash_kmeans import batch_kmeans_Euclid

            x = torch.from_numpy(z).to(args.device, torch.float16)
            ids, cents, _ = batch_kmeans_Euclid(x[None], args.k, max_iters=args.iters, tol=-1.0,
                                                init_centroids=torch.from_numpy(init).to(x)[None])
            torch.cuda.synchronize()
            labels, centroids = ids[0].cpu().numpy(), cents[0].float().cpu().numpy()
        elif args.stage == "fastkmeans":
            from fastkmeans import FastKMeans

            km = FastKMeans(d, args.k, niter=args.iters, tol=-1, gpu=True, seed=args.seed,
                            max_points_per_centroid=None, verbose=False)
            km.train(z)
            labels, centroids = km.predict(z), np.asarray(km.centroids)
        else:
            raise SystemExit(f"unknown contender {args.stage}")
        out["kmeans_s"] = time.perf_counter() - t1
        out["iterations"] = out.get("faiss_iterations", args.iters)
        del z
    if timer.times:
        out["iter_s"] = timer.times
    out["inertia_f32"] = _inertia_f32(raw, std.mean_, scale, centroids, labels)
    out["peak_rss_mib"] = _peak_rss_mib()
    if args.device.startswith("cuda"):
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    out["load_after"] = os.getloadavg()[0]
    return out


def _run(args: argparse.Namespace, stage: str) -> dict:
    iters = args.ref_iters if args.ref_iters and not stage.startswith("ours") else args.iters
    cmd = [sys.executable, __file__, "--stage", stage, "--data-file", str(args.data_file), "--k", str(args.k),
           "--iters", str(iters), "--seed", str(args.seed), "--device", args.device,
           "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        return {"contender": stage, "error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _machine() -> str:
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def _profile(r: dict) -> str:
    times, work = r.get("iter_s", []), r.get("work")
    if not times or not work:
        return ""
    lines = [f"  {r['contender']} ({work['engine']}, {work['groups']} groups), per iteration: seconds | rows whose "
             "groups were multiplied | (row, group) products needed | products computed (tile padding) | rows "
             "settled in float64"]
    n, g = work["rows"][0], work["groups"]
    for i in sorted({1, 2, 3, 5, 10, 20, 30, 50, 75, 100, len(times)}):
        if i <= len(times) and i <= len(work["pairs"]):
            lines.append(f"  {i:4d}: {times[i - 1]:7.2f} s | {work['rows'][i - 1] / n:6.1%} | "
                         f"{work['pairs'][i - 1] / (n * g):6.1%} | {work['padded'][i - 1] / (n * g):6.1%} | "
                         f"{work['exact'][i - 1] / n:6.2%}")
    total = sum(work["padded"]) / (n * g)
    lines.append(f"  all {len(work['padded'])} assignment passes: products computed = {total:.1f} full passes")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=256_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--ref-iters", type=int, default=0,
                   help="run the references for this many iterations only and scale their time to --iters "
                        "(their cost per iteration is constant; their inertia is then not comparable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--contenders", default="ours,faiss")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "qrprobe-bench-kmeans"),
                   help="folder for the generated features [default: qrprobe-bench-kmeans in the temporary folder]")
    p.add_argument("--out", default="", help="write all results as JSON here")
    p.add_argument("--write-store", default="", metavar="DIR",
                   help="only write the generated data as a float16 feature store and a concept bank in DIR "
                        "(for `qrprobe evaluate DIR/features DIR/concepts`), then stop")
    p.add_argument("--stage", help=argparse.SUPPRESS)
    p.add_argument("--data-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.stage:
        print(json.dumps(_stage(args)))
        return
    if args.write_store:
        t = time.perf_counter()
        write_store(Path(args.write_store), args.n, args.dim, args.seed)
        print(f"wrote {args.write_store}/features and /concepts in {time.perf_counter() - t:.0f} s")
        return
    folder = Path(args.data)
    folder.mkdir(parents=True, exist_ok=True)
    args.data_file = folder / f"features-{args.n}x{args.dim}-s{args.seed}.npy"
    if not args.data_file.exists():
        t = time.perf_counter()
        generate(args.data_file, args.n, args.dim, args.seed)
        print(f"generated {args.data_file} in {time.perf_counter() - t:.0f} s")
    contenders = args.contenders.split(",")
    print(f"machine: {_machine()}")
    print(f"N={args.n} D={args.dim} K={args.k} iterations={args.iters} device={args.device}")
    results: list[list[dict]] = []
    for rnd in range(args.rounds):
        order = contenders if rnd % 2 == 0 else contenders[::-1]
        this = {c: _run(args, c) for c in order}
        results.append([this[c] for c in contenders])
        base = next((c for c in contenders if c == "ours"), next((c for c in contenders if c.startswith("ours")),
                                                                   contenders[0]))
        ours = this.get(base, {})
        print(f"\nround {rnd + 1} (ratios: contender / {base}; > 1: {base} is faster)")
        print(f"| contender | whole fit s | iterations | s / iteration | s for {args.iters} iterations | "
              "standardize s | inertia (float32 data) | peak RSS MiB | load before/after | whole fit ratio | "
              f"{args.iters}-iteration ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for c in contenders:
            r = this[c]
            if "error" in r:
                print(f"| {c} | failed: {r['error']} |")
                continue
            per_iter = r["kmeans_s"] / r["iterations"]
            # ours runs until its stop; a reference's cost per iteration is constant, so its --iters figure is
            # its seconds per iteration × --iters (ours: its whole fit, which --iters bounds)
            at_iters = r["kmeans_s"] if c.startswith("ours") else per_iter * args.iters
            whole = r["kmeans_s"] / ours["kmeans_s"] if ours.get("kmeans_s") and c != base else None
            fixed = (at_iters / ours["kmeans_s"] if ours.get("kmeans_s") and c != base and not c.startswith("ours")
                     else None)
            print(f"| {c}{' (' + r['precision'] + ')' if 'precision' in r else ''} | {r['kmeans_s']:.1f} | "
                  f"{r['iterations']} | {per_iter:.2f} | {at_iters:.0f} | {r['standardize_s']:.1f} | "
                  f"{r['inertia_f32']:.6e} | {r['peak_rss_mib']:.0f} | {r['load_before']:.1f}/{r['load_after']:.1f} | "
                  f"{f'{whole:.2f}×' if whole else ''} | {f'{fixed:.2f}×' if fixed else ''} |")
        if ours.get("inertia_f32"):
            for c in contenders:
                if c != base and "inertia_f32" in this[c]:
                    rel = (ours["inertia_f32"] - this[c]["inertia_f32"]) / this[c]["inertia_f32"]
                    print(f"inertia {base} vs {c}: {rel:+.4%}")
        for c in contenders:
            if c.startswith("ours") and "error" not in this[c]:
                print(_profile(this[c]))
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": _machine(), "args": vars(args) | {"data_file": str(
            args.data_file)}, "rounds": results}, indent=1))


if __name__ == "__main__":
    main()
