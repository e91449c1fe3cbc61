"""The sparse reverse probe equals a dense reference, keeps the best epoch, and never densifies its input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from qrprobe.engine.config import ProbeConfig
from qrprobe.engine.probe import ReverseProbe
from qrprobe.errors import QRProbeInputError


def _data(n=600, m=40, k=5, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, m)) < 0.1).astype(np.uint8)
    w = rng.normal(size=(m, k)) * 3
    y = (x @ w + rng.gumbel(size=(n, k))).argmax(1)
    return sp.csr_matrix(x), y


def _dense_reference(x: np.ndarray, y: np.ndarray, cfg: ProbeConfig, seed: int, k: int):
    """The same SGD run written the obvious way: a dense matrix times a weight matrix."""
    xt = torch.from_numpy(x.astype(np.float32))
    yt = torch.from_numpy(y)
    w = torch.zeros(x.shape[1], k, requires_grad=True)
    b = torch.zeros(k, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.milestones), cfg.lr_decay)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(y), generator=gen)
        for s in range(0, len(y), cfg.batch_size):
            idx = perm[s:s + cfg.batch_size]
            loss = F.cross_entropy(xt[idx] @ w + b, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return w.detach().numpy(), b.detach().numpy()


def test_sparse_probe_equals_dense_sgd():
    x, y = _data()
    cfg = ProbeConfig(epochs=6, milestones=(3, 5), batch_size=64, select="last")
    probe = ReverseProbe(cfg, seed=4, device="cpu").fit(x, y, n_classes=5)
    w, b = _dense_reference(x.toarray(), y, cfg, seed=4, k=5)
    np.testing.assert_allclose(probe.coef_, w, atol=2e-4)
    np.testing.assert_allclose(probe.intercept_, b, atol=2e-4)
    assert probe.coef_.shape == (40, 5)


def test_best_validation_epoch_is_kept():
    x, y = _data(seed=1)
    probe = ReverseProbe(ProbeConfig(epochs=12, milestones=(8,)), seed=0, device="cpu")
    probe.fit(x[:400], y[:400], x[400:], y[400:], n_classes=5)
    losses = [h["val_loss"] for h in probe.history_]
    assert probe.best_epoch_ == int(np.argmin(losses)) + 1
    # milestone 8: epochs 1-8 run at 3.5, epochs 9-12 at 0.35 (paper: 1-60, 61-80, 81-100)
    assert [h["lr"] for h in probe.history_] == pytest.approx([3.5] * 8 + [0.35] * 4)


def test_predictions_are_consistent():
    x, y = _data(seed=2)
    probe = ReverseProbe(ProbeConfig(epochs=5), seed=0, device="cpu").fit(x, y, n_classes=7)
    lp = probe.predict_log_proba(x)
    assert lp.shape == (600, 7)
    np.testing.assert_allclose(np.exp(lp).sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probe.predict(x), lp.argmax(1))
    again = ReverseProbe.from_coefficients(probe.coef_, probe.intercept_, device="cpu")
    np.testing.assert_allclose(again.predict_log_proba(x), lp, atol=1e-6)


def test_rows_without_concepts_get_the_bias():
    x = sp.csr_matrix(np.array([[1, 0], [0, 0], [0, 1], [0, 0]], dtype=np.uint8))
    y = np.array([0, 1, 2, 1])
    probe = ReverseProbe(ProbeConfig(epochs=30, batch_size=4), device="cpu").fit(x, y, n_classes=3)
    assert probe.predict(x).tolist() == [0, 1, 2, 1]


def test_probe_never_densifies_the_concept_matrix(monkeypatch):
    x, y = _data(seed=3)

    def forbidden(*args, **kwargs):
        raise AssertionError("the concept matrix was densified")

    for cls in (sp.csr_matrix, sp.coo_matrix, sp.csc_matrix):
        monkeypatch.setattr(cls, "toarray", forbidden)
        monkeypatch.setattr(cls, "todense", forbidden)
    probe = ReverseProbe(ProbeConfig(epochs=2), device="cpu").fit(x, y, n_classes=5)
    probe.predict(x)


@pytest.mark.parametrize("kwargs", [{"lr": 0}, {"momentum": 1.0}, {"batch_size": 0}, {"epochs": 0},
                                    {"weight_decay": -1}, {"select": "best"}])
def test_invalid_schedules(kwargs):
    with pytest.raises(QRProbeInputError):
        ProbeConfig(**kwargs)
