"""``ReverseProbing``: the protocol as a scikit-learn estimator (``get_params``, ``set_params``, ``clone``).

Its constructor takes exactly the flat protocol parameters of :mod:`qrprobe.engine.config` (protocol and probe
fields, same names and defaults; a test keeps them in step) plus ``progress``, and stores them as given.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from ..results import Result
from .config import ProtocolConfig
from .evaluate import ConceptsLike, evaluate
from .protocol import FeaturesLike


class ReverseProbing(BaseEstimator):
    """Quantized reverse probing as an estimator: ``ReverseProbing(k=1000, clusterings=5).fit(X, concepts)``.

    Parameters
    ----------
    k, clusterings, seed, iters, restarts, max_train_points, kmeans_backend, kmeans_init, test_fraction,
    val_fraction, device, kmeans_precision, null_repeats, bootstrap : the protocol
        (:class:`~qrprobe.engine.config.ProtocolConfig`).
    lr, momentum, batch_size, epochs, milestones, lr_decay, weight_decay, select, solver, lbfgs_grid,
    lbfgs_iters, lbfgs_penalty : the probe's schedule
        (:class:`~qrprobe.engine.config.ProbeConfig`).
    progress : progress bars on stderr.

    Attributes
    ----------
    result_ : :class:`~qrprobe.results.Result`; summary_ : ``result_.summary``; config_ : the ProtocolConfig used.

    Examples
    --------
    >>> from sklearn.base import clone
    >>> est = ReverseProbing(k=50, clusterings=3)
    >>> clone(est).set_params(k=100).get_params()["k"]
    100
    """

    def __init__(self, k: int = 1000, clusterings: int = 5, seed: int = 0, iters: int = 100, restarts: int = 5,
                 max_train_points: int | None = None, kmeans_backend: str = "torch", kmeans_init: str = "random",
                 test_fraction: float = 0.2, val_fraction: float = 0.2, device: str = "auto",
                 kmeans_precision: str = "auto", null_repeats: int = 1, bootstrap: int = 200, lr: float = 3.5,
                 momentum: float = 0.9, batch_size: int = 512, epochs: int = 100,
                 milestones: tuple[int, ...] = (60, 80), lr_decay: float = 0.1, weight_decay: float = 3e-6,
                 select: str = "val_loss", solver: str = "sgd", lbfgs_grid: int = 8, lbfgs_iters: int = 500,
                 lbfgs_penalty: str = "l2", progress: bool = False) -> None:
        self.k = k
        self.clusterings = clusterings
        self.seed = seed
        self.iters = iters
        self.restarts = restarts
        self.max_train_points = max_train_points
        self.kmeans_backend = kmeans_backend
        self.kmeans_init = kmeans_init
        self.test_fraction = test_fraction
        self.val_fraction = val_fraction
        self.device = device
        self.kmeans_precision = kmeans_precision
        self.null_repeats = null_repeats
        self.bootstrap = bootstrap
        self.lr = lr
        self.momentum = momentum
        self.batch_size = batch_size
        self.epochs = epochs
        self.milestones = milestones
        self.lr_decay = lr_decay
        self.weight_decay = weight_decay
        self.select = select
        self.solver = solver
        self.lbfgs_grid = lbfgs_grid
        self.lbfgs_iters = lbfgs_iters
        self.lbfgs_penalty = lbfgs_penalty
        self.progress = progress

    def protocol(self) -> ProtocolConfig:
        """The :class:`ProtocolConfig` of the current parameters (checked)."""
        params: dict[str, Any] = self.get_params()
        params.pop("progress")
        return ProtocolConfig.from_params(**params)

    def fit(self, X: FeaturesLike, concepts: ConceptsLike, name: str = "") -> ReverseProbing:
        """Quantize ``X`` (N, D) (array, store or path) and probe the clusters from ``concepts`` (N rows)."""
        self.config_ = self.protocol()
        self.result_: Result = evaluate(X, concepts, self.config_, name=name, progress=self.progress)
        self.summary_ = self.result_.summary
        return self

    def score(self, metric: str = "nmi") -> float:
        """Mean of ``metric`` over the clusterings of the fitted result (default NMI)."""
        return self.result_.mean(metric)


__all__ = ["ReverseProbing"]
