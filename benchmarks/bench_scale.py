"""Running at scale, measured side by side: the Ray backend against the local one, and the distributed K-means
against the single-process torch K-means.

Usage::

    python benchmarks/bench_scale.py extract [--model efficientnet-lite0] [--n 256] [--rounds 3] [--device cpu]
    python benchmarks/bench_scale.py label [--experts imagenet,color] [--n 256] [--rounds 3]
    python benchmarks/bench_scale.py kmeans [--n 40000] [--dim 256] [--k 200] [--iters 10] [--rounds 3]

``extract`` / ``label``: each round runs the local backend and the Ray backend once (in alternating order)
over the first N demo images (or ``--images``), each into a fresh output; images/s counts the whole call
(Ray: starting the actors, decoding in tasks, the model in the actors, writing), the Ray runtime itself being
started once beforehand (``--ray-cpus``, 1 GiB object store). The ratio is the median over rounds of Ray's
images/s over local's in the same round. Each line also shows the load average, since the machine may be
shared. With ``--device cuda`` on a GPU machine the Ray actors hold one GPU each (``--num-gpus-per-actor``)
and the local backend runs on the GPU: the images/s per GPU for the cost model of docs/scale.md.

``kmeans``: seconds per Lloyd iteration (from the same random start, the same rows, stored in ``--precision``)
of the single-device torch backend (:class:`qrprobe.engine.kmeans.quantize.KMeans`: float32 Lloyd, or for 16-bit
storage the exact path with Yinyang bounds), of :func:`qrprobe.engine.kmeans.distributed.sharded.sharded_kmeans` in one
process and in two gloo CPU processes (torch.multiprocessing), alternating.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "src" / "qrprobe" / "data" / "demo"


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def _pipelines(args):
    from qrprobe.experts.label import run_labelling
    from qrprobe.features.extract import run_extraction
    from qrprobe.raycluster import RayOptions

    images = args.images or str(DEMO / "openclipart-demo.tar")
    ray = RayOptions(num_gpus_per_actor=args.num_gpus_per_actor, actors=args.actors)
    if args.mode == "extract":
        def run(backend: str, out: Path) -> float:
            start = time.perf_counter()
            store, _ = run_extraction(args.model, images, out, limit=args.n, device=args.device, progress=False,
                                      workers=args.workers, backend=backend, ray=ray, chunk_size=args.chunk_size)
            assert store.n > 0
            return store.n / (time.perf_counter() - start)
    else:
        options = {e: {"device": args.device} for e in args.experts.split(",") if e in ("imagenet", "places365")}

        def run(backend: str, out: Path) -> float:
            start = time.perf_counter()
            result = run_labelling(images, args.experts.split(","), output=out, limit=args.n, options=options,
                                   progress=False, backend=backend, ray=ray, chunk_size=args.chunk_size,
                                   workers=max(1, args.workers))
            return result.bank.n_images / (time.perf_counter() - start)
    return run


def bench_backends(args) -> None:
    import ray

    ray.init(num_cpus=args.ray_cpus, object_store_memory=2**30, include_dashboard=False, logging_level="WARNING")
    run = _pipelines(args)
    what = args.model if args.mode == "extract" else args.experts
    print(f"{args.mode} {what}: {args.n} images, device {args.device}, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs, Ray CPUs {args.ray_cpus}")
    ratios, speeds = [], {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            got = {}
            for backend in (("local", "ray") if r % 2 == 0 else ("ray", "local")):
                out = Path(tmp) / f"{backend}-{r}"
                got[backend] = run(backend, out)
                shutil.rmtree(out, ignore_errors=True)
                speeds[backend].append(got[backend])
            ratios.append(got["ray"] / got["local"])
            print(f"round {r}: local {got['local']:.1f} img/s, ray {got['ray']:.1f} img/s, ray/local "
                  f"{ratios[-1]:.2f}  (load {load()})")
    ray.shutdown()
    print(f"median: local {statistics.median(speeds['local']):.1f} img/s, ray {statistics.median(speeds['ray']):.1f} "
          f"img/s, ray/local {statistics.median(ratios):.2f}")


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _kmeans_worker(rank: int, world: int, init_file: str, data: str, k: int, iters: int, out: str,
                   precision: str) -> None:
    from qrprobe.engine.kmeans.distributed.sharded import shard_bounds, sharded_kmeans

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    x = np.load(data, mmap_mode="r")
    lo, hi = shard_bounds(len(x), world, rank)
    rows = torch.from_numpy(np.array(x[lo:hi])).to(DTYPES[precision])
    start = time.perf_counter()
    result = sharded_kmeans(rows, k, row_start=lo, n_total=len(x), n_iter=iters, n_restarts=1, seed=0)
    if rank == 0:
        Path(out).write_text(f"{(time.perf_counter() - start) / result.n_iter} {result.n_iter}")
    torch.distributed.destroy_process_group()


def bench_kmeans(args) -> None:
    from qrprobe.engine.kmeans.distributed.sharded import sharded_kmeans
    from qrprobe.engine.kmeans.quantize import KMeans

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.k, args.dim))[rng.integers(args.k, size=args.n)] + rng.normal(size=(args.n, args.dim))
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    print(f"kmeans: N={args.n} D={args.dim} K={args.k}, {args.precision} storage, {args.iters} iterations, 1 torch "
          f"thread per process, {os.cpu_count()} CPUs")
    stored = torch.from_numpy(x).to(DTYPES[args.precision])
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", x)
        for r in range(args.rounds):
            times = {}
            for name in (("torch", "sharded-1", "sharded-2") if r % 2 == 0 else ("sharded-2", "sharded-1", "torch")):
                start = time.perf_counter()
                if name == "torch":
                    km = KMeans(args.k, iters=args.iters, restarts=1, seed=0, device="cpu",
                                kmeans_precision=args.precision).fit(stored)
                    times[name] = (time.perf_counter() - start) / km.result_.n_iter
                elif name == "sharded-1":
                    res = sharded_kmeans(stored, args.k, row_start=0, n_total=len(x), n_iter=args.iters,
                                         n_restarts=1, seed=0)
                    times[name] = (time.perf_counter() - start) / res.n_iter
                else:
                    init = Path(tmp) / f"rdv-{r}"
                    torch.multiprocessing.spawn(_kmeans_worker, args=(2, str(init), str(Path(tmp) / "x.npy"), args.k,
                                                                      args.iters, str(Path(tmp) / "t"),
                                                                      args.precision), nprocs=2)
                    times[name] = float((Path(tmp) / "t").read_text().split()[0])
            print(f"round {r}: s/iteration torch {times['torch']:.3f}, sharded 1 process {times['sharded-1']:.3f} "
                  f"({times['sharded-1'] / times['torch']:.2f}x), 2 processes {times['sharded-2']:.3f} "
                  f"({times['sharded-2'] / times['torch']:.2f}x)  (load {load()})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("extract", "label", "kmeans"))
    p.add_argument("--n", type=int, default=None, help="images (extract/label: 256) or rows (kmeans: 40000)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--images", default=None, help="IMAGES [default: the bundled demo images]")
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--experts", default="imagenet,color")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=1, help="local backend: loader workers / decoding threads")
    p.add_argument("--chunk-size", type=int, default=64)
    p.add_argument("--ray-cpus", type=int, default=os.cpu_count())
    p.add_argument("--actors", type=int, default=None)
    p.add_argument("--num-gpus-per-actor", type=float, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the local backend")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--precision", choices=tuple(DTYPES), default="float32", help="kmeans: storage precision")
    args = p.parse_args()
    if args.mode == "kmeans":
        args.n = args.n or 40000
        bench_kmeans(args)
    else:
        args.n = args.n or 256
        torch.set_num_threads(args.threads)
        bench_backends(args)


if __name__ == "__main__":
    main()
