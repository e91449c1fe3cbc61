"""The fast SGD is torch.optim.SGD's update: against a plain dense torch reference (coefficients within 1e-4,
the same best epoch), in its dense, lazy and device-batched torch forms and in the compiled kernel; the
closed-form catch-up of skipped steps."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _probe_reference import dense_reference
from qrprobe.engine.config import ProbeConfig
from qrprobe.engine.probe import kernel
from qrprobe.engine.probe.reverse_probe import ReverseProbe
from qrprobe.engine.probe.sgd import (
    LAZY_FRACTION,
    HostBatches,
    decoupling,
    lr_of_epoch,
    step_matrices,
    with_bias_column,
)
from qrprobe.synthetic import make_skewed_probe_problem


def _fit(cfg, x, y, k, seed, lazy_fraction, batching="host", val=None):
    probe = ReverseProbe(cfg, seed=seed, device="cpu")
    probe.lazy_fraction = lazy_fraction
    if batching == "kernel":
        if not kernel.available():
            pytest.skip(f"the compiled probe cannot run here: {kernel.unavailable()}")
        probe.kernel = True
    else:
        probe.batching, probe.kernel = batching, False
    return probe.fit(x, y, *(val or (None, None)), n_classes=k)


# torch: dense (decoupled coordinates), lazy, device-batched; the compiled kernel (dense steps)
FORMS = [(0.0, "host"), (1.0, "host"), (0.0, "device"), (0.0, "kernel")]


@pytest.mark.parametrize(("lazy_fraction", "batching"), FORMS)
@pytest.mark.parametrize("weight_decay", [3e-6, 2e-2])
def test_equals_dense_torch_sgd_with_milestones(lazy_fraction, batching, weight_decay):
    x, y = make_skewed_probe_problem()
    cfg = ProbeConfig(epochs=7, milestones=(3, 5), batch_size=64, select="last", weight_decay=weight_decay, lr=2.0)
    probe = _fit(cfg, x, y, 6, 4, lazy_fraction, batching)
    w, b, _, _, losses = dense_reference(x.toarray(), y, cfg, seed=4, k=6)
    assert np.abs(w).max() > 1  # the weights moved: the comparison is not between zeros
    np.testing.assert_allclose(probe.coef_, w, atol=1e-4)
    np.testing.assert_allclose(probe.intercept_, b, atol=1e-4)
    np.testing.assert_allclose([h["train_loss"] for h in probe.history_[1:]], losses, rtol=1e-5)
    assert [h["lr"] for h in probe.history_[1:]] == [lr_of_epoch(2.0, (3, 5), 0.1, e) for e in range(1, 8)]


@pytest.mark.parametrize(("lazy_fraction", "batching"), FORMS)
def test_same_best_epoch_and_weights_as_the_reference(lazy_fraction, batching):
    x, y = make_skewed_probe_problem(n=900, seed=1)
    cfg = ProbeConfig(epochs=10, milestones=(6, 8), batch_size=50)
    train, val = slice(0, 600), slice(600, 900)
    probe = _fit(cfg, x[train], y[train], 6, 2, lazy_fraction, batching, (x[val], y[val]))
    _, _, best_epoch, (w, b), _ = dense_reference(x[train].toarray(), y[train], cfg, 2, 6, x[val].toarray(),
                                                  y[val])
    assert probe.best_epoch_ == best_epoch
    np.testing.assert_allclose(probe.coef_, w, atol=1e-4)
    np.testing.assert_allclose(probe.intercept_, b, atol=1e-4)


def test_lazy_steps_really_skip_rows():
    """On skewed data with small batches most rows are untouched per batch: the lazy form is chosen, and its
    catch-up is exercised (rows lag several steps)."""
    x, y = make_skewed_probe_problem(m=400)
    batches = HostBatches(with_bias_column(x), y, 64, LAZY_FRACTION)
    assert batches.lazy
    assert not HostBatches(with_bias_column(x), y, 700, LAZY_FRACTION).lazy
    touched = [len(b.touched) for b in batches.epoch(np.arange(len(y)))]
    assert max(touched) < 0.3 * batches.n_table


@pytest.mark.parametrize("weight_decay", [0.0, 3e-6, 0.5])
def test_decoupled_coordinates(weight_decay):
    """P = V + cW evolves free of W: c solves μη c² + (1 − μ − ηλ) c + λ = 0; none without weight decay or
    when A's eigenvalues are complex (the plain update is used then)."""
    lr, mu = 3.5, 0.9
    c = decoupling(lr, mu, weight_decay)
    if weight_decay in (0.0, 0.5):
        assert c is None
        return
    a = np.array([[1 - lr * weight_decay, -lr * mu], [weight_decay, mu]])
    rng = np.random.default_rng(0)
    w, v = rng.normal(size=2)
    w1, v1 = a @ [w, v]
    assert v1 + c * w1 == pytest.approx((1 - c * lr) * mu * (v + c * w), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(lr=st.floats(0.01, 5.0), momentum=st.floats(0.0, 0.99), weight_decay=st.floats(0.0, 0.05),
       k=st.integers(0, 30), seed=st.integers(0, 1000))
def test_closed_form_equals_steps_without_gradient(lr, momentum, weight_decay, k, seed):
    """A^k moves (w, v) exactly as k torch.optim.SGD steps whose gradient is zero."""
    rng = np.random.default_rng(seed)
    w0, v0 = rng.normal(size=5), rng.normal(size=5)
    p = torch.tensor(w0, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum, weight_decay=weight_decay)
    p.grad = torch.zeros_like(p)
    opt.step()  # creates the momentum buffer; then set the state we start from
    with torch.no_grad():
        p.copy_(torch.from_numpy(w0))
    opt.state[p]["momentum_buffer"] = torch.from_numpy(v0.copy())
    for _ in range(k):
        p.grad = torch.zeros_like(p)
        opt.step()
    a = step_matrices(lr, momentum, weight_decay, k)[k]
    np.testing.assert_allclose(a[0, 0] * w0 + a[0, 1] * v0, p.detach().numpy(), rtol=1e-9, atol=1e-12)
    if momentum > 0:  # (without momentum torch keeps no buffer; the weights alone are compared)
        np.testing.assert_allclose(a[1, 0] * w0 + a[1, 1] * v0, opt.state[p]["momentum_buffer"].numpy(),
                                   rtol=1e-9, atol=1e-12)


def test_bias_column_is_binary_and_canonical():
    x = sp.csr_matrix((np.array([2, 0, 1, 1], np.int64), (np.array([0, 0, 1, 1]), np.array([1, 0, 2, 2]))),
                      shape=(2, 3))
    t = with_bias_column(x)
    assert t.shape == (2, 4)
    assert t.indices.dtype == np.int32
    np.testing.assert_array_equal(t.toarray(), [[0, 1, 0, 1], [0, 0, 1, 1]])  # explicit zero dropped


def test_prior_is_epoch_zero_of_the_history():
    x, y = make_skewed_probe_problem(seed=3)
    probe = _fit(ProbeConfig(epochs=3), x[:500], y[:500], 6, 0, 0.25, "host", (x[500:], y[500:]))
    assert [h["epoch"] for h in probe.history_] == [0, 1, 2, 3]
    assert all(h["seconds"] >= 0 for h in probe.history_)
    losses = [h["val_loss"] for h in probe.history_]
    assert probe.best_epoch_ == int(np.argmin(losses))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_gpu_equals_the_reference_and_the_cpu():
    """On CUDA (batches cut on the device, index_add_ scatter): the reference's best epoch and weights."""
    x, y = make_skewed_probe_problem(n=900, seed=1)
    cfg = ProbeConfig(epochs=10, milestones=(6, 8), batch_size=50)
    train, val = slice(0, 600), slice(600, 900)
    gpu = ReverseProbe(cfg, seed=2, device="cuda").fit(x[train], y[train], x[val], y[val], n_classes=6)
    _, _, best_epoch, (w, b), _ = dense_reference(x[train].toarray(), y[train], cfg, 2, 6, x[val].toarray(),
                                                  y[val])
    assert gpu.best_epoch_ == best_epoch
    np.testing.assert_allclose(gpu.coef_, w, atol=1e-4)
    np.testing.assert_allclose(gpu.intercept_, b, atol=1e-4)
    lbfgs = ProbeConfig(solver="lbfgs", lbfgs_grid=3)
    on_gpu = ReverseProbe(lbfgs, device="cuda").fit(x[train], y[train], x[val], y[val], n_classes=6)
    on_cpu = ReverseProbe(lbfgs, device="cpu").fit(x[train], y[train], x[val], y[val], n_classes=6)
    assert on_gpu.weight_decay_ == on_cpu.weight_decay_
    np.testing.assert_allclose(on_gpu.coef_, on_cpu.coef_, atol=1e-4)
