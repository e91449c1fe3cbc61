"""The compiled probe (engine/probe/kernel.py) computes today's probe: against the torch path over many epochs
(coefficients within 1e-4, the same selected epoch, the same losses to float32 rounding), its validation loss
against torch's cross-entropy, the same result for any number of threads, and the torch path where it is
switched off or cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qrprobe.engine.config import ProbeConfig
from qrprobe.engine.probe import kernel
from qrprobe.engine.probe.reverse_probe import ReverseProbe, available_cpus, fit_many
from qrprobe.engine.probe.sgd import LAZY_FRACTION, HostBatches, with_bias_column
from qrprobe.synthetic import make_linear_probe_problem, make_skewed_probe_problem

pytestmark = pytest.mark.skipif(not kernel.available(), reason=f"compiled probe unavailable: {kernel.unavailable()}")


def _fit(cfg, x, y, k, *, use_kernel, threads=1, seed=3, val=None):
    probe = ReverseProbe(cfg, seed=seed, device="cpu")
    probe.lazy_fraction = 0.0  # dense torch steps: what the kernel replaces
    probe.kernel, probe.kernel_threads = use_kernel, threads
    return probe.fit(x, y, *(val or (None, None)), n_classes=k)


def _problem(n=2600, m=90, k=70, seed=0):
    """K = 70: two column tiles, the second one partly padding; rows with no concept at all included."""
    x, y = make_linear_probe_problem(n=n, m=m, k=k, seed=seed, density=0.08, scale=2.0)
    keep = np.ones(n)
    keep[::97] = 0  # some rows with the bias only
    x = sp.csr_matrix(sp.diags(keep) @ x)
    x.eliminate_zeros()
    assert np.diff(x.indptr)[::97].max() == 0
    return x, y


def test_equals_the_torch_path_with_validation_selection():
    x, y = _problem()
    cfg = ProbeConfig(epochs=14, milestones=(6, 10), batch_size=100)
    train, val = slice(0, 2000), slice(2000, None)
    args = (cfg, x[train], y[train], 70)
    ours = _fit(*args, use_kernel=True, val=(x[val], y[val]))
    ref = _fit(*args, use_kernel=False, val=(x[val], y[val]))
    assert np.abs(ref.coef_).max() > 1  # the weights moved
    assert 0 < ref.best_epoch_ < cfg.epochs  # the selection is not at an end of the range: a real choice
    assert ours.best_epoch_ == ref.best_epoch_
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-4)
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose([h[key] for h in ours.history_], [h[key] for h in ref.history_], rtol=2e-5)


@pytest.mark.parametrize("k", [1, 2, 64, 65, 129])
def test_any_number_of_clusters(k):
    """Tile edges: one cluster, a full tile, one column into the next tile."""
    x, y = make_linear_probe_problem(n=500, m=30, k=max(k, 1), seed=k, density=0.15)
    cfg = ProbeConfig(epochs=4, milestones=(2, 3), batch_size=64, select="last")
    ours = _fit(cfg, x, y, k, use_kernel=True)
    ref = _fit(cfg, x, y, k, use_kernel=False)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-5)


def test_the_same_result_for_any_number_of_threads():
    x, y = _problem(n=1500, k=200, seed=1)  # 4 tiles: up to 4 threads work
    cfg = ProbeConfig(epochs=3, batch_size=64)
    val = (x[1200:], y[1200:])
    fits = [_fit(cfg, x[:1200], y[:1200], 200, use_kernel=True, threads=t, val=val) for t in (1, 2, 3, 4)]
    for other in fits[1:]:
        np.testing.assert_array_equal(other.coef_, fits[0].coef_)
        np.testing.assert_array_equal(other.intercept_, fits[0].intercept_)
        assert [h["val_loss"] for h in other.history_] == [h["val_loss"] for h in fits[0].history_]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 9000), k=st.integers(1, 140), spread=st.sampled_from([0.1, 3.0, 60.0]),
       seed=st.integers(0, 10_000))
@example(n=2048 * 2 + 1, k=129, spread=60.0, seed=1)  # two full blocks and one row; a tile of one column
def test_validation_loss_equals_torch_cross_entropy(n, k, spread, seed):
    """Any number of rows (blocks of 2,048 and a remainder) and clusters, logits from near-uniform to a spread
    where most exponentials underflow (each row's maximum and sum carried from tile to tile)."""
    rng = np.random.default_rng(seed)
    m = 25
    x = sp.csr_matrix((rng.random((n, m)) < 0.2).astype(np.float32))
    y = rng.integers(0, k, n)
    sgd = kernel.KernelSGD(with_bias_column(x), y, k, 64, 0.9, 0.0, threads=2)
    table = rng.normal(scale=spread, size=(m + 1, k)).astype(np.float32)
    tiles = np.zeros((sgd.n_tiles, m + 1, sgd.tile), dtype=np.float32)
    padded = np.zeros((m + 1, sgd.n_tiles * sgd.tile), dtype=np.float32)
    padded[:, :k] = table
    tiles[:] = padded.reshape(m + 1, sgd.n_tiles, sgd.tile).transpose(1, 0, 2)
    sgd.w[:] = tiles
    np.testing.assert_array_equal(sgd.weight(), table)
    logits = torch.from_numpy(x.toarray() @ table[:-1] + table[-1])
    expected = float(F.cross_entropy(logits.double(), torch.from_numpy(y), reduction="mean"))
    got = sgd.mean_loss(kernel.KernelRows(with_bias_column(x), y))
    assert got == pytest.approx(expected, rel=2e-6, abs=2e-6 * max(1.0, spread))


def test_fit_many_gives_each_probe_one_kernel_thread(monkeypatch):
    seen = []
    real = kernel.KernelSGD.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        seen.append(self.threads)

    monkeypatch.setattr(kernel.KernelSGD, "__init__", spy)
    x, y = make_linear_probe_problem(n=300, m=20, k=4, density=0.3)
    probes = [ReverseProbe(ProbeConfig(epochs=1, batch_size=32), seed=s, device="cpu") for s in range(2)]
    fit_many(probes, [(x, y, None, None, 4)] * 2, workers=2)
    assert seen == [1, 1]
    assert [p.kernel_threads for p in probes] == [None, None]  # restored
    ReverseProbe(ProbeConfig(epochs=1, batch_size=32), device="cpu").fit(x, y, n_classes=4)
    assert seen[-1] == min(available_cpus(), 8, 1)  # K = 4: one tile, so one thread


def test_chosen_where_torch_would_step_lazily(monkeypatch):
    """A batch touching 11% of the concepts: torch would take lazy steps, the kernel (every row every step) is
    still the faster one and is chosen; the same probe as the lazy torch steps."""
    x, y = make_skewed_probe_problem(m=400)
    cfg = ProbeConfig(epochs=5, milestones=(3,), batch_size=64, select="last")
    assert 0.05 < HostBatches.expected_touched(with_bias_column(x), 64) < LAZY_FRACTION
    made = []
    real = kernel.KernelSGD.__init__

    def spy(self, *args, **kwargs):
        made.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(kernel.KernelSGD, "__init__", spy)
    auto = ReverseProbe(cfg, seed=1, device="cpu").fit(x, y, n_classes=6)
    assert made
    lazy = ReverseProbe(cfg, seed=1, device="cpu")
    lazy.kernel = False
    lazy.fit(x, y, n_classes=6)
    np.testing.assert_allclose(auto.coef_, lazy.coef_, atol=1e-4)
    np.testing.assert_allclose(auto.intercept_, lazy.intercept_, atol=1e-4)


def test_asked_for_where_it_cannot_run():
    x, y = make_linear_probe_problem(n=200, m=400, k=3, density=0.002)
    probe = ReverseProbe(ProbeConfig(epochs=1, batch_size=16), device="cpu")
    probe.kernel = True  # a batch touches ≈ 3% of the 400 concepts: the lazy torch steps are chosen
    with pytest.raises(RuntimeError, match="lazy torch steps are faster"):
        probe.fit(x, y, n_classes=3)
    probe.batching = "device"
    with pytest.raises(RuntimeError, match="host batching"):
        probe.fit(x, y, n_classes=3)


def test_switched_off_gives_the_torch_path(monkeypatch):
    x, y = make_linear_probe_problem(n=300, m=20, k=4, density=0.3)
    cfg = ProbeConfig(epochs=2, batch_size=32)
    monkeypatch.setenv("QRPROBE_PROBE_KERNEL", "0")
    kernel._load.cache_clear()
    try:
        assert not kernel.available()
        assert "QRPROBE_PROBE_KERNEL" in kernel.unavailable()
        auto = ReverseProbe(cfg, device="cpu").fit(x, y, n_classes=4)
        strict = ReverseProbe(cfg, device="cpu")
        strict.kernel = True
        with pytest.raises(RuntimeError, match="QRPROBE_PROBE_KERNEL"):
            strict.fit(x, y, n_classes=4)
    finally:
        monkeypatch.delenv("QRPROBE_PROBE_KERNEL")
        kernel._load.cache_clear()
    ref = ReverseProbe(cfg, device="cpu")
    ref.kernel = False
    np.testing.assert_array_equal(auto.coef_, ref.fit(x, y, n_classes=4).coef_)


def test_bad_buffers_are_refused():
    x, y = make_linear_probe_problem(n=50, m=5, k=3)
    sgd = kernel.KernelSGD(with_bias_column(x), y, 3, 16, 0.9, 0.0)
    with pytest.raises(ValueError, match="true_proba"):
        sgd.epoch(np.arange(50), 0.1, np.empty(49, dtype=np.float32))
