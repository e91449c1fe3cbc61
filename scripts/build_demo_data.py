"""Build the demo image collection bundled with qrprobe from Debian's ``openclipart-png`` package.

The package (``apt-get install openclipart-png``) holds 8,121 public-domain clip-art PNGs (Creative Commons
Public Domain Dedication, see /usr/share/doc/openclipart-png/copyright) in category folders with
sub-category folders. This script samples up to ``--per-category`` images from each chosen category (seeded,
so the result is reproducible), flattens transparency onto white, fits each image into a square of
``--size`` pixels, encodes it as JPEG and writes one webdataset tar shard::

    <image_id>.jpg   the image

and a long table ``labels.csv`` (``image_id, concept, group``) with the category and the sub-category of each
image, group ``Labels`` (kept out of the tar: a tar member costs at least 1 KiB, the table a few bytes), and
``sources.csv``, the package path each image came from.

Usage: python scripts/build_demo_data.py [--root /usr/share/openclipart/png] [--out src/qrprobe/data/demo]
"""

from __future__ import annotations

import argparse
import csv
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = ("animals", "buildings", "computer", "food", "geography", "office", "people", "plants",
              "recreation", "shapes", "signs_and_symbols", "special", "tools", "transportation")


def _render(path: Path, size: int) -> Image.Image:
    """The clip-art on a white square of ``size`` pixels, aspect ratio kept."""
    img = Image.open(path)
    img.load()
    rgba = img.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    canvas.alpha_composite(rgba)
    rgb = canvas.convert("RGB")
    rgb.thumbnail((size, size), Image.Resampling.LANCZOS)
    square = Image.new("RGB", (size, size), (255, 255, 255))
    square.paste(rgb, ((size - rgb.width) // 2, (size - rgb.height) // 2))
    return square


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # reproducible bytes
    tar.addfile(info, io.BytesIO(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/usr/share/openclipart/png")
    parser.add_argument("--out", default="src/qrprobe/data/demo")
    parser.add_argument("--per-category", type=int, default=110)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--quality", type=int, default=88)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root, out = Path(args.root), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    rows, n_skipped = [], 0
    with tarfile.open(out / "openclipart-demo.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for category in CATEGORIES:
            files = sorted((root / category).rglob("*.png"))
            chosen = sorted(rng.choice(len(files), min(args.per_category, len(files)), replace=False))
            for i in chosen:
                path = files[i]
                rel = path.relative_to(root / category)
                sub = rel.parts[0] if len(rel.parts) > 1 else ""
                try:
                    img = _render(path, args.size)
                except Exception:  # a broken file in the package is skipped and counted
                    n_skipped += 1
                    continue
                image_id = f"{category}-{len(rows):05d}"
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=args.quality, optimize=True)
                _add(tar, f"{image_id}.jpg", buf.getvalue())
                rows.append((image_id, category, sub, str(Path(category) / rel)))
    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "concept", "group"])
        for image_id, category, sub, _ in rows:
            writer.writerow([image_id, category, "Labels"])
            if sub:
                writer.writerow([image_id, f"{category}/{sub}", "Labels"])
    with open(out / "sources.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "openclipart_png_path"])
        writer.writerows((r[0], r[3]) for r in rows)
    print(f"{len(rows)} images ({n_skipped} unreadable skipped) -> {out}")


if __name__ == "__main__":
    main()
