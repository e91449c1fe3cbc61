"""Labelling throughput per expert on CIFAR-10 test images (``../shared/data/cifar10``).

Each expert labels the same images alone (``qrprobe.experts.label.run_labelling``); the table gives the
expert's own images/s (time inside the expert: preprocessing + model) and the end-to-end images/s of the run
(decoding included). Experts whose weights are not available offline (``places365``, ``clip-style``) run with
random weights of the real architecture, which costs the same.

    python benchmarks/bench_label.py --n 1000 --heavy-n 200 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
LIGHT = ("labels", "color", "image-stats", "text", "faces", "person")
HEAVY = ("imagenet", "places365", "clip-style")


def file_list(root: Path, n: int, folder: Path) -> Path:
    """A file list of ``n`` CIFAR-10 test images, the same number from each class."""
    per = max(1, n // len(CLASSES))
    rows = ["image_id,path,label"]
    for c in CLASSES:
        for i in range(per):
            rows.append(f"{c}/{i:04d}.jpg,{root / c / f'{i:04d}.jpg'},{c}")
    path = folder / f"cifar-{per * len(CLASSES)}.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def expert_options(name: str, folder: Path) -> dict:
    """Options that make an expert runnable offline (random weights of the real architecture)."""
    import torch

    if name == "places365":
        from qrprobe.experts.classifiers import build_architecture

        path = folder / "places365-random.pth"
        if not path.exists():
            torch.save(build_architecture("resnet50", 365).state_dict(), path)
        return {"weights": str(path)}
    if name == "clip-style":
        return {"pretrained": "random"}
    return {}


def bench(name: str, images: Path, folder: Path, batch_size: int) -> dict:
    from qrprobe.experts.label import run_labelling

    opts = expert_options(name, folder)
    warm = run_labelling(str(images), [name], options={name: opts}, progress=False, limit=batch_size,
                         batch_size=batch_size)  # loads the model, warms caches
    del warm
    t = time.perf_counter()
    result = run_labelling(str(images), [name], options={name: opts}, progress=False, batch_size=batch_size)
    wall = time.perf_counter() - t
    rep = result.report
    n = rep.images_this_run
    return {"expert": name, "images": n, "expert_images_per_s": round(n / rep.seconds[name], 1),
            "end_to_end_images_per_s": round(n / wall, 1), "concepts": result.bank.n_concepts,
            "mean_frequency": round(float(result.bank.frequencies().mean()), 4)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "test"))
    p.add_argument("--n", type=int, default=1000, help="images for the light experts")
    p.add_argument("--heavy-n", type=int, default=200, help="images for the network experts")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--experts", default=",".join(LIGHT + HEAVY))
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    root = Path(args.data)
    if not root.is_dir():
        print(f"CIFAR-10 not found at {root}; nothing to benchmark", file=sys.stderr)
        return 1
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        light, heavy = file_list(root, args.n, folder), file_list(root, args.heavy_n, folder)
        for name in args.experts.split(","):
            rows.append(bench(name, heavy if name in HEAVY else light, folder, args.batch_size))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{platform.processor() or platform.machine()}, torch threads {args.threads}, "
          f"{os.cpu_count()} CPUs visible\n")
    print("| expert | images | images/s (expert) | images/s (end to end) | concepts | mean frequency |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['expert']} | {r['images']} | {r['expert_images_per_s']} | {r['end_to_end_images_per_s']} | "
              f"{r['concepts']} | {r['mean_frequency']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
