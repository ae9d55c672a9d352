"""Training: `train` runs the steps of a training run in order.

Outputs of ``train(config)`` with ``config.output = "model.pt"``:

``model.pt``                the TorchScript model (normalisation and metadata inside)
``model.config.yaml``       every training choice (usable again with ``--config``)
``model_run/history.json``  train/validation loss and sigma68 per epoch (also ``.csv``)
``model_run/checkpoint.pt`` last epoch's state, for ``--resume``
``model_run/previews/``     relative-residual PNG on the validation set after every epoch
``model_run/tensorboard/``  TensorBoard scalars, when tensorboard is installed

The steps live in their own modules: `~hepae_coffea.training.config` (the settings),
`~hepae_coffea.training.prepare` (read, split, normalise, build),
`~hepae_coffea.training.optim` (batch loss, optimiser, batches),
`~hepae_coffea.training.validation`, `~hepae_coffea.training.records` (history, YAML,
TensorBoard), `~hepae_coffea.training.checkpoint` (save, load, resume),
`~hepae_coffea.training.export` (metadata, model file) and
`~hepae_coffea.training.lr_range` (`lr_find`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..model.cache import resolve_device
from .checkpoint import Progress, checkpoint_state, load_checkpoint, save_checkpoint
from .checkpoint import resume as resume_from
from .config import MODEL_UNITS, SCHEDULES, TrainConfig, load_config
from .export import build_metadata, export_trained
from .lr_range import lr_find
from .optim import Scheduler, batch_loss, epoch_batches, make_optimizer
from .prepare import Model, Prepared, prepare
from .records import eta, save_config, tensorboard_writer, write_history
from .validation import evaluate_loss, physical_check

__all__ = [
    "MODEL_UNITS",
    "SCHEDULES",
    "TrainConfig",
    "TrainResult",
    "build_metadata",
    "load_checkpoint",
    "load_config",
    "lr_find",
    "save_checkpoint",
    "train",
]

log = logging.getLogger(__name__)

#: training jets whose loss is evaluated after each epoch (in-memory training)
_TRAIN_EVAL_JETS = 200_000


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    model: Model
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    paths: dict[str, Path]
    seconds: float


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train an autoencoder as ``config`` says, export it, and return the result.

    Deterministic for a given seed on CPU (same data, same thread count). With
    ``resume=True`` training continues from the last epoch's checkpoint.
    """
    t_start = time.perf_counter()
    paths = config.paths()
    paths["run"].mkdir(parents=True, exist_ok=True)
    save_config(config, paths["config"])
    device = resolve_device(config.device)
    prep = prepare(config, device)
    steps = math.ceil(prep.n_train / min(config.batch_size, prep.n_train))
    opt, sched = make_optimizer(prep.model, config, steps)
    log.info("training on %s: %d jets, %d batches per epoch", device, prep.n_train, steps)
    state = (
        resume_from(paths["checkpoint"], config, prep.model, opt, sched) if resume else Progress()
    )
    run = _Run(config, prep, opt, sched, paths, device, steps, progress, t_start, state.seconds)
    stop_reason = run.epochs(state, on_epoch)
    if state.best_state is not None:
        prep.model.load_state_dict(state.best_state)
    seconds = run.seconds()
    metrics = _final_metrics(prep, config, device, state, stop_reason, seconds)
    model = export_trained(prep.model, config, prep, metrics, paths["model"])
    return TrainResult(model, state.history, metrics, paths, seconds)


@dataclass
class _Run:
    """The epoch loop of one training session and what it needs."""

    config: TrainConfig
    prep: Prepared
    opt: torch.optim.Optimizer
    sched: Scheduler
    paths: dict[str, Path]
    device: str
    steps: int  # optimisation steps per epoch
    progress: bool  # progress bar and one printed line per epoch
    t_start: float  # when this session started (perf_counter)
    seconds_before: float  # training time of earlier sessions (resumed runs)

    def seconds(self) -> float:
        """Training time so far, earlier sessions included."""
        return self.seconds_before + time.perf_counter() - self.t_start

    def epochs(self, state: Progress, on_epoch: Callable[[dict[str, float]], None] | None) -> str:
        """Train from epoch ``state.epoch`` on, updating ``state``; after every epoch
        record it and write a checkpoint. Returns why training stopped."""
        config = self.config
        writer = tensorboard_writer(config, self.paths["tensorboard"])
        start_epoch, stale = state.epoch, 0
        stop_reason = "epochs"
        for epoch in range(start_epoch, config.epochs):
            loss_sum, done, epoch_s = self._train_epoch(epoch)
            row, res, seconds = self._epoch_row(epoch, loss_sum, done, epoch_s)
            state.history.append(row)
            state.epoch, state.seconds = epoch + 1, seconds
            if row["val_loss"] < state.best_val:
                state.best_val, stale = row["val_loss"], 0
                state.best_state = {
                    k: v.detach().clone() for k, v in self.prep.model.state_dict().items()
                }
            else:
                stale += 1
            left = eta(
                seconds - self.seconds_before, epoch + 1 - start_epoch, config.epochs - epoch - 1
            )
            self._report(row, epoch, left, writer)
            if config.preview:
                from ..plots.plotting import plot_residuals

                plot_residuals(
                    res,
                    config.variables,
                    self.paths["previews"] / f"epoch_{epoch + 1:03d}.png",
                    title=f"epoch {epoch + 1}: validation set ({len(res)} jets)",
                )
            write_history(state.history, self.paths)
            save_checkpoint(
                checkpoint_state(config, self.prep.model, self.opt, self.sched, state),
                self.paths["checkpoint"],
            )
            if on_epoch is not None:
                on_epoch(row)
            if config.patience and stale >= config.patience:
                stop_reason = f"early stopping (no improvement in {config.patience} epochs)"
                break
            if config.max_minutes and state.seconds > 60 * config.max_minutes:
                stop_reason = f"time budget of {config.max_minutes} min"
                break
        if writer is not None:
            writer.close()
        return stop_reason

    def _train_epoch(self, epoch: int) -> tuple[float, int, float]:
        """One epoch's optimisation steps: (summed batch loss, jets seen, seconds)."""
        from tqdm.auto import tqdm

        config, model = self.config, self.prep.model
        model.train()
        t_epoch = time.perf_counter()
        running = 0.0
        bar = tqdm(
            total=self.prep.n_train,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not self.progress,
            leave=False,
            unit="jet",
            unit_scale=True,
        )
        done = 0
        loss_sum = 0.0
        batches = epoch_batches(self.prep, config, epoch, self.device)
        for i, (ub, wb) in enumerate(batches):
            if i >= self.steps:  # the schedule's length is fixed; a stream never yields more
                break
            loss = batch_loss(model, ub, config.beta, True, wb, self.prep.mean_weight)
            self.opt.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            self.opt.step()
            self.sched.step()
            lv = loss.item()
            running = lv if i == 0 else 0.95 * running + 0.05 * lv
            loss_sum += lv * len(ub)
            done += len(ub)
            bar.update(len(ub))
            if i % 20 == 0:
                bar.set_postfix(loss=f"{running:.3e}")
        bar.close()
        return loss_sum, done, time.perf_counter() - t_epoch

    def _epoch_row(
        self, epoch: int, loss_sum: float, done: int, epoch_s: float
    ) -> tuple[dict[str, float], Any, float]:
        """The history row of an epoch (losses, rate, sigma68 per variable), the
        validation residuals and the training time so far."""
        config, prep, model = self.config, self.prep, self.prep.model
        rate = done / epoch_s if epoch_s > 0 else float("inf")
        if prep.u_tr is not None:
            n = min(prep.n_train, _TRAIN_EVAL_JETS)
            train_loss = evaluate_loss(
                model,
                prep.u_tr[:n],
                config.beta,
                w=None if prep.w_tr is None else prep.w_tr[:n],
                mean_weight=prep.mean_weight,
            )
        else:  # streamed: the mean batch loss of the epoch (the model changed meanwhile)
            train_loss = loss_sum / max(done, 1)
        val_loss = evaluate_loss(
            model, prep.u_va, config.beta, w=prep.w_va, mean_weight=prep.mean_weight
        )
        summary, res = physical_check(model, prep.x_va, config.variables)
        seconds = self.seconds()
        row: dict[str, float] = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": float(self.sched.get_last_lr()[0]),
            "seconds": round(seconds, 2),
            "jets_per_second": round(rate, 1),
            "unphysical": summary["_jets"]["unphysical"],
        }
        row.update({f"sigma68_{v}": summary[v]["sigma68"] for v in config.variables})
        return row, res, seconds

    def _report(self, row: dict[str, float], epoch: int, left: str, writer: Any) -> None:
        """Log the epoch with the time ``left`` (and print it with ``progress``);
        TensorBoard scalars."""
        config = self.config
        s68 = {v: row[f"sigma68_{v}"] for v in config.variables}
        log.info(
            "epoch %d/%d: train %.4e val %.4e sigma68 %s; %.0f jets/s, ETA %s",
            epoch + 1,
            config.epochs,
            row["train_loss"],
            row["val_loss"],
            {v: round(s, 5) for v, s in s68.items()},
            row["jets_per_second"],
            left,
        )
        if self.progress:
            from tqdm.auto import tqdm

            tqdm.write(
                f"epoch {epoch + 1:3d}  train {row['train_loss']:.3e}  "
                f"val {row['val_loss']:.3e}  "
                + "  ".join(f"s68[{v}] {s:.4f}" for v, s in s68.items())
                + f"  {row['jets_per_second']:,.0f} jets/s  ETA {left}"
            )
        if writer is not None:
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(k, v, epoch + 1)


def _final_metrics(
    prep: Prepared,
    config: TrainConfig,
    device: str,
    state: Progress,
    stop_reason: str,
    seconds: float,
) -> dict[str, Any]:
    """Validation loss and residuals of the final (best) model, and how the run went."""
    summary, _ = physical_check(prep.model, prep.x_va, config.variables)
    return {
        "val_loss": evaluate_loss(
            prep.model, prep.u_va, config.beta, w=prep.w_va, mean_weight=prep.mean_weight
        ),
        "device": device,
        "validation": dict(summary),
        "epochs_run": len(state.history),
        "stop_reason": stop_reason,
        "seconds": round(seconds, 1),
    }
