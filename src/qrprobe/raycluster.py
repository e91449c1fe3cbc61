"""The Ray runtime of the distributed backends: options, connecting or starting Ray, the actor pool, streaming.

The Ray backends of extraction (:mod:`qrprobe.features.extract_ray`) and labelling
(:mod:`qrprobe.experts.label_ray`) share one pipeline shape, built here by :func:`stream`::

    planned batches (one Ray row each)  --map, CPU tasks-->  decoded batches  --map_batches, actor pool-->
    model / expert outputs  --streamed back to the driver-->  the same chunk writer as the local backend

Each Ray row is one *planned batch* of the local backend (the same image rows, never crossing a chunk), and
an actor runs each planned batch through the model on its own; so the model sees exactly the batches it sees
locally, whatever blocks Ray forms. The driver commits a chunk as soon as all its batches are back, in any
order, so a killed job loses at most the chunks in flight.

Ray is imported lazily (extra ``ray``). Without ``address`` a local Ray runtime is started (no dashboard) and
shut down at the end; with ``address`` (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``) the job joins that
cluster, whose nodes must see the images, weights and qrprobe at the same paths and versions.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError, QRProbeInputError, require

#: Images each decode task handles at most (a Ray block): about this many, whole planned batches.
IMAGES_PER_DECODE_TASK = 256
#: Memory (bytes) a decoding task reserves: Ray measured 440-630 MiB per decoding worker here (a Python process
#: with torch, and 256 decoded, preprocessed 224-pixel images: about 150 MiB).
DECODE_TASK_MEMORY = 2**30


@dataclass(frozen=True)
class RayOptions:
    """How a job uses Ray.

    Attributes
    ----------
    address : an existing cluster to join (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:10001"``); None starts a
        local Ray runtime for the job.
    actors : model (or expert) actors in the pool; None: one per GPU of the cluster for GPU actors, else half
        the cluster's CPUs (the other half decodes).
    num_gpus_per_actor : GPUs each actor holds (fractions share a GPU); None: 1 when the cluster has GPUs and
        the device is not ``cpu``, else 0.
    cpus_per_actor : CPUs each actor holds; also its torch threads.
    decode_cpus : CPUs each decoding task holds.
    num_cpus : CPUs of a local runtime (None: all of this machine's); ignored with ``address``.
    object_store_gb : object-store size of a local runtime in GiB (None: Ray's default, 30% of the memory).
    """

    address: str | None = None
    actors: int | None = None
    num_gpus_per_actor: float | None = None
    cpus_per_actor: float = 1.0
    decode_cpus: float = 1.0
    num_cpus: int | None = None
    object_store_gb: float | None = None

    def __post_init__(self) -> None:
        if self.actors is not None and (isinstance(self.actors, bool) or int(self.actors) < 1):
            raise ParameterError("actors", f"expected a positive number of actors, got {self.actors!r}")
        if self.num_gpus_per_actor is not None and not self.num_gpus_per_actor >= 0:
            raise ParameterError("num_gpus_per_actor", f"expected 0 or more, got {self.num_gpus_per_actor!r}")
        for name in ("cpus_per_actor", "decode_cpus"):
            if not getattr(self, name) > 0:
                raise ParameterError(name, f"expected a positive number of CPUs, got {getattr(self, name)!r}")
        if self.num_cpus is not None and int(self.num_cpus) < 1:
            raise ParameterError("num_cpus", f"expected a positive number of CPUs, got {self.num_cpus!r}")
        if self.object_store_gb is not None and not self.object_store_gb > 0:
            raise ParameterError("object_store_gb", f"expected a positive size in GiB, got {self.object_store_gb!r}")


@dataclass(frozen=True)
class ActorPool:
    """The resolved pool: ``size`` actors with ``num_gpus`` and ``num_cpus`` each, and their torch device."""

    size: int
    num_gpus: float
    num_cpus: float
    device: str  # "cuda" or "cpu", as seen inside an actor
    decode_cpus: float = 1.0  # CPUs each decoding task holds

    @property
    def threads(self) -> int:
        """torch intra-op threads of an actor: its CPUs (at least one)."""
        return max(1, int(self.num_cpus))


def import_ray():
    """``ray`` with Ray Data, or :class:`~qrprobe.errors.MissingExtraError` naming the ``ray`` extra."""
    ray = require("ray", "ray", "the Ray backend")
    require("ray.data", "ray", "the Ray backend")
    return ray


#: Seconds to resolve and connect to a Ray ``--address`` before giving up (Ray itself retries for minutes).
ADDRESS_TIMEOUT_S = 5.0


def check_address(address: str | None, timeout_s: float = ADDRESS_TIMEOUT_S, what: str = "--address") -> None:
    """Raise :class:`QRProbeInputError` naming ``what`` (``--address``, or ``RAY_ADDRESS`` for the environment
    variable that Ray reads when no address is given) when its host cannot be resolved or its port does
    not accept a TCP connection within ``timeout_s`` seconds each (name lookup and connection); ``None`` and
    ``"auto"`` (Ray finds the cluster itself) pass unchecked. Forms: ``HOST:PORT``, ``[IPv6]:PORT``,
    ``ray://HOST:PORT`` (default port 6379, 10001 for ``ray://``)."""
    if not address or address == "auto":
        return
    rest, default_port = (address[len("ray://"):], 10001) if address.startswith("ray://") else (address, 6379)
    host, sep, port_text = rest.rpartition(":") if not rest.endswith("]") else (rest, "", "")
    if not sep:
        host, port_text = rest, str(default_port)
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise QRProbeInputError(f"{what} {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    port = int(port_text)
    found: list = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)

    resolver = threading.Thread(target=lookup, daemon=True, name="qrprobe-ray-address")
    resolver.start()
    resolver.join(timeout_s)
    if not found:
        raise QRProbeInputError(f"{what} {address}: the host name {host!r} did not resolve within "
                                f"{timeout_s:g} s")
    if isinstance(found[0], OSError):
        raise QRProbeInputError(f"{what} {address}: unknown host {host!r} ({found[0].strerror or found[0]})")
    errors = []
    for family, kind, proto, _, where in found[0]:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(timeout_s)
                sock.connect(where)
                return
        except OSError as exc:
            errors.append(exc.strerror or str(exc) or type(exc).__name__)
    why = errors[-1] if errors else "no usable address"
    instead = "leave --address out" if what == "--address" else f"unset {what}"
    raise QRProbeInputError(f"{what} {address}: no Ray cluster answers there ({why}); start one with "
                            f"`ray start --head`, or {instead} to start a local one")


@contextlib.contextmanager
def ray_session(options: RayOptions) -> Iterator[object]:
    """Yield the ``ray`` module connected to a cluster: the running one when this process already joined one,
    else ``options.address``, else a new local runtime (stopped again on exit)."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        common = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
        if options.address:
            check_address(options.address)
            ray.init(address=options.address, **common)
        elif os.environ.get("RAY_ADDRESS"):  # ray.init joins the cluster this names
            check_address(os.environ["RAY_ADDRESS"], what="RAY_ADDRESS")
            ray.init(**common)
        else:
            store = None if options.object_store_gb is None else int(options.object_store_gb * 2**30)
            ray.init(num_cpus=options.num_cpus, object_store_memory=store, **common)
        started = True
    _quiet_ray_data(ray)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _quiet_ray_data(ray) -> None:
    """qrprobe prints its own progress (rows/s across the cluster); Ray Data's bars and start lines would
    interleave with it."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def resolve_pool(ray, options: RayOptions, device: str) -> ActorPool:
    """The actor pool for ``device`` (``auto``, ``cpu``, ``cuda``) on the connected cluster.

    Raises :class:`QRProbeInputError` for a GPU device on a cluster without GPUs, or GPU actors with
    ``device="cpu"``.
    """
    resources = ray.cluster_resources()
    gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 0))
    device = str(device)
    if device not in ("auto", "cpu", "cuda"):
        raise QRProbeInputError(f"--device {device}: with the Ray backend use auto, cpu or cuda (each actor sees "
                                "the GPUs Ray gives it; --num-gpus-per-actor sets how many)")
    per_actor = options.num_gpus_per_actor
    if per_actor is None:
        per_actor = 1.0 if gpus > 0 and device != "cpu" else 0.0
    if device == "cpu" and per_actor > 0:
        raise QRProbeInputError("--device cpu with --num-gpus-per-actor > 0: the actors would hold GPUs they "
                                "do not use")
    if per_actor > 0 and gpus < per_actor:
        raise QRProbeInputError(f"the Ray cluster has {gpus:g} GPU(s); actors asking for {per_actor:g} GPU(s) "
                                "each cannot start (use --device cpu or --num-gpus-per-actor 0)")
    if device == "cuda" and per_actor == 0:
        raise QRProbeInputError("--device cuda: the Ray cluster has no GPUs for the actors")
    size = options.actors
    if size is None:
        size = int(gpus // per_actor) if per_actor > 0 else max(1, int(cpus // (2 * options.cpus_per_actor)))
    size = int(size)
    if per_actor > 0 and size * per_actor > gpus:
        raise QRProbeInputError(f"--actors {size} with {per_actor:g} GPU(s) each need {size * per_actor:g} GPU(s); "
                                f"the Ray cluster has {gpus:g} (fewer --actors or a smaller --num-gpus-per-actor)")
    actor_cpus, decode_cpus = _fit_cpus(cpus, size, options.cpus_per_actor, options.decode_cpus)
    return ActorPool(size, per_actor, actor_cpus, "cuda" if per_actor > 0 else "cpu", decode_cpus)


def _fit_cpus(cpus: float, actors: int, per_actor: float, decode: float) -> tuple[float, float]:
    """CPUs per actor and per decoding task such that every actor and at least one decoding task fit on a
    cluster of ``cpus`` CPUs at once (else Ray waits for ever: the actors hold every CPU and no image is
    decoded). When the requests do not fit they are scaled down (Ray accepts fractions; an actor keeps one torch
    thread), with a warning."""
    if cpus <= 0 or actors * per_actor + decode <= cpus:
        return per_actor, decode
    share = cpus / (actors + 1)  # each actor and one decoding task get an equal share
    fitted_actor, fitted_decode = min(per_actor, share), min(decode, cpus - actors * min(per_actor, share))
    warnings.warn_explicit(f"the Ray cluster has {cpus:g} CPU(s), fewer than {actors} actor(s) × {per_actor:g} "
                           f"CPU(s) + {decode:g} for decoding: each actor gets {fitted_actor:.3g} CPU(s) and each "
                           f"decoding task {fitted_decode:.3g} (pass fewer --actors, a smaller --cpus-per-actor or "
                           "more --num-cpus)", RuntimeWarning, "qrprobe", 0)  # one line: no source line under it
    return fitted_actor, fitted_decode


def column(values: list) -> np.ndarray:
    """One output column of an actor call: stacked when the values share a shape, else an object array of
    them (Ray keeps it as a variable-shaped tensor column)."""
    arrays = [np.asarray(v) for v in values]
    if arrays and all(a.shape == arrays[0].shape for a in arrays):
        return np.stack(arrays)
    out = np.empty(len(arrays), dtype=object)
    out[:] = arrays
    return out


def stream(ray, items: list[dict], decode: Callable[[dict], dict], actor: type, actor_kwargs: dict,
           pool: ActorPool, *, decode_cpus: float, images_per_item: int) -> Iterator[dict]:
    """Run ``items`` (one planned batch each) through ``decode`` (a CPU task per block of items) and the actor
    pool (``actor(**actor_kwargs)``, called on blocks of decoded items); yield the actor's output rows as they
    arrive (in no particular order)."""
    if not items:
        return
    per_block = max(1, IMAGES_PER_DECODE_TASK // max(1, images_per_item))
    ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / per_block))
    # the memory request also keeps Ray from fusing the decoding into the actors (it fuses operators whose
    # resource requests are equal): decoding stays in its own CPU tasks, beside the model
    ds = ds.map(decode, num_cpus=decode_cpus, memory=DECODE_TASK_MEMORY)
    ds = ds.map_batches(actor, batch_size=None, fn_constructor_kwargs=actor_kwargs, num_cpus=pool.num_cpus,
                        num_gpus=pool.num_gpus or None, compute=ray.data.ActorPoolStrategy(size=pool.size))
    yield from ds.iter_rows()


__all__ = ["ActorPool", "RayOptions", "check_address", "column", "import_ray", "ray_session", "resolve_pool", "stream"]
