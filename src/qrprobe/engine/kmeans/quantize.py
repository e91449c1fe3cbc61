"""Quantization of features: per-dimension standardization, then K-means (Lloyd).

The defaults follow the paper (App. C): K = 1000, 100 Lloyd iterations, the lowest-inertia result of 5
restarts, all points used for training. :func:`fit_clusterings` is the protocol's entry point: it
standardizes the raw features once, streamed into one copy of the storage precision (``kmeans_precision``,
:mod:`qrprobe.engine.kmeans.standardize`), and runs every seed and restart on that copy.

Backends:

- ``torch`` (default), by storage precision:
  - ``float32``: plain float32 Lloyd (:mod:`qrprobe.engine.kmeans.lloyd`), the results of earlier releases bit for bit;
  - ``float16`` / ``bfloat16``: exact Lloyd on the 16-bit values (:mod:`qrprobe.engine.kmeans.exact`) with
    Yinyang bounds, a bfloat16 kernel with float32 accumulation on CPUs with AVX-512 BF16, tensor cores on
    CUDA, and a float64 check wherever two candidates are too close to call: the labels of float64 Lloyd.
- ``faiss``: ``faiss.Kmeans`` with the same iterations, restarts and seed, on a float32 copy, and with its
  silent sub-sampling (256 points per centroid by default) disabled unless ``max_train_points`` asks for it.

Initialisation draws K distinct training points uniformly at random (``init="random"``, what faiss does and
so the default) or by k-means++ seeding (``init="k-means++"``, D² sampling). Empty clusters are re-seeded with
the points farthest from their centroids. Lloyd stops early only at an exact fixed point (no assignment
changed), after which further iterations could not change anything.
"""

from __future__ import annotations

import time
from typing import cast

import numpy as np
import torch

from ...device import resolve_device
from ...errors import ParameterError
from ...progress import Bar, format_seconds, note
from ...progress import bar as progress_bar
from . import memo as kmeans_memo
from .bounds import make_groups as _groups_for
from .exact import BoundedLloyd
from .faiss_backend import fit_faiss
from .lloyd import assign, chunk_rows, fit_plain, initial_centroids
from .result import KMeansResult
from .standardize import (
    PRECISIONS,
    Standardizer,
    apply_standardization,
    check_finite,
    resolve_precision,
    standardized_copy,
)
from .stored import Stored

BACKENDS = ("torch", "faiss")
INITS = ("random", "k-means++")


def _show_restart(bar, restart: int, n_restarts: int) -> None:
    if n_restarts > 1 and hasattr(bar, "set_postfix_str"):
        bar.set_postfix_str(f"restart {restart + 1}/{n_restarts}")


def _progress_bar(total: int, desc: str, progress: bool) -> Bar:
    """A bar over Lloyd iterations (:mod:`qrprobe.progress`)."""
    return progress_bar(total, desc, enabled=progress, unit="it")


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
    chunk_rows : rows per distance block of the float32 path (None: sized so a block is at most 256 MiB).
    progress : show a progress bar over Lloyd iterations.
    precision : storage of the features: ``"auto"``, ``"float32"``, ``"float16"`` or ``"bfloat16"``
        (:func:`~qrprobe.engine.kmeans.standardize.resolve_precision`); the faiss backend always uses float32.

    Attributes
    ----------
    cluster_centers_ : (K, D) float32; labels_ : (N,) int64; inertia_ : float; result_ : KMeansResult;
    precision_ : the storage precision used.
    """

    def __init__(self, n_clusters: int = 1000, *, n_iter: int = 100, n_restarts: int = 5, seed: int = 0,
                 max_train_points: int | None = None, init: str = "random", backend: str = "torch",
                 device: str = "auto", chunk_rows: int | None = None, progress: bool = False,
                 precision: str = "auto") -> None:
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
        self.precision = precision

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
        if self.precision not in PRECISIONS:
            raise ParameterError("kmeans_precision",
                                 f"unknown precision {self.precision!r}, expected one of {PRECISIONS}")
        if isinstance(self.init, np.ndarray):
            if self.init.shape[0] != k:
                raise ParameterError("init", f"initial centroids have {self.init.shape[0]} rows, expected K={k}")
        elif self.init not in INITS:
            raise ParameterError("kmeans_init", f"unknown initialisation {self.init!r}, expected one of {INITS}")
        if not (isinstance(self.init, str) and self.init == "random") and self.backend == "faiss":
            raise ParameterError("kmeans_init", "the faiss backend supports only the random initialisation")
        if self.max_train_points is not None and self.max_train_points < k:
            raise ParameterError("max_train_points", f"{self.max_train_points} is smaller than K={k}")

    def storage_precision(self, n: int, d: int) -> str:
        return "float32" if self.backend == "faiss" else resolve_precision(self.precision, n, d)

    def fit(self, features) -> KMeans:
        """Cluster ``features`` (N, D), already standardized (any float type; an array, memory map or tensor)."""
        n, d = features.shape
        self.check(n)
        stored = Stored.from_array(features, self.storage_precision(n, d), resolve_device(self.device))
        stored.check_sums()
        return self.fit_stored(stored)

    def fit_stored(self, stored: Stored, bar=None) -> KMeans:
        """Cluster features already stored (:class:`Stored`), sharing its norms and engine; ``bar``: a progress
        bar to advance (one is made when None)."""
        n = stored.x.shape[0]
        self.check(n)
        rng = np.random.default_rng(self.seed)
        train_idx = None
        if self.max_train_points is not None and self.max_train_points < n:
            train_idx = np.sort(rng.choice(n, self.max_train_points, replace=False))
        own_bar = bar is None
        if own_bar:
            bar = _progress_bar(self.n_iter * self.n_restarts, f"K-means K={self.n_clusters}", self.progress)
        try:
            with torch.inference_mode():
                if self.backend == "faiss":
                    result = fit_faiss(self, stored.x.cpu().numpy(), train_idx)
                    bar.update(self.n_iter * self.n_restarts)
                elif stored.precision == "float32":
                    chunk = chunk_rows(self.chunk_rows, self.n_clusters)
                    fitted = fit_plain(stored.x, train_idx, k=self.n_clusters, n_iter=self.n_iter,
                                       n_restarts=self.n_restarts, init=self.init, rng=rng, chunk=chunk, bar=bar,
                                       on_restart=lambda i: _show_restart(bar, i, self.n_restarts))
                    result = KMeansResult(*fitted, precision="float32")
                else:
                    self.work_: list = []  # per restart: the work of each assignment pass (benchmarks)
                    result = _fit_exact(self, stored, train_idx, rng, bar)
        finally:
            if own_bar:
                bar.close()
        self.precision_ = stored.precision
        self.result_ = result
        self.cluster_centers_ = result.centroids
        self.labels_ = result.labels
        self.inertia_ = result.inertia
        return self

    def predict(self, features) -> np.ndarray:
        """Nearest centroid of each row of ``features`` (N, D) → (N,) int64 (on the features stored as at fit:
        exact nearest centroids for 16-bit storage, so ``predict`` of the training features gives ``labels_``)."""
        dev = resolve_device(self.device)
        precision = getattr(self, "precision_", "float32")
        centroids = torch.from_numpy(np.array(self.cluster_centers_, dtype=np.float32)).to(dev)  # a copy
        stored = Stored.from_array(features, precision, dev)
        with torch.inference_mode():
            if precision == "float32":
                labels, _ = assign(stored.x, centroids, chunk_rows(self.chunk_rows, self.n_clusters))
                return labels.cpu().numpy()
            return _assign_exact(stored, centroids).cpu().numpy()


def _lloyd_for(stored: Stored, rows: torch.Tensor | None, k: int) -> BoundedLloyd:
    """Lloyd on ``rows`` of the stored features (None: all, sharing the per-row arrays without copies)."""
    row_err, xsq = stored.row_err(k), stored.sq_norms()
    if rows is None:
        return BoundedLloyd(stored.x, torch.arange(stored.x.shape[0], device=stored.x.device), xsq,
                            stored.engine(k), k, row_err)
    return BoundedLloyd(stored.x, rows, xsq[rows], stored.engine(k), k, None if row_err is None else row_err[rows])


def _assign_exact(stored: Stored, centroids: torch.Tensor) -> torch.Tensor:
    """Exact nearest centroid of every stored row (one full pass)."""
    k = centroids.shape[0]
    run = _lloyd_for(stored, None, k)
    run.slot_ids = _groups_for(centroids, run.engine.width)
    run._set_centroids(centroids)
    run._full()
    return run.labels


def _fit_exact(km: KMeans, stored: Stored, train_idx: np.ndarray | None, rng, bar) -> KMeansResult:
    x, dev, k = stored.x, stored.x.device, km.n_clusters
    rows = (torch.arange(x.shape[0], device=dev) if train_idx is None
            else torch.from_numpy(train_idx).to(dev))
    best: tuple | None = None
    inertias, total_reseeded = [], 0
    for restart in range(km.n_restarts):
        _show_restart(bar, restart, km.n_restarts)
        if isinstance(km.init, np.ndarray) or km.init == "random":
            x_pick = x if train_idx is None else _RowView(x, rows)
            # a _RowView has the shape and row indexing that random initialisation reads
            init = initial_centroids(cast(torch.Tensor, x_pick), k, km.init, rng)
        else:
            init = initial_centroids(x if train_idx is None else x[rows], k, km.init, rng)
        run = _lloyd_for(stored, None if train_idx is None else rows, k)
        centroids, n_done, n_reseeded = run.run(init.to(dev), km.n_iter, bar)
        km.work_.append(run.stats)
        total_reseeded += n_reseeded
        inertia = run.inertia()
        inertias.append(inertia)
        if best is None or inertia < best[0]:
            best = (inertia, centroids, n_done, run.labels)
        del run
    assert best is not None  # n_restarts >= 1
    inertia, centroids, n_done, labels = best
    if train_idx is not None:
        labels = _assign_exact(stored, centroids)
        inertia = _exact_inertia(stored, centroids, labels)
    return KMeansResult(labels.cpu().numpy(), centroids.cpu().numpy().astype(np.float32), inertia, n_done,
                        tuple(inertias), total_reseeded, precision=stored.precision)


def _exact_inertia(stored: Stored, centroids: torch.Tensor, labels: torch.Tensor) -> float:
    k = centroids.shape[0]
    run = _lloyd_for(stored, None, k)
    run.slot_ids = _groups_for(centroids, run.engine.width)
    run._set_centroids(centroids)
    run.labels = labels
    return run.inertia()


class _RowView:
    """Rows ``rows`` of ``x`` seen as an array for drawing initial points (shape and row indexing only)."""

    def __init__(self, x: torch.Tensor, rows: torch.Tensor) -> None:
        self.x, self.rows = x, rows
        self.shape = (len(rows), x.shape[1])
        self.device = x.device

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.x[self.rows[idx]]


def fit_clusterings(features, *, k: int, seeds: list[int], n_iter: int = 100, n_restarts: int = 5,
                    max_train_points: int | None = None, init: str = "random", backend: str = "torch",
                    device: str = "auto", progress: bool = False,
                    precision: str = "auto") -> tuple[Standardizer, list[KMeansResult]]:
    """Standardize raw ``features`` once and run K-means once per seed: the quantization of the protocol.

    Parameters
    ----------
    features : (N, D) raw features: an ndarray, a memory map or a sharded store read slice by slice
        (``qrprobe.engine.inputs.ShardedRows``); never modified, never copied whole.
    k, n_iter, n_restarts, max_train_points, init, backend, device, progress, precision : as :class:`KMeans`.
    seeds : one K-means seed per clustering.

    Returns
    -------
    The fitted :class:`Standardizer` and one :class:`KMeansResult` per seed (labels, centroids in standardized
    space, inertia). Parameters are checked before any work. Memory: the one standardized copy of the storage
    precision (N·D·2 bytes for 16-bit) plus O(N·G + K·D) working state.
    """
    def make(seed: int) -> KMeans:
        return KMeans(k, n_iter=n_iter, n_restarts=n_restarts, seed=seed, max_train_points=max_train_points,
                      init=init, backend=backend, device=device, progress=progress, precision=precision)

    n, d = features.shape
    first = make(seeds[0] if seeds else 0)
    first.check(n)
    storage = first.storage_precision(n, d)
    dev = resolve_device(device) if backend == "torch" else torch.device("cpu")
    memo_key = None
    if kmeans_memo.active() and isinstance(init, str):
        memo_key = (kmeans_memo.features_fingerprint(features), k, n_iter, n_restarts, max_train_points, init,
                    backend, str(dev), storage)
    found = {s: cast("KMeansResult | None", kmeans_memo.lookup((*memo_key, s))) for s in seeds} if memo_key else {}
    standardizer = cast("Standardizer | None", kmeans_memo.lookup(memo_key[:1])) if memo_key else None
    todo = [s for s in seeds if found.get(s) is None]
    if standardizer is None:
        standardizer = Standardizer().fit(features, progress)
    if todo:
        stored = Stored(standardized_copy(features, standardizer, storage, dev, progress), storage)
        stored.check_sums()
    results: list[KMeansResult] = []
    with _progress_bar(n_iter * n_restarts * len(todo), f"K-means K={k}", progress) as bar:
        for r, seed in enumerate(seeds):
            what = f"K-means K={k}, clustering {r + 1}/{len(seeds)} (seed {seed})"
            if seed not in todo:
                results.append(cast(KMeansResult, found[seed]))
                note(f"{what}: the same clustering as earlier in this run, reused", progress)
                continue
            bar.set_description(what)
            t = time.perf_counter()
            fitted = make(seed).fit_stored(stored, bar).result_
            results.append(fitted)
            note(f"{what}: {fitted.n_iter} iterations (best of {n_restarts} restart(s)) in "
                 f"{format_seconds(time.perf_counter() - t)}", progress)
            if memo_key:
                kmeans_memo.store((*memo_key, seed), fitted)
    if memo_key:
        kmeans_memo.store(memo_key[:1], standardizer)
    return standardizer, results


__all__ = ["BACKENDS", "INITS", "PRECISIONS", "KMeans", "KMeansResult", "Standardizer", "apply_standardization",
           "check_finite", "fit_clusterings"]
