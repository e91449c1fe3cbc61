"""Small image collections written on the fly for the image, model and extraction tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np


def make_image(seed: int, size: tuple[int, int] = (40, 30), mode: str = "RGB"):
    """A deterministic random PIL image (width, height)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(array[..., 0] if channels == 1 else array, mode)


def jpeg_bytes(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    make_image(seed, size).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def image_folder(root: Path, classes: dict[str, int], *, size: tuple[int, int] = (40, 30),
                 corrupt: bool = False) -> Path:
    """``root/<class>/<i>.jpg`` for each class and count; with ``corrupt``, also a truncated JPEG
    (``cat/broken.jpg``) and a text file (``notes.txt``)."""
    seed = 0
    for cls, count in classes.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / cls / f"{i:03d}.jpg").write_bytes(jpeg_bytes(seed, size))
            seed += 1
    if corrupt:
        first = next(iter(classes))
        full = jpeg_bytes(999, (64, 48))
        (root / first / "broken.jpg").write_bytes(full[: len(full) // 2])
        (root / "notes.txt").write_text("not an image\n")
    return root


def webdataset_shards(root: Path, n_shards: int, per_shard: int, *, with_labels: bool = True,
                      extra_sample: bool = False) -> list[Path]:
    """Tar shards ``shard-000.tar`` ... with samples ``sNNN_MMM.jpg`` (+ ``.cls``)."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(n_shards):
        path = root / f"shard-{s:03d}.tar"
        with tarfile.open(path, "w") as tf:
            for i in range(per_shard):
                key = f"s{s:03d}_{i:03d}"
                members = {f"{key}.jpg": jpeg_bytes(s * 100 + i)}
                if with_labels:
                    members[f"{key}.cls"] = str(i % 2).encode()
                for name, data in members.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
            if extra_sample:
                info = tarfile.TarInfo(f"s{s:03d}_meta.json")
                data = b"{}"
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        paths.append(path)
    return paths
