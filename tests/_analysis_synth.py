"""Generated data with known structure for the analysis and report tests.

Images are ``object × scene`` combinations: the features place every combination at its own well-separated
centre, so K-means with K = objects × scenes recovers the combinations. Concepts come in three groups:
``Labels`` (the object, one-hot: the ground-truth label group), ``Scene`` (the scene, one-hot) and ``Noise``
(independent coin flips, unrelated to anything).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrprobe.concepts.bank import ConceptBank
from qrprobe.engine.config import ProbeConfig, ProtocolConfig

OBJECTS = ("dog", "car", "boat", "<script>alert(1)</script>")
SCENES = ("beach", "street", "forest")


@dataclass
class Synthetic:
    features: np.ndarray  # (N, D) float32
    bank: ConceptBank
    objects: np.ndarray  # (N,) object index
    scenes: np.ndarray  # (N,) scene index


def make_object_scene(n: int = 2400, dim: int = 12, n_noise: int = 4, seed: int = 0, spread: float = 0.35,
                      objects=OBJECTS, scenes=SCENES) -> Synthetic:
    rng = np.random.default_rng(seed)
    n_obj, n_sc = len(objects), len(scenes)
    obj = rng.integers(0, n_obj, n)
    sc = rng.integers(0, n_sc, n)
    obj_dirs = rng.normal(size=(n_obj, dim)) * 3.0
    sc_dirs = rng.normal(size=(n_sc, dim)) * 3.0
    x = obj_dirs[obj] + sc_dirs[sc] + rng.normal(scale=spread, size=(n, dim))
    noise = (rng.random((n, n_noise)) < 0.3).astype(np.uint8)
    matrix = np.concatenate([np.eye(n_obj, dtype=np.uint8)[obj], np.eye(n_sc, dtype=np.uint8)[sc], noise], 1)
    names = [*objects, *(f"scene:{s}" for s in scenes), *(f"noise{i}" for i in range(n_noise))]
    groups = ["Labels"] * n_obj + ["Scene"] * n_sc + ["Noise"] * n_noise
    ids = [f"img{i:05d}" for i in range(n)]
    bank = ConceptBank.from_matrix(matrix, names, groups, "synthetic", image_ids=ids)
    return Synthetic(x.astype(np.float32), bank, obj, sc)


def fast_config(k: int = 12, n_clusterings: int = 2, seed: int = 0, epochs: int = 15) -> ProtocolConfig:
    return ProtocolConfig(k=k, clusterings=n_clusterings, seed=seed, iters=30, restarts=2,
                          probe=ProbeConfig(epochs=epochs, milestones=(10, 13)), device="cpu")


def write_images(directory, data: Synthetic, rows, size: int = 24) -> list[str]:
    """Write small PNGs (scene = background, object = centre square) for ``rows``; return every row's path
    (rows not written get a path that does not exist)."""
    from pathlib import Path

    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    objects = np.array([[200, 40, 40], [40, 180, 40], [40, 60, 200], [220, 200, 40]], np.uint8)
    scenes = np.array([[235, 225, 170], [110, 110, 110], [20, 80, 30]], np.uint8)
    paths = [str(directory / f"missing-{i}.png") for i in range(len(data.objects))]
    for i in rows:
        img = np.empty((size, size, 3), np.uint8)
        img[:] = scenes[data.scenes[i] % len(scenes)]
        img[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = objects[data.objects[i] % len(objects)]
        paths[i] = str(directory / f"img{i:05d}.png")
        Image.fromarray(img).save(paths[i])
    return paths


_CACHE: dict = {}


def evaluated(key: str = "full", n: int = 1500, n_clusterings: int = 2):
    """(data, Result) of ``evaluate`` on the object x scene data, cached for the test session.

    ``key``: ``full`` (all groups), ``labels`` (the label group only), ``k6`` (all groups, K = 6).
    """
    from qrprobe.engine.evaluate import evaluate

    if (key, n, n_clusterings) not in _CACHE:
        data = make_object_scene(n=n)
        bank = data.bank.select_groups(["Labels"]) if key == "labels" else data.bank
        cfg = fast_config(k=6 if key == "k6" else 12, n_clusterings=n_clusterings)
        _CACHE[key, n, n_clusterings] = (data, evaluate(data.features, bank, config=cfg, name="synthetic"))
    return _CACHE[key, n, n_clusterings]
