"""Distance engines and their error bounds: every value they return lies within its proven bound of the exact
float64 value, on random and adversarial data (hypothesis), with every registered engine that runs here (the
kernel and torch); and the registry picks the engine as it always has, or says why one cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qrprobe.engine.kmeans import engines as registry
from qrprobe.engine.kmeans import kernel as kmeans_kernel
from qrprobe.engine.kmeans.bounds import make_groups
from qrprobe.engine.kmeans.engines import KernelEngine, TorchEngine
from qrprobe.engine.kmeans.standardize import to_storage
from qrprobe.engine.kmeans.stored import Stored
from qrprobe.errors import QRProbeInputError

KERNEL = kmeans_kernel.load()
needs_kernel = pytest.mark.skipif(KERNEL is None, reason="no AVX-512 BF16 kernel here")


def engines(x16: torch.Tensor, width: int):
    """Every registered engine that can run on ``x16`` here (torch always; the kernel where it runs)."""
    out = [e.make(x16, width) for e in registry.registered() if e.cannot_run(x16) is None]
    assert any(isinstance(e, TorchEngine) for e in out)
    assert any(isinstance(e, KernelEngine) for e in out) == (KERNEL is not None and x16.shape[1] % 2 == 0)
    return out


def exact_values(x16: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """‖c‖² − 2 x·c in float64, (N, K)."""
    c = centroids.double()
    return (c * c).sum(1) - 2 * x16.double() @ c.T


def check_engine(x16: torch.Tensor, centroids: torch.Tensor, width: int) -> None:
    slot_ids = make_groups(centroids, width)
    exact = exact_values(x16, centroids)
    norms = x16.double().norm(dim=1)
    rows = torch.arange(len(x16))
    for eng in engines(x16, width):
        eng.set_centroids(centroids, slot_ids)
        m1, ids, m2, done = eng.group_min2(rows, None)
        assert bool(done.all())
        row_err = eng.row_error(x16)
        err = eng.group_error(norms, row_err)
        for g in range(eng.groups):
            members = slot_ids[g * width:(g + 1) * width]
            members = members[members >= 0]
            vals = exact[:, members]
            two = torch.topk(vals, min(2, len(members)), dim=1, largest=False).values
            # the reported minimum is within the bound of the exact minimum, and is the value of its centroid
            assert bool(((m1[:, g].double() - two[:, 0]).abs() <= err[:, g]).all())
            assert bool(((m1[:, g].double() - exact[rows, ids[:, g]]).abs() <= err[:, g]).all())
            if len(members) > 1:
                assert bool(((m2[:, g].double() - two[:, 1]).abs() <= err[:, g]).all())
        labels = torch.randint(0, len(centroids), (len(x16),))
        own = eng.own(rows, labels).double()
        assert bool(((own - exact[rows, labels]).abs() <= eng.own_error(norms, labels, row_err)).all())
        dots = eng.exact_dots(rows, labels)
        ref = (x16.double() * centroids.double()[labels]).sum(1)
        np.testing.assert_allclose(dots.numpy(), ref.numpy(), rtol=1e-12, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), scale=st.sampled_from([1e-3, 1.0, 30.0, 300.0]),
       offset=st.sampled_from([0.0, 5.0]), d=st.sampled_from([2, 16, 96, 130]),
       k=st.integers(2, 70), precision=st.sampled_from(["bfloat16", "float16"]))
def test_engine_values_lie_within_their_error_bounds(seed, scale, offset, d, k, precision):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((97, d)) * scale + offset  # an offset makes x·c large against the distances
    x16 = to_storage(x, precision)
    centroids = (torch.from_numpy(rng.standard_normal((k, d)) * scale * 0.3 + offset)).float()
    check_engine(x16, centroids, 16 if k < 64 else 32)


@pytest.mark.parametrize("width", [16, 32, 48, 64])
def test_every_group_width_of_the_kernel(width):
    rng = np.random.default_rng(width)
    x16 = to_storage(rng.standard_normal((300, 64)), "bfloat16")
    centroids = torch.from_numpy(rng.standard_normal((150, 64)) * 0.5).float()
    check_engine(x16, centroids, width)


@needs_kernel
def test_kernel_computes_only_the_needed_groups_and_splits_rows_over_threads():
    rng = np.random.default_rng(0)
    x16 = to_storage(rng.standard_normal((2000, 32)), "bfloat16")
    centroids = torch.from_numpy(rng.standard_normal((96, 32))).float()
    slot_ids = make_groups(centroids, 32)
    eng = KernelEngine(x16, 32, KERNEL)
    eng.set_centroids(centroids, slot_ids)
    rows = torch.from_numpy(rng.permutation(2000)[:1500])
    need = torch.from_numpy(rng.random((1500, eng.groups)) < 0.4)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        m1, ids, _, done = eng.group_min2(rows, need)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(done, need)
    full_m1, full_ids, _, _ = eng.group_min2(rows, None)
    assert torch.equal(m1[need], full_m1[need])
    assert torch.equal(ids[need], full_ids[need])
    assert bool(torch.isinf(m1[~need]).all())


def test_engines_on_float16_storage():
    rng = np.random.default_rng(3)
    x16 = to_storage(rng.standard_normal((200, 40)) * 3, "float16")
    centroids = torch.from_numpy(rng.standard_normal((20, 40))).float()
    check_engine(x16, centroids, 16)


# ------------------------------------------------------------------------------------------------ the registry
def test_auto_picks_the_kernel_where_it_runs_else_torch():
    rng = np.random.default_rng(0)
    even = to_storage(rng.standard_normal((50, 16)), "bfloat16")
    odd = to_storage(rng.standard_normal((50, 7)), "float16")
    assert registry.choose(even).name == ("kernel" if KERNEL is not None else "torch")
    assert registry.choose(odd).name == "torch"
    assert registry.choose(even, "torch").name == "torch"
    assert isinstance(Stored(even, "bfloat16").engine(70), KernelEngine if KERNEL is not None else TorchEngine)
    assert Stored(even, "bfloat16").engine(70).width == 32
    assert Stored(even, "bfloat16").engine(20).width == 16
    with pytest.raises(QRProbeInputError, match=r"no registered distance engine can run .*torch: it needs float16"):
        registry.choose(even.float())


def test_an_engine_asked_for_by_name_says_why_it_cannot_run():
    odd = to_storage(np.random.default_rng(1).standard_normal((50, 7)), "bfloat16")
    with pytest.raises(QRProbeInputError, match=r"distance engine 'kernel' cannot run here: it needs an even number "
                                                r"of dimensions, not 7"):
        Stored(odd, "bfloat16", engine="kernel").engine(10)
    with pytest.raises(QRProbeInputError, match=r"unknown distance engine 'fast'; registered: kernel, torch \(or "):
        Stored(odd, "bfloat16", engine="fast").engine(10)


def test_the_kernel_says_why_it_is_off(monkeypatch):
    monkeypatch.setenv("QRPROBE_KMEANS_KERNEL", "0")
    kmeans_kernel._load.cache_clear()
    try:
        assert kmeans_kernel.load() is None
        x = to_storage(np.random.default_rng(2).standard_normal((20, 8)), "bfloat16")
        assert registry.choose(x).name == "torch"
        with pytest.raises(QRProbeInputError, match="'kernel' cannot run here: switched off by QRPROBE_KMEANS_KERNEL"):
            registry.choose(x, "kernel")
    finally:
        monkeypatch.undo()
        kmeans_kernel._load.cache_clear()
    assert (kmeans_kernel.load() is None) == (KERNEL is None)


def test_every_engine_declares_what_it_guarantees_and_names_are_unique():
    for engine in registry.registered():
        assert engine.name != "auto"
        assert "exact" in engine.guarantee
        assert "E =" in engine.guarantee
    assert [e.name for e in registry.registered()] == ["kernel", "torch"]  # "auto" tries them in this order
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.TORCH)
    with pytest.raises(ValueError, match="'auto' is not an engine name"):
        registry.register(registry.DistanceEngine("auto", TorchEngine, lambda x: None, "exact; E = 0"))
