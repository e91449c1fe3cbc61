"""The reverse probe fitted to the optimum of its regularized objective: full-batch L-BFGS (``--solver lbfgs``).

Objective (the one the paper's SGD descends, in expectation): with the bias as the last row of ``θ``
((M + 1) × K), ``J(θ) = (1/n) Σᵢ −log softmax(xᵢ W + b)[yᵢ] + (λ/2) ‖θ‖²`` — SGD's coupled weight decay λ is the
gradient of the penalty ``(λ/2) ‖θ‖²``, on the weights and the bias alike. ``J`` is strictly convex for λ > 0,
so its minimizer is unique and a deterministic full-batch method reaches it whatever the start.

``lbfgs_penalty="l1"`` replaces the penalty by ``λ Σ|W|`` (the bias not penalized): no longer SGD's objective,
but concepts that carry nothing get weights of exactly zero, so that adding junk concepts costs the estimate
little (docs/protocol.md, "What the MI estimate bounds").

The penalty strength is chosen on the validation split: ``λⱼ = weight_decay · 10^(j/2)``, ``j = 0 … lbfgs_grid − 1``,
fitted from the largest to the smallest, each started from the previous optimum; the path stops early once the
validation loss has risen twice in a row. The class prior (W = 0, b = log frequencies) is a candidate too. With
no validation rows, ``weight_decay`` itself is used.

The loss and its gradient are computed in float64 on the device, in blocks of rows (``X`` as a torch sparse CSR
matrix with a bias column; no dense N × M matrix); the optimizer is SciPy's L-BFGS-B.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import torch

from ..config import ProbeConfig
from .sgd import csr_tensor, with_bias_column

BLOCK_BYTES = 256 * 2**20  # float64 logits of one block of rows
PATIENCE = 2  # rises of the validation loss in a row, after its best so far, that end the path


@dataclasses.dataclass
class LbfgsFit:
    """The kept probe (``weight`` None: the prior), every weight decay tried, and the one kept."""

    weight: torch.Tensor | None
    bias: torch.Tensor | None
    history: list[dict]
    weight_decay: float | None


class Objective:
    """Mean cross-entropy (nats) of ``θ`` on the rows of ``matrix`` and its gradient, float64 on ``device``."""

    def __init__(self, matrix: sp.csr_matrix, labels: np.ndarray, n_classes: int, device: torch.device) -> None:
        table = with_bias_column(matrix)
        self.n, self.n_table = table.shape
        self.k = n_classes
        self.device = device
        rows = max(1, BLOCK_BYTES // (8 * n_classes))
        self.blocks = []
        for start in range(0, self.n, rows):
            part = table[start:start + rows]
            y = torch.from_numpy(np.asarray(labels[start:start + rows], dtype=np.int64)).to(device)
            self.blocks.append((_torch_csr(part, device), _torch_csr(part.T.tocsr(), device), y))

    def loss_and_grad(self, theta: torch.Tensor, with_grad: bool = True) -> tuple[float, torch.Tensor | None]:
        """``(mean CE, d mean CE / dθ)`` for ``theta`` ((M + 1) × K float64)."""
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        grad = torch.zeros_like(theta) if with_grad else None
        for x, xt, y in self.blocks:
            logits = torch.sparse.mm(x, theta)
            log_p = torch.log_softmax(logits, 1)
            total -= log_p.gather(1, y[:, None]).sum()
            if grad is not None:
                p = log_p.exp_()
                p[torch.arange(len(y), device=self.device), y] -= 1.0
                grad.addmm_(xt, p)
        if grad is not None:
            grad /= self.n
        return float(total) / self.n, grad


def _torch_csr(matrix: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    indptr, indices = (torch.from_numpy(a.astype(np.int64)) for a in (matrix.indptr, matrix.indices))
    return csr_tensor(indptr, indices, torch.from_numpy(matrix.data.astype(np.float64)), matrix.shape).to(device)


def minimize(objective: Objective, strength: float, start: np.ndarray, max_iter: int,
             penalty: str = "l2") -> tuple[np.ndarray, dict]:
    """The minimizer of the penalized objective for one penalty ``strength``, from ``start`` (θ, flat float64),
    and what it took. ``penalty="l1"``: ``λ Σ|W|`` (the bias not penalized), minimized over ``θ = θ⁺ − θ⁻`` with
    ``θ± ≥ 0`` (L-BFGS-B's bounds), which makes the penalty smooth."""
    from scipy.optimize import minimize as scipy_minimize

    shape = (objective.n_table, objective.k)
    size = start.size

    def value_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        ce, grad = objective.loss_and_grad(torch.from_numpy(flat.reshape(shape)).to(objective.device))
        assert grad is not None  # with_grad=True
        return ce, grad.cpu().numpy().ravel()

    if penalty == "l2":
        def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
            ce, grad = value_and_grad(flat)
            return ce + 0.5 * strength * float(flat @ flat), grad + strength * flat

        x0, bounds = start, None
    else:
        weights = np.ones(size)
        weights[-objective.k:] = 0.0  # the bias row

        def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:  # flat: (θ⁺, θ⁻)
            ce, grad = value_and_grad(flat[:size] - flat[size:])
            return (ce + strength * float(weights @ (flat[:size] + flat[size:])),
                    np.concatenate([grad + strength * weights, strength * weights - grad]))

        x0, bounds = np.concatenate([np.maximum(start, 0), np.maximum(-start, 0)]), [(0, None)] * (2 * size)
    # with bounds, L-BFGS-B's cost per iteration grows with the memory: 5 pairs reached the same optimum (to
    # 1e-12) 2.4x faster than 20 in our L1 runs
    memory = 20 if bounds is None else 5
    res = scipy_minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                         options={"maxiter": max_iter, "ftol": 1e-12, "gtol": 1e-7, "maxcor": memory})
    theta = res.x if penalty == "l2" else res.x[:size] - res.x[size:]
    return theta, {"iterations": int(res.nit), "evaluations": int(res.nfev), "converged": bool(res.success),
                   "message": str(res.message)}


def weight_decay_grid(config: ProbeConfig) -> list[float]:
    """The weight decays tried, largest first."""
    return [config.weight_decay * 10 ** (j / 2) for j in reversed(range(config.lbfgs_grid))]


def fit_lbfgs(concepts: sp.csr_matrix, labels: np.ndarray, val_concepts: sp.csr_matrix | None,
              val_labels: np.ndarray | None, n_classes: int, config: ProbeConfig, log_prior: np.ndarray,
              device: torch.device, progress: bool = False) -> LbfgsFit:
    """Fit the probe by L-BFGS for each weight decay of the grid; keep the best on validation (or the prior)."""
    from ...progress import track

    train = Objective(concepts, labels, n_classes, device)
    val = (Objective(val_concepts, val_labels, n_classes, device)
           if val_concepts is not None and val_labels is not None else None)
    start = np.zeros((train.n_table, n_classes))
    start[-1] = log_prior
    prior_val = None if val is None else val.loss_and_grad(torch.from_numpy(start).to(device), False)[0]
    history = [{"epoch": 0, "weight_decay": None, "train_loss": train.loss_and_grad(
        torch.from_numpy(start).to(device), False)[0], "seconds": 0.0}]
    if val is not None:
        history[0]["val_loss"] = prior_val
    grid = weight_decay_grid(config) if val is not None and config.weight_decay > 0 else [config.weight_decay]
    best: tuple[float, torch.Tensor | None, float | None] = (prior_val if prior_val is not None else np.inf, None, None)
    rises = 0
    flat = start.ravel()
    for wd in track(grid, "probe L-BFGS", enabled=progress, unit="decay"):
        began = time.perf_counter()
        flat, info = minimize(train, wd, flat, config.lbfgs_iters, config.lbfgs_penalty)
        theta = torch.from_numpy(flat.reshape(train.n_table, n_classes)).to(device)
        record = {"weight_decay": wd, "train_loss": train.loss_and_grad(theta, False)[0], **info}
        score = np.inf
        if val is not None:
            record["val_loss"] = score = val.loss_and_grad(theta, False)[0]
        record["seconds"] = time.perf_counter() - began
        history.append(record)
        if val is None or score < best[0]:
            best, rises = (score, theta.clone(), wd), 0
        elif best[1] is not None:
            # a rise after the best so far; before any decay has beaten the prior, the strong end of the path
            # (an L1 fit at zero, an L2 fit near it) is no rise and must not end the path
            rises += 1
            if rises >= PATIENCE:
                break
    _, best_theta, best_wd = best
    if best_theta is None:
        return LbfgsFit(None, None, history, None)
    best_theta = best_theta.float()
    return LbfgsFit(best_theta[:-1].contiguous(), best_theta[-1].contiguous(), history, best_wd)


__all__ = ["LbfgsFit", "Objective", "fit_lbfgs", "minimize", "weight_decay_grid"]
