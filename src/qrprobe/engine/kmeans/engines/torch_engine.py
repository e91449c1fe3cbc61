"""The torch distance engine (:class:`TorchEngine`): whole rows against every centroid with torch's matrix
products, on any device — float32 products on the CPU (exact inputs, only accumulation error), float16/bfloat16
tensor-core products with float32 output on CUDA."""

from __future__ import annotations

import math

import torch

from .base import CUDA_U, U32, Engine, gamma, slot_csq, slot_matrix


def _has_out_dtype(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether this torch multiplies 16-bit matrices into a float32 result (``torch.mm(..., out_dtype=)``, CUDA)."""
    try:
        a = torch.ones((2, 2), dtype=dtype, device=device)
        return torch.mm(a, a, out_dtype=torch.float32).dtype == torch.float32
    except (TypeError, RuntimeError):
        return False


class _full_float32:
    """Within: CUDA float32 products in full float32 (no TF32), whatever the user's setting."""

    def __enter__(self) -> None:
        self.before = torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")

    def __exit__(self, *exc) -> None:
        torch.backends.cuda.matmul.allow_tf32 = self.before[0]
        torch.set_float32_matmul_precision(self.before[1])



class TorchEngine(Engine):
    """Whole rows at a time with torch: float32 products on the CPU; 16-bit products with float32 output on
    CUDA. A row that needs any group gets every group (the extra groups tighten its bounds for free)."""

    def __init__(self, x: torch.Tensor, width: int, chunk_bytes: int = 256 * 2**20) -> None:
        super().__init__(x, width)
        self.tensor_cores = (x.device.type == "cuda" and x.dtype in (torch.float16, torch.bfloat16)
                             and _has_out_dtype(x.device, x.dtype))
        self.chunk_bytes = chunk_bytes

    def gamma(self) -> float:
        d = self.x.shape[1]
        return gamma(d + 2, CUDA_U) if self.tensor_cores else gamma(d + 2)

    def rounded(self, centroids: torch.Tensor) -> torch.Tensor:
        return centroids.to(self.x.dtype).float() if self.tensor_cores else centroids

    def _prepare(self, centroids: torch.Tensor) -> None:
        slots = slot_matrix(centroids, self.slot_ids, self.x.shape[1])
        self.cslots = slots.to(self.x.dtype) if self.tensor_cores else slots
        self.centroids32 = centroids
        self.csq = slot_csq(self.csq64, self.slot_ids)
        # own() multiplies in float32 on every device: no centroid rounding, float32 accumulation
        c_norm = centroids.double().norm(dim=1)
        self.own_a = 2 * gamma(self.x.shape[1] + 2) * c_norm + 4 * U32 * c_norm

    def _products(self, xb: torch.Tensor) -> torch.Tensor:
        if self.tensor_cores:
            return torch.mm(xb, self.cslots.T, out_dtype=torch.float32)
        with _full_float32():  # TF32 would round the inputs to 10 bits, outside the error bound
            return xb.float() @ self.cslots.T

    def group_min2(self, rows, need):
        n, g, w = len(rows), self.groups, self.width
        m1 = torch.full((n, g), math.inf, dtype=torch.float32, device=self.device)
        m2 = torch.full((n, g), math.inf, dtype=torch.float32, device=self.device)
        ids = torch.zeros((n, g), dtype=torch.int64, device=self.device)
        done = torch.zeros((n, g), dtype=torch.bool, device=self.device)
        todo = torch.arange(n, device=self.device) if need is None else torch.nonzero(need.any(1)).flatten()
        step = max(1, self.chunk_bytes // (4 * g * w))
        for s in range(0, len(todo), step):
            at = todo[s:s + step]
            v = torch.add(self.csq, self._products(self.x[rows[at]]), alpha=-2.0)
            two = torch.topk(v.view(len(at), g, w), 2, dim=2, largest=False)
            m1[at], m2[at] = two.values[..., 0], two.values[..., 1]
            ids[at] = self.slot_ids[two.indices[..., 0] + torch.arange(g, device=self.device) * w]
            done[at] = True
        return m1, ids, m2, done

    def own(self, rows, labels):
        out = torch.empty(len(rows), dtype=torch.float32, device=self.device)
        step = max(1, self.chunk_bytes // (8 * self.x.shape[1]))
        for s in range(0, len(rows), step):
            lab = labels[s:s + step]
            dots = (self.x[rows[s:s + step]].float() * self.centroids32[lab]).sum(1)
            out[s:s + step] = torch.add(self.csq64[lab].float(), dots, alpha=-2.0)
        return out

    def own_error(self, norms, labels, row_err=None):
        return norms * self.own_a[labels] + self.coef_b[labels]


__all__ = ["TorchEngine"]
