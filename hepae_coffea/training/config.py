"""Every choice of a training run: `TrainConfig`, and `load_config` for TOML/YAML files.

`TrainConfig` extends :class:`~hepae_coffea.model.config.ModelConfig` (the architecture
and loss) with the data, optimisation and output settings. Each field carries its default
and help text (`hepae_coffea.model.config.option`); ``hepae train`` builds one option per
field from them. Nothing here imports torch, so ``hepae train --help`` stays fast.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..model.config import ModelConfig, option

__all__ = ["MODEL_UNITS", "SCHEDULES", "TrainConfig", "load_config"]

#: Energy unit of the models trained here (inputs are converted to it when read).
MODEL_UNITS = "GeV"

SCHEDULES = ("constant", "step", "onecycle")

#: the fields first in a saved configuration (what was trained on, and where it went)
_FIRST = ("inputs", "output")


@dataclass
class TrainConfig(ModelConfig):
    """Every choice of a training run; saved beside the model as YAML.

    The model's fields (``variables`` ... ``event_jets``) come from `ModelConfig`;
    :meth:`model_config` returns that part.
    """

    inputs: list[str] = field(
        default_factory=list,
        metadata=option("ROOT / pickle / parquet files", positional=True),
    )
    output: str = field(
        default="model.pt", metadata=option("model file to write", flag=("-o", "--output"))
    )
    epochs: int = field(default=20, metadata=option("epochs", min=1))
    batch_size: int = field(default=1024, metadata=option("batch size", min=1))
    lr: float = field(
        default=3e-3, metadata=option("(maximum) learning rate", min=0.0, min_exclusive=True)
    )
    schedule: str = field(
        default="onecycle", metadata=option("learning-rate schedule", choices=SCHEDULES)
    )
    step_epochs: int = field(default=10, metadata=option("step schedule: epochs per step", min=1))
    step_gamma: float = field(
        default=0.3,
        metadata=option("step schedule: factor per step", min=0.0, min_exclusive=True),
    )
    weight_decay: float = field(default=0.0, metadata=option("AdamW weight decay", min=0.0))
    seed: int = field(default=1, metadata=option("random seed"))
    val_fraction: float = field(
        default=0.2,
        metadata=option("validation fraction", min=0.0, max=0.9, min_exclusive=True),
    )
    patience: int = field(
        default=0,
        metadata=option("early stopping after N epochs without improvement, 0: off", min=0),
    )
    max_minutes: float = field(
        default=0.0, metadata=option("stop after this many minutes, 0: no limit", min=0.0)
    )
    max_jets: int = field(default=0, metadata=option("use at most N jets, 0: all", min=0))
    prefix: str = field(
        default="", metadata=option("jet branch prefix", unset="from the detected format")
    )
    tree: str = field(default="", metadata=option("tree name", unset="from the detected format"))
    format: str = field(
        default="",
        metadata=option(
            "force the file format, e.g. nanoaod, physlite, opendata2020", unset="detected"
        ),
    )
    units: str = field(
        default="",
        metadata=option(
            "energy unit of the files: MeV or GeV",
            unset="the format's",
        ),
    )
    collection: str = field(
        default="",
        metadata=option(
            "jet collection, e.g. Jets or LargeRJets for PHYSLITE", unset="the format's"
        ),
    )
    preview: bool = field(
        default=True, metadata=option("no per-epoch preview PNGs", flag="--no-preview")
    )
    tensorboard: bool = field(
        default=True,
        metadata=option(
            "no TensorBoard scalars (written when tensorboard is installed)",
            flag="--no-tensorboard",
        ),
    )
    weight_branch: str = field(
        default="",
        metadata=option(
            "per-event weight branch used in the loss, e.g. genWeight", unset="unweighted"
        ),
    )
    stream: bool = field(
        default=False,
        metadata=option(
            "stream the files chunk by chunk through a shuffle buffer (samples larger than memory)"
        ),
    )
    shuffle_buffer: int = field(
        default=200_000, metadata=option("streaming: jets in the shuffle buffer", min=1)
    )
    step_events: int = field(
        default=50_000, metadata=option("events per chunk read from the files", min=1)
    )
    fit_jets: int = field(
        default=500_000,
        metadata=option("streaming: jets sampled to fit the normalisation", min=1),
    )
    max_val_jets: int = field(
        default=200_000, metadata=option("streaming: validation jets kept at most", min=1)
    )
    max_z: float = field(
        default=20.0,
        metadata=option(
            "jets more than this many robust widths from a variable's median are absurd, "
            "left out of the fit and the training",
            min=0.0,
            min_exclusive=True,
        ),
    )
    device: str = field(
        default="auto",
        metadata=option("where to train: auto (cuda when available), cpu, cuda or cuda:N"),
    )

    def __post_init__(self) -> None:
        from ..model.cache import DEVICES

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
        super().__post_init__()  # validates the model part

    def model_config(self) -> ModelConfig:
        """The model part of the configuration (architecture and loss)."""
        mine = self.to_dict()
        return ModelConfig(**{f.name: mine[f.name] for f in fields(ModelConfig)})

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data, inputs and output first (the saved YAML's order)."""
        d = super().to_dict()
        return {**{k: d.pop(k) for k in _FIRST}, **d}

    def paths(self) -> dict[str, Path]:
        """The files a run writes: model, config, and the run folder's history,
        checkpoint, previews and TensorBoard folder."""
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


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML or YAML training configuration into a dict (keys of :class:`TrainConfig`).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        It is not a mapping, or has a key that is not a field; the message names the file
        and the key.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: config file not found")
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        data: Any = tomllib.loads(text)
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
