"""Rows of a feature store looked up by image id (for an expert that reuses a model's stored features)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class StoredRows:
    """A feature store's rows by image id, read from its shards' memory maps (nothing loaded whole).

    ``store``: a :class:`qrprobe.features.store.FeatureStore`.
    """

    def __init__(self, store) -> None:
        self.shards = list(store.iter_shards())
        self.starts = np.cumsum([0] + [len(s) for s in self.shards])  # (S + 1,) first row of each shard
        self.index = {str(i): r for r, i in enumerate(store.image_ids)}
        self.dim = store.dim

    def rows(self, image_ids: Sequence[str]) -> np.ndarray:
        """(B,) int64 store row of each id, -1 where the store does not have it."""
        return np.asarray([self.index.get(str(i), -1) for i in image_ids], dtype=np.int64)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), D) float32 features of ``rows`` (all ≥ 0), in that order."""
        out = np.empty((len(rows), self.dim), np.float32)
        shard_of = np.searchsorted(self.starts, rows, side="right") - 1
        for s in np.unique(shard_of):
            mask = shard_of == s
            out[mask] = self.shards[s][rows[mask] - self.starts[s]]
        return out
