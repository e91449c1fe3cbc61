"""The labelling loop: decode every image once, run every expert on the batch, write a concept bank.

Rows are processed in chunks (``chunk_size`` images); with an output directory each finished chunk is kept in
a work folder beside it (``.NAME.partial/``), so an interrupted run started again with the same images and
experts continues where it stopped. The bank itself is written atomically when every chunk is done, and the
work folder is then removed. Images that cannot be read or decoded are skipped and listed in the bank's
manifest (``info.labelling.skipped``), never filled with zeros.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._atomic import atomic_directory, atomic_write_text
from ..concepts.bank import ConceptBank
from ..errors import QRProbeInputError
from .base import Expert, as_rgb_array
from .registry import build_expert

_STATE = "state.json"
_CHUNK = "chunk-{:06d}.npz"


@dataclass
class LabelReport:
    """What a labelling run did.

    Attributes
    ----------
    n_listed : images in the source
    n_labelled : rows of the bank (listed minus skipped)
    skipped : ``{"image_id", "path", "reason"}`` of images that could not be read or decoded
    rejected : files of the source that are not images (from the source listing)
    resumed_images : images whose labels came from a previous, interrupted run
    seconds : wall-clock seconds, this run, in each expert and waiting for decoded images (``"decode"``;
        decoding overlaps with the experts, so this is the part it did not hide)
    never_present, always_present : display names of concepts that are constant over the bank
    images_this_run : images decoded and labelled by this run (not resumed, not reused)
    reused : the complete bank at the output already had this configuration and was returned as it was
    """

    n_listed: int = 0
    n_labelled: int = 0
    skipped: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    resumed_images: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    images_this_run: int = 0
    never_present: list[str] = field(default_factory=list)
    always_present: list[str] = field(default_factory=list)
    reused: bool = False

    def images_per_second(self) -> dict[str, float]:
        """Throughput of decoding and of each expert over this run's images."""
        return {k: (self.images_this_run / v if v > 0 else math.inf) for k, v in self.seconds.items()}

    def as_dict(self) -> dict:
        out = asdict(self)
        out["images_per_second"] = {k: round(v, 2) for k, v in self.images_per_second().items()
                                    if math.isfinite(v)}
        return out


@dataclass
class LabelResult:
    """The bank and the report of a labelling run."""

    bank: ConceptBank
    report: LabelReport


# ---------------------------------------------------------------------------------------------- inputs
class _MemoryImages:
    """In-memory images (arrays or PIL) as a minimal source."""

    def __init__(self, images: Sequence, image_ids: Sequence[str] | None, labels: Sequence[str] | None) -> None:
        self.images = list(images)
        n = len(self.images)
        self.image_ids = [str(i) for i in (image_ids if image_ids is not None else range(n))]
        if len(self.image_ids) != n:
            raise QRProbeInputError(f"{n} images but {len(self.image_ids)} image ids")
        if len(set(self.image_ids)) != n:
            raise QRProbeInputError("image ids must be unique")
        self.labels = None if labels is None else [str(v) for v in labels]
        if self.labels is not None and len(self.labels) != n:
            raise QRProbeInputError(f"{n} images but {len(self.labels)} labels")
        self.paths = [""] * n
        self.rejected: list[dict] = []

    def __len__(self) -> int:
        return len(self.images)

    def select(self, rows) -> _MemoryImages:
        rows = [int(r) for r in rows]
        return _MemoryImages([self.images[r] for r in rows], [self.image_ids[r] for r in rows],
                             None if self.labels is None else [self.labels[r] for r in rows])

    def describe(self) -> dict:
        return {"kind": "memory", "n_images": len(self), "has_labels": self.labels is not None,
                "inputs_hash": _hash_memory(self.images, self.image_ids)}

    def inputs_hash(self) -> str:
        return self.describe()["inputs_hash"]


def _hash_memory(images, ids) -> str:
    h = hashlib.sha256()
    for i, im in zip(ids, images, strict=True):
        h.update(i.encode())
        h.update(as_rgb_array(im).tobytes()[:4096])
    return h.hexdigest()[:16]


def open_source(images, image_ids=None, labels=None):
    """An :class:`qrprobe.images.ImageSource` for a path/list spec, or an in-memory source for arrays."""
    if isinstance(images, (str, os.PathLike)):
        from ..images import open_images

        return open_images(images)
    items = list(images) if not hasattr(images, "image_ids") else None
    if items is None:
        return images  # already an ImageSource
    if items and all(isinstance(x, (str, os.PathLike)) for x in items):
        from ..images import paths_source

        return paths_source(items, image_ids=image_ids, labels=labels)
    if not items:
        raise QRProbeInputError("IMAGES: no images given")
    return _MemoryImages(items, image_ids, labels)


class _Decoder:
    """Row -> RGB uint8 array or the reason it cannot be decoded."""

    def __init__(self, source, max_side: int | None) -> None:
        self.source = source
        self.max_side = max_side
        if isinstance(source, _MemoryImages):
            self._read = None
        else:
            from ..images.sources import make_reader

            self._read = make_reader(source)

    def __call__(self, row: int) -> tuple[np.ndarray | None, str | None]:
        try:
            if self._read is None:
                image = self.source.images[row]
                if self.max_side and not isinstance(image, np.ndarray):
                    image = image.convert("RGB")
            else:
                from ..images import ImageDecodeError, decode_image

                try:
                    image = decode_image(self._read(row))
                except ImageDecodeError as exc:
                    return None, str(exc)
            if self.max_side:
                from PIL import Image

                pil = image if not isinstance(image, np.ndarray) else Image.fromarray(as_rgb_array(image))
                if max(pil.size) > self.max_side:
                    pil = pil.copy()
                    pil.thumbnail((self.max_side, self.max_side), Image.BICUBIC)
                image = pil
            return as_rgb_array(image), None
        except QRProbeInputError as exc:  # an in-memory image of the wrong dtype/shape
            return None, str(exc)


# ---------------------------------------------------------------------------------------------- experts
def resolve_experts(experts: Sequence[str | Expert], options: Mapping | None = None,
                    groups: Mapping | None = None, weights: Mapping | None = None,
                    kinds: Mapping | None = None) -> list[Expert]:
    """Build the experts: names (with per-expert ``options``, ``groups`` and ``weights``) or instances.

    ``kinds`` maps a user-chosen expert name to its registry type (``{"styles": "clip"}``).
    """
    options, groups, weights, kinds = dict(options or {}), dict(groups or {}), dict(weights or {}), dict(kinds or {})
    if not experts:
        raise QRProbeInputError("--experts: no experts given")
    names = [e if isinstance(e, str) else e.name for e in experts]
    for what, mapping in (("options", options), ("--group", groups), ("--weights", weights)):
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise QRProbeInputError(f"{what} names expert(s) {unknown} that are not among --experts {names}")
    built: list[Expert] = []
    for e in experts:
        if isinstance(e, Expert):
            built.append(e)
            continue
        opts = dict(options.get(e, {}))
        if e in groups:
            opts["group"] = groups[e]
        if e in weights:
            opts["weights"] = weights[e]
        built.append(build_expert(e, opts, kind=kinds.get(e)))
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise QRProbeInputError(f"--experts: expert(s) {dup} listed twice")
    return built


def concept_table(experts: Sequence[Expert]) -> pd.DataFrame:
    """The bank's concept table: every expert's concepts, names made unique across experts.

    A concept name used by more than one expert (``person`` from ``person`` and ``coco``) becomes
    ``"NAME (EXPERT)"`` in every expert that uses it; ``concept`` keeps the expert's own name.
    """
    table = pd.concat([e.concept_table() for e in experts], ignore_index=True)
    experts_of = table.groupby("name")["expert"].nunique()
    shared = set(experts_of[experts_of > 1].index)
    table["name"] = [f"{n} ({e})" if n in shared else n for n, e in zip(table["name"], table["expert"], strict=True)]
    dup = table["name"][table["name"].duplicated()]
    if len(dup):
        raise QRProbeInputError(f"concept names are not unique within an expert: {sorted(set(dup))[:5]}")
    return table


def run_config_key(source, experts: Sequence[Expert], chunk_size: int, max_side: int | None) -> str:
    """Hash of everything that determines the bank (source listing, experts' configurations)."""
    from .. import __version__

    payload = {"source": source.inputs_hash(), "experts": [e.config() for e in experts], "chunk_size": chunk_size,
               "max_side": max_side, "qrprobe": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- work folder
class _WorkFolder:
    """Finished chunks of an interrupted run, kept beside the output directory."""

    def __init__(self, output: Path | None, key: str, n_chunks: int, resume: bool) -> None:
        self.path = None if output is None else output.parent / f".{output.name}.partial"
        self.key = key
        if self.path is None:
            return
        state = self.path / _STATE
        if self.path.exists():
            same = False
            if resume and state.is_file():
                try:
                    same = json.loads(state.read_text()).get("key") == key
                except (OSError, ValueError):
                    same = False
            if not same:
                shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(state, json.dumps({"key": key, "n_chunks": n_chunks}))

    def load(self, k: int) -> dict | None:
        if self.path is None:
            return None
        f = self.path / _CHUNK.format(k)
        if not f.is_file():
            return None
        try:
            with np.load(f, allow_pickle=False) as z:
                return {name: z[name] for name in z.files}
        except (OSError, ValueError):  # a chunk cut short by a crash: redo it
            return None

    def save(self, k: int, arrays: dict) -> None:
        if self.path is None:
            return
        tmp = self.path / f".{_CHUNK.format(k)}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, self.path / _CHUNK.format(k))

    def remove(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- the loop
def run_labelling(images, experts: Sequence[str | Expert], *, output: str | os.PathLike | None = None,
                  image_ids: Sequence[str] | None = None, labels: Sequence[str] | None = None,
                  options: Mapping | None = None, groups: Mapping | None = None, weights: Mapping | None = None,
                  kinds: Mapping | None = None, batch_size: int = 64, workers: int = 2, chunk_size: int = 2048,
                  max_side: int | None = None, progress: bool = True, resume: bool = True,
                  overwrite: bool = False, save_scores: bool = False, limit: int | None = None) -> LabelResult:
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
    batch_size : images decoded and labelled together
    workers : decoding threads
    chunk_size : images per resumable chunk
    max_side : downscale decoded images whose longer side exceeds this (pixels) before the experts see them
    resume : reuse finished chunks of an interrupted run with the same configuration
    overwrite : replace an existing bank at ``output``
    save_scores : also write each expert's raw scores (float16, ``scores/EXPERT.npy``, rows = bank rows)
    limit : label only the first ``limit`` images of the source

    Returns
    -------
    LabelResult with the :class:`~qrprobe.concepts.bank.ConceptBank` and a :class:`LabelReport`.
    """
    if batch_size < 1 or chunk_size < 1 or workers < 1:
        raise QRProbeInputError("batch_size, chunk_size and workers must be positive")
    output = None if output is None else Path(output)
    if (output is not None and output.exists() and not overwrite and not (output / "manifest.json").is_file()
            and (not output.is_dir() or any(output.iterdir()))):
        raise QRProbeInputError(f"output directory {str(output)!r} already exists and is not empty "
                                "(choose another path or pass --overwrite)")
    source = open_source(images, image_ids, labels)
    if limit is not None:
        if limit < 1:
            raise QRProbeInputError(f"--limit must be positive, got {limit}")
        source = source.select(np.arange(min(limit, len(source)))) if hasattr(source, "select") else source
    n = len(source)
    if n == 0:
        raise QRProbeInputError("IMAGES: the collection holds no images")
    built = resolve_experts(experts, options, groups, weights, kinds)
    for e in built:
        e.prepare(list(source.image_ids), None if source.labels is None else list(source.labels))
    table = concept_table(built)
    widths = [len(e.concepts) for e in built]
    offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    key = run_config_key(source, built, chunk_size, max_side)
    reused = _reuse(output, key) if output is not None and not overwrite else None
    if reused is not None:
        return reused
    n_chunks = math.ceil(n / chunk_size)
    work = _WorkFolder(output, key, n_chunks, resume)
    report = LabelReport(n_listed=n, rejected=list(getattr(source, "rejected", [])),
                         seconds={"decode": 0.0, **{e.name: 0.0 for e in built}})
    decoder = _Decoder(source, max_side)
    parts, ok_rows, score_parts = [], [], {e.name: [] for e in built}
    from tqdm.auto import tqdm

    bar = tqdm(total=n, unit="img", desc="labelling", disable=not progress, dynamic_ncols=True)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for k in range(n_chunks):
                lo, hi = k * chunk_size, min(n, (k + 1) * chunk_size)
                cached = work.load(k) if resume else None
                if cached is not None and cached["ok"].shape[0] == hi - lo:
                    chunk = cached
                    report.resumed_images += hi - lo
                else:
                    chunk = _label_chunk(lo, hi, built, offsets, decoder, pool, batch_size, report, save_scores,
                                         bar)
                    work.save(k, chunk)
                if cached is not None:
                    bar.update(hi - lo)
                parts.append(sp.csr_matrix((chunk["data"], chunk["indices"], chunk["indptr"]),
                                           shape=(int(chunk["ok"].sum()), int(offsets[-1]))))
                ok_rows.append(lo + np.flatnonzero(chunk["ok"]))
                for j, e in enumerate(built):
                    if save_scores and f"scores_{j}" in chunk:
                        score_parts[e.name].append(chunk[f"scores_{j}"])
                for row, reason in zip(chunk["failed_rows"].tolist(), chunk["failed_reasons"].tolist(),
                                       strict=True):
                    report.skipped.append({"image_id": str(source.image_ids[lo + row]),
                                           "path": str(source.paths[lo + row]), "reason": str(reason)})
    finally:
        bar.close()
    rows = np.concatenate(ok_rows)
    if rows.size == 0:
        first = "; ".join(f"{s['image_id']}: {s['reason']}" for s in report.skipped[:3])
        raise QRProbeInputError(f"IMAGES: none of the {n} images could be read or decoded ({first})")
    matrix = sp.vstack(parts, format="csr")
    report.n_labelled = int(rows.size)
    ids = np.asarray([source.image_ids[r] for r in rows], dtype=object)
    bank = ConceptBank(matrix, table, ids, {})
    freq = bank.frequencies()
    display = bank.display_names()
    report.never_present = [d for d, f in zip(display, freq, strict=True) if f == 0]
    report.always_present = [d for d, f in zip(display, freq, strict=True) if f == 1]
    bank.info = _bank_info(source, built, report)
    bank.info["config_key"] = key
    if output is not None:
        with atomic_directory(output, overwrite=overwrite) as tmp:
            bank.save(tmp, overwrite=True)
            if save_scores:
                (tmp / "scores").mkdir()
                for e in built:
                    if score_parts[e.name]:
                        np.save(tmp / "scores" / f"{e.name}.npy", np.concatenate(score_parts[e.name]))
        work.remove()
    return LabelResult(bank, report)


def _reuse(output: Path, key: str) -> LabelResult | None:
    """The complete bank at ``output`` when it was written with the same configuration, else None."""
    if not (output / "manifest.json").is_file():
        return None
    bank = ConceptBank.load(output)
    if bank.info.get("config_key") != key:
        raise QRProbeInputError(f"output directory {str(output)!r} holds a concept bank made with other images "
                                "or experts (choose another path or pass --overwrite)")
    saved = dict(bank.info.get("labelling", {}))
    saved.pop("images_per_second", None)
    report = LabelReport(**{k: v for k, v in saved.items() if k in LabelReport.__dataclass_fields__})
    report.reused = True
    return LabelResult(bank, report)


def label_images(images, experts: Sequence[str | Expert], **kwargs) -> ConceptBank:
    """Label images with experts and return the :class:`~qrprobe.concepts.bank.ConceptBank`.

    Same parameters as :func:`run_labelling`; the report is in ``bank.info["labelling"]``.
    """
    return run_labelling(images, experts, **kwargs).bank


def _label_chunk(lo: int, hi: int, experts: Sequence[Expert], offsets: np.ndarray, decoder: _Decoder, pool,
                 batch_size: int, report: LabelReport, save_scores: bool, bar) -> dict:
    """Decode and label rows [lo, hi): the chunk's CSR arrays, ok mask, failures (and scores)."""
    blocks, ok = [], np.zeros(hi - lo, dtype=bool)
    failed_rows, failed_reasons = [], []
    scores: dict[int, list[np.ndarray]] = {j: [] for j in range(len(experts))}
    starts = list(range(lo, hi, batch_size))
    t0 = time.perf_counter()
    pending = pool.map(decoder, range(starts[0], min(hi, starts[0] + batch_size)))
    for b, start in enumerate(starts):
        stop = min(hi, start + batch_size)
        decoded = list(pending)
        if b + 1 < len(starts):  # decode the next batch while the experts work on this one
            nxt = starts[b + 1]
            pending = pool.map(decoder, range(nxt, min(hi, nxt + batch_size)))
        report.seconds["decode"] += time.perf_counter() - t0
        good = [i for i, (im, _) in enumerate(decoded) if im is not None]
        for i, (im, reason) in enumerate(decoded):
            if im is None:
                failed_rows.append(start - lo + i)
                failed_reasons.append(reason)
        arrays = [decoded[i][0] for i in good]
        ids = [str(decoder.source.image_ids[start + i]) for i in good]
        block = np.zeros((len(good), int(offsets[-1])), dtype=bool)
        for j, e in enumerate(experts):
            t = time.perf_counter()
            out = e.predict(arrays, ids)
            report.seconds[e.name] += time.perf_counter() - t
            block[:, offsets[j]:offsets[j + 1]] = out.binary
            if save_scores and out.scores is not None:
                scores[j].append(out.scores.astype(np.float16))
        blocks.append(block)
        ok[[start - lo + i for i in good]] = True
        report.images_this_run += len(good)
        bar.update(stop - start)
        t0 = time.perf_counter()
    csr = sp.csr_matrix(np.concatenate(blocks) if blocks else np.zeros((0, int(offsets[-1])), bool),
                        dtype=np.uint8)
    out = {"data": csr.data, "indices": csr.indices, "indptr": csr.indptr, "ok": ok,
           "failed_rows": np.asarray(failed_rows, dtype=np.int64),
           "failed_reasons": np.asarray(failed_reasons, dtype=str)}
    if save_scores:
        for j, parts in scores.items():
            if parts:
                out[f"scores_{j}"] = np.concatenate(parts)
    return out


def _bank_info(source, experts: Sequence[Expert], report: LabelReport) -> dict:
    describe = getattr(source, "describe", None)
    return {
        "created_by": "qrprobe label",
        "source": describe() if describe else {},
        "experts": [{"name": e.name, "expert": e.registry_name, "group": e.group, "n_concepts": len(e.concepts),
                     "rule": e.rule, "config": e.config(),
                     "load_report": getattr(e, "load_report", None)} for e in experts],
        "labelling": report.as_dict(),
    }


# ---------------------------------------------------------------------------------------------- circularity
