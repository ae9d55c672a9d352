"""hepae-coffea: autoencoder compression of jet data for coffea analyses.

The public names below are imported on first use (module ``__getattr__``), so that
``import hepae_coffea`` and the ``hepae`` command line start without loading torch,
awkward or coffea until a command needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and documentation tools
    from .errors import (
        HepaeError,
        InputFileError,
        MissingBranchError,
        ModelFileError,
        NoJetsError,
    )
    from .io.jets import DEFAULT_VARIABLES, JetData, iter_jets, read_jets
    from .model.export import (
        LoadedModel,
        default_model_path,
        export_model,
        load_model,
        read_metadata,
    )
    from .model.networks import JetAutoencoder, ModelConfig, build_model
    from .processing.evaluate import Evaluation, evaluate, run_model
    from .training.loop import TrainConfig, lr_find, train

#: public name -> the submodule that defines it
_LAZY: dict[str, str] = {
    "DEFAULT_VARIABLES": "io.jets",
    "JetData": "io.jets",
    "iter_jets": "io.jets",
    "read_jets": "io.jets",
    "HepaeError": "errors",
    "InputFileError": "errors",
    "MissingBranchError": "errors",
    "ModelFileError": "errors",
    "NoJetsError": "errors",
    "Evaluation": "processing.evaluate",
    "evaluate": "processing.evaluate",
    "run_model": "processing.evaluate",
    "LoadedModel": "model.export",
    "default_model_path": "model.export",
    "export_model": "model.export",
    "load_model": "model.export",
    "read_metadata": "model.export",
    "JetAutoencoder": "model.networks",
    "ModelConfig": "model.networks",
    "build_model": "model.networks",
    "TrainConfig": "training.loop",
    "lr_find": "training.loop",
    "train": "training.loop",
}

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


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
