"""The reference SGD the reverse probe must equal (shared by the probe tests; their generated problems are
:func:`qrprobe.synthetic.make_linear_probe_problem` and :func:`~qrprobe.synthetic.make_skewed_probe_problem`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from qrprobe.engine.probe.reverse_probe import intra_op_threads


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


