"""hepae-coffea: autoencoder compression of jet data for coffea analyses."""

from __future__ import annotations

__version__ = "0.1.0"

from .data import DEFAULT_VARIABLES, JetData, iter_jets, read_jets
from .errors import (
    HepaeError,
    InputFileError,
    MissingBranchError,
    ModelFileError,
    NoJetsError,
)
from .evaluate import Evaluation, evaluate, run_model
from .export import (
    LoadedModel,
    default_model_path,
    export_model,
    load_model,
    read_metadata,
)
from .models import JetAutoencoder, ModelConfig, build_model
from .train import TrainConfig, lr_find, train

__all__ = [
    "DEFAULT_VARIABLES",
    "Evaluation",
    "HepaeError",
    "InputFileError",
    "JetAutoencoder",
    "JetData",
    "LoadedModel",
    "MissingBranchError",
    "ModelConfig",
    "ModelFileError",
    "NoJetsError",
    "TrainConfig",
    "__version__",
    "build_model",
    "default_model_path",
    "evaluate",
    "export_model",
    "iter_jets",
    "load_model",
    "lr_find",
    "read_jets",
    "read_metadata",
    "run_model",
    "train",
]
