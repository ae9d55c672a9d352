"""hepae-coffea: autoencoder compression of jet data for coffea analyses.

The public names below are imported on first use (module ``__getattr__``), so that
``import hepae_coffea`` and the ``hepae`` command line start without loading torch,
awkward or coffea until a command needs them.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and documentation tools
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

#: public name -> the submodule that defines it
_LAZY: dict[str, str] = {
    "DEFAULT_VARIABLES": "data",
    "JetData": "data",
    "iter_jets": "data",
    "read_jets": "data",
    "HepaeError": "errors",
    "InputFileError": "errors",
    "MissingBranchError": "errors",
    "ModelFileError": "errors",
    "NoJetsError": "errors",
    "Evaluation": "evaluate",
    "evaluate": "evaluate",
    "run_model": "evaluate",
    "LoadedModel": "export",
    "default_model_path": "export",
    "export_model": "export",
    "load_model": "export",
    "read_metadata": "export",
    "JetAutoencoder": "models",
    "ModelConfig": "models",
    "build_model": "models",
    "TrainConfig": "train",
    "lr_find": "train",
    "train": "train",
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


class _Package(types.ModuleType):
    """The package module: a public function keeps its name over a same-named submodule.

    Importing a submodule sets it as an attribute of its package; for ``train`` and
    ``evaluate`` that would hide the functions of those names once something imported
    the submodule, so ``hepae_coffea.train`` is always the function (as when the names
    were imported eagerly).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            name in _LAZY
            and isinstance(value, types.ModuleType)
            and value.__name__ == f"{__name__}.{name}"
        ):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
