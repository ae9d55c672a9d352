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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.atomic import atomic_output, write_text_atomic
from ..io.jets import pad_events, read_jets
from ..model.cache import DEVICES, resolve_device
from ..model.export import export_model, variable_unit
from ..model.networks import JetAutoencoder, ModelConfig, build_model, weighted_mean
from ..model.normalize import FitReport, Normalizer, VariableTransform, fit_transforms, flag_absurd
from ..processing.metrics import residual_summary, residuals
from ..variables.registry import check_units
from .stream import ShuffleBuffer, batches, iter_weighted_jets

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
    format: str = ""  # force a file format (hepae_coffea.io.formats.FORMATS)
    units: str = ""  # the files' energy unit, overriding the format's (MeV or GeV)
    collection: str = ""  # jet collection (PHYSLITE: Jets or LargeRJets)
    preview: bool = True
    tensorboard: bool = True
    weight_branch: str = ""
    stream: bool = False
    shuffle_buffer: int = 200_000
    step_events: int = 50_000
    fit_jets: int = 500_000
    max_val_jets: int = 200_000
    max_z: float = 20.0
    device: str = "auto"

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
        for name in ("shuffle_buffer", "step_events", "fit_jets", "max_val_jets"):
            if getattr(self, name) < (0 if name == "shuffle_buffer" else 1):
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if not self.max_z > 0:
            problems.append(f"max_z must be > 0, got {self.max_z}")
        if self.device.split(":", 1)[0] not in DEVICES:
            problems.append(f"device {self.device!r} not in {DEVICES}")
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


@dataclass
class _Prepared:
    """Model, normalised training data (in memory) or a stream, and the validation set."""

    model: Any
    summary: dict[str, Any]
    transforms: list[VariableTransform]
    u_tr: torch.Tensor | None  # normalised training jets (None when streaming)
    w_tr: torch.Tensor | None  # event weight per training jet
    u_va: torch.Tensor
    w_va: torch.Tensor | None
    x_va: Any  # physical validation jets (tuple (x, mask) for event-level models)
    mean_weight: float
    n_train: int
    stream: _JetStream | None = None


def _read_weighted(config: TrainConfig) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
    """All jets and their event weights (in memory), via the streaming reader."""
    vals, wts, n_bad, sources = [], [], 0, []
    n = 0
    for chunk in iter_weighted_jets(
        config.inputs,
        config.variables,
        prefix=config.prefix or None,
        tree=config.tree or None,
        fmt=config.format or None,
        units=config.units or None,
        collection=config.collection or None,
        to_units=MODEL_UNITS,
        weight_branch=config.weight_branch,
        step_events=config.step_events,
    ):
        vals.append(chunk.values)
        wts.append(chunk.weights)
        n_bad += chunk.n_bad_weight
        if chunk.source not in sources:
            sources.append(chunk.source)
        n += len(chunk.values)
        if config.max_jets and n >= config.max_jets:
            break
    values, weights = np.concatenate(vals), np.concatenate(wts)
    if config.max_jets:
        values, weights = values[: config.max_jets], weights[: config.max_jets]
    return values, weights, n_bad, sources


def _mean_weight(w: np.ndarray | None) -> float:
    if w is None:
        return 1.0
    mean = float(np.mean(w))
    if not (np.isfinite(mean) and mean != 0):
        raise ValueError(f"event weights of the training jets have mean {mean}; cannot weight")
    return mean


def _prepare(config: TrainConfig, device: str = "cpu") -> _Prepared:
    """Read, split (by jet, or by event for event-level models), normalise, build."""
    torch.manual_seed(config.seed)
    if config.stream:
        return _prepare_stream(config, device)
    mcfg = config.model_config()
    weights = None
    if config.weight_branch:
        if mcfg.level == "event":
            raise ValueError("event weights are supported for jet-level models only")
        values, weights, n_bad_w, sources = _read_weighted(config)
        summary = {
            "files": [os.path.basename(p) for p in sources],
            "n_jets": len(values),
            "n_events": None,
            "weight_branch": config.weight_branch,
            "n_bad_weight_dropped": n_bad_w,
        }
        data = None
    else:
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
        values = data.values
        summary = data.summary()
    if mcfg.level == "event":
        assert data is not None
        if data.counts is None:
            raise ValueError("event-level models need per-event (jagged) inputs, e.g. ROOT files")
        x_ev, mask = pad_events(data.values, data.counts, mcfg.event_jets)
        tr_idx, va_idx = _split(len(x_ev), config.val_fraction, config.seed)
        x_tr = x_ev[tr_idx][mask[tr_idx]]  # the training jets, for the normalisation
    else:
        tr_idx, va_idx = _split(len(values), config.val_fraction, config.seed)
        x_tr = values[tr_idx]
    transforms, report = fit_transforms(
        x_tr, config.variables, config.transforms, max_z=config.max_z
    )
    normalizer = Normalizer(transforms)
    keep_tr = report.keep
    if mcfg.loss == "bce":
        normalizer.set_unit_range(normalizer(torch.tensor(x_tr[keep_tr], dtype=torch.float32)))
    model = build_model(mcfg, normalizer).to(device)
    if mcfg.level == "event":
        summary["absurd"] = report.to_dict()
        with torch.no_grad():
            tx = torch.tensor(x_ev, dtype=torch.float32)
            tm = torch.tensor(mask, dtype=torch.float32)
            u_tr = model.normalise_events(tx[tr_idx].to(device), tm[tr_idx].to(device))
            u_va = model.normalise_events(tx[va_idx].to(device), tm[va_idx].to(device))
        return _Prepared(
            model, summary, transforms, u_tr, None, u_va, None,
            (tx[va_idx], tm[va_idx]), 1.0, len(u_tr),
        )  # fmt: skip
    bad_va, _ = flag_absurd(values[va_idx], transforms, max_z=config.max_z)
    summary["absurd"] = _absurd_summary(report, int(bad_va.sum()))
    va_idx = va_idx[~bad_va]
    w_tr = weights[tr_idx][keep_tr] if weights is not None else None
    mean_w = _mean_weight(w_tr)
    with torch.no_grad():
        t_va = torch.tensor(values[va_idx], dtype=torch.float32)
        u_tr = normalizer(torch.tensor(x_tr[keep_tr], dtype=torch.float32)).to(device)
        u_va = normalizer(t_va).to(device)
    return _Prepared(
        model,
        summary,
        transforms,
        u_tr,
        _tensor(w_tr, device),
        u_va,
        _tensor(weights[va_idx] if weights is not None else None, device),
        t_va,
        mean_w,
        len(u_tr),
    )


def _tensor(w: np.ndarray | None, device: str) -> torch.Tensor | None:
    return None if w is None else torch.tensor(w, dtype=torch.float32, device=device)


def _absurd_summary(report: FitReport, n_val: int) -> dict[str, Any]:
    out = report.to_dict()
    out["n_validation_absurd"] = n_val
    if report.n_absurd or n_val:
        log.warning(
            "absurd jets left out of training: %d of %d training, %d validation (%s)",
            report.n_absurd,
            report.n_jets,
            n_val,
            report.rule,
        )
    return out


class _JetStream:
    """Training jets streamed from the input files, epoch after epoch.

    Jets are read in chunks of ``config.step_events`` events; each chunk's jets go to
    validation with probability ``val_fraction`` (a fixed draw per chunk, so every pass
    splits the same way); training jets outside the fitted domain (absurd) are dropped
    and counted; the rest pass through a shuffle buffer into batches.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.transforms: list[VariableTransform] | None = None
        self.n_absurd_seen = 0

    def chunks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """(chunk number, values, weights), up to ``max_jets`` jets in all."""
        c = self.config
        n = 0
        for i, chunk in enumerate(
            iter_weighted_jets(
                c.inputs,
                c.variables,
                prefix=c.prefix or None,
                tree=c.tree or None,
                weight_branch=c.weight_branch or None,
                step_events=c.step_events,
                fmt=c.format or None,
                units=c.units or None,
                collection=c.collection or None,
                to_units=MODEL_UNITS,
            )
        ):
            values, weights = chunk.values, chunk.weights
            if c.max_jets and n + len(values) > c.max_jets:
                values = values[: c.max_jets - n]
                weights = None if weights is None else weights[: len(values)]
            n += len(values)
            yield i, values, weights
            if c.max_jets and n >= c.max_jets:
                return

    def is_val(self, i: int, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.config.seed, 7, i])
        return rng.random(n) < self.config.val_fraction

    def epoch(self, epoch: int) -> Iterator[list[np.ndarray]]:
        """Training batches ``[values, (weights)]`` of one pass over the files."""
        assert self.transforms is not None
        c = self.config
        rng = np.random.default_rng([c.seed, 11, epoch])
        self.n_absurd_seen = 0

        def blocks() -> Iterator[list[np.ndarray]]:
            for i, values, weights in self.chunks():
                tr = ~self.is_val(i, len(values))
                bad, _ = flag_absurd(values[tr], self.transforms, max_z=c.max_z)
                self.n_absurd_seen += int(bad.sum())
                keep = np.flatnonzero(tr)[~bad]
                block = [values[keep]]
                if weights is not None:
                    block.append(weights[keep])
                yield block

        yield from batches(blocks(), c.batch_size, ShuffleBuffer(c.shuffle_buffer, rng))


def _prepare_stream(config: TrainConfig, device: str) -> _Prepared:
    """First pass over the files: count, keep the validation jets, draw the fit sample."""
    mcfg = config.model_config()
    if mcfg.level == "event":
        raise ValueError("streaming training is supported for jet-level models only")
    stream = _JetStream(config)
    rng = np.random.default_rng([config.seed, 3])
    fit_vals = np.empty((0, len(config.variables)))
    fit_keys = np.empty(0)
    val_parts: list[np.ndarray] = []
    val_w: list[np.ndarray] = []
    n_val = n_train = n_val_dropped = 0
    sources: list[str] = []
    t0 = time.perf_counter()
    for i, values, weights in stream.chunks():
        v = stream.is_val(i, len(values))
        if n_val < config.max_val_jets:
            take = np.flatnonzero(v)[: config.max_val_jets - n_val]
            val_parts.append(values[take])
            if weights is not None:
                val_w.append(weights[take])
            n_val += len(take)
            n_val_dropped += int(v.sum()) - len(take)
        else:
            n_val_dropped += int(v.sum())
        tr = values[~v]
        n_train += len(tr)
        # uniform sample of the training jets for the fit: the smallest random keys
        keys = rng.random(len(tr))
        fit_vals = np.concatenate([fit_vals, tr])
        fit_keys = np.concatenate([fit_keys, keys])
        if len(fit_keys) > config.fit_jets:
            part = np.argpartition(fit_keys, config.fit_jets)[: config.fit_jets]
            fit_vals, fit_keys = fit_vals[part], fit_keys[part]
    sources = [os.path.basename(os.fspath(p)) for p in config.inputs]
    if n_train < 1 or n_val < 1:
        raise ValueError(f"streaming needs training and validation jets, got {n_train}, {n_val}")
    transforms, report = fit_transforms(
        fit_vals, config.variables, config.transforms, max_z=config.max_z
    )
    stream.transforms = transforms
    normalizer = Normalizer(transforms)
    if mcfg.loss == "bce":
        normalizer.set_unit_range(
            normalizer(torch.tensor(fit_vals[report.keep], dtype=torch.float32))
        )
    model = build_model(mcfg, normalizer).to(device)
    x_va = np.concatenate(val_parts)
    w_va = np.concatenate(val_w) if val_w else None
    bad_va, _ = flag_absurd(x_va, transforms, max_z=config.max_z)
    x_va = x_va[~bad_va]
    w_va = None if w_va is None else w_va[~bad_va]
    # training jets outside the fitted domain, counted over the whole sample (one pass)
    n_absurd = 0
    mean_w_sum = 0.0
    for i, values, weights in stream.chunks():
        tr = ~stream.is_val(i, len(values))
        bad, _ = flag_absurd(values[tr], transforms, max_z=config.max_z)
        n_absurd += int(bad.sum())
        if weights is not None:
            mean_w_sum += float(weights[tr][~bad].sum())
    n_keep = n_train - n_absurd
    mean_w = mean_w_sum / n_keep if config.weight_branch else 1.0
    if config.weight_branch and not (np.isfinite(mean_w) and mean_w != 0):
        raise ValueError(f"event weights of the training jets have mean {mean_w}; cannot weight")
    q = np.quantile(fit_vals[report.keep], [0.0, 0.5, 1.0], axis=0)
    summary: dict[str, Any] = {
        "files": sources,
        "n_jets": n_train + n_val + n_val_dropped,
        "n_events": None,
        "streamed": True,
        "n_train": n_keep,
        "n_validation": len(x_va),
        "n_validation_unused": n_val_dropped,
        "fit_jets": len(fit_vals),
        "ranges": {
            v: [float(q[0, j]), float(q[1, j]), float(q[2, j])]
            for j, v in enumerate(config.variables)
        },
    }
    if config.weight_branch:
        summary["weight_branch"] = config.weight_branch
    absurd = _absurd_summary(report, int(bad_va.sum()))
    absurd["n_train_absurd"] = n_absurd
    summary["absurd"] = absurd
    if n_absurd:
        log.warning(
            "%d of %d training jets outside the fitted domain are left out", n_absurd, n_train
        )
    log.info(
        "streaming %d training jets from %d file(s); %d validation jets; scan %.1f s",
        n_keep,
        len(sources),
        len(x_va),
        time.perf_counter() - t0,
    )
    t_va = torch.tensor(x_va, dtype=torch.float32)
    with torch.no_grad():
        u_va = normalizer(t_va).to(device)
    return _Prepared(
        model, summary, transforms, None, None, u_va, _tensor(w_va, device), t_va,
        mean_w, n_keep, stream,
    )  # fmt: skip


def _batch_loss(
    model: JetAutoencoder,
    u: torch.Tensor,
    beta: float,
    sample: bool,
    w: torch.Tensor | None = None,
    mean_weight: float = 1.0,
) -> torch.Tensor:
    recon, kl = model.reconstruct_normalised(u, sample=sample)
    err = (model.per_column_error(u, recon) * model.column_weight).sum(dim=1)
    return weighted_mean(err + beta * kl, w, mean_weight)


def _evaluate(
    model: JetAutoencoder,
    u: torch.Tensor,
    beta: float,
    bs: int = 65536,
    w: torch.Tensor | None = None,
    mean_weight: float = 1.0,
) -> float:
    model.eval()
    tot = 0.0
    with torch.no_grad():
        for i in range(0, len(u), bs):
            ub = u[i : i + bs]
            wb = None if w is None else w[i : i + bs]
            tot += float(_batch_loss(model, ub, beta, False, wb, mean_weight)) * len(ub)
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
    dev = next(model.parameters()).device
    with torch.no_grad():
        if isinstance(x_va, tuple):
            x, m = x_va
            keep = m.bool()
            rec, orig = model(x.to(dev), m.to(dev)).cpu()[keep].numpy(), x[keep].numpy()
        else:
            rec = torch.cat(
                [model(x_va[i : i + 65536].to(dev)).cpu() for i in range(0, len(x_va), 65536)]
            )
            rec, orig = rec.numpy(), x_va.numpy()
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
    from ..errors import ModelFileError

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
    device = resolve_device(config.device)
    prep = _prepare(config, device)
    model, u_va, x_va = prep.model, prep.u_va, prep.x_va
    n = prep.n_train
    bs = min(config.batch_size, n)
    steps = math.ceil(n / bs)
    opt, sched = _make_optim(model, config, steps)
    log.info("training on %s: %d jets, %d batches per epoch", device, n, steps)
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
        t_epoch = time.perf_counter()
        running = 0.0
        bar = tqdm(
            total=n,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not progress,
            leave=False,
            unit="jet",
            unit_scale=True,
        )
        done = 0
        loss_sum = 0.0
        for i, (ub, wb) in enumerate(_epoch_batches(prep, config, epoch, device)):
            if i >= steps:  # the schedule's length is fixed; a stream never yields more
                break
            loss = _batch_loss(model, ub, config.beta, True, wb, prep.mean_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            lv = loss.item()
            running = lv if i == 0 else 0.95 * running + 0.05 * lv
            loss_sum += lv * len(ub)
            done += len(ub)
            bar.update(len(ub))
            if i % 20 == 0:
                bar.set_postfix(loss=f"{running:.3e}")
        bar.close()
        epoch_s = time.perf_counter() - t_epoch
        rate = done / epoch_s if epoch_s > 0 else float("inf")
        if prep.u_tr is not None:
            train_loss = _evaluate(
                model,
                prep.u_tr[: min(n, 200_000)],
                config.beta,
                w=None if prep.w_tr is None else prep.w_tr[: min(n, 200_000)],
                mean_weight=prep.mean_weight,
            )
        else:  # streamed: the mean batch loss of the epoch (the model changed meanwhile)
            train_loss = loss_sum / max(done, 1)
        val_loss = _evaluate(model, u_va, config.beta, w=prep.w_va, mean_weight=prep.mean_weight)
        summary, res = _physical_check(model, x_va, config.variables)
        seconds = elapsed_before + time.perf_counter() - t_start
        row: dict[str, float] = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": float(sched.get_last_lr()[0]),
            "seconds": round(seconds, 2),
            "jets_per_second": round(rate, 1),
            "unphysical": summary["_jets"]["unphysical"],
        }
        row.update({f"sigma68_{v}": summary[v]["sigma68"] for v in config.variables})
        history.append(row)
        if val_loss < best_val:
            best_val, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        eta = _eta(seconds - elapsed_before, epoch + 1 - start_epoch, config.epochs - epoch - 1)
        log.info(
            "epoch %d/%d: train %.4e val %.4e sigma68 %s; %.0f jets/s, ETA %s",
            epoch + 1,
            config.epochs,
            train_loss,
            val_loss,
            {v: round(summary[v]["sigma68"], 5) for v in config.variables},
            rate,
            eta,
        )
        if progress:
            tqdm.write(
                f"epoch {epoch + 1:3d}  train {train_loss:.3e}  val {val_loss:.3e}  "
                + "  ".join(f"s68[{v}] {summary[v]['sigma68']:.4f}" for v in config.variables)
                + f"  {rate:,.0f} jets/s  ETA {eta}"
            )
        if writer is not None:
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(k, v, epoch + 1)
        if config.preview:
            from ..plots.plotting import plot_residuals

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
        "val_loss": _evaluate(model, u_va, config.beta, w=prep.w_va, mean_weight=prep.mean_weight),
        "device": device,
        "validation": {k: v for k, v in summary.items()},
        "epochs_run": len(history),
        "stop_reason": stop_reason,
        "seconds": round(seconds, 1),
    }
    model = model.cpu()  # exported models are device-neutral and load on the CPU
    metadata = build_metadata(model, config, prep.summary, metrics, prep.transforms)
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


def _eta(elapsed: float, epochs_done: int, epochs_left: int) -> str:
    """Remaining time as ``m:ss`` from the mean epoch time so far."""
    if epochs_done <= 0:
        return "?"
    left = elapsed / epochs_done * epochs_left
    return f"{int(left // 60)}:{int(left % 60):02d}"


def _epoch_batches(
    prep: _Prepared, config: TrainConfig, epoch: int, device: str
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Normalised training batches (and weights) of one epoch, in memory or streamed."""
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
        w = _tensor(block[1], device) if len(block) > 1 else None
        yield u, w


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
    prep = _prepare(config)
    model = prep.model
    u_tr = prep.u_tr if prep.u_tr is not None else prep.u_va  # streaming: validation jets
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
        from ..plots.plotting import plot_lr_find

        plot_lr_find(lrs, losses, suggestion, plot)
    with contextlib.suppress(Exception):
        log.info("LR range test suggests lr = %.3g", suggestion)
    return lrs, losses, suggestion
