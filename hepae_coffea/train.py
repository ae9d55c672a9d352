"""Training loop: data split, schedules, checkpoints and resume, history, previews, export.

Outputs of ``train(config)`` with ``config.output = "model.pt"``:

``model.pt``                the TorchScript model (normalisation and metadata inside)
``model.config.yaml``       every training choice (usable again with ``--config``)
``model_run/history.json``  train/validation loss and sigma68 per epoch (also ``.csv``)
``model_run/checkpoint.pt`` last epoch's state, for ``--resume``
``model_run/previews/``     relative-residual PNG on the validation set after every epoch
``model_run/tensorboard/``  TensorBoard scalars, when tensorboard is installed
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_output, write_text_atomic
from .data import pad_events, read_jets
from .export import export_model, variable_unit
from .metrics import residual_summary, residuals
from .models import JetAutoencoder, ModelConfig, build_model
from .normalize import Normalizer, VariableTransform, choose_transforms
from .variables import check_units

__all__ = ["SCHEDULES", "TrainConfig", "TrainResult", "load_config", "lr_find", "train"]

log = logging.getLogger(__name__)

#: Energy unit of the models trained here (inputs are converted to it when read).
MODEL_UNITS = "GeV"

SCHEDULES = ("constant", "step", "onecycle")
_MODEL_FIELDS = {f.name for f in fields(ModelConfig)}


@dataclass
class TrainConfig:
    """Every choice of a training run; saved beside the model as YAML."""

    inputs: list[str] = field(default_factory=list)
    output: str = "model.pt"
    variables: list[str] = field(default_factory=lambda: ["pt", "eta", "phi", "mass"])
    latent_dim: int = 3
    hidden: list[int] = field(default_factory=lambda: [32, 32])
    activation: str = "silu"
    kind: str = "ae"
    loss: str = "mse"
    bottleneck: str = "packed"
    levels: int = 1024
    beta: float = 1e-3
    weights: dict[str, float] = field(default_factory=dict)
    transforms: dict[str, str] = field(default_factory=dict)
    level: str = "jet"
    event_jets: int = 4
    epochs: int = 20
    batch_size: int = 1024
    lr: float = 3e-3
    schedule: str = "onecycle"
    step_epochs: int = 10
    step_gamma: float = 0.3
    weight_decay: float = 0.0
    seed: int = 1
    val_fraction: float = 0.2
    patience: int = 0
    max_minutes: float = 0.0
    max_jets: int = 0
    prefix: str = ""  # "" (and tree ""): the file format is detected
    tree: str = ""
    format: str = ""  # force a file format (hepae_coffea.formats.FORMATS)
    units: str = ""  # the files' energy unit, overriding the format's (MeV or GeV)
    collection: str = ""  # jet collection (PHYSLITE: Jets or LargeRJets)
    preview: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule {self.schedule!r} not in {SCHEDULES}")
        if not 0 < self.val_fraction < 1:
            problems.append(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.epochs < 1 or self.batch_size < 1:
            problems.append(
                f"epochs and batch_size must be >= 1 ({self.epochs}, {self.batch_size})"
            )
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if problems:
            raise ValueError("invalid training configuration: " + "; ".join(problems))
        self.model_config()  # validates the model part

    def model_config(self) -> ModelConfig:
        return ModelConfig(**{k: v for k, v in asdict(self).items() if k in _MODEL_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def paths(self) -> dict[str, Path]:
        out = Path(self.output)
        run = out.with_name(out.stem + "_run")
        return {
            "model": out,
            "config": out.with_name(out.stem + ".config.yaml"),
            "run": run,
            "history": run / "history.json",
            "history_csv": run / "history.csv",
            "checkpoint": run / "checkpoint.pt",
            "previews": run / "previews",
            "tensorboard": run / "tensorboard",
        }


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML or YAML training configuration into a dict (keys of :class:`TrainConfig`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: config file not found")
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        data = tomllib.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: config must be a mapping, got {type(data).__name__}")  # noqa: TRY004
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown config key(s) {sorted(unknown)}; known: {sorted(known)}")
    return data


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    model: JetAutoencoder
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    paths: dict[str, Path]
    seconds: float


# ---------------------------------------------------------------------------------------


def _split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 1:
        raise ValueError(f"need at least 2 jets to split train/validation, got {n}")
    return perm[n_val:], perm[:n_val]


def _prepare(config: TrainConfig):
    """Read, split (by jet, or by event for event-level models), normalise, build."""
    torch.manual_seed(config.seed)
    data = read_jets(
        config.inputs,
        config.variables,
        prefix=config.prefix or None,
        tree=config.tree or None,
        max_jets=config.max_jets or None,
        fmt=config.format or None,
        units=config.units or None,
        collection=config.collection or None,
        to_units=MODEL_UNITS,
    )
    for f in data.formats:
        log.info("%s: %s", f.source, f.describe(MODEL_UNITS))
    check_units(data.units, {"units": MODEL_UNITS}, "training data")
    mcfg = config.model_config()
    if mcfg.level == "event":
        if data.counts is None:
            raise ValueError("event-level models need per-event (jagged) inputs, e.g. ROOT files")
        x_ev, mask = pad_events(data.values, data.counts, mcfg.event_jets)
        tr_idx, va_idx = _split(len(x_ev), config.val_fraction, config.seed)
        x_tr = x_ev[tr_idx][mask[tr_idx]]  # the training jets, for the normalisation
    else:
        tr_idx, va_idx = _split(data.n_jets, config.val_fraction, config.seed)
        x_tr = data.values[tr_idx]
    transforms = choose_transforms(x_tr, config.variables, config.transforms)
    normalizer = Normalizer(transforms)
    if mcfg.loss == "bce":
        normalizer.set_unit_range(normalizer(torch.tensor(x_tr, dtype=torch.float32)))
    model = build_model(mcfg, normalizer)
    data.transforms = transforms  # type: ignore[attr-defined]
    with torch.no_grad():
        if mcfg.level == "event":
            tx = torch.tensor(x_ev, dtype=torch.float32)
            tm = torch.tensor(mask, dtype=torch.float32)
            u_tr = model.normalise_events(tx[tr_idx], tm[tr_idx])
            u_va = model.normalise_events(tx[va_idx], tm[va_idx])
            return data, model, u_tr, u_va, (tx[va_idx], tm[va_idx])
        t_va = torch.tensor(data.values[va_idx], dtype=torch.float32)
        return (
            data,
            model,
            normalizer(torch.tensor(x_tr, dtype=torch.float32)),
            normalizer(t_va),
            t_va,
        )


def _batch_loss(model: JetAutoencoder, u: torch.Tensor, beta: float, sample: bool) -> torch.Tensor:
    recon, kl = model.reconstruct_normalised(u, sample=sample)
    err = (model.per_column_error(u, recon) * model.column_weight).sum(dim=1)
    return (err + beta * kl).mean()


def _evaluate(model: JetAutoencoder, u: torch.Tensor, beta: float, bs: int = 65536) -> float:
    model.eval()
    tot = 0.0
    with torch.no_grad():
        for i in range(0, len(u), bs):
            ub = u[i : i + bs]
            tot += float(_batch_loss(model, ub, beta, sample=False)) * len(ub)
    return tot / len(u)


def _make_optim(model: JetAutoencoder, config: TrainConfig, steps_per_epoch: int):
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
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


def _physical_check(model, x_va, variables: Sequence[str]):
    """Residual summary on the validation jets (real jets only for event-level models)."""
    model.eval()
    with torch.no_grad():
        if isinstance(x_va, tuple):
            x, m = x_va
            keep = m.bool()
            rec, orig = model(x, m)[keep].numpy(), x[keep].numpy()
        else:
            rec, orig = model(x_va).numpy(), x_va.numpy()
    return residual_summary(orig, rec, variables), residuals(orig, rec, variables)


def _tensorboard_writer(config: TrainConfig, logdir: Path):
    if not config.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("tensorboard not installed: loss history goes to JSON/CSV only")
        return None
    return SummaryWriter(log_dir=str(logdir))


def _write_history(history: list[dict[str, float]], paths: dict[str, Path]) -> None:
    write_text_atomic(paths["history"], json.dumps(history, indent=1))
    if history:
        with atomic_output(paths["history_csv"]) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(history[0]))
            w.writeheader()
            w.writerows(history)


def _save_yaml(config: TrainConfig, path: Path) -> None:
    import yaml

    write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


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


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a training checkpoint (tensors and plain data only) atomically: a crash,
    SIGTERM or full disk leaves the previous checkpoint intact."""
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` without unpickling code
    (``torch.load(weights_only=True)``: tensors and plain containers only).

    Raises
    ------
    ModelFileError
        The file is damaged, not a checkpoint, or holds anything but plain data.
    """
    from .errors import ModelFileError

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
    return ck


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
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    paths = config.paths()
    paths["run"].mkdir(parents=True, exist_ok=True)
    _save_yaml(config, paths["config"])
    data, model, u_tr, u_va, x_va = _prepare(config)
    n = len(u_tr)
    bs = min(config.batch_size, n)
    steps = math.ceil(n / bs)
    opt, sched = _make_optim(model, config, steps)
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_val = math.inf
    start_epoch = 0
    elapsed_before = 0.0
    if resume:
        if not paths["checkpoint"].exists():
            raise FileNotFoundError(f"{paths['checkpoint']}: no checkpoint to resume from")
        ck = load_checkpoint(paths["checkpoint"])
        if ck["config"] != config.to_dict():
            diff = {k for k in ck["config"] if ck["config"][k] != config.to_dict().get(k)}
            raise ValueError(
                f"cannot resume: configuration differs from the checkpoint in {sorted(diff)}"
            )
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["torch_rng"])
        history, best_state, best_val = ck["history"], ck["best_state"], ck["best_val"]
        start_epoch, elapsed_before = ck["epoch"], ck["seconds"]
        log.info("resuming %s after epoch %d", paths["checkpoint"], start_epoch)
    writer = _tensorboard_writer(config, paths["tensorboard"])
    stale = 0
    stop_reason = "epochs"
    for epoch in range(start_epoch, config.epochs):
        model.train()
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=gen)
        running = 0.0
        bar = tqdm(
            range(steps),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not progress,
            leave=False,
            unit="batch",
        )
        for i in bar:
            idx = perm[i * bs : (i + 1) * bs]
            loss = _batch_loss(model, u_tr[idx], config.beta, sample=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            lv = loss.item()
            running = lv if i == 0 else 0.95 * running + 0.05 * lv
            if i % 20 == 0:
                bar.set_postfix(loss=f"{running:.3e}")
        bar.close()
        train_loss = _evaluate(model, u_tr[: min(n, 200_000)], config.beta)
        val_loss = _evaluate(model, u_va, config.beta)
        summary, res = _physical_check(model, x_va, config.variables)
        seconds = elapsed_before + time.perf_counter() - t_start
        row: dict[str, float] = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": float(sched.get_last_lr()[0]),
            "seconds": round(seconds, 2),
            "unphysical": summary["_jets"]["unphysical"],
        }
        row.update({f"sigma68_{v}": summary[v]["sigma68"] for v in config.variables})
        history.append(row)
        if val_loss < best_val:
            best_val, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        log.info(
            "epoch %d: train %.4e val %.4e sigma68 %s",
            epoch + 1,
            train_loss,
            val_loss,
            {v: round(summary[v]["sigma68"], 5) for v in config.variables},
        )
        if progress:
            tqdm.write(
                f"epoch {epoch + 1:3d}  train {train_loss:.3e}  val {val_loss:.3e}  "
                + "  ".join(f"s68[{v}] {summary[v]['sigma68']:.4f}" for v in config.variables)
            )
        if writer is not None:
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(k, v, epoch + 1)
        if config.preview:
            from .plotting import plot_residuals

            plot_residuals(
                res,
                config.variables,
                paths["previews"] / f"epoch_{epoch + 1:03d}.png",
                title=f"epoch {epoch + 1}: validation set ({len(res)} jets)",
            )
        _write_history(history, paths)
        save_checkpoint(
            {
                "config": config.to_dict(),
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "best_state": best_state,
                "best_val": best_val,
                "epoch": epoch + 1,
                "seconds": seconds,
            },
            paths["checkpoint"],
        )
        if on_epoch is not None:
            on_epoch(row)
        if config.patience and stale >= config.patience:
            stop_reason = f"early stopping (no improvement in {config.patience} epochs)"
            break
        if config.max_minutes and seconds > 60 * config.max_minutes:
            stop_reason = f"time budget of {config.max_minutes} min"
            break
    if writer is not None:
        writer.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    summary, _ = _physical_check(model, x_va, config.variables)
    seconds = elapsed_before + time.perf_counter() - t_start
    metrics = {
        "val_loss": _evaluate(model, u_va, config.beta),
        "validation": {k: v for k, v in summary.items()},
        "epochs_run": len(history),
        "stop_reason": stop_reason,
        "seconds": round(seconds, 1),
    }
    metadata = build_metadata(model, config, data.summary(), metrics, data.transforms)
    with torch.no_grad():
        z = model.encode(*x_va) if isinstance(x_va, tuple) else model.encode(x_va)
    if config.bottleneck == "packed":
        metadata["latent_range"] = [0.0, 1.0]
    else:
        lo, hi = float(z.min()), float(z.max())
        pad = 0.1 * (hi - lo) or 1.0
        metadata["latent_range"] = [lo - pad, hi + pad]
    export_model(model, paths["model"], metadata)
    return TrainResult(model, history, metrics, paths, seconds)


def build_metadata(
    model: JetAutoencoder,
    config: TrainConfig,
    data_summary: dict[str, Any],
    metrics: dict[str, Any],
    transforms: Sequence[VariableTransform],
) -> dict[str, Any]:
    """The JSON metadata stored in the exported model file."""
    norm = model.normalizer
    mcfg = config.model_config()
    return {
        "level": mcfg.level,
        "event_jets": mcfg.event_jets if mcfg.level == "event" else None,
        "kind": mcfg.kind,
        "loss": mcfg.loss,
        "bottleneck": mcfg.bottleneck,
        "levels": mcfg.levels if mcfg.bottleneck == "packed" else None,
        "latent_dim": mcfg.latent_dim,
        "units": MODEL_UNITS,
        "variables": [{"name": v, "unit": variable_unit(v)} for v in config.variables],
        "normalisation": [t.to_dict() for t in transforms],
        "unit_range": {"lo": norm.lo.tolist(), "width": norm.width.tolist()},
        "architecture": {
            "hidden": list(mcfg.hidden),
            "activation": mcfg.activation,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "loss_weights": {v: float(mcfg.weights.get(v, 1.0)) for v in config.variables},
        "training": {"config": config.to_dict(), "data": data_summary},
        "metrics": metrics,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def lr_find(
    config: TrainConfig,
    *,
    start: float = 1e-6,
    end: float = 1.0,
    steps: int = 200,
    plot: str | os.PathLike | None = None,
) -> tuple[list[float], list[float], float]:
    """LR range test: raise the learning rate exponentially over ``steps`` batches.

    Returns the learning rates, the smoothed losses and a suggestion: the rate where the
    smoothed loss falls fastest (steepest negative slope), as fastai's ``lr_find`` does.
    """
    _, model, u_tr, _, _ = _prepare(config)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=start, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    bs = min(config.batch_size, len(u_tr))
    factor = (end / start) ** (1 / max(steps - 1, 1))
    lrs, losses = [], []
    avg, best = 0.0, math.inf
    for i in range(steps):
        lr = start * factor**i
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(u_tr), (bs,), generator=gen)
        loss = _batch_loss(model, u_tr[idx], config.beta, sample=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
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
        from .plotting import plot_lr_find

        plot_lr_find(lrs, losses, suggestion, plot)
    with contextlib.suppress(Exception):
        log.info("LR range test suggests lr = %.3g", suggestion)
    return lrs, losses, suggestion
