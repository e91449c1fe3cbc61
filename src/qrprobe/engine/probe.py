"""The reverse probe: multinomial logistic regression from binary concept vectors to cluster ids.

The probe is linear with a bias, ``logits = y(x) W + b`` with ``W`` of shape (M, K). Concept vectors are
sparse (tens of ones among thousands of concepts), so a row's logits are the sum of the rows of ``W`` of its
active concepts: ``torch.nn.functional.embedding_bag(mode="sum")``. No dense N × M matrix is ever built, and
an epoch costs O(nnz · K) instead of O(N · M · K).

Training follows the paper (App. C): SGD, momentum 0.9, learning rate 3.5, batches of 512, up to 100 epochs,
learning rate ÷10 at epochs 60 and 80, L2 weight decay 3e-6 (decided: applied as PyTorch's SGD
``weight_decay`` to weights and bias alike), and (decided) the epoch with the lowest validation cross-entropy
is kept. Weights start at zero (the problem is convex); the shuffle order is drawn from the seed.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ..device import resolve_device
from .config import ProbeConfig


class SparseRows:
    """A CSR 0/1 matrix on a torch device, gathered row-batch by row-batch for ``embedding_bag``."""

    def __init__(self, matrix: sp.csr_matrix, device: torch.device) -> None:
        matrix = sp.csr_matrix(matrix)
        self.n_rows, self.n_cols = matrix.shape
        self.indptr = torch.from_numpy(matrix.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(matrix.indices.astype(np.int64)).to(device)

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat concept indices and per-row offsets of ``rows`` (1-D int64 tensor)."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        offsets = torch.cumsum(lengths, 0) - lengths
        total = int(lengths.sum())
        positions = torch.repeat_interleave(starts - offsets, lengths, output_size=total)
        positions += torch.arange(total, device=positions.device)
        return self.indices[positions], offsets


def _logits(rows: SparseRows, idx: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    flat, offsets = rows.batch(idx)
    return F.embedding_bag(flat, weight, offsets, mode="sum") + bias


class ReverseProbe:
    """Linear probe from concept vectors to cluster ids (scikit-learn style estimator).

    Parameters
    ----------
    config : ProbeConfig, the training schedule.
    seed : seed of the shuffle order.
    device : ``"auto"``, ``"cpu"``, ``"cuda"`` …
    progress : show a progress bar over epochs.

    Attributes (after ``fit``)
    --------------------------
    coef_ : (M, K) float32, concept → cluster weights; intercept_ : (K,) float32
    best_epoch_ : 1-based epoch kept; history_ : list of per-epoch dicts (``train_loss``, ``val_loss``, ``lr``)
    """

    def __init__(self, config: ProbeConfig | None = None, *, seed: int = 0, device: str = "auto",
                 progress: bool = False, eval_rows: int = 8192) -> None:
        self.config = config or ProbeConfig()
        self.seed = seed
        self.device = device
        self.progress = progress
        self.eval_rows = eval_rows

    def fit(self, concepts: sp.csr_matrix, labels: np.ndarray, val_concepts: sp.csr_matrix | None = None,
            val_labels: np.ndarray | None = None, n_classes: int | None = None) -> ReverseProbe:
        """Train on ``concepts`` (n, M) CSR 0/1 and ``labels`` (n,) in ``0 … n_classes-1``."""
        from tqdm.auto import tqdm

        cfg = self.config
        dev = resolve_device(self.device)
        labels = np.asarray(labels, dtype=np.int64)
        k = int(n_classes if n_classes is not None else labels.max() + 1)
        m = concepts.shape[1]
        rows = SparseRows(concepts, dev)
        y = torch.from_numpy(labels).to(dev)
        has_val = val_concepts is not None and val_labels is not None and len(val_labels) > 0
        if has_val:
            val_rows = SparseRows(val_concepts, dev)
            val_y = torch.from_numpy(np.asarray(val_labels, dtype=np.int64)).to(dev)
        weight = torch.zeros(m, k, device=dev, requires_grad=True)
        bias = torch.zeros(k, device=dev, requires_grad=True)
        opt = torch.optim.SGD([weight, bias], lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.lr_decay)
        gen = torch.Generator().manual_seed(int(self.seed))
        n = len(labels)
        best = (float("inf"), None, None, 0)
        self.history_ = []
        bar = tqdm(range(1, cfg.epochs + 1), desc=f"probe M={m}→K={k}", unit="epoch",
                   disable=None if self.progress else True, leave=False)
        for epoch in bar:
            perm = torch.randperm(n, generator=gen).to(dev)
            total = torch.zeros((), device=dev, dtype=torch.float64)
            for start in range(0, n, cfg.batch_size):
                idx = perm[start:start + cfg.batch_size]
                loss = F.cross_entropy(_logits(rows, idx, weight, bias), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach().double() * len(idx)
            record = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], "train_loss": float(total) / n}
            sched.step()
            if has_val:
                record["val_loss"] = self._mean_loss(val_rows, val_y, weight, bias)
                bar.set_postfix(val_loss=f"{record['val_loss']:.3f}")
            self.history_.append(record)
            score = record["val_loss"] if has_val and cfg.select == "val_loss" else -epoch
            if not np.isfinite(record["train_loss"]):
                raise FloatingPointError(
                    f"the probe diverged at epoch {epoch} (loss {record['train_loss']}); try a smaller --lr")
            if score < best[0]:
                best = (score, weight.detach().clone(), bias.detach().clone(), epoch)
        _, w, b, self.best_epoch_ = best
        self.coef_ = w.cpu().numpy()
        self.intercept_ = b.cpu().numpy()
        self._weight, self._bias, self._device = w, b, dev
        return self

    @torch.no_grad()
    def _mean_loss(self, rows: SparseRows, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> float:
        total = 0.0
        for start in range(0, rows.n_rows, self.eval_rows):
            idx = torch.arange(start, min(start + self.eval_rows, rows.n_rows), device=y.device)
            total += float(F.cross_entropy(_logits(rows, idx, weight, bias), y[idx], reduction="sum"))
        return total / rows.n_rows

    @torch.no_grad()
    def iter_log_proba(self, concepts: sp.csr_matrix):
        """Yield ``(start, block)``: natural-log class probabilities of rows ``start …``, float32 tensors."""
        rows = SparseRows(concepts, self._device)
        for start in range(0, rows.n_rows, self.eval_rows):
            idx = torch.arange(start, min(start + self.eval_rows, rows.n_rows), device=self._device)
            yield start, F.log_softmax(_logits(rows, idx, self._weight, self._bias), dim=1)

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
        probe.coef_ = np.array(coef, dtype=np.float32)
        probe.intercept_ = np.array(intercept, dtype=np.float32)
        probe._weight = torch.from_numpy(probe.coef_).to(dev)
        probe._bias = torch.from_numpy(probe.intercept_).to(dev)
        probe._device = dev
        probe.best_epoch_ = None
        return probe
