"""The paper's SGD for the reverse probe, exactly, with few fused operations per step.

The update is PyTorch's ``torch.optim.SGD`` (momentum μ, dampening 0, coupled weight decay λ, no Nesterov) on
the weights and the bias, stepped per batch, with the learning rate η of the epoch. Per element, for a weight
``w`` with momentum buffer ``v`` and mini-batch gradient ``g``::

    v ← μ v + g + λ w ;   w ← w − η v                                          (one step)

Equivalently ``(w, v) ← A (w, v) + (−η g, g)`` with ``A = [[1 − ηλ, −ημ], [λ, μ]]``. The bias is the last row
of the table ``W`` ((M + 1) × K) and every row carries the extra always-active concept ``M``, so weights and
bias are one tensor, updated by the same operations.

Work per step. The forward is ``embedding_bag`` over the batch's active concepts; the backward and the step
are fused into one sparse product ``V ← μ V + (1/B) Xᵦᵀ G`` (``torch.addmm`` with the batch's transposed CSR,
MKL on the CPU), then ``V += λ W`` and ``W −= η V`` — or, in the decoupled coordinates of
:class:`MomentumTable`, one sparse product and one pass: seven operations per step on the CPU, none of them
on a dense N × M matrix.

Lazy rows. A row whose gradient is zero for ``k`` steps moves by ``Aᵏ``: its state after those steps is known in
closed form. When batches touch few rows (``lazy_fraction``), only those rows are gathered, brought up to
date with ``Aᵏ`` (``k`` = steps since the row was last updated; the 2 × 2 matrices ``Aᵏ`` are tabulated in
float64 for the epoch), stepped, and written back; the others stay as they were. Every row is brought up to
date at the end of each epoch (the evaluation, the snapshot of the best epoch and the next epoch's learning
rate all see the exact state). The cost of a lazy step is proportional to the touched rows, not to M.

On CUDA the batches of an epoch are prepared on the device in one pass and the gradient is scattered with
``index_add_`` (no host synchronisation per step; atomic additions may change the last bits between runs).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

# batches expected to touch at most this share of the rows are stepped lazily (CPU); above it, the dense step
# is cheaper (a lazy step moves each touched row ~4 more times than a dense step moves every row)
LAZY_FRACTION = 0.25
TINY = float(torch.finfo(torch.float32).tiny)


def with_bias_column(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``[matrix | 1]`` as a canonical 0/1 CSR (float32 ones, sorted, no duplicates or zeros; ``indices`` and
    ``indptr`` int32, or both int64 from 2³¹ nonzeros). O(nnz), no sort of the whole matrix."""
    matrix = sp.csr_matrix(matrix, copy=True)
    matrix.eliminate_zeros()
    matrix.sum_duplicates()  # also sorts each row's indices
    n, m = matrix.shape
    nnz = matrix.nnz + n
    # one index type for both arrays: with mixed types scipy converts the whole matrix at every row slice
    index = np.int32 if max(nnz, m + 1) < 2**31 - 1 else np.int64
    indptr = matrix.indptr.astype(np.int64) + np.arange(n + 1)
    indices = np.empty(nnz, dtype=index)
    is_bias = np.zeros(nnz, dtype=bool)
    is_bias[indptr[1:] - 1] = True  # the last entry of every row
    indices[is_bias] = m
    indices[~is_bias] = matrix.indices
    out = sp.csr_matrix((np.ones(nnz, dtype=np.float32), indices, indptr.astype(index)), shape=(n, m + 1))
    out.has_sorted_indices = True
    return out


def step_matrices(lr: float, momentum: float, weight_decay: float, max_steps: int) -> np.ndarray:
    """``Aᵏ`` for ``k = 0 … max_steps``, shape (max_steps + 1, 2, 2), float64: ``k`` zero-gradient steps."""
    a = np.array([[1.0 - lr * weight_decay, -lr * momentum], [weight_decay, momentum]])
    out = np.empty((max_steps + 1, 2, 2))
    out[0] = np.eye(2)
    for k in range(1, max_steps + 1):
        out[k] = a @ out[k - 1]
    return out


@dataclasses.dataclass
class Batch:
    """One step's data. ``flat``/``offsets``: the rows' concept ids (bias id included) for ``embedding_bag``;
    ``labels`` (size,); backward either ``t_indptr``/``t_indices`` (transposed CSR, one row per table row
    or per touched row) or ``rows_of_entries`` (CUDA: the batch row of each entry of ``flat``); ``touched``
    the table rows of a lazy step (None: dense step)."""

    size: int
    flat: torch.Tensor
    offsets: torch.Tensor
    labels: torch.Tensor
    t_indptr: torch.Tensor | None = None
    t_indices: torch.Tensor | None = None
    rows_of_entries: torch.Tensor | None = None
    touched: np.ndarray | None = None


class HostBatches:
    """Batches cut on the host per step (scipy), for the CPU: each costs O(its nonzeros + M).

    ``lazy``: whether the steps are lazy — decided once, from the expected number of rows a batch touches
    (``Σ_r 1 − (1 − f_r)^B`` for column frequencies ``f_r``) against ``lazy_fraction`` of the table.
    """

    def __init__(self, matrix: sp.csr_matrix, labels: np.ndarray, batch_size: int, lazy_fraction: float) -> None:
        self.matrix = matrix  # with the bias column
        self.labels = torch.from_numpy(labels)
        self.batch_size = batch_size
        self.n_table = matrix.shape[1]
        self.lazy = self.expected_lazy(matrix, batch_size, lazy_fraction)
        self._local = np.zeros(self.n_table, dtype=np.int32)

    @staticmethod
    def expected_touched(matrix: sp.csr_matrix, batch_size: int) -> float:
        """The expected share of the table's rows that a batch touches (``Σ_r 1 − (1 − f_r)^B / rows``)."""
        n_table = matrix.shape[1]
        freq = np.bincount(matrix.indices, minlength=n_table) / max(matrix.shape[0], 1)
        return float(np.sum(1.0 - (1.0 - freq) ** min(batch_size, matrix.shape[0]))) / n_table

    @staticmethod
    def expected_lazy(matrix: sp.csr_matrix, batch_size: int, lazy_fraction: float) -> bool:
        """Whether a batch is expected to touch at most ``lazy_fraction`` of the table's rows."""
        return HostBatches.expected_touched(matrix, batch_size) <= lazy_fraction

    def epoch(self, perm: np.ndarray) -> Iterator[Batch]:
        for start in range(0, len(perm), self.batch_size):
            idx = perm[start:start + self.batch_size]
            rows = self.matrix[idx]
            t = rows.tocsc()  # the (M + 1) × B transposed CSR of the batch
            t_indptr = t.indptr.astype(np.int32, copy=False)
            touched = None
            flat = rows.indices.astype(np.int32, copy=False)
            if self.lazy:
                touched = np.flatnonzero(np.diff(t_indptr))
                self._local[touched] = np.arange(len(touched), dtype=np.int32)
                flat = self._local[flat]
                t_indptr = np.append(t_indptr[touched], t_indptr[-1]).astype(np.int32)
            yield Batch(len(idx), torch.from_numpy(flat), torch.from_numpy(rows.indptr[:-1].astype(np.int32)),
                        self.labels[torch.from_numpy(idx)], torch.from_numpy(t_indptr),
                        torch.from_numpy(t.indices.astype(np.int32, copy=False)), touched=touched)


class DeviceBatches:
    """Batches of an epoch prepared on the device in one pass (CUDA): slicing a batch needs no host sync."""

    def __init__(self, matrix: sp.csr_matrix, labels: np.ndarray, batch_size: int, device: torch.device) -> None:
        self.device = device
        self.batch_size = batch_size
        self.n_rows = matrix.shape[0]
        self.nnz = int(matrix.nnz)
        self.indptr = torch.from_numpy(matrix.indptr).to(device)
        self.indices = torch.from_numpy(matrix.indices).to(device)
        self.lengths = self.indptr[1:] - self.indptr[:-1]
        self.labels = torch.from_numpy(labels).to(device)
        self.row_in_batch = torch.arange(self.n_rows, device=device) % batch_size

    def epoch(self, perm: np.ndarray) -> Iterator[Batch]:
        """The batches of the rows ``perm`` (a permutation of the rows, or its first rows), in that order."""
        b, n = self.batch_size, len(perm)
        p = torch.from_numpy(perm).to(self.device)
        lengths = self.lengths[p]
        ptr = torch.zeros(n + 1, dtype=torch.int64, device=self.device)
        torch.cumsum(lengths, 0, out=ptr[1:])
        bounds = ptr[::b].tolist()  # the one host synchronisation of the epoch
        nnz = self.nnz if n == self.n_rows else int(ptr[-1])
        pos = torch.repeat_interleave(self.indptr[p] - ptr[:-1], lengths, output_size=nnz)
        pos += torch.arange(nnz, device=self.device)
        flat = self.indices[pos]
        rows_of_entries = torch.repeat_interleave(self.row_in_batch[:n].to(torch.int32), lengths, output_size=nnz)
        batch_start = ptr[:-1][(torch.arange(n, device=self.device) // b) * b]
        offsets = (ptr[:-1] - batch_start).to(torch.int32)
        labels = self.labels[p]
        bounds.append(nnz)
        for i, start in enumerate(range(0, n, b)):
            lo, hi = bounds[i], bounds[i + 1]
            size = min(b, n - start)
            yield Batch(size, flat[lo:hi], offsets[start:start + size], labels[start:start + size],
                        rows_of_entries=rows_of_entries[lo:hi])


def decoupling(lr: float, momentum: float, weight_decay: float) -> float | None:
    """``c`` with ``P = V + cW`` evolving free of ``W`` (see :class:`MomentumTable`), or None when there is none
    (no weight decay, or complex eigenvalues of ``A``)."""
    b = 1.0 - momentum - lr * weight_decay
    disc = b * b - 4.0 * momentum * lr * weight_decay
    if weight_decay <= 0 or b <= 0 or disc < 0:
        return None
    return -2.0 * weight_decay / (b + disc ** 0.5)  # the root of μη c² + b c + λ = 0 nearest zero


class MomentumTable:
    """Weights ``W`` and momentum ``V`` ((M + 1) × K float32) stepped as ``torch.optim.SGD``.

    Lazy (``lazy=True``, CPU): rows are stepped when touched, brought up to date with ``Aᵏ`` first.

    Otherwise every row steps every time, in decoupled coordinates when they exist: with ``c`` the root of
    ``μη c² + (1 − μ − ηλ) c + λ = 0`` nearest zero, ``P = V + cW`` obeys ``P ← ρP + (1 − cη) g`` with
    ``ρ = (1 − cη) μ`` (no ``W`` in it: the weight decay is folded in), and ``W ← s (W − ηP)`` with
    ``s = 1 / (1 − cη)``; storing ``W = σ Ŵ`` (``σ = sᵗ``) makes that ``Ŵ ← Ŵ − (η/σ) P``. A step is then one
    sparse product into ``P`` and one pass over ``Ŵ`` (instead of two passes), and the logits are ``σ`` times
    those of ``Ŵ``. Exact in real arithmetic; converted back to ``(W, V)`` at the end of each epoch.
    """

    def __init__(self, n_rows: int, n_cols: int, momentum: float, weight_decay: float, device: torch.device,
                 lazy: bool = False) -> None:
        self.weight = torch.zeros(n_rows, n_cols, device=device)
        self.velocity = torch.zeros(n_rows, n_cols, device=device)
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.lazy = lazy
        self.t = 0  # steps taken in the current epoch
        self.last = np.zeros(n_rows, dtype=np.int64)  # lazy: the step up to which each row is exact
        self.lagging = False
        self.lr = 0.0
        self.c: float | None = None  # decoupled coordinates this epoch (None: plain W, V)
        self.scale = 1.0  # σ: W = σ Ŵ while decoupled
        self._powers = step_matrices(0.0, momentum, weight_decay, 0)

    def start_epoch(self, lr: float, n_steps: int) -> None:
        self.finish_epoch()
        self.lr, self.t = lr, 0
        self.last[:] = 0
        if self.lazy:
            self._powers = step_matrices(lr, self.momentum, self.weight_decay, n_steps)
        else:
            self.c = decoupling(lr, self.momentum, self.weight_decay)
            if self.c is not None:
                self.velocity.add_(self.weight, alpha=self.c)

    def finish_epoch(self) -> None:
        """Bring every row up to the current step, in plain coordinates (``weight`` is W)."""
        self.sync()
        if self.c is not None:
            self.weight.mul_(self.scale)
            self.velocity.add_(self.weight, alpha=-self.c)
            self.c, self.scale = None, 1.0

    def _advance(self, w: torch.Tensor, v: torch.Tensor, lags: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``w``, ``v`` moved by ``A^lag`` (lag per row)."""
        c = torch.from_numpy(self._powers[lags].astype(np.float32)).to(w.device)
        new_w = torch.addcmul(w * c[:, 0, 0, None], v, c[:, 0, 1, None])
        new_v = torch.addcmul(w * c[:, 1, 0, None], v, c[:, 1, 1, None])
        return new_w, new_v

    def sync(self) -> None:
        """Lazy: bring every row up to the current step."""
        if self.lagging:
            self.weight, self.velocity = self._advance(self.weight, self.velocity, self.t - self.last)
            self.last[:] = self.t
            self.lagging = False

    def rows(self, touched: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Lazy: copies of rows ``touched``, brought up to the step before the next one."""
        index = torch.from_numpy(touched).to(self.weight.device)
        w, v = self.weight.index_select(0, index), self.velocity.index_select(0, index)
        lags = self.t - self.last[touched]
        if lags.any():
            w, v = self._advance(w, v, lags)
        return w, v

    def step(self, w: torch.Tensor, v: torch.Tensor, batch: Batch, grad_logits: torch.Tensor) -> None:
        """One SGD step of rows ``w``/``v`` (the table, or the touched rows' copies) with the batch's gradient
        ``(1/size) Xᵀ grad_logits``."""
        if self.c is None:
            beta, alpha, lr_w = self.momentum, 1.0 / batch.size, self.lr
        else:
            shrink = 1.0 - self.c * self.lr
            beta, alpha, lr_w = shrink * self.momentum, shrink / batch.size, self.lr / self.scale
        if batch.t_indptr is not None and batch.t_indices is not None:  # (else rows_of_entries)
            t = csr_tensor(batch.t_indptr, batch.t_indices, _ones(len(batch.t_indices), w.device),
                           (w.shape[0], batch.size))
            torch.addmm(v, t, grad_logits, beta=beta, alpha=alpha, out=v)
        else:
            assert batch.rows_of_entries is not None
            v.mul_(beta).index_add_(0, batch.flat, grad_logits.index_select(0, batch.rows_of_entries), alpha=alpha)
        if self.c is None and self.weight_decay:
            v.add_(w, alpha=self.weight_decay)
        w.add_(v, alpha=-lr_w)
        self.t += 1
        if self.c is not None:
            self.scale /= 1.0 - self.c * self.lr
        if batch.touched is not None:
            index = torch.from_numpy(batch.touched).to(w.device)
            self.weight.index_copy_(0, index, w)
            self.velocity.index_copy_(0, index, v)
            self.last[batch.touched] = self.t
            self.lagging = True


_WARNED = [False]


def csr_tensor(indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor,
               size: tuple[int, int]) -> torch.Tensor:
    """A torch sparse CSR matrix (arrays trusted: built by scipy); torch's one-time beta warning silenced."""
    if _WARNED[0]:
        return torch.sparse_csr_tensor(indptr, indices, values, size=size, check_invariants=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _WARNED[0] = True
        return torch.sparse_csr_tensor(indptr, indices, values, size=size, check_invariants=False)


_ONES: dict[torch.device, torch.Tensor] = {}


def _ones(n: int, device: torch.device) -> torch.Tensor:
    """A float32 vector of ``n`` ones (a view of a cached buffer: sparse values, never written)."""
    buf = _ONES.get(device)
    if buf is None or len(buf) < n:
        buf = torch.ones(max(n, 2 * len(buf) if buf is not None else n), device=device)
        _ONES[device] = buf
    return buf[:n]


def train_step(table: MomentumTable, batch: Batch, minus_ones: torch.Tensor, arange: torch.Tensor,
               true_proba: torch.Tensor) -> None:
    """Forward, gradient and SGD step on one batch; writes the probability each row gave its true cluster to
    ``true_proba`` (a (size,) view: the epoch's training loss is computed from these at its end)."""
    if batch.touched is None:
        table.sync()
        w, v = table.weight, table.velocity
    else:
        w, v = table.rows(batch.touched)
    logits = F.embedding_bag(batch.flat, w, batch.offsets, mode="sum")
    if table.scale != 1.0:
        logits.mul_(table.scale)
    grad = torch.softmax(logits, 1)  # one pass fewer than log_softmax + exp
    torch.gather(grad, 1, batch.labels[:, None], out=true_proba[:, None])
    grad.index_put_((arange[:batch.size], batch.labels), minus_ones[:batch.size], accumulate=True)  # − one-hot
    table.step(w, v, batch, grad)


def mean_loss_from_proba(true_proba: torch.Tensor) -> float:
    """Mean cross-entropy (nats) from the probabilities of the true clusters; a probability below the smallest
    normal float32 counts as that one (a loss of 87.3 nats)."""
    return float(-torch.log(true_proba.double().clamp_min(TINY)).mean())


def lr_of_epoch(lr: float, milestones: tuple[int, ...], decay: float, epoch: int) -> float:
    """The learning rate of (1-based) ``epoch`` under ``MultiStepLR`` (multiplied in the same order)."""
    for m in milestones:
        if m < epoch:
            lr = lr * decay
    return lr


__all__ = ["LAZY_FRACTION", "Batch", "DeviceBatches", "HostBatches", "MomentumTable", "csr_tensor", "lr_of_epoch",
           "mean_loss_from_proba", "step_matrices", "train_step", "with_bias_column"]
