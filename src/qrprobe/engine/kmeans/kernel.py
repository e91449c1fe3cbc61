"""The compiled bfloat16 K-means kernel (``_kernels/kmeans_bf16.c``): built on first use, loaded with ctypes.

torch's CPU bfloat16 matrix product rounds its output to bfloat16, too coarse to certify an assignment; MKL's
``cblas_gemm_bf16bf16f32`` inside torch runs at a third of the float32 speed on AMD CPUs. This small kernel
multiplies bfloat16 rows by bfloat16 centroids with float32 accumulation (AVX-512 BF16 ``vdpbf16ps``) and
keeps, per row and centroid group, the two smallest values, at the speed of torch's own bfloat16 product.

It is used when the CPU has AVX-512 BF16 (checked at run time) and a C compiler (``cc``, or ``$CC``) can build
it; the shared library is cached under ``$QRPROBE_CACHE`` (default ``~/.cache/qrprobe``)/kernels, named by a
hash of the source, and verified before it is loaded (``qrprobe._native``: a damaged, foreign or
other-version file is rebuilt, or the torch path is used with one warning). Anything else — no compiler, another
CPU, ``QRPROBE_KMEANS_KERNEL=0`` — gives ``None`` and K-means takes the pure-torch path, which computes the same
assignments.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ... import _native

KERNELS = Path(__file__).with_name("_kernels")
SOURCES = (KERNELS / "kmeans_bf16.c", KERNELS / "kmeans_assign.c")
HEADERS = (KERNELS / "kmeans_bf16.h",)
GROUP_WIDTHS = (16, 32, 48, 64)  # centroids per group the kernel handles
_P, _I = ctypes.c_void_p, ctypes.c_int64
_ABI = 7
FLAGS = ("-O3", "-fno-strict-aliasing", "-ffp-contract=off")


def cache_dir() -> Path:
    """Where the compiled kernel is cached (``$QRPROBE_CACHE/kernels``; :func:`qrprobe._native.cache_dir`)."""
    return _native.cache_dir()


def library_path() -> Path:
    """The cached shared library of the current sources (it may not exist yet)."""
    return _native.library_path("kmeans_bf16", SOURCES, HEADERS, abi_version=_ABI, flags=FLAGS)


@functools.lru_cache(maxsize=1)
def _load() -> tuple[BF16Kernel | None, str]:
    """(the kernel, "") or (None, why it cannot run here). Building, verifying the cached file and falling back
    with one warning are :func:`qrprobe._native.load_library`'s."""
    if os.environ.get("QRPROBE_KMEANS_KERNEL", "1") in ("0", "off", "false", "no"):
        return None, "switched off by QRPROBE_KMEANS_KERNEL"
    if os.uname().machine not in ("x86_64", "AMD64"):
        return None, f"an x86-64 CPU is needed, this is {os.uname().machine}"
    lib, why = _native.load_library("kmeans_bf16", SOURCES, HEADERS, abi_symbol="qr_abi_version",
                                    abi_version=_ABI, flags=FLAGS)
    if lib is None:
        return None, f"it could not be built or loaded: {why}"
    if not lib.qr_cpu_supported():
        return None, "the CPU has no AVX-512 BF16"
    return BF16Kernel(lib), ""


def load() -> BF16Kernel | None:
    """The kernel, or None where it cannot run here (see the module docstring; :func:`unavailable` says why)."""
    return _load()[0]


def unavailable() -> str | None:
    """Why the kernel cannot run here (no C compiler, another CPU, switched off …), or None when it can."""
    kernel, why = _load()
    return None if kernel is not None else why


class AssignArgs(ctypes.Structure):
    """Mirror of ``qr_assign_args`` in kmeans_assign.c (field order and types must match)."""

    _fields_ = [(name, _P) for name in ("x",)] + [("ldx", _I)] + [
        (name, _P) for name in ("rows", "cpack", "csq_slot", "crow", "slot_of", "slot_ids", "group_of", "c32")
    ] + [("ldc", _I)] + [
        (name, _P) for name in ("csq64", "xsq", "norm", "xerr", "ga", "gb", "gc", "oa", "ob", "oc", "drift",
                                "gdrift", "labels", "ub", "lb")
    ] + [(name, _I) for name in ("d", "d2", "G", "W", "is_fp16")]


class BF16Kernel:
    """Thin typed wrapper; every call splits its rows over ``torch.get_num_threads()`` threads (ctypes releases
    the GIL during the call)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        lib.qr_group_min2.argtypes = [_P, _I, _P, _I, _P, _P, _I, _I, _I, _P, _P, _P, _P, _P]
        lib.qr_group_min2.restype = ctypes.c_int
        lib.qr_own.argtypes = [_P, _I, _P, _I, _P, _P, _I, _P, _P]
        lib.qr_own.restype = None
        lib.qr_exact_dots.argtypes = [_P, _I, ctypes.c_int, _P, _P, _I, _P, _I, _I, _P]
        lib.qr_exact_dots.restype = None
        lib.qr_assign.argtypes = [ctypes.POINTER(AssignArgs), _I, _I, _P]
        lib.qr_assign.restype = ctypes.c_int
        lib.qr_sums_move.argtypes = [_P, _I, ctypes.c_int, _P, _I, _P, _P, _P, _I, _I, _I]
        lib.qr_sums_move.restype = None
        lib.qr_row_stats.argtypes = [_P, _I, ctypes.c_int, _I, _I, _P, _P]
        lib.qr_row_stats.restype = None
        self.lib = lib
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _parallel(self, n: int, call, align: int = 1) -> None:
        """``call(lo, hi)`` over [0, n) in pieces (multiples of ``align``), four per thread, taken by
        ``torch.get_num_threads()`` threads as they come free: a thread that the OS holds back (a busy, shared
        machine) delays only its current piece."""
        threads = max(1, min(torch.get_num_threads(), n // 64 or 1))
        if threads == 1:
            call(0, n)
            return
        step = -(-n // (4 * threads))
        step = -(-step // align) * align
        with self._lock:
            if self._pool is None or self._pool._max_workers != threads:
                self._pool = ThreadPoolExecutor(threads, thread_name_prefix="qrprobe-kmeans")
            list(self._pool.map(lambda lo: call(lo, min(n, lo + step)), range(0, n, step)))

    def group_min2(self, x: torch.Tensor, rows: torch.Tensor, cpack: torch.Tensor, csq: torch.Tensor, groups: int,
                   width: int, need: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """Per listed row and needed group: (min, argmin slot, second min) of ``csq − 2 x·c`` and a done mask.

        x (N, 2·d2) bfloat16, rows (n,) int64, cpack (G, d2, W, 2) bfloat16, csq (G·W,) float32,
        need (n, G) bool or None (all). Returns m1, m2 (n, G) float32, slot (n, G) int32, done (n, G) bool.
        """
        n, d2 = len(rows), cpack.shape[1]
        m1 = torch.full((n, groups), torch.inf, dtype=torch.float32)  # groups not computed stay inf / slot 0
        m2 = torch.full((n, groups), torch.inf, dtype=torch.float32)
        slot = torch.zeros((n, groups), dtype=torch.int32)
        done = torch.zeros((n, groups), dtype=torch.uint8)
        need_u8 = None if need is None else need.to(torch.uint8).contiguous()
        rows = rows.contiguous()

        def call(lo: int, hi: int) -> None:
            at = lo * groups
            rc = self.lib.qr_group_min2(
                x.data_ptr(), x.stride(0), rows.data_ptr() + 8 * lo, hi - lo, cpack.data_ptr(), csq.data_ptr(), d2,
                groups, width, None if need_u8 is None else need_u8.data_ptr() + at, m1.data_ptr() + 4 * at,
                slot.data_ptr() + 4 * at, m2.data_ptr() + 4 * at, done.data_ptr() + at)
            if rc != 0:
                raise ValueError(f"kernel: unsupported group width {width}")

        self._parallel(n, call)
        return m1, slot, m2, done.bool()

    def own(self, x: torch.Tensor, rows: torch.Tensor, crow: torch.Tensor, csq: torch.Tensor,
            slots: torch.Tensor) -> torch.Tensor:
        """``csq[slot] − 2 x_row · c_slot`` per listed row, (n,) float32; crow (slots, 2·d2) bfloat16."""
        n = len(rows)
        out = torch.empty(n, dtype=torch.float32)
        rows, slots = rows.contiguous(), slots.contiguous()

        def call(lo: int, hi: int) -> None:
            self.lib.qr_own(x.data_ptr(), x.stride(0), rows.data_ptr() + 8 * lo, hi - lo, crow.data_ptr(),
                            csq.data_ptr(), crow.shape[1] // 2, slots.data_ptr() + 8 * lo, out.data_ptr() + 4 * lo)

        self._parallel(n, call)
        return out

    def exact_dots(self, x: torch.Tensor, xrows: torch.Tensor, c: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``x[xrows[i]] · c[ids[i]]`` in float64, (m,); x (N, D) bfloat16 or float16, c (K, D) float32."""
        m, d = len(xrows), c.shape[1]
        out = torch.empty(m, dtype=torch.float64)
        xrows, ids = xrows.contiguous(), ids.contiguous()
        is_fp16 = int(x.dtype == torch.float16)

        def call(lo: int, hi: int) -> None:
            self.lib.qr_exact_dots(x.data_ptr(), x.stride(0), is_fp16, xrows.data_ptr() + 8 * lo, c.data_ptr(),
                                   c.stride(0), ids.data_ptr() + 8 * lo, hi - lo, d, out.data_ptr() + 8 * lo)

        self._parallel(m, call)
        return out

    def assign(self, args: dict, n: int) -> torch.Tensor:
        """One fused assignment pass over run rows 0…n−1 (``qr_assign``); ``args``: the struct's fields, tensors
        for pointers (None: NULL). Returns stats (7,) int64: rows multiplied, (row, group) pairs needed, rows
        checked in float64, pairs multiplied (with the padding of partial tiles), nanoseconds (summed over
        threads) on bounds and own distances, on products, on settling, and candidates checked in float64."""
        struct = AssignArgs(**{k: (v.data_ptr() if isinstance(v, torch.Tensor) else v) for k, v in args.items()})
        parts: list[torch.Tensor] = []

        def call(lo: int, hi: int) -> None:
            stats = torch.zeros(8, dtype=torch.int64)
            parts.append(stats)
            rc = self.lib.qr_assign(ctypes.byref(struct), lo, hi, stats.data_ptr())
            if rc != 0:
                raise MemoryError("kernel: out of memory") if rc == -2 else ValueError("kernel: unsupported width")

        self._parallel(n, call)
        return torch.stack(parts).sum(0) if parts else torch.zeros(8, dtype=torch.int64)

    def sums_move(self, x: torch.Tensor, xrows: torch.Tensor, old: torch.Tensor | None, new: torch.Tensor,
                  sums: torch.Tensor) -> None:
        """Move rows ``x[xrows]`` (16-bit) from clusters ``old`` (None: nowhere) to ``new`` in the int64
        fixed-point sums (K, D), exactly; threads split the columns."""
        xrows, new = xrows.contiguous(), new.contiguous()
        old = None if old is None else old.contiguous()
        is_fp16 = int(x.dtype == torch.float16)

        def call(c0: int, c1: int) -> None:
            self.lib.qr_sums_move(x.data_ptr(), x.stride(0), is_fp16, xrows.data_ptr(), len(xrows),
                                  None if old is None else old.data_ptr(), new.data_ptr(), sums.data_ptr(),
                                  sums.stride(0), c0, c1)

        self._parallel(sums.shape[1], call, align=16)

    def row_stats(self, x: torch.Tensor, with_err: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per row of ``x`` (16-bit): the float64 sum of squares, and ‖x − bf16(x)‖ when ``with_err``."""
        n, d = x.shape
        xsq = torch.empty(n, dtype=torch.float64)
        err = torch.empty(n, dtype=torch.float64) if with_err else None
        is_fp16 = int(x.dtype == torch.float16)

        def call(lo: int, hi: int) -> None:
            self.lib.qr_row_stats(x.data_ptr() + 2 * lo * x.stride(0), x.stride(0), is_fp16, hi - lo, d,
                                  xsq.data_ptr() + 8 * lo, None if err is None else err.data_ptr() + 8 * lo)

        self._parallel(n, call)
        return xsq, err
