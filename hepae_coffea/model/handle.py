"""One model handle: a model file read once and passed around.

A `ModelHandle` holds the file's bytes, their SHA-256 and the metadata read from them
without running the model. Everything that needs the model (the processor, compress,
evaluate, the plots, the ONNX export, the command line) takes a handle, so one command
reads the file once; the TorchScript module itself comes from the per-worker cache
(`hepae_coffea.model.cache`), keyed by the SHA-256, and is built on first use.

A handle pickles as its bytes and metadata, so coffea's executors ship it to workers
as they ship the processor.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from ..errors import ModelFileError

if TYPE_CHECKING:
    import torch

__all__ = ["ModelHandle", "ModelSource", "open_model"]


@dataclass(frozen=True)
class ModelHandle:
    """A model file's bytes, SHA-256 and metadata.

    Build one with `open_model`. ``label`` names the model in errors: its path, or
    ``"model bytes"`` for a model given in memory.
    """

    data: bytes = field(repr=False)
    sha256: str
    metadata: dict[str, Any] = field(repr=False)
    label: str
    path: Path | None = None

    @property
    def variables(self) -> list[str]:
        """The model's input variables, in order."""
        return [v["name"] for v in self.metadata["variables"]]

    @property
    def latent_dim(self) -> int:
        """Latent values per jet (per event for an event-level model)."""
        return int(self.metadata["latent_dim"])

    @property
    def event_level(self) -> bool:
        """True for a model that encodes a whole event's leading jets at once."""
        return bool(self.metadata.get("level", "jet") == "event")

    @property
    def event_jets(self) -> int | None:
        """Jets per event of an event-level model; None for a jet-level one."""
        return int(self.metadata["event_jets"]) if self.event_level else None

    def check_variables(self, requested: Sequence[str]) -> None:
        """Raise `ModelFileError` unless the model's variables are ``requested``, in order."""
        from .export import check_variables

        check_variables(self.metadata, requested)

    def module(self, device: str = "cpu") -> torch.jit.ScriptModule:
        """The TorchScript module on ``device``, from the per-worker cache."""
        from .cache import get_model

        return get_model(self.data, self.sha256, device)[0]


#: what `open_model` accepts: a handle, a model file's bytes, its path, or None (the default)
ModelSource: TypeAlias = ModelHandle | bytes | str | os.PathLike[str] | None


def open_model(model: ModelSource = None) -> ModelHandle:
    """Read a model file once: bytes, SHA-256 and metadata, without running it.

    Parameters
    ----------
    model : ModelHandle, bytes, path or None
        A handle (returned as it is), a model file's bytes, its path, or None for the
        shipped default model.

    Raises
    ------
    ModelFileError
        The file is missing, unreadable or not a hepae-coffea model; the message names it.
    """
    from .export import default_model_path, metadata_from_bytes

    if isinstance(model, ModelHandle):
        return model
    path: Path | None
    if isinstance(model, bytes | bytearray):
        data, label, path = bytes(model), "model bytes", None
    else:
        path = Path(model) if model is not None else default_model_path()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelFileError(f"{path}: model file not found") from None
        except IsADirectoryError:
            raise ModelFileError(f"{path}: is a directory, not a model file") from None
        except OSError as err:
            raise ModelFileError(f"{path}: cannot read model file ({err.strerror})") from None
        label = str(path)
    metadata = metadata_from_bytes(data, label)
    return ModelHandle(data, hashlib.sha256(data).hexdigest(), metadata, label, path)
