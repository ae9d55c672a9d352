"""The architecture and loss of a jet autoencoder: `ModelConfig` (no torch needed).

Every field is declared once, with its default and a help text in the field's metadata
(see `option`); `hepae train` builds its command-line options from these fields, and
:class:`~hepae_coffea.training.config.TrainConfig` extends this class with the training
choices, so a default or a help text lives in exactly one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "ACTIVATION_NAMES",
    "BOTTLENECKS",
    "KINDS",
    "LEVELS",
    "LOSSES",
    "ModelConfig",
    "option",
]

#: activation functions of the hidden layers (`hepae_coffea.model.networks.ACTIVATIONS`)
ACTIVATION_NAMES = ("tanh", "relu", "leakyrelu", "silu", "hardswish", "elu", "gelu")
KINDS = ("ae", "vae")
LOSSES = ("mse", "bce")
BOTTLENECKS = ("plain", "packed")
LEVELS = ("jet", "event")


def option(
    help: str,
    *,
    choices: Sequence[str] | None = None,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A config field's metadata: how ``hepae train`` offers it on the command line.

    Parameters
    ----------
    help : str
        What the setting does, for ``--help`` (its default is appended there).
    choices : sequence of str, optional
        The allowed values, listed in ``--help`` (the dataclass checks them).
    min, max : float, optional
        Bounds the command line enforces on a number (``min_exclusive``: ``> min``).
    **extra
        ``flag`` (the option's name(s) when not ``--field-name``), ``metavar``, ``unset``
        (what an empty default means), ``items`` (what a list holds, for errors),
        ``positional`` (the positional argument).
    """
    metadata: dict[str, Any] = {"help": help, **extra}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if min is not None or max is not None:
        metadata["bounds"] = (min, max, min_exclusive)
    return metadata


@dataclass
class ModelConfig:
    """Architecture and loss of a jet autoencoder (all fields are saved with the model)."""

    variables: list[str] = field(
        default_factory=lambda: ["pt", "eta", "phi", "mass"],
        metadata=option("jet variables, comma separated", items="variables"),
    )
    latent_dim: int = field(default=3, metadata=option("latent size", min=1))
    hidden: list[int] = field(
        default_factory=lambda: [32, 32],
        metadata=option("hidden layer sizes, comma separated", items="layer sizes"),
    )
    activation: str = field(
        default="silu",
        metadata=option("activation of the hidden layers", choices=ACTIVATION_NAMES),
    )
    kind: str = field(
        default="ae", metadata=option("autoencoder or variational autoencoder", choices=KINDS)
    )
    loss: str = field(default="mse", metadata=option("reconstruction loss", choices=LOSSES))
    bottleneck: str = field(
        default="packed", metadata=option("latent bottleneck", choices=BOTTLENECKS)
    )
    levels: int = field(default=1024, metadata=option("coarse levels per packed latent", min=2))
    beta: float = field(default=1e-3, metadata=option("KL weight of the VAE", min=0.0))
    weights: dict[str, float] = field(
        default_factory=dict,
        metadata=option(
            "per-variable loss weight, repeatable, e.g. --weight phi=4",
            flag="--weight",
            metavar="VAR=W",
            unset="1 for every variable",
        ),
    )
    transforms: dict[str, str] = field(
        default_factory=dict,
        metadata=option(
            "override a variable's normalisation (log, standard, scale:S, angle, periodic, "
            "identity, onehot or onehot:K for discrete variables), repeatable",
            flag="--transform",
            metavar="VAR=KIND",
            unset="chosen from the data",
        ),
    )
    level: str = field(
        default="jet",
        metadata=option("jet: one jet at a time; event: the leading jets together", choices=LEVELS),
    )
    event_jets: int = field(
        default=4, metadata=option("event-level models: jets per event compressed", min=1)
    )

    def __post_init__(self) -> None:
        self.variables = list(self.variables)
        self.hidden = [int(h) for h in self.hidden]
        problems = []
        for name, allowed in (
            ("kind", KINDS),
            ("loss", LOSSES),
            ("bottleneck", BOTTLENECKS),
        ):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} {getattr(self, name)!r} not in {allowed}")
        if self.activation not in ACTIVATION_NAMES:
            problems.append(f"activation {self.activation!r} not in {sorted(ACTIVATION_NAMES)}")
        if not self.latent_dim >= 1:
            problems.append(f"latent_dim must be >= 1, got {self.latent_dim}")
        if not 2 <= self.levels <= 1 << 16:
            problems.append(f"levels must be in [2, 65536], got {self.levels}")
        if len(set(self.variables)) != len(self.variables) or not self.variables:
            problems.append(f"variables must be distinct and non-empty: {list(self.variables)}")
        bad_w = set(self.weights) - set(self.variables)
        if bad_w:
            problems.append(f"weights given for unknown variable(s) {sorted(bad_w)}")
        if any(w < 0 for w in self.weights.values()):
            problems.append(f"weights must be >= 0: {self.weights}")
        if self.level not in LEVELS:
            problems.append(f"level {self.level!r} not in {LEVELS}")
        if self.event_jets < 1:
            problems.append(f"event_jets must be >= 1, got {self.event_jets}")
        if problems:
            raise ValueError("invalid model configuration: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (lists and dicts)."""
        return asdict(self)
