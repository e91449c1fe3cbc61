"""The compiled probe kernel (``_kernels/probe_sgd.c``): the paper's SGD epoch and the validation loss in C.

The kernel computes exactly the update of :mod:`qrprobe.engine.probe.sgd` (``torch.optim.SGD`` with momentum μ,
coupled weight decay λ, batches of the shuffled rows, the learning rate of the epoch), in float32, in another
order of operations: coefficients agree with the torch path to float32 rounding (tested within 1e-4 after
many epochs, with the same selected epoch). Why it is faster (≈ 1,600 steps per epoch at 1.28M images):

- one C call per epoch, not a dozen torch operations and a scipy slice per step;
- the table is cut into tiles of 64 columns (``[tile][row][64]``): a tile of the weights and of the momentum
  (≈ 0.6 MB each at 2,500 concepts) stays in the L2 cache, where it holds 1.5 MB or more, while a step's
  gathers (≈ 30 rows per sample), its sums per table row and its update pass run over it (with 1 MB of L2,
  part of the weights' tile comes back from the L3; other widths measured no faster, benchmarks/RESULTS.md);
- the gradient is summed per table row over the batch rows holding it (the batch's transposed CSR), then the
  momentum step runs once per table row: one pass over the weights instead of three;
- worker threads take tiles from a shared counter and meet once per step: when another process holds a
  core, the thread that still runs takes the tiles of the one that waits (no fixed share per thread), and a
  waiting thread sleeps after a short spin instead of taking the busy core;
- the validation loss runs over blocks of 2,048 rows, tile by tile, each row's maximum and sum of exponentials
  carried from tile to tile (no logits stored): a tile of W and the block's concept indices stay in the L2.

The results do not depend on the number of threads (each value is computed by the same arithmetic whichever
thread computes it). Used on the CPU when a batch touches at least ``KERNEL_MIN_TOUCHED`` (5%) of the concepts
(below, torch's lazy steps are faster) and the library builds here; ``QRPROBE_PROBE_KERNEL=0`` switches it off
(the torch path, which computes the same probe).
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

KERNELS = Path(__file__).with_name("_kernels")
SOURCES = (KERNELS / "probe_sgd.c",)
ABI = 1
FLAGS = ("-O3", "-fno-strict-aliasing", "-pthread")
_P, _I, _F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float


def _load_library() -> tuple[ctypes.CDLL | None, str]:
    """The built library, or (None, why not): the one call to the compiled-library loader."""
    from ..._native import load_library

    return load_library("probe_sgd", SOURCES, abi_symbol="qr_probe_abi_version", abi_version=ABI, flags=FLAGS)


@functools.lru_cache(maxsize=1)
def _load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get("QRPROBE_PROBE_KERNEL", "1").lower() in ("0", "off", "false", "no"):
        return None, "switched off by QRPROBE_PROBE_KERNEL"
    if os.name != "posix":
        return None, "the compiled probe needs a POSIX system"
    lib, why = _load_library()
    if lib is None:
        return None, why
    return declare(lib), ""


def declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    """``lib`` (a build of ``probe_sgd.c``) with the C signatures of its functions declared, for ctypes to check
    and convert the arguments."""
    lib.qr_probe_epoch.restype = ctypes.c_int
    lib.qr_probe_epoch.argtypes = [_P, _P, _I, _I, _P, _P, _P, _P, _I, _I, _F, _F, _F, _P, ctypes.c_int]
    lib.qr_probe_loss.restype = ctypes.c_int
    lib.qr_probe_loss.argtypes = [_P, _I, _I, _P, _P, _P, _I, ctypes.c_int, _P]
    lib.qr_probe_tile_width.restype = ctypes.c_int
    return lib


def available() -> bool:
    """Whether the compiled probe can run here."""
    return _load()[0] is not None


def unavailable() -> str:
    """Why the compiled probe cannot run here ("" when it can)."""
    return _load()[1]


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


class KernelRows:
    """CSR rows with the bias column, as the kernel reads them: ``indptr`` int64 (n + 1), ``indices`` int32,
    ``labels`` int64 (n,)."""

    def __init__(self, matrix: sp.csr_matrix, labels: np.ndarray) -> None:
        self.n = matrix.shape[0]
        self.indptr = np.ascontiguousarray(matrix.indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(matrix.indices, dtype=np.int32)
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)


class KernelSGD:
    """The SGD state (weights W and U = μV + λW, (M + 1) × K float32 with the bias as the last row, stored in
    column tiles) and the epochs of the compiled kernel.

    matrix : (n, M + 1) CSR 0/1 with the bias column (:func:`~qrprobe.engine.probe.sgd.with_bias_column`);
    labels : (n,) cluster ids in ``0 … n_classes − 1``; threads : worker threads (≥ 1);
    library : another build of the kernel, passed through :func:`declare` (a kernel edit measured beside this
        one, ``benchmarks/ab_probe_kernel.py``); by default this checkout's.
    """

    def __init__(self, matrix: sp.csr_matrix, labels: np.ndarray, n_classes: int, batch_size: int,
                 momentum: float, weight_decay: float, threads: int = 1, *,
                 library: ctypes.CDLL | None = None) -> None:
        lib = library if library is not None else _load()[0]
        if lib is None:
            raise RuntimeError(f"the compiled probe cannot run here: {unavailable()}")
        self._lib = lib
        self.rows = KernelRows(matrix, labels)
        self.n_table, self.k = matrix.shape[1], int(n_classes)
        self.tile = int(lib.qr_probe_tile_width())
        self.n_tiles = -(-self.k // self.tile)
        self.batch_size, self.momentum, self.weight_decay = batch_size, momentum, weight_decay
        # more threads than tiles would only wait at every step's barrier
        self.threads = max(1, min(int(threads), self.n_tiles))
        self.w = np.zeros((self.n_tiles, self.n_table, self.tile), dtype=np.float32)
        self.u = np.zeros_like(self.w)

    def epoch(self, perm: np.ndarray, lr: float, true_proba: np.ndarray) -> None:
        """One epoch over the rows ``perm`` (in that order, batches of ``batch_size``) at learning rate ``lr``;
        ``true_proba`` (len(perm),) float32 receives the probability each row gave its label."""
        perm = np.ascontiguousarray(perm, dtype=np.int64)
        if true_proba.dtype != np.float32 or not true_proba.flags.c_contiguous or len(true_proba) != len(perm):
            raise ValueError("true_proba must be a contiguous float32 array of len(perm)")
        r = self.rows
        rc = self._lib.qr_probe_epoch(_ptr(self.w), _ptr(self.u), self.n_table, self.k, _ptr(r.indptr),
                                      _ptr(r.indices), _ptr(r.labels), _ptr(perm), len(perm), self.batch_size,
                                      lr, self.momentum, self.weight_decay, _ptr(true_proba), self.threads)
        if rc != 0:
            raise MemoryError("the compiled probe could not allocate its work buffers")

    def weight(self) -> np.ndarray:
        """The weights, (M + 1, K) float32 (bias last), a new array."""
        return np.ascontiguousarray(self.w.transpose(1, 0, 2).reshape(self.n_table, -1)[:, :self.k])

    def weight_tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.weight())

    def total_loss(self, rows: KernelRows) -> float:
        """Σ of the cross-entropies (nats) of the current probe on ``rows``."""
        total = ctypes.c_double()
        rc = self._lib.qr_probe_loss(_ptr(self.w), self.n_table, self.k, _ptr(rows.indptr), _ptr(rows.indices),
                                     _ptr(rows.labels), rows.n, self.threads, ctypes.byref(total))
        if rc != 0:
            raise MemoryError("the compiled probe could not allocate its work buffers")
        return float(total.value)

    def mean_loss(self, rows: KernelRows) -> float:
        """Mean cross-entropy (nats) of the current probe on ``rows``."""
        return self.total_loss(rows) / rows.n


__all__ = ["KernelRows", "KernelSGD", "available", "declare", "unavailable"]
