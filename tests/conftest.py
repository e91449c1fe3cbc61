"""Shared test fixtures and helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"


def shared_data_or_skip(*parts: str) -> Path:
    """Path under ``../shared/data``, or skip the test when the development data is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"development data not available: {path}")
    return path


def combination_dataset(n: int = 2000, n_bits: int = 3, dim: int = 16, noise: float = 1.0, seed: int = 0):
    """Images whose true group is a deterministic function of ``n_bits`` binary concepts.

    Returns ``(features (n, dim) float32, concepts (n, n_bits) uint8, groups (n,) int)``; each of the
    ``2**n_bits`` groups has a well separated centre in feature space.
    """
    rng = np.random.default_rng(seed)
    concepts = (rng.random((n, n_bits)) < 0.5).astype(np.uint8)
    groups = concepts @ (1 << np.arange(n_bits))
    centres = rng.normal(size=(2**n_bits, dim)) * 6.0
    features = centres[groups] + noise * rng.normal(size=(n, dim))
    return features.astype(np.float32), concepts, groups


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread during the test: with small CPU batches, two threads stall badly when other
    jobs share the two cores (OpenMP barriers wait on a descheduled thread); one thread is fast either way, and
    a Ray actor with one CPU runs one thread too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
