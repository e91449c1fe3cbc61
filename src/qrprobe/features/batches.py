"""One planned batch through the model, and planned batches back into chunks: shared by the extraction's
local backend (:mod:`.extract`) and its Ray backend (:mod:`.extract_ray`), so both write the same store.

A *plan* is the list of ``(chunk, rows)`` batches of an extraction: chunk ``c`` holds input rows
``[c * S, (c + 1) * S)``, cut into batches of the batch size that never cross a chunk. Both backends encode
exactly these batches; the store's bytes depend on the plan, not on the backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import QRProbeInputError
from ..images import ImageSource
from .store import FeatureStoreWriter


class GivenRepresentation:
    """A picklable factory returning a ready :class:`~qrprobe.models.Representation` (a Ray actor gets a
    copy of it)."""

    def __init__(self, rep) -> None:
        self.rep = rep

    def __call__(self):
        return self.rep


def encode_batch(rep, batch, dtype: str) -> tuple[np.ndarray, str | None]:
    """Encode one batch (B, ...) tensor; returns the (B, D) features in the storage ``dtype`` and ``None``, or
    what is wrong with them (not finite, or out of the float16 range)."""
    import torch

    feats = rep.encode(batch)
    stored = feats.to(torch.float16 if dtype == "float16" else torch.float32)
    problem = None
    if not bool(torch.isfinite(stored).all()):
        problem = ("exceed the float16 range; use --dtype float32" if bool(torch.isfinite(feats).all())
                   else "are not finite (NaN or inf)")
    return stored.cpu().numpy(), problem


class ChunkAssembler:
    """Collects the encoded batches of a plan, in any order, and commits each chunk when all its batches are in.

    ``add(b, rows, features, failures, problem)``: planned batch ``b`` (its index in the plan) gave
    ``features`` (len(rows), D) for the decodable ``rows``; ``failures`` lists ``(row, reason)`` of the others;
    ``problem`` (or None) says why its features cannot be stored. ``stats`` (an
    :class:`~qrprobe.features.extract.ExtractionStats`) counts the encoded and skipped images; ``bar`` is the
    progress bar (images).
    """

    def __init__(self, writer: FeatureStoreWriter, source: ImageSource, plan: list[tuple[int, list[int]]], rep,
                 dtype: str, stats, bar) -> None:
        self.writer, self.source, self.plan, self.dtype = writer, source, plan, dtype
        self.spec, self.dim = rep.spec, rep.dim
        self.stats, self.bar = stats, bar
        self.expected: dict[int, int] = {}
        for chunk, _ in plan:
            self.expected[chunk] = self.expected.get(chunk, 0) + 1
        self.pending: dict[int, dict[int, tuple]] = {}

    def add(self, b: int, rows: Sequence[int], features: np.ndarray | None, failures: Sequence[tuple[int, str]],
            problem: str | None = None) -> None:
        rows = [int(r) for r in rows]
        if problem:
            raise QRProbeInputError(f"{self.spec}: features of {self.source.image_ids[rows[0]]!r} "
                                    f"and its batch {problem}")
        chunk, planned = self.plan[b]
        got = self.pending.setdefault(chunk, {})
        got[b] = (rows, features, list(failures))
        self.stats.n_encoded_now += len(rows)
        self.bar.update(len(planned))
        if failures:
            self.bar.set_postfix(skipped=self.stats.n_skipped + len(failures), refresh=False)
        if len(got) == self.expected[chunk]:
            self._commit(chunk, [got[i] for i in sorted(got)])
            del self.pending[chunk]

    def _commit(self, chunk: int, batches: list[tuple]) -> None:
        source = self.source
        rows = [r for batch_rows, _, _ in batches for r in batch_rows]
        parts = [f for batch_rows, f, _ in batches if len(batch_rows)]
        feats = np.concatenate(parts) if parts else np.zeros((0, self.dim), self.dtype)
        skipped = [{"image_id": source.image_ids[row], "path": source.paths[row], "reason": reason}
                   for _, _, failures in batches for row, reason in failures]
        labels = None if source.labels is None else [source.labels[r] for r in rows]
        self.writer.commit_chunk(chunk, feats, [source.image_ids[r] for r in rows],
                                 [source.paths[r] for r in rows], labels, skipped)
        self.stats.n_skipped += len(skipped)
