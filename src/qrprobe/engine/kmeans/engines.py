"""Distance engines of the exact 16-bit K-means: fast approximate distances, each with a proven error bound.

An engine holds the current centroids arranged in G groups of W slots (a group is a set of nearby centroids;
padding slots never win) and answers, for listed rows x of the stored features,

- ``group_min2(rows, need)``: per (row, needed group) the smallest and second-smallest ``v_j = ‖c_j‖² − 2 x·c_j``
  over the group and the centroid of the smallest (so ``‖x − c_j‖² = ‖x‖² + v_j``);
- ``own(rows, labels)``: ``v`` for one given centroid per row;
- ``group_error(norms)`` / ``own_error(norms, labels)``: bounds E with ``|v_computed − v_exact| ≤ E``.

The bound: with x̂ = x (the stored values are the engine's input type), ĉ the centroid rounded to the engine's
input type, and accumulation in float32 over D products,
    |x·c − fl(x·ĉ)| ≤ ‖x‖·‖c − ĉ‖ + γ_D·‖x‖·‖ĉ‖          (Cauchy–Schwarz; γ_D = D·u / (1 − D·u))
plus the float32 rounding of ‖c‖² and of ‖c‖² − 2 x·ĉ, so E = ‖x‖·A_j + B_j per centroid j (per group: the
largest A and B of its members).

Engines: :class:`KernelEngine` (CPU, bfloat16 storage, the compiled AVX-512 BF16 kernel) and
:class:`TorchEngine` (float32 products on the CPU — exact inputs, only accumulation error — or float16/bfloat16
tensor-core products with float32 output on CUDA).
"""

from __future__ import annotations

import math

import torch

U32 = 2.0**-24  # unit roundoff of float32
CUDA_U = 2.0**-22  # assumed per-addition error of tensor-core float32 accumulation (4× float32's, a margin)
_TINY = 2.0**-100  # products and partial sums flushed to zero by the hardware (DAZ/FTZ), summed over D


def gamma(n: int, u: float = U32) -> float:
    """γ_n = n·u / (1 − n·u): relative error bound of a sum of n products accumulated in floating point."""
    return n * u / (1 - n * u)


class Engine:
    """Common state: slots (G·W) → centroid ids (−1 for padding), per-slot error coefficients."""

    def __init__(self, x: torch.Tensor, width: int) -> None:
        self.x = x
        self.width = width
        self.device = x.device

    # -- centroids
    def set_centroids(self, centroids: torch.Tensor, slot_ids: torch.Tensor) -> None:
        """Take ``centroids`` (K, D) float32 arranged by ``slot_ids`` (G·W,) int64 (−1: padding)."""
        self.k = centroids.shape[0]
        self.slot_ids = slot_ids
        self.groups = len(slot_ids) // self.width
        self.slot_of = torch.empty(self.k, dtype=torch.int64, device=slot_ids.device)
        real = slot_ids >= 0
        self.slot_of[slot_ids[real]] = torch.nonzero(real).flatten()
        self.group_of = torch.div(self.slot_of, self.width, rounding_mode="floor")
        c64 = centroids.double()
        self.c32 = centroids.contiguous()
        self.c64 = c64
        self.csq64 = (c64 * c64).sum(1)  # (K,)
        rounded = self.rounded(centroids).double()
        c_err = (c64 - rounded).norm(dim=1)
        c_norm = rounded.norm(dim=1)
        g = self.gamma()
        # E = ‖x‖·A + ‖x − x̂‖·C + B: centroid rounding, row rounding and accumulation (×2 for
        # v = ‖c‖² − 2 x·c, with ‖x̂‖ ≤ ‖x‖ + ‖x − x̂‖), the float32 rounding of ‖c‖² and of the subtraction, and
        # flushed subnormals
        self.coef_a = 2 * (c_err + g * c_norm) + 4 * U32 * c_norm
        self.coef_c = 2 * (1 + g) * c_norm + 4 * U32 * c_norm
        self.coef_b = 2 * U32 * self.csq64 + 2 * _TINY * centroids.shape[1]
        self.group_a, self.group_c, self.group_b = (self._group_max(v, slot_ids)
                                                    for v in (self.coef_a, self.coef_c, self.coef_b))
        self._prepare(centroids)

    def _group_max(self, per_centroid: torch.Tensor, slot_ids: torch.Tensor) -> torch.Tensor:
        per_slot = torch.zeros(len(slot_ids), dtype=torch.float64, device=slot_ids.device)
        real = slot_ids >= 0
        per_slot[real] = per_centroid[slot_ids[real]]
        return per_slot.view(self.groups, self.width).amax(1)

    def row_error(self, x: torch.Tensor) -> torch.Tensor | None:
        """‖x − x̂‖ per row of stored rows ``x`` where the engine rounds them before multiplying, else None."""
        return None

    def group_error(self, norms: torch.Tensor, row_err: torch.Tensor | None = None) -> torch.Tensor:
        """(n, G) float64 bound on the error of ``group_min2`` values for rows of norm ``norms`` (n,) float64
        and rounding error ``row_err`` (n,) (None: the engine multiplies the rows exactly)."""
        e = norms.unsqueeze(1) * self.group_a + self.group_b
        return e if row_err is None else e + row_err.unsqueeze(1) * self.group_c

    def own_error(self, norms: torch.Tensor, labels: torch.Tensor, row_err: torch.Tensor | None = None
                  ) -> torch.Tensor:
        """(n,) float64 bound on the error of ``own`` values."""
        e = norms * self.coef_a[labels] + self.coef_b[labels]
        return e if row_err is None else e + row_err * self.coef_c[labels]

    def centroid_ids(self, slots: torch.Tensor) -> torch.Tensor:
        return self.slot_ids[slots.long()]

    # -- to implement
    def gamma(self) -> float:
        raise NotImplementedError

    def rounded(self, centroids: torch.Tensor) -> torch.Tensor:
        """The centroids as the engine multiplies them (rounded to its input type), float32."""
        raise NotImplementedError

    def _prepare(self, centroids: torch.Tensor) -> None:
        raise NotImplementedError

    def group_min2(self, rows: torch.Tensor, need: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """``m1, ids, m2, done``: (n, G) float32, int64 centroid ids, float32, bool (groups computed)."""
        raise NotImplementedError

    def own(self, rows: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def exact_dots(self, rows: torch.Tensor, ids: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """``x_row · c_id`` in float64 for pairs (rows[i], ids[i]) of stored rows and current centroids: exact
        products, float64 sums. (m,) float64."""
        out = torch.empty(len(rows), dtype=torch.float64, device=self.device)
        for s in range(0, len(rows), chunk):
            out[s:s + chunk] = (self.x[rows[s:s + chunk]].double() * self.c64[ids[s:s + chunk]]).sum(1)
        return out


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


def _slot_matrix(centroids: torch.Tensor, slot_ids: torch.Tensor, width_d: int) -> torch.Tensor:
    """(G·W, width_d) float32: the centroid of each slot (zero rows for padding, zero columns beyond D)."""
    out = torch.zeros((len(slot_ids), width_d), dtype=torch.float32, device=centroids.device)
    real = slot_ids >= 0
    out[real, :centroids.shape[1]] = centroids[slot_ids[real]]
    return out


def _slot_csq(csq64: torch.Tensor, slot_ids: torch.Tensor) -> torch.Tensor:
    out = torch.full((len(slot_ids),), math.inf, dtype=torch.float32, device=slot_ids.device)
    real = slot_ids >= 0
    out[real] = csq64[slot_ids[real]].float()
    return out


class KernelEngine(Engine):
    """bfloat16 rows × bfloat16 centroids, float32 accumulation, in the compiled kernel (CPU). float16 rows are
    rounded to bfloat16 before multiplying (their rounding error enters the bound); the float64 check reads the
    stored values."""

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
        slots = _slot_matrix(centroids, self.slot_ids, d_pad).to(torch.bfloat16)
        self.crow = slots.contiguous()
        self.cpack = slots.view(self.groups, self.width, d_pad // 2, 2).permute(0, 2, 1, 3).contiguous()
        self.csq = _slot_csq(self.csq64, self.slot_ids)

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
        slots = _slot_matrix(centroids, self.slot_ids, self.x.shape[1])
        self.cslots = slots.to(self.x.dtype) if self.tensor_cores else slots
        self.centroids32 = centroids
        self.csq = _slot_csq(self.csq64, self.slot_ids)
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
