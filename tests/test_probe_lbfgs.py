"""The L-BFGS probe reaches the optimum of the regularized objective (scikit-learn's solution of the same
problem), deterministically, with the weight decay chosen on validation and the prior as a candidate."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from qrprobe.engine.config import ProbeConfig
from qrprobe.engine.probe.lbfgs import Objective, weight_decay_grid
from qrprobe.engine.probe.reverse_probe import ReverseProbe
from qrprobe.synthetic import make_linear_probe_problem


def _data(n=900, m=30, k=5, seed=0):
    return make_linear_probe_problem(n, m, k, seed, density=0.15, scale=1.5)


@pytest.mark.parametrize("weight_decay", [1e-3, 3e-2])
def test_optimum_equals_scikit_learn(weight_decay):
    """sklearn minimizes ½‖θ‖² + C Σ CE; with C = 1/(nλ) that is n/λ times ours ((1/n) Σ CE + (λ/2)‖θ‖²), the
    bias being the weight of a constant column (penalized, as SGD's weight decay does)."""
    from sklearn.linear_model import LogisticRegression

    x, y = _data()
    n = len(y)
    cfg = ProbeConfig(solver="lbfgs", weight_decay=weight_decay, lbfgs_grid=1, lbfgs_iters=2000)
    probe = ReverseProbe(cfg, device="cpu").fit(x, y, n_classes=5)
    dense = np.hstack([x.toarray(), np.ones((n, 1))])
    ref = LogisticRegression(C=1 / (n * weight_decay), fit_intercept=False, tol=1e-12, max_iter=20000).fit(dense, y)
    np.testing.assert_allclose(probe.coef_, ref.coef_[:, :-1].T, atol=2e-4)
    np.testing.assert_allclose(probe.intercept_, ref.coef_[:, -1], atol=2e-4)
    assert probe.weight_decay_ == weight_decay
    assert probe.best_epoch_ is None
    assert not probe.selected_prior_


def test_objective_gradient_matches_autograd():
    x, y = _data(n=200, seed=1)
    obj = Objective(x, y, 5, torch.device("cpu"))
    theta = torch.randn(31, 5, dtype=torch.float64, requires_grad=True)
    dense = torch.from_numpy(np.hstack([x.toarray(), np.ones((200, 1))]))
    ref = torch.nn.functional.cross_entropy(dense @ theta, torch.from_numpy(y))
    ref.backward()
    loss, grad = obj.loss_and_grad(theta.detach())
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad.numpy(), theta.grad.numpy(), atol=1e-12)


def test_blocks_sum_to_the_whole(monkeypatch):
    import qrprobe.engine.probe.lbfgs as lb

    x, y = _data(n=300, seed=2)
    theta = torch.randn(31, 5, dtype=torch.float64)
    whole = lb.Objective(x, y, 5, torch.device("cpu")).loss_and_grad(theta)
    monkeypatch.setattr(lb, "BLOCK_BYTES", 8 * 5 * 64)  # 64 rows per block
    parts = lb.Objective(x, y, 5, torch.device("cpu"))
    assert len(parts.blocks) == 5
    blocked = parts.loss_and_grad(theta)
    assert blocked[0] == pytest.approx(whole[0], rel=1e-12)
    np.testing.assert_allclose(blocked[1].numpy(), whole[1].numpy(), atol=1e-12)


def test_weight_decay_is_chosen_on_validation_and_fit_is_deterministic():
    x, y = _data(n=1200, m=60, seed=3)
    cfg = ProbeConfig(solver="lbfgs", lbfgs_grid=6)
    fits = [ReverseProbe(cfg, device="cpu").fit(x[:700], y[:700], x[700:], y[700:], n_classes=5) for _ in range(2)]
    np.testing.assert_array_equal(fits[0].coef_, fits[1].coef_)
    tried = fits[0].history_[1:]
    assert [h["weight_decay"] for h in tried] == weight_decay_grid(cfg)[:len(tried)]
    assert weight_decay_grid(cfg)[0] == pytest.approx(3e-6 * 10**2.5)
    assert weight_decay_grid(cfg)[-1] == 3e-6
    best = min(tried, key=lambda h: h["val_loss"])
    assert fits[0].weight_decay_ == best["weight_decay"]
    assert best["val_loss"] < fits[0].history_[0]["val_loss"]  # better than the prior: not kept
    assert all(h["converged"] for h in tried)


def test_prior_is_kept_when_concepts_carry_nothing():
    rng = np.random.default_rng(5)
    x = sp.csr_matrix((rng.random((1500, 40)) < 0.2).astype(np.uint8))
    y = rng.integers(0, 8, 1500)
    probe = ReverseProbe(ProbeConfig(solver="lbfgs", lbfgs_grid=4), device="cpu")
    probe.fit(x[:1000], y[:1000], x[1000:], y[1000:], n_classes=8)
    assert probe.selected_prior_
    assert probe.best_epoch_ == 0
    assert not probe.coef_.any()


def test_l1_optimum_satisfies_the_optimality_conditions():
    """At the L1 optimum: |∂CE/∂w| ≤ λ where w = 0, ∂CE/∂w = −λ sign(w) elsewhere, ∂CE/∂b = 0 (bias free);
    concepts that carry nothing get exactly zero weights."""
    rng = np.random.default_rng(7)
    x, y = _data(n=1500, m=20, seed=7)
    junk = sp.csr_matrix((rng.random((1500, 30)) < 0.2).astype(np.uint8))
    x = sp.hstack([x, junk], format="csr")
    lam = 3e-3
    cfg = ProbeConfig(solver="lbfgs", lbfgs_penalty="l1", weight_decay=lam, lbfgs_grid=1, lbfgs_iters=5000)
    probe = ReverseProbe(cfg, device="cpu").fit(x, y, n_classes=5)
    theta = np.vstack([probe.coef_, probe.intercept_]).astype(np.float64)
    _, grad = Objective(x, y, 5, torch.device("cpu")).loss_and_grad(torch.from_numpy(theta))
    grad = grad.numpy()
    w, gw = theta[:-1], grad[:-1]
    zero = np.abs(w) < 1e-6
    assert np.abs(gw[zero]).max() <= lam * 1.01
    np.testing.assert_allclose(gw[~zero], -lam * np.sign(w[~zero]), atol=lam * 0.02)
    np.testing.assert_allclose(grad[-1], 0, atol=1e-5)
    assert zero[20:].mean() > 0.6 > 0.4 > zero[:20].mean()  # junk: mostly exact zeros; informative: mostly not


def test_an_l1_path_that_starts_at_the_prior_goes_on_to_the_decays_that_beat_it():
    """The strongest L1 decays zero every weight (the prior's own validation loss, no rise of a U-curve); the
    path must go on to the decays whose fits beat the prior instead of stopping there."""
    x, y = _data()
    cfg = ProbeConfig(solver="lbfgs", lbfgs_penalty="l1", weight_decay=0.003, lbfgs_grid=7)
    grid = weight_decay_grid(cfg)
    assert grid[0] > 1.0  # strong enough to zero every weight
    probe = ReverseProbe(cfg, device="cpu").fit(x[:600], y[:600], x[600:], y[600:], n_classes=5)
    assert not probe.selected_prior_
    assert probe.weight_decay_ < grid[1]
    assert len(probe.history_) > 3
