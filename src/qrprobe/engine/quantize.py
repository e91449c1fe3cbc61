"""Quantization of features: per-dimension standardization, then K-means (Lloyd).

The defaults follow the paper (App. C): K = 1000, 100 Lloyd iterations, the lowest-inertia result of 5
restarts, all points used for training. Two backends share one interface:

- ``torch`` (default): Lloyd's algorithm on CPU or GPU, processing rows in chunks so that the N × K distance
  matrix is never held at once (memory is the standardized features plus one ``chunk × K`` block).
- ``faiss``: ``faiss.Kmeans`` with the same iterations, restarts and seed, and with its silent sub-sampling
  (256 points per centroid by default) disabled unless ``max_train_points`` asks for sampling.

Initialisation draws K distinct training points uniformly at random (``init="random"``, what faiss does and
so the default) or by k-means++ seeding (``init="k-means++"``, D² sampling). Empty clusters are
re-seeded with the points farthest from their centroids. Lloyd stops early only at an exact fixed point (no
assignment changed), after which further iterations could not change anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..device import resolve_device
from ..errors import ParameterError, QRProbeInputError, require

BACKENDS = ("torch", "faiss")
INITS = ("random", "k-means++")
_CHUNK_BYTES = 256 * 2**20  # bound on one chunk's distance block


class Standardizer:
    """Per-dimension standardization: ``(x − mean) / std`` over the collection it is fitted on.

    A dimension with zero variance maps to 0. Statistics are accumulated in float64 over row chunks (of at
    most 64 MiB unless ``chunk_rows`` says otherwise), so a memory-mapped or sharded array is never copied
    whole.

    Attributes (after ``fit``): ``mean_`` and ``scale_``, float64 arrays of shape (D,).
    """

    def __init__(self, chunk_rows: int | None = None) -> None:
        self.chunk_rows = chunk_rows

    def _rows(self, d: int) -> int:
        return self.chunk_rows or _rows_per_block(d)

    def fit(self, features: np.ndarray) -> Standardizer:
        n, d = features.shape
        step = self._rows(d)
        total = np.zeros(d)
        total_sq = np.zeros(d)
        for start in range(0, n, step):
            block = np.asarray(features[start:start + step], dtype=np.float64)
            total += block.sum(axis=0)
        mean = total / n
        for start in range(0, n, step):
            block = np.asarray(features[start:start + step], dtype=np.float64) - mean
            total_sq += np.square(block).sum(axis=0)
        std = np.sqrt(total_sq / n)
        self.mean_ = mean
        self.scale_ = np.where(std > 0, std, np.inf)  # x / inf = 0 for a constant dimension
        return self

    def transform(self, features: np.ndarray, dtype=np.float32) -> np.ndarray:
        """Return standardized features, shape (N, D), in ``dtype``."""
        n, d = features.shape
        if d != len(self.mean_):
            raise QRProbeInputError(f"features have {d} dimensions, the standardizer was fitted on {len(self.mean_)}")
        out = np.empty((n, d), dtype=dtype)
        step = self._rows(d)
        for start in range(0, n, step):
            block = np.asarray(features[start:start + step], dtype=np.float64)
            block -= self.mean_
            block /= self.scale_
            out[start:start + len(block)] = block
        return out

    def fit_transform(self, features: np.ndarray, dtype=np.float32) -> np.ndarray:
        return self.fit(features).transform(features, dtype)


def apply_standardization(features: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Apply saved statistics (``mean``, ``scale`` of shape (D,); ``scale`` 0 marks a constant dimension, mapped
    to 0) to ``features`` (N, D), block by block; returns float32 (N, D)."""
    mean = np.asarray(mean, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    if features.shape[1] != len(mean):
        raise QRProbeInputError(
            f"features have {features.shape[1]} dimensions but the saved standardization has {len(mean)} "
            "(features of the same model and layer are needed)")
    standardizer = Standardizer()
    standardizer.mean_ = mean
    standardizer.scale_ = np.where(scale > 0, scale, np.inf)
    return standardizer.transform(features)


def _rows_per_block(d: int, block_bytes: int = 64 * 2**20) -> int:
    """Rows of a (rows, d) float64 block of at most ``block_bytes``."""
    return max(1, block_bytes // (8 * max(d, 1)))


def check_finite(features: np.ndarray, what: str = "features", chunk_rows: int | None = None) -> None:
    """Raise naming the first row with a NaN or infinite value."""
    chunk_rows = chunk_rows or _rows_per_block(features.shape[1])
    for start in range(0, features.shape[0], chunk_rows):
        block = np.asarray(features[start:start + chunk_rows])
        bad = ~np.isfinite(block)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise QRProbeInputError(
                f"{what}: non-finite value {block[row, col]} at row {start + row}, column {col} "
                "(features must be finite numbers)")


@dataclass(frozen=True)
class KMeansResult:
    """One clustering: ``labels`` (N,) int64, ``centroids`` (K, D) float32, ``inertia`` (sum of squared
    distances of all N points to their centroid), ``n_iter`` of the kept restart, ``inertias`` of all
    restarts, ``n_empty_reseeded`` over all restarts."""

    labels: np.ndarray
    centroids: np.ndarray
    inertia: float
    n_iter: int
    inertias: tuple[float, ...]
    n_empty_reseeded: int


class KMeans:
    """K-means with the paper's protocol (scikit-learn style: parameters in ``__init__``, ``fit`` sets ``attr_``).

    Parameters
    ----------
    n_clusters : K, 2 ≤ K ≤ N.
    n_iter : Lloyd iterations per restart (paper: 100).
    n_restarts : independent restarts; the lowest inertia is kept (paper: 5).
    seed : seed of the initialisations (and of the training sample, if any).
    max_train_points : train on a random sample of this many points (None: all points, the default).
    init : ``"random"`` (K distinct points, as faiss; default), ``"k-means++"``, or an array (K, D) of initial
        centroids (the last two with the torch backend only; an array makes every restart identical).
    backend : ``"torch"`` or ``"faiss"``.
    device : ``"auto"``, ``"cpu"``, ``"cuda"`` … (torch backend; faiss uses its GPU build only if installed).
    chunk_rows : rows per distance block (None: sized so a block is at most 256 MiB).
    progress : show a progress bar over Lloyd iterations.

    Attributes
    ----------
    cluster_centers_ : (K, D) float32; labels_ : (N,) int64; inertia_ : float; result_ : KMeansResult
    """

    def __init__(self, n_clusters: int = 1000, *, n_iter: int = 100, n_restarts: int = 5, seed: int = 0,
                 max_train_points: int | None = None, init: str = "random", backend: str = "torch",
                 device: str = "auto",
                 chunk_rows: int | None = None, progress: bool = False) -> None:
        self.n_clusters = n_clusters
        self.n_iter = n_iter
        self.n_restarts = n_restarts
        self.seed = seed
        self.max_train_points = max_train_points
        self.init = init
        self.backend = backend
        self.device = device
        self.chunk_rows = chunk_rows
        self.progress = progress

    def check(self, n: int) -> None:
        """Raise :class:`~qrprobe.errors.ParameterError` when these parameters cannot cluster ``n`` points."""
        k = self.n_clusters
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 2:
            raise ParameterError("k", f"the number of clusters must be an integer ≥ 2, got {k!r}")
        if k > n:
            raise ParameterError("k", f"K={k} clusters exceeds the number of images N={n}")
        if self.n_iter < 1:
            raise ParameterError("iters", f"K-means needs at least 1 iteration, got {self.n_iter!r}")
        if self.n_restarts < 1:
            raise ParameterError("restarts", f"K-means needs at least 1 restart, got {self.n_restarts!r}")
        if self.backend not in BACKENDS:
            raise ParameterError("kmeans_backend", f"unknown backend {self.backend!r}, expected one of {BACKENDS}")
        if isinstance(self.init, np.ndarray):
            if self.init.shape[0] != k:
                raise ParameterError("init", f"initial centroids have {self.init.shape[0]} rows, expected K={k}")
        elif self.init not in INITS:
            raise ParameterError("kmeans_init", f"unknown initialisation {self.init!r}, expected one of {INITS}")
        if not (isinstance(self.init, str) and self.init == "random") and self.backend == "faiss":
            raise ParameterError("kmeans_init", "the faiss backend supports only the random initialisation")
        if self.max_train_points is not None and self.max_train_points < k:
            raise ParameterError("max_train_points", f"{self.max_train_points} is smaller than K={k}")

    def fit(self, features: np.ndarray) -> KMeans:
        """Cluster ``features`` (N, D), already standardized, float32."""
        features = np.require(features, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])  # torch cannot wrap read-only
        n = features.shape[0]
        self.check(n)
        rng = np.random.default_rng(self.seed)
        train_idx = None
        if self.max_train_points is not None and self.max_train_points < n:
            train_idx = np.sort(rng.choice(n, self.max_train_points, replace=False))
        fit = _fit_faiss if self.backend == "faiss" else _fit_torch
        self.result_ = fit(self, features, train_idx, rng)
        self.cluster_centers_ = self.result_.centroids
        self.labels_ = self.result_.labels
        self.inertia_ = self.result_.inertia
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Nearest centroid of each row of ``features`` (N, D) → (N,) int64."""
        dev = resolve_device(self.device)
        x = torch.from_numpy(np.require(features, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])).to(dev)
        c = torch.from_numpy(np.array(self.cluster_centers_, dtype=np.float32)).to(dev)  # a copy: may be read-only
        labels, _ = _assign(x, c, _chunk_rows(self.chunk_rows, self.n_clusters))
        return labels.cpu().numpy()


def _chunk_rows(chunk_rows: int | None, k: int) -> int:
    return chunk_rows or max(1024, _CHUNK_BYTES // (4 * k))


def _row_norms(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """Squared norm of each row, (N,) float32, computed in chunks."""
    return torch.cat([(b * b).sum(dim=1) for b in torch.split(x, chunk)]) if len(x) else x.new_zeros(0)


def _assign(x: torch.Tensor, centroids: torch.Tensor, chunk: int,
            x_sq: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of each row: labels (N,) int64 and squared distances (N,) float32.

    ``x_sq`` are the rows' squared norms (computed here when not given; pass them to reuse across iterations).
    """
    if x_sq is None:
        x_sq = _row_norms(x, chunk)
    c_sq = (centroids * centroids).sum(dim=1)
    labels = torch.empty(x.shape[0], dtype=torch.int64, device=x.device)
    dist = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
    for start in range(0, x.shape[0], chunk):
        block = x[start:start + chunk]
        # ||x||² − 2 x·c + ||c||², minimised over c; ||x||² is added back for the distance itself
        d = torch.addmm(c_sq, block, centroids.T, beta=1.0, alpha=-2.0)
        best, idx = d.min(dim=1)
        labels[start:start + chunk] = idx
        dist[start:start + chunk] = (best + x_sq[start:start + chunk]).clamp_min_(0)
    return labels, dist


def _lloyd(x: torch.Tensor, init: torch.Tensor, n_iter: int, chunk: int, bar,
           x_sq: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Run Lloyd from ``init`` (K, D); return centroids, iterations done, empty clusters re-seeded."""
    k = init.shape[0]
    centroids = init.clone()
    previous = None
    n_reseeded = 0
    it = 0
    for it in range(1, n_iter + 1):  # noqa: B007 - ``it`` is returned
        labels, dist = _assign(x, centroids, chunk, x_sq)
        if bar is not None:
            bar.update(1)
        if previous is not None and torch.equal(labels, previous):
            break  # exact fixed point: centroids would not move again
        previous = labels
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        empty = torch.nonzero(counts == 0).flatten()
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty].unsqueeze(1).to(sums.dtype)
        if len(empty):
            # re-seed each empty cluster with one of the points farthest from its centroid
            far = torch.topk(dist, len(empty)).indices
            centroids[empty] = x[far]
            n_reseeded += len(empty)
    if bar is not None:
        bar.update(n_iter - it)
    return centroids, it, n_reseeded


def _kmeans_plus_plus(x: torch.Tensor, k: int, rng: np.random.Generator) -> torch.Tensor:
    """k-means++ seeding: each next centre drawn with probability proportional to D², the squared distance to
    the nearest centre chosen so far. Returns (k, D)."""
    n = x.shape[0]
    chosen = [int(rng.integers(n))]
    x_sq = (x * x).sum(dim=1)
    nearest = (x_sq - 2 * x @ x[chosen[0]] + x_sq[chosen[0]]).clamp_min_(0)
    for _ in range(1, k):
        weights = nearest.double().cpu().numpy()
        total = weights.sum()
        nxt = int(rng.choice(n, p=weights / total)) if total > 0 else int(rng.integers(n))
        chosen.append(nxt)
        nearest = torch.minimum(nearest, (x_sq - 2 * x @ x[nxt] + x_sq[nxt]).clamp_min_(0))
    return x[torch.tensor(chosen, device=x.device)].clone()


def _fit_torch(km: KMeans, features: np.ndarray, train_idx: np.ndarray | None, rng) -> KMeansResult:
    from tqdm.auto import tqdm

    dev = resolve_device(km.device)
    x_all = torch.from_numpy(features).to(dev)
    x_train = x_all if train_idx is None else x_all[torch.from_numpy(train_idx).to(dev)]
    chunk = _chunk_rows(km.chunk_rows, km.n_clusters)
    train_sq = _row_norms(x_train, chunk)
    best = None
    inertias = []
    total_reseeded = 0
    bar = tqdm(total=km.n_iter * km.n_restarts, desc=f"k-means K={km.n_clusters}", unit="it",
               disable=None if km.progress else True, leave=False)
    with torch.inference_mode(), bar:
        for _ in range(km.n_restarts):
            if isinstance(km.init, np.ndarray):
                init = torch.from_numpy(np.asarray(km.init, dtype=np.float32)).to(dev)
            elif km.init == "k-means++":
                init = _kmeans_plus_plus(x_train, km.n_clusters, rng)
            else:
                init_idx = rng.choice(x_train.shape[0], km.n_clusters, replace=False)
                init = x_train[torch.from_numpy(init_idx).to(dev)]
            centroids, n_done, n_reseeded = _lloyd(x_train, init, km.n_iter, chunk, bar, train_sq)
            total_reseeded += n_reseeded
            _, dist = _assign(x_train, centroids, chunk, train_sq)
            inertia = float(dist.double().sum())
            inertias.append(inertia)
            if best is None or inertia < best[0]:
                best = (inertia, centroids, n_done)
        _, centroids, n_done = best
        labels, dist = _assign(x_all, centroids, chunk, train_sq if train_idx is None else None)
    return KMeansResult(labels.cpu().numpy(), centroids.cpu().numpy().astype(np.float32),
                        float(dist.double().sum()), n_done, tuple(inertias), total_reseeded)


def _fit_faiss(km: KMeans, features: np.ndarray, train_idx: np.ndarray | None, rng) -> KMeansResult:
    faiss = require("faiss", "faiss", "the faiss K-means backend")
    train = features if train_idx is None else features[train_idx]
    n_train, d = train.shape
    kmeans = faiss.Kmeans(
        d, km.n_clusters, niter=km.n_iter, nredo=km.n_restarts, seed=int(km.seed) % 2**31,
        verbose=False, gpu=resolve_device(km.device).type == "cuda" and hasattr(faiss, "StandardGpuResources"),
        # faiss samples 256·K points unless told otherwise; we train on what we were given
        max_points_per_centroid=math.ceil(n_train / km.n_clusters) + 1,
        min_points_per_centroid=1,
    )
    kmeans.train(np.ascontiguousarray(train))
    dist, labels = kmeans.index.search(features, 1)
    obj = np.asarray(kmeans.obj) if len(kmeans.obj) else np.array([np.nan])
    return KMeansResult(labels[:, 0].astype(np.int64), np.asarray(kmeans.centroids, dtype=np.float32),
                        float(np.clip(dist[:, 0], 0, None).astype(np.float64).sum()), km.n_iter,
                        (float(obj[-1]),), 0)


def fit_clusterings(features, *, k: int, seeds: list[int], n_iter: int = 100, n_restarts: int = 5,
                    max_train_points: int | None = None, init: str = "random", backend: str = "torch",
                    device: str = "auto", progress: bool = False) -> tuple[Standardizer, list[KMeansResult]]:
    """Standardize raw ``features`` once and run K-means once per seed: the quantization of the protocol.

    Parameters
    ----------
    features : (N, D) raw features: an ndarray, a memory map or a sharded store read slice by slice
        (``qrprobe.engine.inputs.ShardedRows``); never modified.
    k, n_iter, n_restarts, max_train_points, init, backend, device, progress : as :class:`KMeans`.
    seeds : one K-means seed per clustering.

    Returns
    -------
    The fitted :class:`Standardizer` and one :class:`KMeansResult` per seed (labels, centroids in standardized
    space, inertia). Parameters are checked before any work.
    """
    def make(seed: int) -> KMeans:
        return KMeans(k, n_iter=n_iter, n_restarts=n_restarts, seed=seed, max_train_points=max_train_points,
                      init=init, backend=backend, device=device, progress=progress)

    make(seeds[0] if seeds else 0).check(features.shape[0])
    standardizer = Standardizer().fit(features)
    z = standardizer.transform(features)  # the only N × D array held in memory
    return standardizer, [make(s).fit(z).result_ for s in seeds]
