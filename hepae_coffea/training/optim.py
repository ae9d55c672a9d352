"""Optimisation steps: the loss of a batch, the optimiser and its schedule, an epoch's batches."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from ..model.networks import weighted_mean
from .config import TrainConfig
from .prepare import Model, Prepared, to_tensor

__all__ = ["batch_loss", "epoch_batches", "make_optimizer"]

#: what a schedule steps (one step per batch)
Scheduler = torch.optim.lr_scheduler.LRScheduler


def batch_loss(
    model: Model,
    u: torch.Tensor,
    beta: float,
    sample: bool,
    w: torch.Tensor | None = None,
    mean_weight: float = 1.0,
) -> torch.Tensor:
    """Weighted reconstruction error plus ``beta`` times the KL term (VAE), averaged over
    the batch ``u`` (normalised jets) with event weights ``w``."""
    recon, kl = model.reconstruct_normalised(u, sample=sample)
    err = (model.per_column_error(u, recon) * model.column_weight).sum(dim=1)
    return weighted_mean(err + beta * kl, w, mean_weight)


def make_optimizer(
    model: Model, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.AdamW, Scheduler]:
    """AdamW and the learning-rate schedule of ``config.schedule`` (stepped every batch)."""
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched: Scheduler
    if config.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch
        )
    elif config.schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(
            opt, step_size=config.step_epochs * steps_per_epoch, gamma=config.step_gamma
        )
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


def epoch_batches(
    prep: Prepared, config: TrainConfig, epoch: int, device: str
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Normalised training batches (and weights) of one epoch, in memory or streamed.

    In memory, the jets are shuffled by a generator seeded with the seed and the epoch,
    so a resumed run sees the same batches.
    """
    if prep.stream is None:
        assert prep.u_tr is not None
        n = len(prep.u_tr)
        bs = min(config.batch_size, n)
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=gen).to(prep.u_tr.device)
        for i in range(math.ceil(n / bs)):
            idx = perm[i * bs : (i + 1) * bs]
            yield prep.u_tr[idx], (None if prep.w_tr is None else prep.w_tr[idx])
        return
    norm = prep.model.normalizer
    for block in prep.stream.epoch(epoch):
        with torch.no_grad():
            u = norm(torch.from_numpy(block[0].astype(np.float32)).to(device))
        w = to_tensor(block[1], device) if len(block) > 1 else None
        yield u, w
