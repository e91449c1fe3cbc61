"""Label the planned batches of a chunk: decode each image once (in threads, one batch ahead), run every expert.

A chunk's result is its slice of the concept bank as CSR arrays (:func:`chunk_arrays`), which is also what the
resumable work folder stores for the chunk::

    data, indices, indptr   CSR (rows = the chunk's decodable images, columns = all experts' concepts), uint8
    ok                      bool (chunk rows,): decodable
    failed_rows             int64: chunk-relative rows that could not be read or decoded
    failed_reasons          str: why, one per failed row
    scores_J                float16 (ok rows, M_J): expert J's raw scores (only with save_scores)
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ..images import ImageDecodeError
from .base import Expert, as_rgb_array
from .label_report import LabelReport


def decode_row(loader, row: int) -> tuple[np.ndarray | None, str | None]:
    """Row -> RGB uint8 array (H, W, 3), or None and the reason it cannot be used."""
    try:
        return as_rgb_array(loader(row)), None
    except ImageDecodeError as exc:
        return None, str(exc)


def label_batch(experts: Sequence[Expert], offsets: np.ndarray, arrays: list[np.ndarray], ids: list[str],
                save_scores: bool, seconds: dict[str, float]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Run every expert on one batch of decoded images (RGB uint8 arrays, ids alike).

    Returns the bool block (len(arrays), M) of all experts' concepts (``offsets`` (len(experts) + 1,) are the
    experts' first columns) and, with ``save_scores``, ``{expert index: float16 scores (len(arrays), M_j)}``
    for the experts that give scores. Seconds spent in each expert are added to ``seconds[expert name]``.
    """
    block = np.zeros((len(arrays), int(offsets[-1])), dtype=bool)
    scores: dict[int, np.ndarray] = {}
    for j, e in enumerate(experts):
        t = time.perf_counter()
        out = e.predict(arrays, ids)
        seconds[e.name] = seconds.get(e.name, 0.0) + time.perf_counter() - t
        block[:, offsets[j]:offsets[j + 1]] = out.binary
        if save_scores and out.scores is not None:
            scores[j] = out.scores.astype(np.float16)
    return block, scores


def chunk_arrays(n_rows: int, n_concepts: int, batches: Sequence[dict], save_scores: bool) -> dict:
    """A chunk's arrays (see the module doc) from its labelled batches, in order; each batch is a dict with
    ``good`` (chunk-relative rows labelled), ``block``, ``scores`` ({expert index: array}), ``failed_rows``
    (chunk-relative) and ``failed_reasons``."""
    ok = np.zeros(n_rows, dtype=bool)
    failed_rows, failed_reasons = [], []
    scores: dict[int, list[np.ndarray]] = {}
    for batch in batches:
        ok[list(batch["good"])] = True
        failed_rows.extend(batch["failed_rows"])
        failed_reasons.extend(batch["failed_reasons"])
        for j, values in batch["scores"].items():
            scores.setdefault(j, []).append(values)
    blocks = [batch["block"] for batch in batches]
    csr = sp.csr_matrix(np.concatenate(blocks) if blocks else np.zeros((0, n_concepts), bool), dtype=np.uint8)
    out = {"data": csr.data, "indices": csr.indices, "indptr": csr.indptr, "ok": ok,
           "failed_rows": np.asarray(failed_rows, dtype=np.int64),
           "failed_reasons": np.asarray(failed_reasons, dtype=str)}
    if save_scores:
        for j in sorted(scores):
            out[f"scores_{j}"] = np.concatenate(scores[j])
    return out


def label_planned(batches: Sequence[tuple[int, list[int]]], lo: int, experts: Sequence[Expert], offsets: np.ndarray,
                  source, loader, pool, report: LabelReport, save_scores: bool, add) -> None:
    """Decode and label the planned ``batches`` (``(b, rows)``: the consecutive batches of the chunk starting at
    row ``lo``), each image once, decoding the next batch while the experts work on this one.

    ``add(b, batch)`` receives each batch as a dict of chunk-relative rows (see :func:`chunk_arrays`).
    ``offsets`` (len(experts) + 1,) are the experts' first columns; ``loader`` is the source's picklable
    ``row -> RGB image``; ``pool`` a thread pool for decoding. Timings go into ``report``.
    """
    def decode(row: int) -> tuple[np.ndarray | None, str | None]:
        return decode_row(loader, row)

    t0 = time.perf_counter()
    pending = pool.map(decode, batches[0][1])
    for j, (b, rows) in enumerate(batches):
        start = rows[0]
        decoded = list(pending)
        if j + 1 < len(batches):  # decode the next batch while the experts work on this one
            pending = pool.map(decode, batches[j + 1][1])
        report.seconds["decode"] += time.perf_counter() - t0
        good = [i for i, (im, _) in enumerate(decoded) if im is not None]
        ids = [str(source.image_ids[start + i]) for i in good]
        block, scores = label_batch(experts, offsets, [decoded[i][0] for i in good], ids, save_scores,
                                    report.seconds)
        add(b, {"good": [start - lo + i for i in good], "block": block, "scores": scores,
                "failed_rows": [start - lo + i for i, (im, _) in enumerate(decoded) if im is None],
                "failed_reasons": [reason for im, reason in decoded if im is None]})
        t0 = time.perf_counter()
