"""The reverse probe: multinomial logistic regression from binary concept vectors to cluster ids.

The probe is linear with a bias, ``logits = y(x) W + b`` with ``W`` of shape (M, K). Concept vectors are
sparse (tens of ones among thousands of concepts), so a row's logits are the sum of the rows of ``W`` of its
active concepts: ``torch.nn.functional.embedding_bag(mode="sum")``. No dense N × M matrix is ever built, and
an epoch costs O(nnz · K) instead of O(N · M · K). Stored entries of the concept matrix count as ones.

Training follows the paper (App. C): SGD, momentum 0.9, learning rate 3.5, batches of 512, up to 100 epochs,
learning rate ÷10 at epochs 60 and 80, L2 weight decay 3e-6 (decided: applied as PyTorch's SGD
``weight_decay`` to weights and bias alike), and (decided) the epoch with the lowest validation cross-entropy
is kept. Weights start at zero (the problem is convex); the shuffle order is drawn from the seed. The update
is exactly ``torch.optim.SGD``'s, computed with few fused operations (:mod:`qrprobe.engine.probe.sgd`).

Epoch 0 (decided): the class prior, ``W = 0`` and ``b = log`` of the training clusters' frequencies (add-½
smoothed, so a cluster absent from training keeps a finite loss), is a candidate of the validation selection,
so the kept probe is never worse on validation than knowing nothing about the concepts.

``solver="lbfgs"`` fits the same objective to its optimum instead (:mod:`qrprobe.engine.probe.lbfgs`).

``concept_screen`` (default ``"auto"``; ``"off"`` is the paper): where the training rows are few for the M × K
weights (M · K / (2 n) > 0.05 nats), the probe is fitted on the top-m concepts by training-split mutual
information, m chosen on validation (:mod:`qrprobe.engine.probe.screen`), so that concepts that carry nothing do
not lower the estimate.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ...device import resolve_device
from ...errors import QRProbeInputError
from ..config import ProbeConfig
from .screen import STOP_AFTER, concept_ranking, refine_size, screen_sizes, should_screen
from .sgd import (
    LAZY_FRACTION,
    DeviceBatches,
    HostBatches,
    MomentumTable,
    lr_of_epoch,
    mean_loss_from_proba,
    train_step,
    with_bias_column,
)

PRIOR_PSEUDOCOUNT = 0.5
# the compiled kernel's default worker threads at most (a step is bound by cache bandwidth and split into
# ⌈K / 64⌉ tiles; measured on 2 cores only)
KERNEL_MAX_THREADS = 8
# the kernel updates every row at every step; when a batch touches fewer of the concepts than this, torch's lazy
# steps (only the touched rows) are faster (measured, 20,480 rows, K = 1,000, one thread, CPU s per epoch:
# touched 1.3%: kernel 0.94 vs lazy torch 0.45; 12%: 0.17 vs 0.45; 47% (dense torch steps): 0.11 vs 0.20)
KERNEL_MIN_TOUCHED = 0.05


class ConceptRows:
    """A CSR 0/1 matrix on a torch device, read in blocks of consecutive rows for ``embedding_bag``."""

    def __init__(self, matrix: sp.csr_matrix, device: torch.device) -> None:
        matrix = sp.csr_matrix(matrix)
        self.n_rows, self.n_cols = matrix.shape
        self.indptr = torch.from_numpy(matrix.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(matrix.indices.astype(np.int64)).to(device)
        self._host_indptr = matrix.indptr.astype(np.int64)

    def logits(self, start: int, stop: int, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """(stop − start, K) logits of rows ``start … stop − 1``."""
        lo, hi = int(self._host_indptr[start]), int(self._host_indptr[stop])
        offsets = self.indptr[start:stop] - lo
        return F.embedding_bag(self.indices[lo:hi], weight, offsets, mode="sum") + bias

    def blocks(self, size: int) -> Iterator[tuple[int, int]]:
        for start in range(0, self.n_rows, size):
            yield start, min(start + size, self.n_rows)


def class_prior(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Log of the add-½ smoothed class frequencies of ``labels``, (n_classes,) float32 (natural log)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64) + PRIOR_PSEUDOCOUNT
    return np.log(counts / counts.sum()).astype(np.float32)


def prior_loss(labels: np.ndarray, log_prior: np.ndarray) -> float:
    """Mean cross-entropy (nats) of the prior on ``labels``."""
    return float(-log_prior[labels].astype(np.float64).mean()) if len(labels) else float("nan")


_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"users": 0, "saved": 0}


@contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    """torch's (process-wide) intra-op thread count set to ``n`` while any such block runs (None: unchanged).

    Probes fitted concurrently from several Python threads share the setting; the first block to enter saves
    the previous count and the last to leave restores it.
    """
    if n is None:
        yield
        return
    with _THREADS_LOCK:
        if _THREADS_STATE["users"] == 0:
            _THREADS_STATE["saved"] = torch.get_num_threads()
        _THREADS_STATE["users"] += 1
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["users"] -= 1
            if _THREADS_STATE["users"] == 0 and torch.get_num_threads() != _THREADS_STATE["saved"]:
                torch.set_num_threads(_THREADS_STATE["saved"])


def fit_many(probes: Sequence[ReverseProbe], data: Sequence[tuple], workers: int | None = None,
             ) -> list[ReverseProbe]:
    """Fit ``probes[i]`` on ``data[i]`` (the arguments of :meth:`ReverseProbe.fit`: ``(concepts, labels,
    val_concepts, val_labels, n_classes)``), several at once on the CPU: one Python thread per probe, each
    probe on one intra-op thread, ``workers`` (default: torch's thread count) at a time. The results are
    those of fitting one after the other. On a GPU the probes are fitted in turn."""
    if len(probes) != len(data):
        raise ValueError(f"{len(probes)} probes for {len(data)} datasets")
    cpu = all(resolve_device(p.device).type == "cpu" for p in probes)
    workers = min(len(probes), workers or torch.get_num_threads()) if cpu else 1
    if workers <= 1:
        return [p.fit(*d) for p, d in zip(probes, data, strict=True)]
    from concurrent.futures import ThreadPoolExecutor

    saved = [p.kernel_threads for p in probes]
    try:
        for p in probes:  # several probes at once: one compiled-kernel thread each, as one torch thread each
            p.kernel_threads = p.kernel_threads or 1
        with intra_op_threads(1), ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda pd: pd[0].fit(*pd[1]), zip(probes, data, strict=True)))
    finally:
        for p, value in zip(probes, saved, strict=True):
            p.kernel_threads = value


def available_cpus() -> int:
    """The number of CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ReverseProbe:
    """Linear probe from concept vectors to cluster ids (scikit-learn style estimator).

    Parameters
    ----------
    config : ProbeConfig, the training schedule and solver.
    seed : seed of the shuffle order.
    device : ``"auto"``, ``"cpu"``, ``"cuda"`` …
    progress : show a progress bar over epochs (rate, ETA, validation loss).
    eval_rows : rows per block when evaluating or predicting.
    threads : torch intra-op threads while training on the CPU with torch (default 1: a probe on one thread
        does not stall when another process takes a core; :func:`fit_many` fits several probes at once to use
        more cores; None: torch's setting). The compiled kernel (:mod:`.kernel`, used on the CPU where it
        can run) takes one worker thread per CPU this process may use (at most 8): its threads share the work tile by
        tile, so one that another process delays does not hold the others back.

    Attributes (after ``fit``)
    --------------------------
    coef_ : (M, K) float32, concept → cluster weights; intercept_ : (K,) float32
    best_epoch_ : epoch kept (0: the class prior; L-BFGS: None unless the prior was kept)
    selected_prior_ : whether the class prior was kept
    history_ : per-epoch dicts (``epoch``, ``lr``, ``train_loss``, ``val_loss`` (nats), ``seconds``), epoch 0
        (the prior) first; for L-BFGS one dict per weight decay tried
    weight_decay_ : the weight decay of the kept probe (L-BFGS: chosen on validation)
    concepts_kept_ : (m,) int64, sorted indices of the concepts the kept probe uses (all M unless screened; the
        others have zero weights); n_concepts_kept_ : m
    screen_path_ : concept screening (``config.concept_screen``, :mod:`.screen`): one dict per subset size tried
        (``n_concepts``, ``val_loss`` (nats)), largest first; empty when the probe did not screen
    """

    def __init__(self, config: ProbeConfig | None = None, *, seed: int = 0, device: str = "auto",
                 progress: bool = False, eval_rows: int = 8192, threads: int | None = 1) -> None:
        self.config = config or ProbeConfig()
        self.seed = seed
        self.device = device
        self.progress = progress
        self.eval_rows = eval_rows
        self.threads = threads
        # internal knobs, for tests and benchmarks: the share of touched rows below which a CPU step is lazy,
        # and where batches are cut ("host": scipy per step, "device": per epoch on the device; None: by device)
        self.lazy_fraction = LAZY_FRACTION
        self.batching: str | None = None
        # the compiled kernel (CPU, dense steps): None where available, True required, False never (torch); its
        # worker threads (None: the CPUs this process may run on; fit_many gives each probe one)
        self.kernel: bool | None = None
        self.kernel_threads: int | None = None
        self.prior_candidate = True  # False: the selection before the prior was a candidate (experiments)

    # ------------------------------------------------------------------------------------------- fitting
    def fit(self, concepts: sp.csr_matrix, labels: np.ndarray, val_concepts: sp.csr_matrix | None = None,
            val_labels: np.ndarray | None = None, n_classes: int | None = None) -> ReverseProbe:
        """Train on ``concepts`` (n, M) CSR 0/1 and ``labels`` (n,) in ``0 … n_classes-1``; the validation
        rows (same M) choose the epoch (or the weight decay, for L-BFGS)."""
        concepts = sp.csr_matrix(concepts)
        labels = np.asarray(labels, dtype=np.int64)
        k = int(n_classes if n_classes is not None else labels.max() + 1)
        _check_rows(concepts, labels, k, "training")
        has_val = val_concepts is not None and val_labels is not None and len(val_labels) > 0
        if has_val and val_concepts is not None and val_labels is not None:
            val_concepts = sp.csr_matrix(val_concepts)
            val_labels = np.asarray(val_labels, dtype=np.int64)
            _check_rows(val_concepts, val_labels, k, "validation")
            if val_concepts.shape[1] != concepts.shape[1]:
                raise QRProbeInputError(f"validation concepts have {val_concepts.shape[1]} columns, training "
                                        f"concepts {concepts.shape[1]}")
        dev = resolve_device(self.device)
        val = (val_concepts, val_labels) if has_val and val_concepts is not None and val_labels is not None else None
        m = concepts.shape[1]
        with intra_op_threads(self.threads if dev.type == "cpu" else None):
            if val is not None and should_screen(self.config.concept_screen, concepts.shape[0], m, k, True):
                weight, bias = self._fit_screened(concepts, labels, val, k, dev)
            else:
                weight, bias = self._fit_columns(concepts, labels, val, k, dev)
                self.concepts_kept_ = np.arange(m, dtype=np.int64)
                self.screen_path_: list[dict] = []
        self.n_concepts_kept_ = len(self.concepts_kept_)
        self.selected_prior_ = self.best_epoch_ == 0
        self._set_weights(weight, bias, dev)
        return self

    def _fit_columns(self, concepts: sp.csr_matrix, labels: np.ndarray, val: tuple[sp.csr_matrix, np.ndarray] | None,
                     k: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """One fit of the configured solver on all the columns of ``concepts``; sets ``history_``,
        ``best_epoch_`` and ``weight_decay_`` and returns the kept weight (M, K) and bias (K,)."""
        log_prior = class_prior(labels, k)
        prior = {"epoch": 0, "lr": 0.0, "train_loss": prior_loss(labels, log_prior), "seconds": 0.0}
        if val is not None:
            prior["val_loss"] = prior_loss(val[1], log_prior)
        if self.config.solver == "lbfgs":
            from .lbfgs import fit_lbfgs

            fit = fit_lbfgs(concepts, labels, val[0] if val is not None else None,
                            val[1] if val is not None else None, k, self.config, log_prior, dev, self.progress)
            weight, bias, self.history_, self.weight_decay_ = fit.weight, fit.bias, fit.history, fit.weight_decay
            self.best_epoch_ = None
        else:
            weight, bias, self.best_epoch_ = self._fit_sgd(concepts, labels, val, k, prior, dev)
            self.weight_decay_ = self.config.weight_decay
        if weight is None or bias is None:  # the prior was kept (both None)
            weight = torch.zeros(concepts.shape[1], k, device=dev)
            bias = torch.from_numpy(log_prior).to(dev)
            self.best_epoch_ = 0
        return weight, bias

    def _fit_screened(self, concepts: sp.csr_matrix, labels: np.ndarray, val: tuple[sp.csr_matrix, np.ndarray],
                      k: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Concept screening (:mod:`.screen`): fits on the top-m concepts, m = M first and downwards on the grid
        (stopping after ``STOP_AFTER`` sizes in a row that do not improve, or at once when the first smaller size
        does not beat all M), then, if a subset won, a bisection between it and the next smaller size tried
        (:func:`.screen.refine_size`); the m with the lowest validation cross-entropy is kept (ties: the first
        tried). Sets ``concepts_kept_`` (sorted column indices), ``screen_path_`` (``{"n_concepts", "val_loss"}``
        per size tried, nats, in the order tried) and the kept fit's ``history_`` …; returns the weight (M, K), zero
        in the dropped rows, and the bias (K,)."""
        m = concepts.shape[1]
        ranking = concept_ranking(concepts, labels, k)
        val_rows, val_y = ConceptRows(val[0], dev), torch.from_numpy(val[1]).to(dev)
        best: tuple[float, np.ndarray, torch.Tensor, torch.Tensor, dict] | None = None
        self.screen_path_ = []

        def try_size(size: int) -> bool:  # fits the top-`size` concepts; whether it beat the best so far
            nonlocal best
            cols = np.sort(ranking[:size]) if size < m else np.arange(m, dtype=np.int64)
            sub_x, sub_val = (concepts, val[0]) if size == m else (concepts[:, cols], val[0][:, cols])
            weight, bias = self._fit_columns(sub_x, labels, (sub_val, val[1]), k, dev)
            full = torch.zeros(m, k, device=dev, dtype=weight.dtype)
            full[torch.from_numpy(cols).to(dev)] = weight
            loss = self._mean_loss(val_rows, val_y, full, bias)
            self.screen_path_.append({"n_concepts": int(size), "val_loss": loss})
            if best is None or loss < best[0]:
                state = {"history_": self.history_, "best_epoch_": self.best_epoch_,
                         "weight_decay_": self.weight_decay_}
                best = (loss, cols, full, bias, state)
                return True
            return False

        worse = 0
        for size in screen_sizes(m):
            worse = 0 if try_size(size) else worse + 1
            # all concepts still best after the first smaller size: stop there (the common case costs two fits)
            if worse >= STOP_AFTER or (worse and best is not None and len(best[1]) == m):
                break
        assert best is not None
        best_size = len(best[1])
        below = [p["n_concepts"] for p in self.screen_path_ if p["n_concepts"] < best_size]
        if best_size < m and below:  # a subset won: look between it and the next smaller size tried
            lo, hi = max(below), best_size
            while (mid := refine_size(lo, hi)) is not None:
                lo, hi = (lo, mid) if try_size(mid) else (mid, hi)
        _, self.concepts_kept_, weight, bias, state = best
        for name, value in state.items():
            setattr(self, name, value)
        return weight, bias

    def _fit_sgd(self, concepts: sp.csr_matrix, labels: np.ndarray, val: tuple[sp.csr_matrix, np.ndarray] | None,
                 k: int, prior: dict, dev: torch.device):
        """The paper's SGD; returns the kept epoch's weight (M, K), bias (K,) and number (None, None, 0: the
        prior). The epochs run in the compiled kernel (:mod:`.kernel`) where it can, else in torch."""
        from ...progress import bar as progress_bar

        cfg = self.config
        table_x = with_bias_column(concepts)
        n, m1 = table_x.shape
        runner = self._epoch_runner(table_x, labels, val, k, dev)
        true_proba = runner.true_proba
        gen = torch.Generator().manual_seed(int(self.seed))
        by_val = val is not None and cfg.select == "val_loss"
        self.history_ = [prior]
        best: tuple[float, torch.Tensor | None, torch.Tensor | None, int] = \
            (prior["val_loss"], None, None, 0) if by_val and self.prior_candidate else (math.inf, None, None, 0)
        with progress_bar(cfg.epochs, f"probe M={m1 - 1}→K={k}", enabled=self.progress, unit="epoch") as bar:
            for epoch in range(1, cfg.epochs + 1):
                started = time.perf_counter()
                lr = lr_of_epoch(cfg.lr, cfg.milestones, cfg.lr_decay, epoch)
                runner.epoch(torch.randperm(n, generator=gen).numpy(), lr)
                record = {"epoch": epoch, "lr": lr, "train_loss": mean_loss_from_proba(true_proba)}
                if not np.isfinite(record["train_loss"]):
                    raise FloatingPointError(f"the probe diverged at epoch {epoch} (loss {record['train_loss']}); "
                                             "try a smaller learning rate")
                weight, bias = runner.weights()
                if val is not None:
                    record["val_loss"] = runner.val_loss(weight, bias)
                    bar.set_postfix_str(f"val_loss={record['val_loss']:.3f}")
                record["seconds"] = time.perf_counter() - started
                self.history_.append(record)
                score = record["val_loss"] if by_val else -epoch
                if score < best[0]:
                    best = (score, runner.snapshot(weight), runner.snapshot(bias), epoch)
                bar.update()
        _, w, b, best_epoch = best
        return w, b, best_epoch

    def _epoch_runner(self, table_x: sp.csr_matrix, labels: np.ndarray, val: tuple[sp.csr_matrix, np.ndarray] | None,
                      k: int, dev: torch.device) -> _TorchEpochs | _KernelEpochs:
        """Where the epochs run: the compiled kernel on the CPU when it is available and a batch is expected to
        touch at least ``KERNEL_MIN_TOUCHED`` of the concepts (or when asked for with ``self.kernel = True``),
        else torch."""
        cfg = self.config
        batching = self.batching or ("device" if dev.type == "cuda" else "host")
        if dev.type == "cpu" and batching == "host" and self.kernel is not False:
            from . import kernel

            touched = HostBatches.expected_touched(table_x, cfg.batch_size)
            few = touched < KERNEL_MIN_TOUCHED
            if kernel.available() and not few:
                threads = self.kernel_threads or min(available_cpus(), KERNEL_MAX_THREADS)
                return _KernelEpochs(kernel.KernelSGD(table_x, labels, k, cfg.batch_size, cfg.momentum,
                                                      cfg.weight_decay, threads), val)
            if self.kernel:
                why = (f"a batch touches {touched:.1%} of the concepts, under {KERNEL_MIN_TOUCHED:.0%}: the lazy torch "
                       "steps are faster") if few else kernel.unavailable()
                raise RuntimeError(f"the compiled probe was asked for but cannot run: {why}")
        elif self.kernel:
            raise RuntimeError(f"the compiled probe was asked for but cannot run: it needs the CPU and host batching "
                               f"(device {dev.type}, batching {batching})")
        return _TorchEpochs(self, table_x, labels, val, k, dev, batching)

    def _set_weights(self, weight: torch.Tensor, bias: torch.Tensor, dev: torch.device) -> None:
        self._weight, self._bias, self._device = weight.contiguous(), bias.contiguous(), dev
        self.coef_ = self._weight.cpu().numpy()
        self.intercept_ = self._bias.cpu().numpy()

    @torch.no_grad()
    def _mean_loss(self, rows: ConceptRows, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> float:
        total = torch.zeros((), dtype=torch.float64, device=y.device)
        for start, stop in rows.blocks(self.eval_rows):
            total += F.cross_entropy(rows.logits(start, stop, weight, bias), y[start:stop], reduction="sum")
        return float(total) / rows.n_rows

    # ---------------------------------------------------------------------------------------- prediction
    @torch.no_grad()
    def iter_log_proba(self, concepts: sp.csr_matrix):
        """Yield ``(start, block)``: natural-log class probabilities of rows ``start …``, float32 tensors."""
        rows = ConceptRows(concepts, self._device)
        if rows.n_cols != self._weight.shape[0]:
            raise QRProbeInputError(f"the probe was trained on {self._weight.shape[0]} concepts, "
                                    f"got {rows.n_cols} columns")
        for start, stop in rows.blocks(self.eval_rows):
            yield start, F.log_softmax(rows.logits(start, stop, self._weight, self._bias), dim=1)

    def predict_log_proba(self, concepts: sp.csr_matrix) -> np.ndarray:
        """Natural-log class probabilities, shape (n, K), float32."""
        out = np.empty((concepts.shape[0], self._weight.shape[1]), dtype=np.float32)
        for start, block in self.iter_log_proba(concepts):
            out[start:start + len(block)] = block.cpu().numpy()
        return out

    def predict_proba(self, concepts: sp.csr_matrix) -> np.ndarray:
        """Class probabilities, shape (n, K), float32."""
        return np.exp(self.predict_log_proba(concepts))

    def predict(self, concepts: sp.csr_matrix) -> np.ndarray:
        """Most probable cluster of each row, shape (n,), int64 (computed in blocks: no n × K array)."""
        out = np.empty(concepts.shape[0], dtype=np.int64)
        for start, block in self.iter_log_proba(concepts):
            out[start:start + len(block)] = block.argmax(dim=1).cpu().numpy()
        return out

    @classmethod
    def from_coefficients(cls, coef: np.ndarray, intercept: np.ndarray, device: str = "auto") -> ReverseProbe:
        """A fitted probe from saved weights ``coef`` (M, K) and ``intercept`` (K,) (e.g. for transfer)."""
        probe = cls(device=device)
        dev = resolve_device(device)
        # copies: saved results are memory-mapped read-only, which torch cannot wrap
        probe._set_weights(torch.from_numpy(np.array(coef, dtype=np.float32)).to(dev),
                           torch.from_numpy(np.array(intercept, dtype=np.float32)).to(dev), dev)
        probe.best_epoch_ = None
        probe.selected_prior_ = False
        probe.concepts_kept_ = np.flatnonzero(np.any(np.asarray(coef) != 0, axis=1)).astype(np.int64)
        probe.n_concepts_kept_ = len(probe.concepts_kept_)
        probe.screen_path_ = []
        return probe


class _TorchEpochs:
    """The epochs in torch (:mod:`.sgd`): batches cut per step on the host (scipy) or per epoch on the device."""

    def __init__(self, probe: ReverseProbe, table_x: sp.csr_matrix, labels: np.ndarray,
                 val: tuple[sp.csr_matrix, np.ndarray] | None, k: int, dev: torch.device, batching: str) -> None:
        cfg = probe.config
        n, m1 = table_x.shape
        self.probe, self.batch_size = probe, cfg.batch_size
        if batching == "device":
            self.batches: DeviceBatches | HostBatches = DeviceBatches(table_x, labels, cfg.batch_size, dev)
        else:
            self.batches = HostBatches(table_x, labels, cfg.batch_size, probe.lazy_fraction)
        lazy = getattr(self.batches, "lazy", False)
        self.table = MomentumTable(m1, k, cfg.momentum, cfg.weight_decay, dev, lazy=lazy)
        self.minus_ones = torch.full((cfg.batch_size,), -1.0, device=dev)
        self.arange = torch.arange(cfg.batch_size, device=dev)
        self.true_proba = torch.empty(n, device=dev)
        self.n_steps = math.ceil(n / cfg.batch_size)
        self.val = (ConceptRows(val[0], dev), torch.from_numpy(val[1]).to(dev)) if val is not None else None

    def epoch(self, perm: np.ndarray, lr: float) -> None:
        self.table.start_epoch(lr, self.n_steps)
        start = 0
        for batch in self.batches.epoch(perm):
            train_step(self.table, batch, self.minus_ones, self.arange, self.true_proba[start:start + batch.size])
            start += batch.size
        self.table.finish_epoch()

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.table.weight[:-1], self.table.weight[-1]

    def val_loss(self, weight: torch.Tensor, bias: torch.Tensor) -> float:
        assert self.val is not None
        return self.probe._mean_loss(self.val[0], self.val[1], weight, bias)

    @staticmethod
    def snapshot(t: torch.Tensor) -> torch.Tensor:
        return t.clone()  # a view of the table, which the next epoch changes


class _KernelEpochs:
    """The epochs in the compiled kernel (:mod:`.kernel`, CPU)."""

    def __init__(self, sgd, val: tuple[sp.csr_matrix, np.ndarray] | None) -> None:
        from .kernel import KernelRows

        self.sgd = sgd
        self._proba = np.empty(sgd.rows.n, dtype=np.float32)
        self.true_proba = torch.from_numpy(self._proba)
        self.val = KernelRows(with_bias_column(val[0]), val[1]) if val is not None else None

    def epoch(self, perm: np.ndarray, lr: float) -> None:
        self.sgd.epoch(perm, lr, self._proba)

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        table = self.sgd.weight_tensor()
        return table[:-1], table[-1]

    def val_loss(self, weight: torch.Tensor, bias: torch.Tensor) -> float:
        assert self.val is not None
        return self.sgd.mean_loss(self.val)

    @staticmethod
    def snapshot(t: torch.Tensor) -> torch.Tensor:
        return t  # a fresh copy each epoch


def _check_rows(concepts: sp.csr_matrix, labels: np.ndarray, k: int, what: str) -> None:
    if concepts.shape[0] != len(labels):
        raise QRProbeInputError(f"{len(labels)} {what} labels for {concepts.shape[0]} concept rows")
    if len(labels) == 0:
        raise QRProbeInputError(f"no {what} rows")
    if labels.min() < 0 or labels.max() >= k:
        raise QRProbeInputError(f"{what} labels must lie in 0 … {k - 1}, got {labels.min()} … {labels.max()}")


__all__ = ["ConceptRows", "ReverseProbe", "available_cpus", "class_prior", "fit_many", "intra_op_threads"]
