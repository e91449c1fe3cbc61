"""Extraction over full-size photos: `qrprobe extract` beside a plain torchvision DataLoader loop, in one run.

Usage::

    python benchmarks/photos.py SOURCE_DIR photos/ --n 1000        # once: 1,000 camera-size JPEGs
    python benchmarks/bench_extract_photos.py photos/ [--n 1000] [--model efficientnet-lite0] [--workers 1]

Every contender runs once per round over the same N photos (read once beforehand, so every run finds them in
the page cache), in the order listed, reversed every other round; the features of each are compared with the
plain loop's (max abs difference, and the cosine of the worst row). The machine's load (``uptime``) is printed
with every run: on a shared machine it drifts during a long run, so compare rounds run close together.

Contenders:

1. ``qrprobe extract`` with its defaults (:func:`qrprobe.features.run_extraction`): reduced-size JPEG
   decoding (``decode_margin`` 2), one torch thread per core left after the loader workers, batch 4 on the CPU;
   into a fresh float32 store.
2. the same with ``decode_margin=0`` (every JPEG decoded in full): what the reduced decoding alone gains.
3. plain torchvision loop, the same module and batch size, one torch thread: a ``Dataset`` that opens each
   path with PIL, converts to RGB and applies ``torchvision.transforms`` (``Resize(256, bicubic)``,
   ``CenterCrop(224)``, ``ToTensor``, ``Normalize``: the model's evaluation transform), a ``DataLoader`` with
   the same workers, the forward pass under ``torch.inference_mode``. **The reference of the ratio.**
4. (built-in EfficientNet-Lite0 only) the plain loop as a user writes it: ``efficientnet_lite0()`` as
   shipped, batch 64, torch's default threads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class PlainPhotos(Dataset):
    """What a user would write: open a path with PIL, convert to RGB, apply a torchvision transform."""

    def __init__(self, paths: list[str], transform) -> None:
        self.paths = paths
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.paths[i]) as img:
            return self.transform(img.convert("RGB"))


def torchvision_transform(pre):
    """The torchvision transform equal to qrprobe's ``ImagePreprocess`` ``pre`` (shorter side, centre crop)."""
    from torchvision import transforms as t

    modes = {"bilinear": t.InterpolationMode.BILINEAR, "bicubic": t.InterpolationMode.BICUBIC}
    return t.Compose([t.Resize(pre.resize, interpolation=modes[pre.interpolation]), t.CenterCrop(pre.crop),
                      t.ToTensor(), t.Normalize(pre.mean, pre.std)])


def plain_loop(forward, transform, paths: list[str], batch_size: int, workers: int, threads: int | None,
               channels_last: bool = False) -> tuple[float, np.ndarray]:
    """Images/s of a plain DataLoader loop, and its features (float32)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    loader = DataLoader(PlainPhotos(paths, transform), batch_size=batch_size, num_workers=workers)
    out = []
    try:
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in loader:
                if channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                out.append(forward(batch).float().numpy())
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    return len(paths) / seconds, np.concatenate(out)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "uptime unavailable"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path, help="a folder of JPEG photos (benchmarks/photos.py makes one)")
    parser.add_argument("--n", type=int, default=1000, help="photos per run")
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--skip-shipped", action="store_true", help="leave out contender 4")
    parser.add_argument("--skip-full", action="store_true", help="leave out contender 2")
    parser.add_argument("--reverse", action="store_true", help="start with the last contender")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds (each runs every contender once, the order reversed every other round); the "
                             "ratio is then the median over rounds of the ratios within a round")
    args = parser.parse_args()
    if not args.photos.is_dir():
        raise SystemExit(f"PHOTOS {str(args.photos)!r}: not a directory (make one with benchmarks/photos.py)")

    from qrprobe.features import run_extraction
    from qrprobe.features.extract import default_batch_size
    from qrprobe.models import create_representation

    found = sorted(str(p) for p in args.photos.glob("*.jpg"))
    if len(found) < args.n:
        raise SystemExit(f"PHOTOS {str(args.photos)!r}: {len(found)} JPEGs, fewer than --n {args.n}")
    paths = [found[i] for i in np.linspace(0, len(found) - 1, args.n).round().astype(int)]  # every source
    megapixels = []
    from PIL import Image

    for p in paths:  # page cache, and the sizes for the report
        Path(p).read_bytes()
        with Image.open(p) as img:
            megapixels.append(img.size[0] * img.size[1] / 1e6)
    rep = create_representation(args.model)
    rep.to("cpu")
    batch = default_batch_size("cpu")
    transform = torchvision_transform(rep.preprocess)
    tmp = Path(tempfile.mkdtemp(prefix="bench-photos-"))
    print(f"before: {uptime()}", flush=True)
    print(f"{len(paths)} photos, {np.mean(megapixels):.1f} megapixels on average ({min(megapixels):.1f}-"
          f"{max(megapixels):.1f}); model {args.model}; {args.workers} loader worker(s); {os.cpu_count()} CPUs; "
          f"torch {torch.__version__}", flush=True)

    def ours(**params) -> tuple[float, np.ndarray]:
        out = tmp / f"store-{time.perf_counter_ns()}"
        store, stats = run_extraction(rep, paths, out, workers=args.workers, device="cpu", progress=False, **params)
        feats = store.load(np.float32)
        shutil.rmtree(out, ignore_errors=True)
        return stats.images_per_second, feats

    contenders = {
        "qrprobe extract, defaults (reduced decoding, 1 thread/free core)": lambda: ours(),
        "qrprobe extract, decode_margin=0 (full decoding)": lambda: ours(decode_margin=0),
        f"plain torchvision DataLoader loop, same module, batch {batch}, 1 thread": lambda: plain_loop(
            rep.encoder, transform, paths, batch, args.workers, 1, rep.channels_last),
    }
    if args.model == "efficientnet-lite0" and not args.skip_shipped:
        from qrprobe.models.builtin import efficientnet_lite0

        net = efficientnet_lite0(pretrained=True)
        contenders["plain torchvision loop, efficientnet_lite0() as shipped, batch 64, torch's threads"] = (
            lambda: plain_loop(net.forward_features, transform, paths, 64, args.workers, None))
    if args.skip_full:
        del contenders["qrprobe extract, decode_margin=0 (full decoding)"]
    names = list(contenders)
    reference = next(name for name in names if name.startswith("plain torchvision DataLoader loop"))
    rates: dict[str, list[float]] = {name: [] for name in names}
    seconds: dict[str, float] = dict.fromkeys(names, 0.0)
    features: dict[str, np.ndarray] = {}
    try:
        plain_loop(rep.encoder, transform, paths[:8], batch, 0, 1, rep.channels_last)  # warm-up
        for r in range(args.rounds):
            for name in names if (r % 2 == 0) != args.reverse else names[::-1]:
                start = time.perf_counter()
                ips, features[name] = contenders[name]()
                seconds[name] += time.perf_counter() - start
                rates[name].append(ips)
                print(f"  round {r + 1}: {name}: {ips:.2f} images/s ({uptime()})", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ref_feats = features[reference]
    ref_rates = np.asarray(rates[reference])
    print(f"after: {uptime()}")
    print(f"{'run':<84} {'img/s':>7} {'s':>7} {'x plain':>8} {'max |diff|':>11} {'min cos':>8}")
    for name in names:
        feats, ips = features[name], np.asarray(rates[name])
        diff = float(np.abs(feats - ref_feats).max())
        cos = (feats * ref_feats).sum(1) / (np.linalg.norm(feats, axis=1) * np.linalg.norm(ref_feats, axis=1))
        print(f"{name:<84} {np.median(ips):7.2f} {seconds[name]:7.1f} {float(np.median(ips / ref_rates)):8.2f} "
              f"{diff:11.4f} {float(cos.min()):8.4f}")
    print(f"(img/s: median over {args.rounds} round(s); x plain: median of the ratios within a round; s: total)")
    print(f"(features: mean |feature| of the plain loop {float(np.abs(ref_feats).mean()):.4f}, "
          f"max {float(np.abs(ref_feats).max()):.3f})")


if __name__ == "__main__":
    main()
