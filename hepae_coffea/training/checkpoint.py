"""Checkpoints: the state after every epoch, written atomically, read back to resume.

A checkpoint holds tensors and plain data only (``torch.load(weights_only=True)`` reads
it without unpickling code): the configuration, the model, optimiser and schedule states,
torch's RNG state and the run's `Progress`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelFileError
from ..io.atomic import atomic_output
from .config import TrainConfig
from .optim import Scheduler
from .prepare import Model

__all__ = ["Progress", "checkpoint_state", "load_checkpoint", "resume", "save_checkpoint"]

log = logging.getLogger(__name__)

_CHECKPOINT_KEYS = (
    "config",
    "model",
    "optimizer",
    "scheduler",
    "torch_rng",
    "history",
    "best_state",
    "best_val",
    "epoch",
    "seconds",
)


@dataclass
class Progress:
    """Where a run stands after ``epoch`` epochs (what a checkpoint restores)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None  # the model at the best validation loss
    best_val: float = float("inf")
    epoch: int = 0
    seconds: float = 0.0  # training time so far, over all sessions


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a training checkpoint (tensors and plain data only) atomically: a crash,
    SIGTERM or full disk leaves the previous checkpoint intact."""
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` without unpickling code
    (``torch.load(weights_only=True)``: tensors and plain containers only).

    Raises
    ------
    ModelFileError
        The file is damaged, not a checkpoint, or holds anything but plain data.
    """
    try:
        ck = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001  (zip, pickle and torch raise many types)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFileError(
            f"{path}: damaged or unsafe checkpoint, cannot resume ({first[:200]}); "
            "delete it to start again"
        ) from None
    missing = [k for k in _CHECKPOINT_KEYS if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise ModelFileError(f"{path}: not a hepae-coffea checkpoint (missing {missing})")
    return dict(ck)


def checkpoint_state(
    config: TrainConfig,
    model: Model,
    opt: torch.optim.Optimizer,
    sched: Scheduler,
    progress: Progress,
) -> dict[str, Any]:
    """What `save_checkpoint` writes after an epoch."""
    return {
        "config": config.to_dict(),
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "history": progress.history,
        "best_state": progress.best_state,
        "best_val": progress.best_val,
        "epoch": progress.epoch,
        "seconds": progress.seconds,
    }


def resume(
    path: Path,
    config: TrainConfig,
    model: Model,
    opt: torch.optim.Optimizer,
    sched: Scheduler,
) -> Progress:
    """Restore model, optimiser, schedule and torch's RNG from the checkpoint at ``path``.

    Raises
    ------
    FileNotFoundError
        No checkpoint there.
    ValueError
        The checkpoint was written with another configuration (the keys that differ are named).
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    ck = load_checkpoint(path)
    mine = config.to_dict()
    if ck["config"] != mine:
        diff = {k for k in ck["config"] if ck["config"][k] != mine.get(k)}
        raise ValueError(
            f"cannot resume: configuration differs from the checkpoint in {sorted(diff)}"
        )
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    torch.set_rng_state(ck["torch_rng"])
    log.info("resuming %s after epoch %d", path, ck["epoch"])
    return Progress(ck["history"], ck["best_state"], ck["best_val"], ck["epoch"], ck["seconds"])
