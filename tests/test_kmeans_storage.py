"""The standardized copy K-means holds: streamed from arrays, memory maps and sharded stores, one array of the
storage precision, float32 bit for bit as before; exact 16-bit centroid sums; the protocol option."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qrprobe.engine.config import KMeansConfig, ProtocolConfig
from qrprobe.engine.kmeans.quantize import KMeans, Stored, fit_clusterings
from qrprobe.engine.kmeans.standardize import (
    BF16_FLUSH,
    Standardizer,
    release_rows,
    resolve_precision,
    standardized_copy,
    to_storage,
)
from qrprobe.engine.kmeans.sums import CentroidSums, check_sum_range
from qrprobe.errors import ParameterError
from qrprobe.features.store import FeatureStore, write_feature_store


def raw_features(n=3000, d=24, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, d)) * 3
    return (centres[rng.integers(0, 6, n)] + rng.normal(size=(n, d)) + 10).astype(np.float16)


def test_float32_copy_is_the_transform_bit_for_bit(tmp_path):
    x = raw_features()
    std = Standardizer(chunk_rows=257).fit(x)
    np.testing.assert_array_equal(standardized_copy(x, std, "float32").numpy(), std.transform(x))


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_16bit_copy_rounds_the_float32_values_and_is_a_multiple_of_2_to_the_minus_24(precision):
    x = raw_features()
    std = Standardizer(chunk_rows=500).fit(x)
    z32 = torch.from_numpy(std.transform(x))
    copy = standardized_copy(x, std, precision)
    assert copy.dtype == getattr(torch, precision)
    expected = torch.where(z32.abs() < BF16_FLUSH, 0.0, z32) if precision == "bfloat16" else z32
    assert torch.equal(copy, expected.to(copy.dtype))
    scaled = copy.double() * 2.0**24
    assert torch.equal(scaled, scaled.round())  # exact int64 sums are possible


def test_memory_mapped_and_sharded_sources_give_the_same_copy(tmp_path):
    from qrprobe.engine.inputs import ShardedRows

    x = raw_features(n=2500)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    write_feature_store(tmp_path / "store", x, dtype="float16", shard_rows=700)
    rows = ShardedRows(FeatureStore.open(tmp_path / "store"))
    ref = standardized_copy(x, Standardizer(chunk_rows=300).fit(x), "bfloat16")
    for source in (mapped, rows):
        assert torch.equal(standardized_copy(source, Standardizer(chunk_rows=300).fit(source), "bfloat16"), ref)
        release_rows(source, 0, len(x))  # pages dropped: the data read again is unchanged
        np.testing.assert_array_equal(source[:], x)


def test_the_input_is_never_modified():
    x = raw_features().astype(np.float64)
    before = x.copy()
    std = Standardizer(chunk_rows=100).fit(x)
    standardized_copy(x, std, "bfloat16")
    std.transform(x)
    np.testing.assert_array_equal(x, before)


def test_auto_precision_is_float16_at_every_size():
    # issue 20: the exact 16-bit path is the default at every size (it was float32 up to 1 GiB)
    for n, d in [(2, 1), (1484, 1280), (2**18, 2**10), (2**18 + 1, 2**10), (1_281_167, 2048)]:
        assert resolve_precision("auto", n, d) == "float16"
    assert resolve_precision("float32", 10, 10) == "float32"
    assert resolve_precision("float16", 10, 10) == "float16"
    with pytest.raises(ParameterError, match="kmeans_precision"):
        resolve_precision("float64", 10, 10)


def test_incremental_sums_equal_sums_from_scratch():
    rng = np.random.default_rng(1)
    x16 = to_storage(rng.normal(size=(500, 12)) * 50, "bfloat16")
    labels = torch.from_numpy(rng.integers(0, 7, 500))
    rows = torch.arange(500)
    moving = CentroidSums(x16, 7, chunk=64)
    moving.reset(rows, labels)
    new = labels.clone()
    moved = torch.from_numpy(rng.choice(500, 120, replace=False))
    new[moved] = torch.from_numpy(rng.integers(0, 7, 120))
    moving.move(moved, labels[moved], new[moved])
    scratch = CentroidSums(x16, 7)
    scratch.reset(rows, new)
    assert torch.equal(moving.sums, scratch.sums)
    assert torch.equal(moving.counts, scratch.counts)
    prev = torch.zeros(7, 12)
    assert torch.equal(moving.centroids(prev), scratch.centroids(prev))


def test_sum_range_is_checked():
    check_sum_range(10**6, 1000.0)
    with pytest.raises(ParameterError, match="kmeans_precision"):
        check_sum_range(2**30, 2.0**14)


def test_float32_protocol_results_equal_kmeans_on_the_transform():
    """kmeans_precision float32 (the default below 1 GiB before issue 20): fit_clusterings equals KMeans on the
    standardized features."""
    x = raw_features(n=1500, d=16)
    _std, runs = fit_clusterings(x, KMeansConfig(k=6, iters=20, restarts=2, kmeans_precision="float32"), seeds=[0, 1],
                                 device="cpu")
    z = Standardizer().fit_transform(x)
    for seed, run in zip([0, 1], runs, strict=True):
        km = KMeans(6, iters=20, restarts=2, seed=seed, device="cpu", kmeans_precision="float32").fit(z)
        assert run.precision == "float32"
        np.testing.assert_array_equal(run.labels, km.labels_)
        np.testing.assert_array_equal(run.centroids, km.cluster_centers_)
        assert run.inertia == km.inertia_


def test_fit_clusterings_16bit_equals_kmeans_on_the_stored_copy():
    x = raw_features(n=2000, d=32)
    _std, runs = fit_clusterings(x, KMeansConfig(k=8, iters=15, restarts=2, kmeans_precision="bfloat16"), seeds=[3],
                                 device="cpu")
    stored = Stored(standardized_copy(x, Standardizer().fit(x), "bfloat16"), "bfloat16")
    km = KMeans(8, iters=15, restarts=2, seed=3, device="cpu").fit_stored(stored)
    np.testing.assert_array_equal(runs[0].labels, km.labels_)
    assert runs[0].precision == "bfloat16"


def test_protocol_option_is_checked():
    assert ProtocolConfig().kmeans_precision == "auto"
    with pytest.raises(ParameterError, match="kmeans_precision"):
        ProtocolConfig(kmeans_precision="half")
