"""K-means across processes (qrprobe.engine.kmeans.distributed.sharded): two gloo CPU processes give the single-process
result bit for bit (float32 and 16-bit storage); labels are the exact nearest centroids; with 16-bit storage the
result is the single-device exact K-means' (labels, centroids, iterations), with float32 storage a float64 Lloyd's;
the torchrun launcher writes the same file for one and two processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qrprobe.concepts.bank import ConceptBank
from qrprobe.engine.config import KMeansConfig, ProbeConfig, ProtocolConfig
from qrprobe.engine.evaluate import evaluate
from qrprobe.engine.kmeans.distributed.sharded import Shard, _scale_bits, assign, lloyd, shard_bounds, sharded_kmeans
from qrprobe.engine.kmeans.lloyd import assign as plain_assign
from qrprobe.engine.kmeans.quantize import KMeans, fit_clusterings
from qrprobe.engine.protocol import read_quantization
from qrprobe.errors import QRProbeInputError
from qrprobe.features.store import write_feature_store

REPO = Path(__file__).resolve().parents[1]


def blobs(n: int = 3000, d: int = 12, k: int = 20, seed: int = 0) -> np.ndarray:
    """Overlapping Gaussian blobs, standardized, float32: many points near a boundary between clusters."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(k, d))[rng.integers(k, size=n)] * 1.5 + rng.normal(size=(n, d))
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32)


def far_start(x: np.ndarray, k: int) -> np.ndarray:
    """Initial centroids whose last one is far from every point: its cluster is empty and gets re-seeded."""
    start = x[np.random.default_rng(1).choice(len(x), k, replace=False)].copy()
    start[-1] = 100.0
    return start


def _worker(rank: int, world: int, init_file: str, data_file: str, out_dir: str, split: list[int]) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    x = np.load(data_file)
    lo, hi = split[rank], split[rank + 1]
    results = {}
    for dtype in (torch.float32, torch.float16):
        mine = torch.from_numpy(x[lo:hi]).to(dtype)
        results[f"random-{dtype}"] = sharded_kmeans(mine, 20, row_start=lo, n_total=len(x), n_iter=40, n_restarts=3,
                                                    seed=7)
        results[f"given-{dtype}"] = sharded_kmeans(mine, 20, row_start=lo, n_total=len(x), n_iter=40, n_restarts=1,
                                                   init=far_start(x, 20))
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"),
             **{f"{name}_{key}": np.asarray(getattr(result, key)) for name, result in results.items()
                for key in ("labels", "centroids", "inertia", "n_iter", "inertias", "n_empty_reseeded")})
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_give_the_single_process_result_bit_for_bit(tmp_path):
    x = blobs()
    np.save(tmp_path / "x.npy", x)
    split = [0, 1234, len(x)]  # uneven on purpose: the rows' split must not matter
    torch.multiprocessing.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "x.npy"),
                                               str(tmp_path), split), nprocs=2, join=True)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    single = {}
    for dtype in (torch.float32, torch.float16):
        rows = torch.from_numpy(x).to(dtype)
        single[f"random-{dtype}"] = sharded_kmeans(rows, 20, row_start=0, n_total=len(x), n_iter=40, n_restarts=3,
                                                   seed=7)
        single[f"given-{dtype}"] = sharded_kmeans(rows, 20, row_start=0, n_total=len(x), n_iter=40, n_restarts=1,
                                                  init=far_start(x, 20))
    for name, result in single.items():
        labels = np.concatenate([r[f"{name}_labels"] for r in ranks])
        np.testing.assert_array_equal(labels, result.labels)
        for r in ranks:  # every process holds the same centroids, inertia and counts
            assert r[f"{name}_centroids"].tobytes() == result.centroids.tobytes()
            assert float(r[f"{name}_inertia"]) == result.inertia
            assert tuple(r[f"{name}_inertias"]) == result.inertias
            assert int(r[f"{name}_n_iter"]) == result.n_iter
            assert int(r[f"{name}_n_empty_reseeded"]) == result.n_empty_reseeded
    for dtype in (torch.float32, torch.float16):
        assert single[f"given-{dtype}"].n_empty_reseeded >= 1
        assert single[f"random-{dtype}"].n_iter > 5
        assert len(set(single[f"random-{dtype}"].inertias)) > 1  # the restarts differ, the lowest inertia is kept


def lloyd_float64(x: np.ndarray, start: np.ndarray, n_iter: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A plain float64 Lloyd: nearest centroid by float64 distances (lowest index on a tie), centroids the float64
    means rounded to float32, an empty cluster re-seeded with the farthest point (then the lower row)."""
    x64 = x.astype(np.float64)
    c = start.astype(np.float32)
    previous, it = None, 0
    for it in range(1, n_iter + 1):  # noqa: B007
        dist = ((x64[:, None, :] - c.astype(np.float64)[None]) ** 2).sum(-1)
        labels = dist.argmin(1)
        if previous is not None and np.array_equal(labels, previous):
            break
        previous = labels
        counts = np.bincount(labels, minlength=len(c))
        old = c.copy()
        for j in np.flatnonzero(counts):
            c[j] = x64[labels == j].mean(0).astype(np.float32)
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            own = ((x64 - old[labels].astype(np.float64)) ** 2).sum(1)
            far = np.lexsort((np.arange(len(x)), -own))[:len(empty)]
            c[empty] = x[far]
    return labels, c, it


def test_float32_storage_follows_a_float64_lloyd_and_the_float32_backend():
    x = blobs(n=1500, d=10, k=12, seed=3)
    for start in (x[np.random.default_rng(5).choice(len(x), 12, replace=False)], far_start(x, 12)):
        result = sharded_kmeans(torch.from_numpy(x), 12, row_start=0, n_total=len(x), n_iter=50, n_restarts=1,
                                init=start)
        labels, centroids, n_iter = lloyd_float64(x, start, 50)
        np.testing.assert_array_equal(result.labels, labels)
        assert result.n_iter == n_iter
        assert result.precision == "float32"
        # fixed-point sums: the means agree with float32(float64 mean) to one float32 rounding
        np.testing.assert_allclose(result.centroids, centroids, rtol=2**-23, atol=2**-30)
        plain = KMeans(12, iters=50, restarts=1, kmeans_init=start, device="cpu", kmeans_precision="float32").fit(x)
        np.testing.assert_array_equal(result.labels, plain.labels_)
        assert result.n_empty_reseeded == plain.result_.n_empty_reseeded
        assert result.inertia == pytest.approx(plain.inertia_, rel=1e-6)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_16bit_storage_gives_the_single_device_exact_kmeans(precision):
    """From the same start, the same labels, centroids (bit for bit) and iterations as KMeans(precision=...),
    whose exact path has Yinyang bounds and its own engines: only the definitions are shared."""
    x = blobs(n=2000, d=16, k=15, seed=6)
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[precision]
    stored = torch.from_numpy(x).to(dtype)
    for start in (stored[torch.from_numpy(np.random.default_rng(2).choice(2000, 15, replace=False))].float().numpy(),
                  far_start(x, 15)):
        ours = sharded_kmeans(stored, 15, row_start=0, n_total=2000, n_iter=60, n_restarts=1, init=start)
        single = KMeans(15, iters=60, restarts=1, kmeans_init=start, device="cpu",
                        kmeans_precision=precision).fit(stored)
        np.testing.assert_array_equal(ours.labels, single.labels_)
        assert ours.centroids.tobytes() == single.cluster_centers_.tobytes()
        assert ours.n_iter == single.result_.n_iter
        assert ours.precision == precision
        assert ours.n_empty_reseeded == single.result_.n_empty_reseeded
        assert ours.inertia == pytest.approx(single.inertia_, rel=1e-12)
        # the full-products Lloyd (every row against every centroid, no Yinyang bounds; the float32 path),
        # written apart from the single-device code, gives the same on the 16-bit rows
        shard = Shard(stored, 0, 2000, chunk=512)
        centroids, n_iter, _ = lloyd(shard, torch.from_numpy(np.asarray(start, dtype=np.float32)), 60)
        np.testing.assert_array_equal(assign(shard, centroids).numpy(), single.labels_)
        assert centroids.numpy().tobytes() == single.cluster_centers_.tobytes()
        assert n_iter == ours.n_iter


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 40), st.integers(1, 6), st.integers(2, 9))
def test_labels_are_the_exact_nearest_centroids_with_ties_to_the_lowest_index(seed, n, d, k):
    """Small integer coordinates: float32 and float64 distances are exact there, and ties are frequent
    (duplicated centroids, points halfway between two)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=(n, d)).astype(np.float32)
    c = rng.integers(-3, 4, size=(k, d)).astype(np.float32)
    c[rng.integers(k)] = c[rng.integers(k)]  # often a duplicate centroid: an exact tie for its points
    exact = ((x[:, None, :].astype(np.int64) - c[None].astype(np.int64)) ** 2).sum(-1)
    labels = assign(Shard(torch.from_numpy(x), 0, n, chunk=7), torch.from_numpy(c)).numpy()
    np.testing.assert_array_equal(labels, exact.argmin(1))  # numpy: the first (lowest) index of the minimum


def test_labels_do_not_depend_on_the_block_a_row_is_computed_in():
    x = torch.from_numpy(blobs(n=999, d=64, k=30, seed=4))
    c = x[torch.randperm(999, generator=torch.Generator().manual_seed(0))[:30]]
    whole = assign(Shard(x, 0, 999, chunk=999), c)
    for chunk in (1, 7, 128):
        assert torch.equal(assign(Shard(x, 0, 999, chunk=chunk), c), whole)
    assert torch.equal(assign(Shard(x[500:], 500, 999, chunk=33), c), whole[500:])


def test_shards_and_fixed_point_range():
    assert [shard_bounds(10, 3, r) for r in range(3)] == [(0, 3), (3, 6), (6, 10)]
    assert _scale_bits(1_281_167, 64.0) == 35  # ImageNet-sized: 2^-35 steps, under a float32 rounding of 1
    with pytest.raises(QRProbeInputError, match="standardized"):
        _scale_bits(10**9, 1e12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_launcher_writes_the_same_file_for_one_and_two_processes(tmp_path):
    # one test: the two runs are the two sides of the comparison
    raw = blobs(n=2001, d=16, k=10, seed=9) * np.linspace(0.5, 4, 16, dtype=np.float32) + 3
    store = write_feature_store(tmp_path / "store", raw, shard_rows=700)  # rows split across shards
    args = [str(store.path), "-k", "10", "--clusterings", "2", "--iters", "30", "--restarts", "2", "--device", "cpu",
            "--precision", "float16"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "qrprobe.engine.kmeans.distributed.run", *args, "-o",
                          str(tmp_path / "one.npz")], env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", str(_free_port()), "-m", "qrprobe.engine.kmeans.distributed.run", *args,
                          "-o",
                          str(tmp_path / "two.npz")], env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr
    assert "on 2 process(es)" in two.stderr
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        assert a[key].tobytes() == b[key].tobytes(), key
    # the protocol's own quantization (one device, exact 16-bit K-means) from the same seeds: the same clusterings
    standardizer, results = fit_clusterings(
        store.load(), KMeansConfig(k=10, iters=30, restarts=2, kmeans_precision="float16"), seeds=[0, 1], device="cpu")
    np.testing.assert_array_equal(a["mean"], standardizer.mean_)
    for r, result in enumerate(results):
        np.testing.assert_array_equal(a["labels"][r], result.labels)
        assert a["centroids"][r].tobytes() == result.centroids.tobytes()
        assert a["n_iter"][r] == result.n_iter
        assert a["inertia"][r] == pytest.approx(result.inertia, rel=1e-12)
    # ... and the probing of the distributed clusterings gives evaluate()'s own scores
    concepts = ConceptBank.from_matrix((raw[:, :6] > 3).astype(np.uint8), [f"c{j}" for j in range(6)],
                                       image_ids=store.image_ids)
    params = {"k": 10, "clusterings": 2, "iters": 30, "restarts": 2, "epochs": 3, "device": "cpu",
              "kmeans_precision": "float16"}
    own = evaluate(store.path, concepts, **params)
    config = ProtocolConfig(device="cpu", probe=ProbeConfig(epochs=3))
    probed = evaluate(None, concepts, quantization=read_quantization(tmp_path / "two.npz", store.path, config))
    assert probed.summary == own.summary


def test_near_ties_that_float32_gets_wrong_are_settled_exactly():
    """Far from the origin, ‖c‖² − 2 x·c loses the difference between two close centroids in float32 (the
    plain float32 assignment picks the wrong one for many rows); the bounds send those rows to float64."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 8)) * 1000
    x = (base + rng.normal(size=(400, 8))).astype(np.float32)
    c = np.concatenate([base, base + 0.05]).astype(np.float32)  # two centroids 0.14 apart, 1000 from the origin
    exact = ((x[:, None, :].astype(np.float64) - c[None].astype(np.float64)) ** 2).sum(-1).argmin(1)
    plain, _ = plain_assign(torch.from_numpy(x), torch.from_numpy(c), chunk=64)
    assert (plain.numpy() != exact).sum() > 10  # float32 alone is wrong here
    np.testing.assert_array_equal(assign(Shard(torch.from_numpy(x), 0, 400, chunk=64), torch.from_numpy(c)).numpy(),
                                  exact)
