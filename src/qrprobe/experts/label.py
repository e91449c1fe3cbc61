"""The labelling loop: decode every image once, run every expert on it, write a concept bank.

Rows are processed in chunks (``chunk_size`` images) by the one chunk runner (:mod:`qrprobe.chunks`, the
labelling's job: :mod:`.label_job`, in this process or on Ray); with an output directory each
finished chunk is kept in the resumable work folder beside it (``.NAME.partial/``, a
:class:`~qrprobe._workdir.ChunkedWorkDir`), so an interrupted run started again with the same images and
experts continues where it stopped. The bank itself is written atomically when every chunk is done, and the
work folder is then removed. Images that cannot be read or decoded are skipped and listed in the bank's
manifest (``info.labelling.skipped``), never filled with zeros. Images are read through the same layer as
the extraction (:mod:`qrprobe.images`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._atomic import atomic_directory, check_replaceable, writing
from .._workdir import ChunkedWorkDir
from ..chunks import BACKENDS, run_chunks
from ..concepts.bank import FORMAT as BANK_FORMAT
from ..concepts.bank import ConceptBank
from ..errors import QRProbeInputError
from ..images import open_images
from ..progress import bar as progress_bar
from ..progress import format_seconds, note
from ..schema import document_fields, keyword_signature, set_signature, with_params
from .base import Expert
from .label_config import LabelConfig
from .label_job import LabelJob
from .label_report import LabelReport, bank_info
from .label_setup import concept_table, resolve_experts, run_config_key

__all__ = ["BACKENDS", "LabelConfig", "LabelReport", "LabelResult", "concept_table", "label_images", "resolve_experts",
           "run_labelling"]

_CHUNK = "chunk-{:06d}.npz"


@dataclass
class LabelResult:
    """The bank and the report of a labelling run."""

    bank: ConceptBank
    report: LabelReport


def run_labelling(images, experts: Sequence[str | Expert], *, output: str | os.PathLike | None = None,
                  image_ids: Sequence[str] | None = None, labels: Sequence[str] | None = None,
                  options: Mapping | None = None, groups: Mapping | None = None, weights: Mapping | None = None,
                  kinds: Mapping | None = None, config: LabelConfig | None = None, **params: Any) -> LabelResult:
    """Label an image collection with experts and build (and optionally write) a concept bank.

    Parameters
    ----------
    images : a folder, file list or tar shards (see :func:`qrprobe.images.open_images`), an
        :class:`~qrprobe.images.ImageSource`, a list of image paths, or a list of in-memory images (numpy uint8
        (H, W, 3) arrays or PIL images; then ``image_ids`` and ``labels`` may be given)
    experts : expert names (``"labels"``, ``"color"``...) or :class:`Expert` instances
    output : directory of the bank; enables resuming. None keeps the bank in memory only
    options : ``{expert: {option: value}}``; ``groups``: ``{expert: group}``; ``weights``: ``{expert: path}``;
        ``kinds``: ``{name: registry type}`` for experts with user-chosen names
    config : a :class:`~qrprobe.experts.label_config.LabelConfig`; keyword parameters override its fields
    **params : the fields of :class:`~qrprobe.experts.label_config.LabelConfig`, as ``qrprobe label --help`` tells
        them (listed below): ``batch_size``, ``workers``, ``chunk_size``, ``max_side``, ``save_scores`` (also
        each expert's raw scores, float16, ``scores/EXPERT.npy``, rows = bank rows), ``resume``, ``backend``
        (``"ray"``: decoding in Ray tasks, the experts in an actor pool, :mod:`.label_ray`; the same bank),
        ``overwrite``, ``progress`` …

    Returns
    -------
    LabelResult with the :class:`~qrprobe.concepts.bank.ConceptBank` and a :class:`LabelReport`.
    """
    config = with_params(LabelConfig, config, params, what="labelling")
    with writing(output, "output") if output is not None else contextlib.nullcontext():
        return _run_labelling(images, experts, output, image_ids, labels, options, groups, weights, kinds, config)


def _run_labelling(images, experts, output, image_ids, labels, options, groups, weights, kinds,
                   config: LabelConfig) -> LabelResult:
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    overwrite, progress, resume, chunk_size = config.overwrite, config.progress, config.resume, config.chunk_size
    output = None if output is None else Path(output)
    if output is not None and not (overwrite is False and (output / "manifest.json").is_file()):
        check_replaceable(output, overwrite, BANK_FORMAT.split("/")[0], "output directory")
    source = open_images(images, image_ids, labels)
    if config.limit is not None:
        source = source.select(np.arange(min(config.limit, len(source))))
    n = len(source)
    if n == 0:
        raise QRProbeInputError("IMAGES: the collection holds no images")
    built = resolve_experts(experts, options, groups, weights, kinds)
    for e in built:
        e.prepare(list(source.image_ids), None if source.labels is None else list(source.labels))
    table = concept_table(built)
    offsets = np.concatenate([[0], np.cumsum([len(e.concepts) for e in built])]).astype(np.int64)
    key = run_config_key(source, built, config)
    reused = _reuse(output, key) if output is not None and not overwrite else None
    if reused is not None:
        return reused
    n_chunks = math.ceil(n / chunk_size)
    work = None if output is None else ChunkedWorkDir(output, identity={"key": key},
                                                      header={"n_chunks": n_chunks}, resume=resume)
    report = LabelReport(n_listed=n, rejected=list(source.rejected),
                         seconds={"decode": 0.0, **{e.name: 0.0 for e in built}})
    chunks: dict[int, dict] = {}
    bar = progress_bar(n, f"labelling ({', '.join(e.name for e in built)})", enabled=progress, unit="img",
                       leave=True)
    try:
        todo = []
        for k in range(n_chunks):
            cached = _load_chunk(work, k) if resume else None
            if cached is not None and cached["ok"].shape[0] == min(n, (k + 1) * chunk_size) - k * chunk_size:
                chunks[k] = cached
                report.resumed_images += cached["ok"].shape[0]
                bar.update(cached["ok"].shape[0])
            else:
                todo.append(k)

        def finished(k: int, chunk: dict) -> None:
            if work is not None:
                work.commit(k, {_CHUNK.format(k): lambda path: _save_npz(path, chunk)})
            chunks[k] = chunk

        factory = functools.partial(resolve_experts, experts, options, groups, weights, kinds)
        job = LabelJob(built, offsets, factory, source, chunk_size=chunk_size, batch_size=config.batch_size,
                       workers=config.workers, max_side=config.max_side, save_scores=config.save_scores,
                       report=report, bar=bar, finished=finished)
        run_chunks(job, todo, n, chunk_size, backend=config.backend, ray=config.ray)
    finally:
        bar.close()
    if report.n_listed - report.resumed_images:
        note(f"labelling: {n - report.resumed_images} images in {format_seconds(bar.seconds)} ("
                       + ", ".join(f"{name} {format_seconds(sec)}" for name, sec in report.seconds.items())
                       + ")", progress)
    parts, ok_rows = [], []
    score_parts: dict[str, list[np.ndarray]] = {e.name: [] for e in built}
    save_scores = config.save_scores
    for k in range(n_chunks):
        chunk, lo = chunks[k], k * chunk_size
        parts.append(sp.csr_matrix((chunk["data"], chunk["indices"], chunk["indptr"]),
                                   shape=(int(chunk["ok"].sum()), int(offsets[-1]))))
        ok_rows.append(lo + np.flatnonzero(chunk["ok"]))
        for j, e in enumerate(built):
            if save_scores and f"scores_{j}" in chunk:
                score_parts[e.name].append(chunk[f"scores_{j}"])
        for row, reason in zip(chunk["failed_rows"].tolist(), chunk["failed_reasons"].tolist(), strict=True):
            report.skipped.append({"image_id": str(source.image_ids[lo + row]),
                                   "path": str(source.paths[lo + row]), "reason": str(reason)})
    rows = np.concatenate(ok_rows)
    if rows.size == 0:
        if work is not None:  # nothing worth resuming: leave no output behind
            work.remove()
        first = "; ".join(f"{s['image_id']}: {s['reason']}" for s in report.skipped[:3])
        raise QRProbeInputError(f"IMAGES: none of the {n} images could be read or decoded ({first})")
    report.n_labelled = int(rows.size)
    bank = ConceptBank(sp.vstack(parts, format="csr"), table,
                       np.asarray([source.image_ids[r] for r in rows], dtype=object), {})
    freq = bank.frequencies()
    display = bank.display_names()
    report.never_present = [d for d, f in zip(display, freq, strict=True) if f == 0]
    report.always_present = [d for d, f in zip(display, freq, strict=True) if f == 1]
    bank.info = bank_info(source, built, report)
    bank.info["config_key"] = key
    if output is not None:
        with atomic_directory(output, overwrite=overwrite, kind=BANK_FORMAT.split("/")[0]) as tmp:
            bank.save(tmp, overwrite=True)
            if save_scores:
                (tmp / "scores").mkdir()
                for e in built:
                    if score_parts[e.name]:
                        np.save(tmp / "scores" / f"{e.name}.npy", np.concatenate(score_parts[e.name]))
        if work is not None:
            work.remove()
    return LabelResult(bank, report)


def _save_npz(path: Path, arrays: dict) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a temporary name
        np.savez(f, **arrays)


def _load_chunk(work: ChunkedWorkDir | None, k: int) -> dict | None:
    """Chunk ``k``'s arrays from the work folder, or None when it was not committed (or cannot be read)."""
    if work is None or k not in work.chunks:
        return None
    try:
        with np.load(work.path / _CHUNK.format(k), allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    except (OSError, ValueError):  # damaged on disk: compute it again
        work.forget(k)
        return None


def _reuse(output: Path, key: str) -> LabelResult | None:
    """The complete bank at ``output`` when it was written with the same configuration, else None."""
    if not (output / "manifest.json").is_file():
        return None
    bank = ConceptBank.load(output)
    if bank.info.get("config_key") != key:
        raise QRProbeInputError(f"output directory {str(output)!r} holds a concept bank made with other images "
                                "or experts (choose another path or pass --overwrite)")
    return LabelResult(bank, LabelReport.from_saved(dict(bank.info.get("labelling", {}))))


def label_images(images, experts: Sequence[str | Expert], **kwargs) -> ConceptBank:
    """Label images with experts and return the :class:`~qrprobe.concepts.bank.ConceptBank`.

    Same parameters as :func:`run_labelling`; the report is in ``bank.info["labelling"]``.
    """
    return run_labelling(images, experts, **kwargs).bank


# inspect.signature / help() list every LabelConfig field
set_signature(run_labelling, keyword_signature(run_labelling, LabelConfig))
set_signature(label_images, inspect.signature(run_labelling).replace(return_annotation="ConceptBank"))
document_fields(run_labelling, LabelConfig)
