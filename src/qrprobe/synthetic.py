"""Generated data whose answer is known: the one generator module of the README's example, the tests and the
benchmarks.

Features and concepts:

- :func:`make_concept_clusters`: each image has one object (of ``n_objects``) and one scene (of ``n_scenes``);
  its feature vector is the centre of its (object, scene) combination plus a colour shift and Gaussian noise.
  Concepts: the object (group ``Objects``), the scene (``Scene``), its colours (``Texture``, each colour
  present with some probability and shifting the feature a little), and pure-noise concepts (``Other``).
- :func:`make_object_scene`: object × scene images whose features put every combination at its own
  well-separated centre; concepts ``Labels`` (the object, one-hot), ``Scene`` (one-hot) and ``Noise``.
- :func:`make_concept_combinations`: the true group of an image is a function of a few binary concepts.
- :func:`make_linear_probe_problem`, :func:`make_skewed_probe_problem`: concepts and clusters drawn from a
  linear model (probe problems); :func:`make_probe_output`: labels with a probe's log-probabilities.
- :func:`make_imagenet_shaped`, :func:`mixture_blocks`: large data shaped like the paper's setting (benchmarks).

Images: :func:`random_image`, :func:`random_jpeg`, :func:`write_image_folder`, :func:`write_webdataset_shards`
(random pixels) and :func:`write_object_scene_images` (pictures of :func:`make_object_scene`'s images).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from .concepts.bank import ConceptBank

if TYPE_CHECKING:
    import PIL.Image

#: :func:`make_object_scene`'s objects; the last name is markup, so that every place showing concept names is
#: checked for escaping.
OBJECT_NAMES = ("dog", "car", "boat", "<script>alert(1)</script>")
SCENE_NAMES = ("beach", "street", "forest")


def make_concept_clusters(n: int = 5000, *, dim: int = 64, n_objects: int = 8, n_scenes: int = 4,
                          n_colours: int = 6, n_noise: int = 10, noise: float = 1.0, seed: int = 0,
                          ) -> tuple[np.ndarray, ConceptBank, np.ndarray]:
    """Return ``(features (n, dim) float32, bank (n × M), combination (n,) int)``.

    ``combination = object * n_scenes + scene`` is the ground-truth cluster of each image.
    """
    rng = np.random.default_rng(seed)
    obj = rng.integers(0, n_objects, n)
    scene = rng.integers(0, n_scenes, n)
    colours = rng.random((n, n_colours)) < 0.25
    other = rng.random((n, n_noise)) < 0.2
    combo = obj * n_scenes + scene
    centres = rng.normal(size=(n_objects * n_scenes, dim)) * 4.0
    colour_dirs = rng.normal(size=(n_colours, dim)) * 0.5
    features = centres[combo] + colours @ colour_dirs + noise * rng.normal(size=(n, dim))
    blocks = [np.eye(n_objects, dtype=np.uint8)[obj], np.eye(n_scenes, dtype=np.uint8)[scene],
              colours.astype(np.uint8), other.astype(np.uint8)]
    names = ([f"object {i}" for i in range(n_objects)] + [f"scene {i}" for i in range(n_scenes)]
             + [f"colour {i}" for i in range(n_colours)] + [f"noise {i}" for i in range(n_noise)])
    groups = (["Objects"] * n_objects + ["Scene"] * n_scenes + ["Texture"] * n_colours + ["Other"] * n_noise)
    bank = ConceptBank.from_matrix(sp.csr_matrix(np.hstack(blocks)), names, groups, experts="synthetic",
                                   image_ids=[f"img{i:06d}" for i in range(n)],
                                   info={"source": "qrprobe.synthetic.make_concept_clusters", "seed": seed})
    return features.astype(np.float32), bank, combo


def make_imagenet_shaped(n: int = 100_000, dim: int = 2048, n_concepts: int = 2500, ones_per_row: int = 30,
                         n_latent: int = 1000, seed: int = 0, noise: float = 0.8) -> tuple[np.ndarray, sp.csr_matrix]:
    """Large random data shaped like the paper's ImageNet setting, for benchmarks.

    Features are drawn around ``n_latent`` centres (unit-variance coordinates) with Gaussian ``noise`` of that
    standard deviation per dimension (larger: more overlap, more Lloyd iterations); each image's
    ~``ones_per_row`` active concepts are drawn partly from its centre's preferred concepts, so the probe has
    something to learn. Returns
    ``(features (n, dim) float32, concepts (n, n_concepts) CSR uint8)``.
    """
    rng = np.random.default_rng(seed)
    latent = rng.integers(0, n_latent, n)
    centres = rng.standard_normal((n_latent, dim), dtype=np.float32)
    features = centres[latent]
    features += noise * rng.standard_normal((n, dim), dtype=np.float32)
    preferred = rng.integers(0, n_concepts, (n_latent, ones_per_row))
    half = ones_per_row // 2
    cols = np.concatenate([preferred[latent][:, :half], rng.integers(0, n_concepts, (n, ones_per_row - half))],
                          axis=1)
    rows = np.repeat(np.arange(n), ones_per_row)
    matrix = sp.csr_matrix((np.ones(rows.size, np.uint8), (rows, cols.ravel())), shape=(n, n_concepts))
    matrix.data[:] = 1
    return features, matrix


def mixture_blocks(n: int, d: int, seed: int = 0, block_rows: int = 16384
                   ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Features like a network's, generated block by block: yield ``(start, features (m, d) float32, mixture
    component (m,) int)``; the same rows whatever ``n``.

    5000 components of Zipf-like weights in a 64-d latent space, projected to ``d`` dimensions through a ReLU,
    plus Gaussian noise (standard deviation 0.25).
    """
    rng = np.random.default_rng(seed)
    latent, comps = 64, 5000
    means = rng.standard_normal((comps, latent)).astype(np.float32) * 1.5
    weights = 1.0 / np.arange(1, comps + 1) ** 0.7
    weights /= weights.sum()
    spread = rng.uniform(0.4, 1.0, comps).astype(np.float32)
    proj = (rng.standard_normal((latent, d)) / np.sqrt(latent)).astype(np.float32)
    bias = rng.normal(0.2, 0.3, d).astype(np.float32)
    for b, start in enumerate(range(0, n, block_rows)):
        r = np.random.default_rng([seed, b])
        m = min(block_rows, n - start)
        comp = r.choice(comps, m, p=weights)
        z = means[comp] + spread[comp, None] * r.standard_normal((m, latent), dtype=np.float32)
        yield start, np.maximum(z @ proj + bias, 0) + 0.25 * r.standard_normal((m, d), dtype=np.float32), comp


@dataclass
class ObjectScene:
    """:func:`make_object_scene`'s data: ``features`` (N, D) float32, ``bank`` (N × M), ``objects`` and
    ``scenes`` (N,) the index of each image's object and scene."""

    features: np.ndarray
    bank: ConceptBank
    objects: np.ndarray
    scenes: np.ndarray


def make_object_scene(n: int = 2400, dim: int = 12, n_noise: int = 4, seed: int = 0, spread: float = 0.35,
                      objects: Sequence[str] = OBJECT_NAMES, scenes: Sequence[str] = SCENE_NAMES) -> ObjectScene:
    """Object × scene images: every combination at its own well-separated centre (object and scene directions
    of scale 3, Gaussian noise ``spread``), so K-means with K = objects × scenes recovers the combinations.

    Concepts: ``Labels`` (the object, one-hot: the ground-truth label group), ``Scene`` (``scene:NAME``,
    one-hot) and ``Noise`` (``n_noise`` coin flips of probability 0.3, unrelated to anything); image ids
    ``img00000 …``.
    """
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
    return ObjectScene(x.astype(np.float32), bank, obj, sc)


def write_object_scene_images(directory: str | Path, data: ObjectScene, rows: Sequence[int] | np.ndarray,
                              size: int = 24) -> list[str]:
    """Write a small PNG for each of ``rows`` (the scene's colour as background, the object's as a centre
    square); return every image's path (rows not written get a path that does not exist)."""
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


def make_concept_combinations(n: int = 2000, n_bits: int = 3, dim: int = 16, noise: float = 1.0, seed: int = 0
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images whose true group is a deterministic function of ``n_bits`` binary concepts.

    Returns ``(features (n, dim) float32, concepts (n, n_bits) uint8, groups (n,) int)``; each of the
    ``2**n_bits`` groups has a well separated centre in feature space (scale 6, noise ``noise``).
    """
    rng = np.random.default_rng(seed)
    concepts = (rng.random((n, n_bits)) < 0.5).astype(np.uint8)
    groups = concepts @ (1 << np.arange(n_bits))
    centres = rng.normal(size=(2**n_bits, dim)) * 6.0
    features = centres[groups] + noise * rng.normal(size=(n, dim))
    return features.astype(np.float32), concepts, groups


def make_linear_probe_problem(n: int = 600, m: int = 40, k: int = 5, seed: int = 0, density: float = 0.1,
                              scale: float = 3.0) -> tuple[sp.csr_matrix, np.ndarray]:
    """Binary concepts (n, m) CSR of one frequency ``density``, and clusters (n,) in ``0 … k-1`` drawn from a
    linear model of them (weights of scale ``scale``) plus Gumbel noise."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n, m)) < density).astype(np.uint8)
    w = rng.normal(size=(m, k)) * scale
    y = (x @ w + rng.gumbel(size=(n, k))).argmax(1)
    return sp.csr_matrix(x), y


def make_skewed_probe_problem(n: int = 700, m: int = 120, k: int = 6, seed: int = 0
                              ) -> tuple[sp.csr_matrix, np.ndarray]:
    """Like :func:`make_linear_probe_problem` with concepts of very different frequencies (``0.4 / (1 + j)^1.2``
    for concept ``j``: many rare ones), so that a batch leaves most concepts untouched."""
    rng = np.random.default_rng(seed)
    freq = 0.4 / (1 + np.arange(m)) ** 1.2
    x = (rng.random((n, m)) < freq).astype(np.uint8)
    w = rng.normal(size=(m, k)) * 2
    y = (x @ w + rng.gumbel(size=(n, k))).argmax(1)
    return sp.csr_matrix(x), y


def make_probe_output(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True clusters (n,) and a probe's log-probabilities (n, k) float32 that favour them (logit + 2.5)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.standard_normal((n, k), dtype=np.float32)
    logits[np.arange(n), y] += 2.5
    logits -= np.logaddexp.reduce(logits, axis=1, keepdims=True)
    return y, logits


def random_image(seed: int, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> PIL.Image.Image:
    """A PIL image of uniformly random pixels, ``size`` = (width, height), mode ``RGB``, ``RGBA`` or ``L``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(array[..., 0] if channels == 1 else array, mode)


def random_jpeg(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    """:func:`random_image` encoded as JPEG (quality 90)."""
    buf = io.BytesIO()
    random_image(seed, size).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_image_folder(root: Path, classes: dict[str, int], *, size: tuple[int, int] = (40, 30),
                       corrupt: bool = False) -> Path:
    """``root/<class>/<i>.jpg`` (random JPEGs) for each class and count; with ``corrupt``, also a truncated
    JPEG (``<first class>/broken.jpg``) and a text file (``notes.txt``). Returns ``root``."""
    seed = 0
    for cls, count in classes.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / cls / f"{i:03d}.jpg").write_bytes(random_jpeg(seed, size))
            seed += 1
    if corrupt:
        first = next(iter(classes))
        full = random_jpeg(999, (64, 48))
        (root / first / "broken.jpg").write_bytes(full[: len(full) // 2])
        (root / "notes.txt").write_text("not an image\n")
    return root


def write_webdataset_shards(root: Path, n_shards: int, per_shard: int, *, with_labels: bool = True,
                            extra_sample: bool = False) -> list[Path]:
    """Webdataset tar shards ``root/shard-000.tar`` … with samples ``sNNN_MMM.jpg`` (random JPEGs) and, with
    ``with_labels``, ``sNNN_MMM.cls`` (label ``MMM % 2``); ``extra_sample`` adds a sample with no image."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(n_shards):
        path = root / f"shard-{s:03d}.tar"
        with tarfile.open(path, "w") as tf:
            for i in range(per_shard):
                key = f"s{s:03d}_{i:03d}"
                members = {f"{key}.jpg": random_jpeg(s * 100 + i)}
                if with_labels:
                    members[f"{key}.cls"] = str(i % 2).encode()
                for name, data in members.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
            if extra_sample:
                info = tarfile.TarInfo(f"s{s:03d}_meta.json")
                meta = b"{}"
                info.size = len(meta)
                tf.addfile(info, io.BytesIO(meta))
        paths.append(path)
    return paths
