"""CRAFT vs PP-OCR on scikit-image's real photographs: two with text (``page``: a scanned page, ``text``: a photo
of a sign) and six without.

    PYTHONPATH=src python benchmarks/text_agreement_photos.py
"""

from __future__ import annotations

import time

import numpy as np
from skimage import data

from qrprobe.experts import build_expert

NAMES = ("page", "text", "chelsea", "coffee", "astronaut", "rocket", "camera", "cat")


def main() -> None:
    images = []
    for name in NAMES:
        im = getattr(data, name)()
        im = np.stack([im] * 3, -1) if im.ndim == 2 else im[:, :, :3]
        images.append(np.ascontiguousarray(im))
    results = {}
    for detector in ("craft", "ppocr"):
        expert = build_expert("text", {"detector": detector})
        expert.prepare()
        start = time.time()
        out = expert.predict(images)
        results[detector] = (out.binary[:, 0], out.scores[:, 0], (time.time() - start) / len(images))
    for i, name in enumerate(NAMES):
        cells = [f"{d}={bool(results[d][0][i])} ({results[d][1][i]:.2f})" for d in ("craft", "ppocr")]
        print(f"{name:10s} {images[i].shape[1]}x{images[i].shape[0]}  " + "  ".join(cells))
    print(f"seconds per image: CRAFT {results['craft'][2]:.1f}, PP-OCR {results['ppocr'][2]:.2f}")


if __name__ == "__main__":
    main()
