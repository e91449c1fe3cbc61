"""Make N distinct full-size JPEG photos for the extraction benchmark (there is no ImageNet on this machine).

Usage::

    python benchmarks/photos.py SOURCE_DIR OUT_DIR [--n 1000] [--min-side 1200] [--seed 0] [--quality 90]

``SOURCE_DIR`` holds large real photos, for example the Debian wallpaper packages unpacked with ``dpkg -x``::

    apt-get download lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 mate-backgrounds \
        ukui-wallpapers
    for f in *.deb; do dpkg -x "$f" root; done      # photos under root/usr/share/backgrounds

Every JPEG under ``SOURCE_DIR`` whose shorter side is at least ``--min-side`` pixels is decoded once; from it
the script cuts random crops (60-100 % of each side, random position, mirrored half of the time) at full
resolution and writes each as a baseline JPEG of the given quality, until N files exist (round-robin over the
sources, so every source gives about the same number). The photos keep their camera-scale sizes (megapixels,
not thumbnails): what reduced-size JPEG decoding is for. The output is deterministic for a given seed and
source set; ``OUT_DIR/photos.tsv`` lists each file with its source, crop box and size.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path


def source_photos(root: Path, min_side: int) -> list[Path]:
    """JPEG files under ``root`` whose shorter side is at least ``min_side`` pixels, sorted by path."""
    from PIL import Image

    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg") or not path.is_file():
            continue
        try:
            with Image.open(path) as img:
                if img.format == "JPEG" and min(img.size) >= min_side:
                    found.append(path)
        except OSError:
            continue
    return found


def make_photos(sources: list[Path], out: Path, n: int, seed: int = 0, quality: int = 90) -> list[str]:
    """Write ``n`` crops of ``sources`` into ``out`` (``photo_00000.jpg`` …); returns the TSV lines."""
    from PIL import Image, ImageOps

    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    per_source = [n // len(sources) + (i < n % len(sources)) for i in range(len(sources))]
    lines, k = ["file\tsource\tbox\twidth\theight"], 0
    for src, count in zip(sources, per_source, strict=True):
        with Image.open(src) as img:
            full = ImageOps.exif_transpose(img.convert("RGB"))
        w, h = full.size
        for _ in range(count):
            cw, ch = round(w * rng.uniform(0.6, 1.0)), round(h * rng.uniform(0.6, 1.0))
            left, top = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
            photo = full.crop((left, top, left + cw, top + ch))
            if rng.random() < 0.5:
                photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            name = f"photo_{k:05d}.jpg"
            photo.save(out / name, "JPEG", quality=quality)
            lines.append(f"{name}\t{src.name}\t{left},{top},{left + cw},{top + ch}\t{cw}\t{ch}")
            k += 1
    (out / "photos.tsv").write_text("\n".join(lines) + "\n")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--min-side", type=int, default=1200, help="skip sources smaller than this (pixels)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args()
    if not args.source.is_dir():
        raise SystemExit(f"SOURCE_DIR {str(args.source)!r}: not a directory")
    if args.n < 1:
        raise SystemExit(f"--n: expected at least 1, got {args.n}")
    sources = source_photos(args.source, args.min_side)
    if not sources:
        raise SystemExit(f"SOURCE_DIR {str(args.source)!r}: no JPEG with a shorter side >= {args.min_side} px")
    lines = make_photos(sources, args.out, args.n, args.seed, args.quality)
    sizes = [int(line.split("\t")[3]) * int(line.split("\t")[4]) for line in lines[1:]]
    print(f"{len(sizes)} photos from {len(sources)} sources in {args.out}: "
          f"{sum(sizes) / len(sizes) / 1e6:.1f} megapixels on average ({min(sizes) / 1e6:.1f}-{max(sizes) / 1e6:.1f})")


if __name__ == "__main__":
    main()
