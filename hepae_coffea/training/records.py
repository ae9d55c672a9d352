"""What a run leaves beside the model: the configuration YAML, the loss history (JSON and
CSV) and TensorBoard scalars; and the ETA shown after each epoch."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_output, write_text_atomic
from .config import TrainConfig

__all__ = ["eta", "save_config", "tensorboard_writer", "write_history"]

log = logging.getLogger(__name__)


def save_config(config: TrainConfig, path: Path) -> None:
    """Write the configuration as YAML (usable again with ``hepae train --config``)."""
    import yaml

    write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def write_history(history: list[dict[str, float]], paths: dict[str, Path]) -> None:
    """The per-epoch rows as ``history.json`` and ``history.csv`` (atomic writes)."""
    write_text_atomic(paths["history"], json.dumps(history, indent=1))
    if history:
        with atomic_output(paths["history_csv"]) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(history[0]))
            w.writeheader()
            w.writerows(history)


def tensorboard_writer(config: TrainConfig, logdir: Path) -> Any:
    """A TensorBoard ``SummaryWriter``, or None when turned off or not installed."""
    if not config.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("tensorboard not installed: loss history goes to JSON/CSV only")
        return None
    return SummaryWriter(log_dir=str(logdir))


def eta(elapsed: float, epochs_done: int, epochs_left: int) -> str:
    """Remaining time as ``m:ss`` from the mean epoch time so far."""
    if epochs_done <= 0:
        return "?"
    left = elapsed / epochs_done * epochs_left
    return f"{int(left // 60)}:{int(left % 60):02d}"
