"""Generated data whose answer is known: features clustered by concept combinations.

Used by the README's first example, the tests and the benchmarks. Each image has one object (of
``n_objects``) and one scene (of ``n_scenes``); its feature vector is the centre of its (object, scene)
combination plus a colour shift and Gaussian noise. Concepts: the object (group ``Objects``), the scene
(``Scene``), its colours (``Texture``, each colour present with some probability and shifting the feature a
little), and pure-noise concepts (``Other``) independent of everything.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .concepts.bank import ConceptBank


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
