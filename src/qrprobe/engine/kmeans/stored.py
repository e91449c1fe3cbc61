"""Standardized features as K-means holds them (:class:`Stored`): one (N, D) tensor of the storage precision
on the device, and what every clustering and restart of them shares — exact squared row norms, the rows'
rounding error where the engine rounds them, the distance engine (picked from the registry,
:mod:`qrprobe.engine.kmeans.engines`) — computed once."""

from __future__ import annotations

import warnings
from typing import cast

import numpy as np
import torch

from . import engines
from . import kernel as kmeans_kernel
from .engines import DistanceEngine, Engine, KernelEngine
from .exact import BoundedLloyd
from .standardize import to_storage, torch_dtype
from .sums import check_sum_range


class Stored:
    """Standardized features as K-means holds them: one (N, D) tensor of the storage precision on the device,
    plus what every clustering of them shares (exact squared row norms, the distance engine).

    ``engine``: the name of a registered distance engine (:mod:`~qrprobe.engine.kmeans.engines`: ``"kernel"``,
    ``"torch"`` …), or ``"auto"``: the first that can run here (the compiled bfloat16 kernel where it runs, else
    torch). An engine asked for by name that cannot run raises an error naming it and why, at first use.
    """

    def __init__(self, x: torch.Tensor, precision: str, engine: str = "auto") -> None:
        self.x = x
        self.precision = precision
        self.engine_name = engine
        self._choice: DistanceEngine | None = None
        self._xsq: torch.Tensor | None = None
        self._engines: dict[int, Engine] = {}
        self._cache: dict = {}

    @classmethod
    def from_array(cls, features, precision: str, device: torch.device) -> Stored:
        """Store already standardized features (an array or tensor), converted block by block."""
        if isinstance(features, torch.Tensor) and features.dtype == torch_dtype(precision):
            return cls(features.to(device), precision)
        if precision == "float32":
            array = np.require(np.asarray(features), np.float32, ["C_CONTIGUOUS"])
            with warnings.catch_warnings():  # a read-only input is only read
                warnings.simplefilter("ignore", UserWarning)
                return cls(torch.from_numpy(array).to(device), precision)
        n, d = features.shape
        x = torch.empty((n, d), dtype=torch_dtype(precision), device=device)
        step = max(1, 2**26 // (8 * max(d, 1)))
        for s in range(0, n, step):
            x[s:s + step] = to_storage(np.asarray(features[s:s + step], dtype=np.float64), precision).to(device)
        return cls(x, precision)

    @property
    def distance_engine(self) -> DistanceEngine:
        """The registered distance engine of these rows (chosen at first use: :func:`~.engines.choose`)."""
        if self._choice is None:
            self._choice = engines.choose(self.x, self.engine_name)
        return self._choice

    def _row_kernel(self):
        """The compiled kernel for the exact row statistics (norms, bfloat16 rounding errors) where it runs on
        these rows, unless an engine other than the kernel was asked for by name; else None (torch)."""
        if self.engine_name not in ("auto", engines.KERNEL.name):
            return None
        x = self.x
        usable = x.device.type == "cpu" and x.dtype in engines.SIXTEEN_BIT and x.is_contiguous()
        return kmeans_kernel.load() if usable else None

    def sq_norms(self) -> torch.Tensor:
        """Exact squared norm of every stored row, (N,) float64 (computed once)."""
        if self._xsq is None:
            kernel = self._row_kernel()
            if kernel is not None:
                self._xsq, self._cache["bf16_err"] = kernel.row_stats(self.x, self.x.dtype == torch.float16)
            else:
                step = max(1, 2**26 // (8 * self.x.shape[1]))
                self._xsq = torch.cat([self.x[s:s + step].double().square().sum(1)
                                       for s in range(0, self.x.shape[0], step)])
        return self._xsq

    def row_err(self, k: int) -> torch.Tensor | None:
        """How far the engine for K clusters rounds each stored row before multiplying, (N,) float64, or None."""
        eng = self.engine(k)
        if eng.row_error(self.x[:1]) is None:  # the engine multiplies the rows as stored
            return None
        if "row_err" not in self._cache:
            self.sq_norms()
            err = self._cache.get("bf16_err") if isinstance(eng, KernelEngine) else None  # the kernel's, if it ran
            if err is None:
                step = max(1, 2**26 // (8 * self.x.shape[1]))
                # the engine rounds these rows: its row_error is never None
                err = torch.cat([cast(torch.Tensor, eng.row_error(self.x[s:s + step]))
                                 for s in range(0, self.x.shape[0], step)])
            self._cache["row_err"] = err.mul_(1 + 1e-12)  # float64 sums of exact squares: a margin over their rounding
            self._cache.pop("bf16_err", None)
        return self._cache["row_err"]

    def engine(self, k: int) -> Engine:
        """The distance engine for K clusters (groups of 32 centroids, 16 below K = 64)."""
        width = 32 if k >= 64 else 16
        if width not in self._engines:
            self._engines[width] = self.distance_engine.make(self.x, width)
        return self._engines[width]

    def lloyd(self, k: int, rows: torch.Tensor | None = None) -> BoundedLloyd:
        """An exact Lloyd (:class:`~.exact.BoundedLloyd`) on ``rows`` (indices, None: all rows, sharing the
        per-row arrays without copies) for K clusters, with this data's norms, rounding errors and engine."""
        row_err, xsq = self.row_err(k), self.sq_norms()
        if rows is None:
            return BoundedLloyd(self.x, torch.arange(self.x.shape[0], device=self.x.device), xsq, self.engine(k), k,
                                row_err)
        return BoundedLloyd(self.x, rows, xsq[rows], self.engine(k), k, None if row_err is None else row_err[rows])

    def check_sums(self) -> None:
        if self.precision != "float32":
            step = max(1, 2**26 // (4 * self.x.shape[1]))
            top = max(float(self.x[s:s + step].abs().max()) for s in range(0, self.x.shape[0], step))
            check_sum_range(self.x.shape[0], top)
