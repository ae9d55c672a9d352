"""Checks on the validation jets: the loss, and residuals in physical units."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..model.networks import EventAutoencoder
from ..processing.metrics import residual_summary, residuals
from .optim import batch_loss
from .prepare import Model, ValidationJets

__all__ = ["encode_validation", "evaluate_loss", "physical_check"]

_BLOCK = 65536  # jets per forward pass


def evaluate_loss(
    model: Model,
    u: torch.Tensor,
    beta: float,
    bs: int = _BLOCK,
    w: torch.Tensor | None = None,
    mean_weight: float = 1.0,
) -> float:
    """Mean loss over the normalised jets ``u`` (weights ``w``), in eval mode, without
    sampling the VAE's latents."""
    model.eval()
    tot = 0.0
    with torch.no_grad():
        for i in range(0, len(u), bs):
            ub = u[i : i + bs]
            wb = None if w is None else w[i : i + bs]
            tot += float(batch_loss(model, ub, beta, False, wb, mean_weight)) * len(ub)
    return tot / len(u)


def physical_check(
    model: Model, x_va: ValidationJets, variables: Sequence[str]
) -> tuple[dict[str, Any], np.ndarray]:
    """Residual summary and residuals on the validation jets (real jets only for
    event-level models)."""
    model.eval()
    dev = next(model.parameters()).device
    with torch.no_grad():
        if isinstance(x_va, tuple):
            assert isinstance(model, EventAutoencoder)
            x, m = x_va
            keep = m.bool()
            rec, orig = model(x.to(dev), m.to(dev)).cpu()[keep].numpy(), x[keep].numpy()
        else:
            rec = torch.cat(
                [model(x_va[i : i + _BLOCK].to(dev)).cpu() for i in range(0, len(x_va), _BLOCK)]
            ).numpy()
            orig = x_va.numpy()
    return residual_summary(orig, rec, variables), residuals(orig, rec, variables)


def encode_validation(model: Model, x_va: ValidationJets) -> torch.Tensor:
    """Latents of the validation jets (or events)."""
    with torch.no_grad():
        if isinstance(x_va, tuple):
            assert isinstance(model, EventAutoencoder)
            return model.encode(*x_va)
        assert not isinstance(model, EventAutoencoder)
        return model.encode(x_va)
