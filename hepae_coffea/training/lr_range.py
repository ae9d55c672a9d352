"""The learning-rate range test (``hepae train --lr-find``)."""

from __future__ import annotations

import contextlib
import logging
import math
import os

import numpy as np
import torch

from .config import TrainConfig
from .optim import batch_loss
from .prepare import prepare

__all__ = ["lr_find"]

log = logging.getLogger(__name__)


def lr_find(
    config: TrainConfig,
    *,
    start: float = 1e-6,
    end: float = 1.0,
    steps: int = 200,
    plot: str | os.PathLike[str] | None = None,
) -> tuple[list[float], list[float], float]:
    """LR range test: raise the learning rate exponentially over ``steps`` batches.

    Returns the learning rates, the smoothed losses and a suggestion: the rate where the
    smoothed loss falls fastest (steepest negative slope), as fastai's ``lr_find`` does.
    """
    prep = prepare(config)
    model = prep.model
    u_tr = prep.u_tr if prep.u_tr is not None else prep.u_va  # streaming: validation jets
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=start, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    bs = min(config.batch_size, len(u_tr))
    factor = (end / start) ** (1 / max(steps - 1, 1))
    lrs: list[float] = []
    losses: list[float] = []
    avg, best = 0.0, math.inf
    for i in range(steps):
        lr = start * factor**i
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(u_tr), (bs,), generator=gen)
        loss = batch_loss(model, u_tr[idx], config.beta, sample=True)
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        opt.step()
        avg = 0.9 * avg + 0.1 * loss.item()
        smooth = avg / (1 - 0.9 ** (i + 1))
        if not math.isfinite(smooth) or smooth > 4 * best:
            break
        best = min(best, smooth)
        lrs.append(lr)
        losses.append(smooth)
    if len(lrs) < 5:
        raise RuntimeError("LR range test diverged at once; lower the start value")
    lg = np.log(np.asarray(losses))
    slope = np.gradient(lg, np.log(np.asarray(lrs)))
    skip = max(1, len(lrs) // 10)  # ignore the noisy first steps
    suggestion = float(lrs[skip + int(np.argmin(slope[skip:]))])
    if plot is not None:
        from ..plots.plotting import plot_lr_find

        plot_lr_find(lrs, losses, suggestion, plot)
    with contextlib.suppress(Exception):
        log.info("LR range test suggests lr = %.3g", suggestion)
    return lrs, losses, suggestion
