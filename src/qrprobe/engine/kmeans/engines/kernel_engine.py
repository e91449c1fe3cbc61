"""The compiled-kernel distance engine (:class:`KernelEngine`): bfloat16 rows × bfloat16 centroids with
float32 accumulation in the AVX-512 BF16 kernel (:mod:`qrprobe.engine.kmeans.kernel`), CPU only."""

from __future__ import annotations

import torch

from .base import Engine, gamma, slot_csq, slot_matrix


class KernelEngine(Engine):
    """bfloat16 rows × bfloat16 centroids, float32 accumulation, in the compiled kernel (CPU). float16 rows are
    rounded to bfloat16 before multiplying (their rounding error enters the bound); the float64 check reads the
    stored values."""

    fused_pass = True

    def __init__(self, x: torch.Tensor, width: int, kernel) -> None:
        super().__init__(x, width)
        if x.dtype not in (torch.bfloat16, torch.float16) or x.shape[1] % 2 or not x.is_contiguous():
            raise ValueError("the kernel needs contiguous 16-bit rows of even width")
        self.kernel = kernel

    def gamma(self) -> float:
        return gamma(self.x.shape[1] + 2)

    def rounded(self, centroids: torch.Tensor) -> torch.Tensor:
        return centroids.to(torch.bfloat16).float()

    def row_error(self, x: torch.Tensor) -> torch.Tensor | None:
        if self.x.dtype == torch.bfloat16:
            return None
        x32 = x.float()
        return (x32.double() - x32.to(torch.bfloat16).double()).norm(dim=1)

    def _prepare(self, centroids: torch.Tensor) -> None:
        d_pad = self.x.shape[1]
        slots = slot_matrix(centroids, self.slot_ids, d_pad).to(torch.bfloat16)
        self.crow = slots.contiguous()
        self.cpack = slots.view(self.groups, self.width, d_pad // 2, 2).permute(0, 2, 1, 3).contiguous()
        self.csq = slot_csq(self.csq64, self.slot_ids)

    def _bf16_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, rows) as the kernel multiplies them: float16 rows are gathered and rounded to bfloat16 first."""
        if self.x.dtype == torch.bfloat16:
            return self.x, rows
        return self.x[rows].float().to(torch.bfloat16), torch.arange(len(rows))

    def group_min2(self, rows, need):
        x, rows = self._bf16_rows(rows)
        m1, slot, m2, done = self.kernel.group_min2(x, rows, self.cpack, self.csq, self.groups, self.width, need)
        return m1, self.centroid_ids(slot), m2, done

    def own(self, rows, labels):
        x, rows = self._bf16_rows(rows)
        return self.kernel.own(x, rows, self.crow, self.csq, self.slot_of[labels])

    def exact_dots(self, rows, ids, chunk=0):
        return self.kernel.exact_dots(self.x, rows, self.c32, ids)

    def assign_pass(self, rows: torch.Tensor, xsq: torch.Tensor, norm: torch.Tensor,
                    row_err: torch.Tensor | None, labels: torch.Tensor, ub: torch.Tensor, lb: torch.Tensor,
                    drift: torch.Tensor | None, group_drift: torch.Tensor | None) -> torch.Tensor:
        """A whole assignment pass in the kernel (see kmeans_assign.c), updating labels, ub, lb in place;
        ``drift`` None: from scratch. Returns (rows multiplied, pairs multiplied, rows checked in float64)."""
        args = dict(x=self.x, ldx=self.x.stride(0), rows=rows, cpack=self.cpack, csq_slot=self.csq, crow=self.crow,
                    slot_of=self.slot_of, slot_ids=self.slot_ids, group_of=self.group_of, c32=self.c32,
                    ldc=self.c32.stride(0), csq64=self.csq64, xsq=xsq, norm=norm, xerr=row_err,
                    ga=self.group_a, gb=self.group_b, gc=self.group_c, oa=self.coef_a, ob=self.coef_b,
                    oc=self.coef_c, drift=drift, gdrift=group_drift, labels=labels, ub=ub, lb=lb,
                    d=self.c32.shape[1], d2=self.x.shape[1] // 2, G=self.groups, W=self.width,
                    is_fp16=int(self.x.dtype == torch.float16))
        for name, t in args.items():
            if isinstance(t, torch.Tensor) and not t.is_contiguous():
                raise ValueError(f"assign_pass: {name} must be contiguous")
        return self.kernel.assign(args, len(rows))


__all__ = ["KernelEngine"]
