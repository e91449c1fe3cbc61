"""Quantization of features: per-dimension standardization, then K-means (Lloyd).

The defaults follow the paper (App. C): K = 1000, 100 Lloyd iterations, the lowest-inertia result of 5
restarts, all points used for training. The parameters are the protocol's K-means fields
(:class:`~qrprobe.engine.config.KMeansConfig`: ``k``, ``iters``, ``restarts``, ``max_train_points``,
``kmeans_backend``, ``kmeans_init``, ``kmeans_precision``, ``kmeans_early_stop``, ``kmeans_restart_screen``),
with these names in
:class:`KMeans` and in every message. :func:`fit_clusterings` is the protocol's entry point: it standardizes the
raw features once, streamed into one copy of the storage precision (``kmeans_precision``,
:mod:`qrprobe.engine.kmeans.standardize`), and runs every seed and restart on that copy.

Backends (``kmeans_backend``):

- ``torch`` (default), by storage precision:
  - ``float32``: plain float32 Lloyd (:mod:`qrprobe.engine.kmeans.lloyd`), the results of earlier releases bit for bit;
  - ``float16`` / ``bfloat16``: exact Lloyd on the 16-bit values (:mod:`qrprobe.engine.kmeans.exact_fit`) with
    Yinyang bounds over a distance engine of the registry (:mod:`qrprobe.engine.kmeans.engines`: a bfloat16
    kernel with float32 accumulation on CPUs with AVX-512 BF16, tensor cores on CUDA), and a float64 check
    wherever two candidates are too close to call: the labels of float64 Lloyd.
- ``faiss``: ``faiss.Kmeans`` with the same iterations, restarts and seed, on a float32 copy, and with its
  silent sub-sampling (256 points per centroid by default) disabled unless ``max_train_points`` asks for it.

Initialisation (``kmeans_init``) draws K distinct training points uniformly at random (``"random"``, what faiss
does and so the default) or by greedy k-means++ seeding (``"k-means++"``: D² sampling, the best of 2 + ⌊ln K⌋
candidates per centre, as scikit-learn). Empty clusters are re-seeded with the points farthest from their
centroids. Lloyd stops early only at an exact fixed point (no assignment changed), after which further
iterations could not change anything — or, with ``kmeans_early_stop`` set (off by default), once an
iteration lowers the objective by at most that fraction (faiss's ``early_stop_threshold``). With
``kmeans_restart_screen`` T (off by default) every restart runs T iterations and only the lowest-inertia one
goes on (16-bit storage; :func:`~qrprobe.engine.kmeans.exact_fit.fit_exact`).
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ...device import resolve_device
from ...errors import ParameterError
from ...progress import Bar, format_seconds, note
from ...progress import bar as progress_bar
from ..config import KMeansConfig
from . import memo as kmeans_memo
from .exact_fit import assign_exact, fit_exact
from .faiss_backend import fit_faiss
from .lloyd import assign, chunk_rows, fit_plain
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
from .validation import check_features

BACKENDS = ("torch", "faiss")
INITS = ("random", "k-means++")
#: Parameter names of earlier releases → the schema's (still accepted, with a FutureWarning).
RENAMED = {"n_clusters": "k", "n_iter": "iters", "n_restarts": "restarts", "init": "kmeans_init",
           "backend": "kmeans_backend", "precision": "kmeans_precision"}
_BLOCK_BYTES = 64 * 2**20  # distances (rows × K float64) computed at once by transform and score


def _show_restart(bar, restart: int, n_restarts: int) -> None:
    if n_restarts > 1 and hasattr(bar, "set_postfix_str"):
        bar.set_postfix_str(f"restart {restart + 1}/{n_restarts}")


def _progress_bar(total: int, desc: str, progress: bool) -> Bar:
    """A bar over Lloyd iterations (:mod:`qrprobe.progress`)."""
    return progress_bar(total, desc, enabled=progress, unit="it")


class KMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """K-means with the paper's protocol, as a scikit-learn clusterer (``fit``, ``predict``, ``fit_predict``,
    ``transform``, ``score``; ``get_params``/``set_params``/``clone``). It is exact and deterministic: the
    same features, parameters and ``seed`` give the same clustering.

    Parameters
    ----------
    k, iters, restarts, max_train_points, kmeans_backend, kmeans_init, kmeans_precision, kmeans_early_stop,
    kmeans_restart_screen :
        the protocol's K-means
        fields, same names and defaults (:class:`~qrprobe.engine.config.KMeansConfig`): K (2 ≤ K ≤ N), Lloyd
        iterations per restart, restarts (the lowest inertia kept), a random training sample of this many
        points (None: all), ``"torch"`` or ``"faiss"``, ``"random"`` or ``"k-means++"``, and the storage of the
        features (``"auto"``, ``"float32"``, ``"float16"``, ``"bfloat16"``; faiss always uses float32), and the
        objective plateau that stops a restart early (None: off; torch backend), and the iterations after which
        only the best restart goes on (None: off; 16-bit storage only).
        ``kmeans_init`` may also be an array (K, D) of initial centroids (torch backend; every restart is then
        the same).
    seed : seed of the initialisations (and of the training sample, if any).
    device : ``"auto"``, ``"cpu"``, ``"cuda"`` … (torch backend; faiss uses its GPU build only if installed).
    chunk_rows : rows per distance block of the float32 path (None: sized so a block is at most 256 MiB).
    progress : show a progress bar over Lloyd iterations.

    The names of earlier releases — ``n_clusters``, ``n_iter``, ``n_restarts``, ``init``, ``backend``,
    ``precision`` — are still accepted, with a :class:`FutureWarning`. Bad values raise
    :class:`~qrprobe.errors.ParameterError` naming the parameter, at ``fit``.

    Attributes
    ----------
    cluster_centers_ : (K, D) float32; labels_ : (N,) int64; inertia_ : float; result_ : KMeansResult;
    precision_ : the storage precision used; n_features_in_ : D.
    """

    def __init__(self, k: int = 1000, *, iters: int = 100, restarts: int = 5, seed: int = 0,
                 max_train_points: int | None = None, kmeans_backend: str = "torch",
                 kmeans_init: str | np.ndarray = "random", kmeans_precision: str = "auto",
                 kmeans_early_stop: float | None = None, kmeans_restart_screen: int | None = None,
                 device: str = "auto",
                 chunk_rows: int | None = None, progress: bool = False, **renamed: Any) -> None:
        self.k = k
        self.iters = iters
        self.restarts = restarts
        self.seed = seed
        self.max_train_points = max_train_points
        self.kmeans_backend = kmeans_backend
        self.kmeans_init = kmeans_init
        self.kmeans_precision = kmeans_precision
        self.kmeans_early_stop = kmeans_early_stop
        self.kmeans_restart_screen = kmeans_restart_screen
        self.device = device
        self.chunk_rows = chunk_rows
        self.progress = progress
        for old, value in renamed.items():
            if old not in RENAMED:
                raise TypeError(f"KMeans() got an unexpected keyword argument {old!r}")
            warnings.warn(f"KMeans({old}=…) is deprecated; use {RENAMED[old]}=…", FutureWarning, stacklevel=2)
            setattr(self, RENAMED[old], value)

    @classmethod
    def from_config(cls, config: KMeansConfig, *, seed: int = 0, device: str = "auto", progress: bool = False,
                    chunk_rows: int | None = None) -> KMeans:
        """The estimator of the protocol's K-means ``config`` with this ``seed``, ``device`` and ``progress``."""
        return cls(**config.to_dict(), seed=seed, device=device, progress=progress, chunk_rows=chunk_rows)

    def check(self, n: int) -> KMeansConfig:
        """The parameters as a checked :class:`~qrprobe.engine.config.KMeansConfig` for clustering ``n`` points
        (an array ``kmeans_init`` appears there as ``"random"``); a bad value raises
        :class:`~qrprobe.errors.ParameterError` naming the parameter."""
        init = self.kmeans_init
        given = isinstance(init, np.ndarray)
        values: dict[str, Any] = {
            "k": self.k, "iters": self.iters, "restarts": self.restarts, "max_train_points": self.max_train_points,
            "kmeans_backend": self.kmeans_backend, "kmeans_precision": self.kmeans_precision,
            "kmeans_early_stop": self.kmeans_early_stop, "kmeans_restart_screen": self.kmeans_restart_screen,
            "kmeans_init": "random" if given else init}
        plain: dict[str, Any] = {name: int(v) if isinstance(v, np.integer) else v for name, v in values.items()}
        config = KMeansConfig(**plain)
        k = config.k
        if k > n:
            raise ParameterError("k", f"K={k} clusters exceeds the number of images N={n}")
        if given and cast(np.ndarray, init).shape[0] != k:
            raise ParameterError("kmeans_init", f"initial centroids have {cast(np.ndarray, init).shape[0]} rows, "
                                                f"expected K={k}")
        if (given or config.kmeans_init != "random") and config.kmeans_backend == "faiss":
            raise ParameterError("kmeans_init", "the faiss backend supports only the random initialisation")
        if config.max_train_points is not None and config.max_train_points < k:
            raise ParameterError("max_train_points", f"{config.max_train_points} is smaller than K={k}")
        if config.kmeans_restart_screen is not None and (
                config.kmeans_backend == "faiss" or config.kmeans_precision == "float32"):
            raise ParameterError("kmeans_restart_screen", "needs the 16-bit exact path (kmeans_backend torch, "
                                                          "kmeans_precision auto, float16 or bfloat16)")
        return config

    def storage_precision(self, n: int, d: int) -> str:
        """The storage precision for (n, d) features: float32 for faiss, else ``kmeans_precision`` resolved."""
        return "float32" if self.kmeans_backend == "faiss" else resolve_precision(self.kmeans_precision, n, d)

    # ------------------------------------------------------------------------------------ fitting
    def fit(self, X, y=None) -> KMeans:
        """Cluster ``X`` (N, D), already standardized (any float type; an array, memory map or tensor);
        ``y`` is ignored."""
        X = check_features(self, X, reset=True, min_samples=2)  # K ≥ 2 clusters need two points
        n, d = X.shape
        self.check(n)
        stored = Stored.from_array(X, self.storage_precision(n, d), resolve_device(self.device))
        stored.check_sums()
        return self.fit_stored(stored)

    def fit_stored(self, stored: Stored, bar=None) -> KMeans:
        """Cluster features already stored (:class:`Stored`), sharing its norms and engine; ``bar``: a progress
        bar to advance (one is made when None)."""
        n = stored.x.shape[0]
        config = self.check(n)
        init = self.kmeans_init if isinstance(self.kmeans_init, np.ndarray) else config.kmeans_init
        k, iters, restarts = config.k, config.iters, config.restarts
        rng = np.random.default_rng(self.seed)
        train_idx = None
        if config.max_train_points is not None and config.max_train_points < n:
            train_idx = np.sort(rng.choice(n, config.max_train_points, replace=False))
        own_bar = bar is None
        if own_bar:
            bar = _progress_bar(iters * restarts, f"K-means K={k}", self.progress)
        try:
            with torch.inference_mode():
                if config.kmeans_backend == "faiss":
                    result = fit_faiss(stored.x.cpu().numpy(), train_idx, k=k, iters=iters, restarts=restarts,
                                       seed=self.seed, gpu=resolve_device(self.device).type == "cuda",
                                       early_stop=config.kmeans_early_stop)
                    bar.update(iters * restarts)
                elif stored.precision == "float32":
                    fitted = fit_plain(stored.x, train_idx, k=k, iters=iters, restarts=restarts, init=init, rng=rng,
                                       chunk=chunk_rows(self.chunk_rows, k), bar=bar,
                                       on_restart=lambda i: _show_restart(bar, i, restarts),
                                       early_stop=config.kmeans_early_stop)
                    result = KMeansResult(*fitted, precision="float32")
                else:
                    # work_: per restart, the work of each assignment pass (benchmarks)
                    result, self.work_ = fit_exact(stored, train_idx, k=k, iters=iters, restarts=restarts,
                                                   init=init, rng=rng, bar=bar,
                                                   on_restart=lambda i: _show_restart(bar, i, restarts),
                                                   early_stop=config.kmeans_early_stop,
                                                   restart_screen=config.kmeans_restart_screen)
        finally:
            if own_bar:
                bar.close()
        self.n_features_in_ = stored.x.shape[1]
        self.precision_ = stored.precision
        self.result_ = result
        self.cluster_centers_ = result.centroids
        self.labels_ = result.labels
        self.inertia_ = result.inertia
        return self

    # ------------------------------------------------------------------------------------ fitted
    def _stored(self, X) -> tuple[Stored, np.dtype | torch.dtype]:
        """``X`` checked against ``fit`` and stored as the training features were; and its checked dtype."""
        check_is_fitted(self, "cluster_centers_")
        X = check_features(self, X, reset=False)
        return Stored.from_array(X, getattr(self, "precision_", "float32"), resolve_device(self.device)), X.dtype

    def _centroids(self, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(np.array(self.cluster_centers_, dtype=np.float32)).to(device)  # a copy

    def predict(self, X) -> np.ndarray:
        """Nearest centroid of each row of ``X`` (N, D) → (N,) int64 (on the features stored as at fit: exact
        nearest centroids for 16-bit storage, so ``predict`` of the training features gives ``labels_``)."""
        stored, _ = self._stored(X)
        centroids = self._centroids(stored.x.device)
        with torch.inference_mode():
            if stored.precision == "float32":
                labels, _ = assign(stored.x, centroids, chunk_rows(self.chunk_rows, centroids.shape[0]))
                return labels.cpu().numpy()
            return assign_exact(stored, centroids).cpu().numpy()

    def _sq_distances(self, stored: Stored) -> Iterator[torch.Tensor]:
        """Float64 squared distances of the stored rows to the centroids, in blocks of rows."""
        c = self._centroids(stored.x.device).double()
        csq = (c * c).sum(1)
        step = max(1, _BLOCK_BYTES // (8 * max(len(c), stored.x.shape[1])))
        with torch.inference_mode():
            for start in range(0, stored.x.shape[0], step):
                x = stored.x[start:start + step].double()
                yield ((x * x).sum(1, keepdim=True) - 2 * x @ c.T + csq).clamp_min_(0)

    def transform(self, X) -> np.ndarray:
        """Euclidean distances (N, K) of the rows of ``X`` to the centroids, as scikit-learn's ``KMeans`` (of the
        rows as stored at fit, in float64; returned as float64 for float64 ``X``, else float32)."""
        stored, dtype = self._stored(X)
        out = np.concatenate([block.sqrt_().cpu().numpy() for block in self._sq_distances(stored)])
        return out.astype(np.float64 if dtype == np.float64 else np.float32, copy=False)

    def score(self, X, y=None) -> float:
        """Minus the K-means objective of ``X``: −Σ squared distance of each row to its nearest centroid, as
        scikit-learn's ``KMeans.score`` (higher is better); ``y`` is ignored."""
        stored, _ = self._stored(X)
        return -sum(float(block.min(1).values.sum()) for block in self._sq_distances(stored))

    @property
    def _n_features_out(self) -> int:
        """Output columns of :meth:`transform`: one per cluster (names ``kmeans0`` …)."""
        return self.cluster_centers_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


# The names of earlier releases are taken by ``**renamed`` but are no part of the estimator's signature, which
# scikit-learn reads for get_params, set_params and clone: those see the schema's names only.
KMeans.__init__.__signature__ = inspect.signature(KMeans.__init__).replace(  # type: ignore[attr-defined]
    parameters=[p for p in inspect.signature(KMeans.__init__).parameters.values() if p.kind is not p.VAR_KEYWORD])


def fit_clusterings(features, config: KMeansConfig, *, seeds: list[int], device: str = "auto",
                    progress: bool = False) -> tuple[Standardizer, list[KMeansResult]]:
    """Standardize raw ``features`` once and run K-means once per seed: the quantization of the protocol.

    Parameters
    ----------
    features : (N, D) raw features: an ndarray, a memory map or a sharded store read slice by slice
        (``qrprobe.engine.inputs.ShardedRows``); never modified, never copied whole.
    config : the K-means (:class:`~qrprobe.engine.config.KMeansConfig`).
    seeds : one K-means seed per clustering.
    device, progress : as :class:`KMeans`.

    Returns
    -------
    The fitted :class:`Standardizer` and one :class:`KMeansResult` per seed (labels, centroids in standardized
    space, inertia). Parameters are checked before any work. Memory: the one standardized copy of the storage
    precision (N·D·2 bytes for 16-bit) plus O(N·G + K·D) working state.
    """
    def make(seed: int) -> KMeans:
        return KMeans.from_config(config, seed=seed, device=device, progress=progress)

    n, d = features.shape
    first = make(seeds[0] if seeds else 0)
    first.check(n)
    storage = first.storage_precision(n, d)
    dev = resolve_device(device) if config.kmeans_backend == "torch" else torch.device("cpu")
    k, iters, restarts = config.k, config.iters, config.restarts
    memo_key = None
    if kmeans_memo.active():
        memo_key = (kmeans_memo.features_fingerprint(features), k, iters, restarts, config.max_train_points,
                    config.kmeans_init, config.kmeans_backend, str(dev), storage, config.kmeans_early_stop,
                    config.kmeans_restart_screen)
    found = {s: cast("KMeansResult | None", kmeans_memo.lookup((*memo_key, s))) for s in seeds} if memo_key else {}
    standardizer = cast("Standardizer | None", kmeans_memo.lookup(memo_key[:1])) if memo_key else None
    todo = [s for s in seeds if found.get(s) is None]
    if standardizer is None:
        standardizer = Standardizer().fit(features, progress)
    if todo:
        stored = Stored(standardized_copy(features, standardizer, storage, dev, progress), storage)
        stored.check_sums()
    results: list[KMeansResult] = []
    with _progress_bar(iters * restarts * len(todo), f"K-means K={k}", progress) as bar:
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
            note(f"{what}: {fitted.n_iter} iterations (best of {restarts} restart(s)) in "
                 f"{format_seconds(time.perf_counter() - t)}", progress)
            if memo_key:
                kmeans_memo.store((*memo_key, seed), fitted)
    if memo_key:
        kmeans_memo.store(memo_key[:1], standardizer)
    return standardizer, results


__all__ = ["BACKENDS", "INITS", "PRECISIONS", "RENAMED", "KMeans", "KMeansConfig", "KMeansResult", "Standardizer",
           "apply_standardization", "check_finite", "fit_clusterings"]
