"""The quantization of a feature store across processes, for ``torchrun`` (or one process without it)::

    torchrun --nproc-per-node 8 -m qrprobe.engine.kmeans.distributed.run FEATURES -k 1000 --clusterings 5 -o q.npz

Every process reads only its slice of the rows (a contiguous range, memory-mapped shard by shard) and keeps it
standardized in the storage precision (``--precision``, the protocol's ``kmeans_precision``), on its own GPU
(``cuda:LOCAL_RANK``; NCCL) or on the CPU (gloo). Process 0 computes the standardization statistics over
all rows, streaming (:class:`~qrprobe.engine.kmeans.quantize.Standardizer`), and sends them to the others bit for bit;
then clustering ``r`` runs :func:`~qrprobe.engine.kmeans.distributed.sharded.sharded_kmeans` with seed ``seed + r`` (the
protocol's seeds). Process 0 writes ``OUT`` (``.npz``): ``labels`` (clusterings, N) int64, ``centroids``
(clusterings, K, D) float32 in standardized units, ``inertia`` (clusterings,), ``n_iter`` (clusterings,),
``mean`` and ``scale`` (D,) of the standardization, ``seed``, ``iters``, ``restarts``, ``precision``. The same
file, bit for bit, for any number of processes. :func:`qrprobe.engine.protocol.read_quantization` turns it
into the protocol's :class:`~qrprobe.engine.protocol.Quantization`, so that
``evaluate(features, concepts, quantization=q)`` probes these clusterings.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

from ...inputs import load_features
from ..standardize import PRECISIONS, Standardizer, resolve_precision, to_storage, torch_dtype
from .collectives import Collectives
from .sharded import shard_bounds, sharded_kmeans


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m qrprobe.engine.kmeans.distributed.run",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("features", metavar="FEATURES", help="a feature store (qrprobe extract) or a .npy file (N x D)")
    p.add_argument("-k", type=int, default=1000, help="clusters [default: 1000]")
    p.add_argument("--clusterings", type=int, default=5, help="clusterings, seeds seed..seed+n-1 [default: 5]")
    p.add_argument("--seed", type=int, default=0, help="seed of the first clustering [default: 0]")
    p.add_argument("--iters", type=int, default=100, help="Lloyd iterations per restart [default: 100]")
    p.add_argument("--restarts", type=int, default=5, help="restarts; the lowest inertia is kept [default: 5]")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="storage of the standardized features, as the protocol's kmeans_precision (auto: float16 "
                        "at every size) [default: auto]")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="cuda: each process on GPU LOCAL_RANK (NCCL); cpu: gloo [default: auto]")
    p.add_argument("-o", "--out", required=True, metavar="OUT.npz", help="where process 0 writes the result")
    return p


def _init(device: str) -> tuple[torch.device, Collectives]:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), on this process' device."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    dev = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return dev, Collectives()


def _labels_on_zero(labels: torch.Tensor, n: int, comm: Collectives) -> np.ndarray:
    """Every process' labels, in row order (process 0 needs them; the others get them too)."""
    size = torch.tensor([len(labels)], device=labels.device)
    widest = int(comm.max_(size.clone()).item())
    padded = torch.full((widest,), -1, dtype=torch.int64, device=labels.device)
    padded[:len(labels)] = labels
    sizes = comm.gather(size).flatten().tolist()
    parts = comm.gather(padded)
    return torch.cat([parts[r, :sizes[r]] for r in range(comm.world)]).cpu().numpy()[:n]


def _stored(rows, standardizer: Standardizer, precision: str, dev: torch.device) -> torch.Tensor:
    """This process' rows standardized into the storage precision, block by block (the values the single-device
    ``standardized_copy`` holds for these rows)."""
    if precision == "float32":
        return torch.from_numpy(standardizer.transform(rows)).to(dev)
    out = torch.empty(rows.shape, dtype=torch_dtype(precision), device=dev)
    for start, block in standardizer.blocks(rows):
        out[start:start + len(block)] = to_storage(block, precision).to(dev)
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    dev, comm = _init(args.device)
    rows = load_features(args.features).array
    n, d = rows.shape
    mean = torch.zeros(d, dtype=torch.float64, device=dev)
    scale = torch.zeros(d, dtype=torch.float64, device=dev)
    if comm.rank == 0:
        fitted = Standardizer().fit(rows)  # streamed over all rows; the others receive the statistics
        mean.copy_(torch.from_numpy(fitted.mean_))
        scale.copy_(torch.from_numpy(fitted.scale_))
    comm.broadcast_(mean)
    comm.broadcast_(scale)
    standardizer = Standardizer()
    standardizer.mean_, standardizer.scale_ = mean.cpu().numpy(), scale.cpu().numpy()
    start, stop = shard_bounds(n, comm.world, comm.rank)
    precision = resolve_precision(args.precision, n, d)
    x = _stored(rows[start:stop], standardizer, precision, dev)
    out: dict[str, list] = {"labels": [], "centroids": [], "inertia": [], "n_iter": []}
    for r in range(args.clusterings):
        result = sharded_kmeans(x, args.k, row_start=start, n_total=n, n_iter=args.iters, n_restarts=args.restarts,
                                seed=args.seed + r)
        out["labels"].append(_labels_on_zero(torch.from_numpy(result.labels).to(dev), n, comm))
        out["centroids"].append(result.centroids)
        out["inertia"].append(result.inertia)
        out["n_iter"].append(result.n_iter)
    if comm.rank == 0:
        with open(args.out, "wb") as f:
            np.savez(f, allow_pickle=False, **{key: np.asarray(value) for key, value in out.items()},
                     mean=standardizer.mean_,
                     scale=np.where(np.isinf(standardizer.scale_), 0.0, standardizer.scale_),
                     seed=args.seed, iters=args.iters, restarts=args.restarts, precision=precision)
        print(f"{args.clusterings} clustering(s) of {n} rows x {d} ({precision}) into K={args.k} on {comm.world} "
              f"process(es): "
              f"inertia {', '.join(f'{v:.6g}' for v in out['inertia'])} -> {args.out}", file=sys.stderr)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover - run by torchrun or python -m
    sys.exit(main())
