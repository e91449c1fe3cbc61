"""Clusterings computed once per run: inside :func:`reuse_clusterings`,
:func:`~qrprobe.engine.kmeans.quantize.fit_clusterings` returns the clustering of a seed it has already computed
on the same features with the same parameters instead of running K-means again.

A study clusters the same features several times with the same protocol: the evaluation, the breakdown, the
explanations (one of the evaluation's clusterings) and the K sweep at the study's K (its first clustering).
K-means is deterministic for fixed features, parameters and seed, so the reused clustering is the one a new run
would compute. The features are identified by their content (a hash of every value, streamed for a sharded
store: one pass, much cheaper than K-means), the parameters by value. Outside the context nothing is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

_MEMO: ContextVar[dict | None] = ContextVar("qrprobe_kmeans_memo", default=None)
_ROWS_PER_BLOCK = 65536


@contextmanager
def reuse_clusterings() -> Iterator[None]:
    """Within this context, each distinct clustering is computed once (nested uses share the outer memo)."""
    if _MEMO.get() is not None:
        yield
        return
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def active() -> bool:
    return _MEMO.get() is not None


def features_fingerprint(features) -> str:
    """SHA-256 of the shape, dtype and values of ``features`` (N, D): an array, a memory map or a sharded store
    read in row blocks."""
    h = hashlib.sha256()
    n = features.shape[0]
    h.update(repr((tuple(features.shape), str(np.dtype(features.dtype)))).encode())
    for start in range(0, n, _ROWS_PER_BLOCK):
        h.update(np.ascontiguousarray(features[start:start + _ROWS_PER_BLOCK]).tobytes())
    return h.hexdigest()


def lookup(key: tuple) -> object | None:
    """The value stored under ``key`` in the active memo (None when absent or no memo is active)."""
    memo = _MEMO.get()
    return None if memo is None else memo.get(key)


def store(key: tuple, value: object) -> None:
    """Keep ``value`` under ``key`` in the active memo (nothing when none is active)."""
    memo = _MEMO.get()
    if memo is not None:
        memo[key] = value


__all__ = ["active", "features_fingerprint", "lookup", "reuse_clusterings", "store"]
