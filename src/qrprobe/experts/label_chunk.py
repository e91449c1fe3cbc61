"""Label one chunk of rows: decode each image once (in threads, one batch ahead), run every expert on it.

The result is the chunk's slice of the concept bank as CSR arrays, which is also what the resumable work
folder stores for the chunk::

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


def label_chunk(lo: int, hi: int, experts: Sequence[Expert], offsets: np.ndarray, source, loader, pool,
                batch_size: int, report: LabelReport, save_scores: bool, bar) -> dict:
    """Decode and label rows [lo, hi) of ``source``: the chunk's arrays (see the module doc).

    ``offsets`` (len(experts) + 1,) are the experts' first columns; ``loader`` is the source's picklable
    ``row -> RGB image``; ``pool`` a thread pool for decoding. Timings and counts go into ``report``.
    """
    def decode(row: int) -> tuple[np.ndarray | None, str | None]:
        return decode_row(loader, row)

    blocks, ok = [], np.zeros(hi - lo, dtype=bool)
    failed_rows, failed_reasons = [], []
    scores: dict[int, list[np.ndarray]] = {j: [] for j in range(len(experts))}
    starts = list(range(lo, hi, batch_size))
    t0 = time.perf_counter()
    pending = pool.map(decode, range(starts[0], min(hi, starts[0] + batch_size)))
    for b, start in enumerate(starts):
        stop = min(hi, start + batch_size)
        decoded = list(pending)
        if b + 1 < len(starts):  # decode the next batch while the experts work on this one
            nxt = starts[b + 1]
            pending = pool.map(decode, range(nxt, min(hi, nxt + batch_size)))
        report.seconds["decode"] += time.perf_counter() - t0
        good = [i for i, (im, _) in enumerate(decoded) if im is not None]
        for i, (im, reason) in enumerate(decoded):
            if im is None:
                failed_rows.append(start - lo + i)
                failed_reasons.append(reason)
        arrays = [decoded[i][0] for i in good]
        ids = [str(source.image_ids[start + i]) for i in good]
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
