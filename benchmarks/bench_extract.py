"""Extraction throughput: `qrprobe extract` beside a plain PyTorch DataLoader loop, same model, same images.

Usage::

    python benchmarks/bench_extract.py [--n 128] [--rounds 6] [--model efficientnet-lite0] [--batch-size B]
                                       [--workers 1] [--threads 2] [--data ../shared/data/cifar10/test]

Each round runs every contender once over the same N CIFAR-10 JPEGs (test images, classes interleaved), in
an order that alternates between rounds; the files are read once beforehand so that every run finds them in
the page cache. On a shared machine the load changes from second to second, so short rounds are compared
pairwise: the reported ratio is the median over rounds of (qrprobe images/s) / (plain loop images/s) within
the same round; the best images/s of each contender is shown too.

Contenders:

1. ``qrprobe extract``: :func:`qrprobe.features.run_extraction` (what the CLI runs) into a fresh store,
   float16, default batch size unless ``--batch-size`` (4 on the CPU); images/s of its loop (decode,
   preprocess, encode, write shards).
2. plain loop, the same module qrprobe runs, the same batch size: a ``Dataset`` that opens each file with PIL
   and applies the same preprocessing, a ``DataLoader`` with the same workers, the forward pass under
   ``torch.inference_mode`` and the features gathered in a float16 array in memory (DataLoader defaults
   otherwise, as a user would write it). This ratio is the
   pipeline's own cost or gain; it must not be below 1.
3. (built-in EfficientNet-Lite0 only) plain loops over the model as ``efficientnet_lite0()`` returns it
   (batch norms not folded, NCHW), at the same batch size and at 64: what a user would write by hand.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10" / "test"


class PlainImages(Dataset):
    """What a user would write: open a path with PIL, convert to RGB, preprocess."""

    def __init__(self, paths: list[str], preprocess) -> None:
        self.paths = paths
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.paths[i]) as img:
            return self.preprocess(img.convert("RGB"))


def plain_loop(forward, preprocess, paths: list[str], batch_size: int, workers: int,
               channels_last: bool = False) -> tuple[float, np.ndarray]:
    """Images/s of a plain DataLoader loop, and the features it computed (float16)."""
    loader = DataLoader(PlainImages(paths, preprocess), batch_size=batch_size, num_workers=workers)
    out = []
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            out.append(forward(batch).to(torch.float16).numpy())
    seconds = time.perf_counter() - start
    return len(paths) / seconds, np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=128, help="CIFAR-10 images per run")
    parser.add_argument("--rounds", type=int, default=6, help="rounds; each runs every contender once")
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--batch-size", type=int, default=None, help="default: qrprobe's (4 on the CPU)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from qrprobe.features import run_extraction
    from qrprobe.features.extract import default_batch_size
    from qrprobe.images import folder_source
    from qrprobe.models import create_representation

    if not args.data.is_dir():
        raise SystemExit(f"CIFAR-10 images not found at {args.data}")
    full = folder_source(args.data)
    per_class: dict[str, list[int]] = {}
    for i, label in enumerate(full.labels):
        per_class.setdefault(label, []).append(i)
    interleaved = [i for group in zip(*per_class.values(), strict=False) for i in group][: args.n]
    source = full.select(interleaved)
    paths = list(source.paths)
    for p in paths:  # page cache
        Path(p).read_bytes()
    rep = create_representation(args.model)
    rep.to("cpu")
    batch = args.batch_size or default_batch_size("cpu")
    tmp = Path(tempfile.mkdtemp(prefix="bench-extract-"))

    def ours() -> float:
        out = tmp / f"store-{time.perf_counter_ns()}"
        _, stats = run_extraction(rep, source, out, batch_size=batch, workers=args.workers, device="cpu",
                                  dtype="float16", progress=False)
        shutil.rmtree(out, ignore_errors=True)
        return stats.images_per_second

    contenders = {f"qrprobe extract (batch {batch})": ours,
                  f"plain DataLoader loop, same module, batch {batch}": lambda: plain_loop(
                      rep.encoder, rep.preprocess, paths, batch, args.workers, rep.channels_last)[0]}
    if args.model == "efficientnet-lite0":
        from qrprobe.models.builtin import efficientnet_lite0, efficientnet_lite0_preprocess

        net, pre = efficientnet_lite0(pretrained=True), efficientnet_lite0_preprocess()
        for b in dict.fromkeys((batch, 64)):
            contenders[f"plain DataLoader loop, efficientnet_lite0() as shipped, batch {b}"] = (
                lambda b=b: plain_loop(net.forward_features, pre, paths, b, args.workers)[0])
    names = list(contenders)
    results: dict[str, list[float]] = {name: [] for name in names}
    try:
        plain_loop(rep.encoder, rep.preprocess, paths[:32], batch, 0, rep.channels_last)  # warm-up
        for r in range(args.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                results[name].append(contenders[name]())
            print(f"  round {r + 1}: " + ", ".join(f"{results[n][-1]:.1f}" for n in names) + " images/s",
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ours_ips = np.asarray(results[names[0]])
    print(f"model {args.model}, {len(paths)} CIFAR-10 JPEGs per run (32x32, preprocessed to the model's "
          f"input), {args.workers} loader worker(s), {args.threads} torch threads, CPU, {args.rounds} rounds")
    print(f"{'run':<72} {'best img/s':>10} {'median img/s':>13} {'qrprobe / this (median of rounds)':>34}")
    for name in names:
        ips = np.asarray(results[name])
        ratio = float(np.median(ours_ips / ips))
        print(f"{name:<72} {ips.max():10.1f} {np.median(ips):13.1f} {ratio:34.2f}")


if __name__ == "__main__":
    main()
