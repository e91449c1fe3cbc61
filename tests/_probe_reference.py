"""Generated probe problems and the reference SGD the reverse probe must equal (shared by the probe tests)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from qrprobe.engine.probe import intra_op_threads


def linear_data(n=600, m=40, k=5, seed=0, density=0.1, scale=3.0):
    """Binary concepts of one frequency, clusters drawn from a linear model of them plus Gumbel noise."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n, m)) < density).astype(np.uint8)
    w = rng.normal(size=(m, k)) * scale
    y = (x @ w + rng.gumbel(size=(n, k))).argmax(1)
    return sp.csr_matrix(x), y


def skewed_data(n=700, m=120, k=6, seed=0):
    """Concepts with very different frequencies (many rare ones), so that batches leave most rows untouched."""
    rng = np.random.default_rng(seed)
    freq = 0.4 / (1 + np.arange(m)) ** 1.2
    x = (rng.random((n, m)) < freq).astype(np.uint8)
    w = rng.normal(size=(m, k)) * 2
    y = (x @ w + rng.gumbel(size=(n, k))).argmax(1)
    return sp.csr_matrix(x), y


def dense_reference(x, y, cfg, seed, k, xv=None, yv=None):
    """The paper's schedule written the obvious way: dense X @ W + b, torch.optim.SGD, MultiStepLR; returns the
    last weights, with validation rows the best epoch (the prior, epoch 0, included) and its weights, and the
    epochs' mean training losses."""
    with intra_op_threads(1):  # small problem: one thread is faster, and robust on a shared machine
        return _dense_reference(x, y, cfg, seed, k, xv, yv)


def _dense_reference(x, y, cfg, seed, k, xv, yv):
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    w = torch.zeros(x.shape[1], k, requires_grad=True)
    b = torch.zeros(k, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.milestones), cfg.lr_decay)
    gen = torch.Generator().manual_seed(seed)
    best, train_losses = (np.inf, 0, None), []
    if xv is not None:
        counts = np.bincount(y, minlength=k) + 0.5
        prior = np.log(counts / counts.sum())
        best = (-prior[yv].mean(), 0, (np.zeros((x.shape[1], k)), prior))
    for epoch in range(1, cfg.epochs + 1):
        perm = torch.randperm(len(y), generator=gen)
        total = 0.0
        for s in range(0, len(y), cfg.batch_size):
            idx = perm[s:s + cfg.batch_size]
            loss = F.cross_entropy(xt[idx] @ w + b, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        train_losses.append(total / len(y))
        sched.step()
        if xv is not None:
            with torch.no_grad():
                val = float(F.cross_entropy(torch.from_numpy(xv.astype(np.float32)) @ w + b, torch.from_numpy(yv)))
            if val < best[0]:
                best = (val, epoch, (w.detach().numpy().copy(), b.detach().numpy().copy()))
    return w.detach().numpy(), b.detach().numpy(), best[1], best[2], train_losses


