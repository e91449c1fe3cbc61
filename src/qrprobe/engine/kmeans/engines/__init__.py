"""Distance engines of the exact 16-bit K-means, and the registry from which :class:`~..stored.Stored` picks one.

A distance engine (:class:`~.base.Engine`, ``base.py``) computes approximate values of ``‖c‖² − 2 x·c`` for
stored rows x and centroids c, fast, each with a proven error bound; the exact Lloyd
(:class:`~qrprobe.engine.kmeans.exact.BoundedLloyd`) settles a row from them where the bounds decide, and in
float64 where they do not, so its labels are those of a float64 Lloyd whichever engine ran.

Each engine is registered as a :class:`DistanceEngine`, which says

- ``name``: how it is asked for (``Stored(x, precision, engine=NAME)``; ``"auto"`` picks);
- ``cannot_run(x)``: why it cannot run on the stored rows ``x`` here — device, storage type, layout, CPU
  features, a compiler —, checked at run time, or None when it can;
- ``guarantee``: what it guarantees, in words: its error-bound model, and that labels are exact after the
  float64 check;
- ``make(x, width)``: the engine for these rows and groups of ``width`` centroids;
- ``priority``: ``"auto"`` takes the engine of highest priority that can run.

Built in: ``kernel`` (the compiled AVX-512 BF16 kernel, CPU; ``kernel_engine.py``) before ``torch`` (torch's
matrix products, any device; ``torch_engine.py``). Adding one: ``docs/CONTRIBUTING.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ....errors import QRProbeInputError
from .. import kernel as kmeans_kernel
from .base import CUDA_U, U32, Engine, gamma
from .kernel_engine import KernelEngine
from .torch_engine import TorchEngine

SIXTEEN_BIT = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class DistanceEngine:
    """A registered distance engine: its name, where it can run, what it guarantees, and how to make it."""

    name: str
    make: Callable[[torch.Tensor, int], Engine]
    cannot_run: Callable[[torch.Tensor], str | None]
    guarantee: str
    priority: int = 0


_REGISTRY: dict[str, DistanceEngine] = {}


def register(engine: DistanceEngine, *, replace: bool = False) -> DistanceEngine:
    """Add ``engine`` to the registry (``replace``: over a registered engine of the same name)."""
    if engine.name == "auto":
        raise ValueError("'auto' is not an engine name: it asks the registry to pick one")
    if engine.name in _REGISTRY and not replace:
        raise ValueError(f"a distance engine named {engine.name!r} is already registered")
    _REGISTRY[engine.name] = engine
    return engine


def unregister(name: str) -> None:
    """Remove the engine ``name`` from the registry (nothing if absent)."""
    _REGISTRY.pop(name, None)


def registered() -> list[DistanceEngine]:
    """Every registered engine, in the order ``"auto"`` tries them (highest priority first, then by name)."""
    return sorted(_REGISTRY.values(), key=lambda e: (-e.priority, e.name))


def get(name: str) -> DistanceEngine:
    """The registered engine ``name``; an unknown name raises :class:`~qrprobe.errors.QRProbeInputError`."""
    if name not in _REGISTRY:
        raise QRProbeInputError(f"unknown distance engine {name!r}; registered: "
                                f"{', '.join(e.name for e in registered())} (or auto)")
    return _REGISTRY[name]


def choose(x: torch.Tensor, name: str = "auto") -> DistanceEngine:
    """The engine for the stored rows ``x`` (N, D): ``name`` itself, or for ``"auto"`` the first registered
    engine that can run on them here. An engine asked for by name that cannot run raises
    :class:`~qrprobe.errors.QRProbeInputError` naming it and why."""
    if name != "auto":
        engine = get(name)
        why = engine.cannot_run(x)
        if why is not None:
            raise QRProbeInputError(f"distance engine {name!r} cannot run here: {why}")
        return engine
    reasons = []
    for engine in registered():
        why = engine.cannot_run(x)
        if why is None:
            return engine
        reasons.append(f"{engine.name}: {why}")
    raise QRProbeInputError("no registered distance engine can run on these features (" + "; ".join(reasons) + ")")


# ------------------------------------------------------------------------------------------------ built-in engines
def _kernel_cannot_run(x: torch.Tensor) -> str | None:
    # the cheap checks first: the kernel is compiled on first use
    if x.device.type != "cpu":
        return f"it runs on the CPU, the features are on {x.device}"
    if x.dtype not in SIXTEEN_BIT:
        return f"it needs float16 or bfloat16 storage, not {x.dtype}"
    if x.shape[1] % 2:
        return f"it needs an even number of dimensions, not {x.shape[1]}"
    if not x.is_contiguous():
        return "it needs contiguous rows"
    return kmeans_kernel.unavailable()


def _torch_cannot_run(x: torch.Tensor) -> str | None:
    return None if x.dtype in SIXTEEN_BIT else f"it needs float16 or bfloat16 storage, not {x.dtype}"


def _make_kernel(x: torch.Tensor, width: int) -> Engine:
    return KernelEngine(x, width, kmeans_kernel.load())


KERNEL = register(DistanceEngine(
    name="kernel", make=_make_kernel, cannot_run=_kernel_cannot_run, priority=20,
    guarantee="labels exact after the float64 check; values within E = ‖x‖·A + ‖x − x̂‖·C + B: bfloat16 "
              "centroids, float16 rows rounded to bfloat16 (x̂), float32 accumulation over D + 2 terms"))
TORCH = register(DistanceEngine(
    name="torch", make=TorchEngine, cannot_run=_torch_cannot_run, priority=10,
    guarantee="labels exact after the float64 check; values within E = ‖x‖·A + B: on the CPU float32 products "
              "of the stored values (exact inputs, float32 accumulation), on CUDA 16-bit tensor-core products "
              "with float32 output (accumulation bounded at 4× float32's unit roundoff)"))

__all__ = ["CUDA_U", "KERNEL", "TORCH", "U32", "DistanceEngine", "Engine", "KernelEngine", "TorchEngine", "choose",
           "gamma", "get", "register", "registered", "unregister"]
