"""TorchScript export with the normalisation inside, and metadata readable without running it.

The model file is an ordinary TorchScript archive (a zip). Its metadata is a JSON document
stored as the extra file ``hepae_metadata.json``; :func:`read_metadata` reads it with
:mod:`zipfile`, so describing a model never executes code from the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import ModelFileError
from ..io.atomic import atomic_output
from ..variables.registry import canonical_variable, unit_label
from .handle import ModelHandle, ModelSource, open_model

if TYPE_CHECKING:  # torch is imported where a model is scripted or loaded, not for metadata
    import torch

__all__ = [
    "FORMAT",
    "LoadedModel",
    "default_model_path",
    "export_model",
    "file_sha256",
    "load_model",
    "metadata_from_bytes",
    "read_metadata",
    "variable_unit",
]

log = logging.getLogger(__name__)

FORMAT = "hepae-coffea-model"
FORMAT_VERSION = 1
METADATA_NAME = "hepae_metadata.json"


def variable_unit(variable: str) -> str:
    """Unit of a jet variable (GeV for momenta, energies and masses; rad for phi)."""
    return unit_label(variable)


def default_model_path() -> Path:
    """Path of the trained 4 -> 3 model shipped inside the package."""
    return Path(str(resources.files("hepae_coffea") / "data" / "default_model.pt"))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (identifies a model, e.g. for per-worker caching)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_model(
    model: torch.nn.Module, path: str | os.PathLike[str], metadata: dict[str, Any]
) -> Path:
    """Script ``model`` and save it atomically with ``metadata`` (JSON) inside.

    The metadata gets ``format``, ``format_version`` and ``package_version`` added.
    """
    import torch

    path = Path(path)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__}
    meta.update(metadata)
    was_training = model.training
    model.eval()
    # the scripted copy applies its hidden activations in place: the same values, without
    # a fresh (block x hidden) tensor per layer (a training model cannot: autograd needs
    # those activations' inputs)
    flipped = [m for m in model.modules() if getattr(m, "inplace", True) is False]
    for m in flipped:
        m.inplace = True  # type: ignore[assignment]
    try:
        scripted = torch.jit.script(model)
    finally:
        for m in flipped:
            m.inplace = False  # type: ignore[assignment]
        model.train(was_training)
    with atomic_output(path) as tmp:
        torch.jit.save(scripted, tmp, _extra_files={METADATA_NAME: json.dumps(meta, indent=1)})
    log.info("exported model to %s", path)
    return path


def read_metadata(model: ModelSource = None) -> dict[str, Any]:
    """Read a model file's metadata without loading or running the model.

    Parameters
    ----------
    model : path, bytes or ModelHandle, optional
        Model file; the shipped default model when omitted. With a handle, nothing is read.
    """
    return dict(open_model(model).metadata)


def metadata_from_bytes(data: bytes, label: str = "model") -> dict[str, Any]:
    """Metadata of a model file held in memory (``label`` names it in errors)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = [n for n in zf.namelist() if n.endswith("/extra/" + METADATA_NAME)]
            if not names:
                raise ModelFileError(
                    f"{label}: not a hepae-coffea model (TorchScript file without {METADATA_NAME})"
                )
            meta = json.loads(zf.read(names[0]))
    except zipfile.BadZipFile:
        raise ModelFileError(
            f"{label}: not a hepae-coffea model (not a TorchScript archive)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{label}: model metadata is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(
            f"{label}: not a hepae-coffea model (metadata format is not {FORMAT!r})"
        )
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(
            f"{label}: model format version {meta['format_version']} is newer than this "
            f"package supports ({FORMAT_VERSION}); upgrade hepae-coffea"
        )
    meta["path"] = label
    return meta


@dataclass
class LoadedModel:
    """A loaded TorchScript module with the handle of the file it came from."""

    module: torch.jit.ScriptModule
    handle: ModelHandle

    @property
    def metadata(self) -> dict[str, Any]:
        return self.handle.metadata

    @property
    def sha256(self) -> str:
        return self.handle.sha256

    @property
    def variables(self) -> list[str]:
        return self.handle.variables

    @property
    def latent_dim(self) -> int:
        return self.handle.latent_dim


def check_variables(metadata: dict[str, Any], requested: Sequence[str]) -> None:
    """Raise :class:`ModelFileError` unless the model's variables are ``requested`` in order."""
    have = [v["name"] for v in metadata["variables"]]
    if [canonical_variable(v) for v in requested] != [canonical_variable(v) for v in have]:
        raise ModelFileError(
            f"{metadata.get('path', 'model')}: model variables {have} do not match the "
            f"requested variables {list(requested)}"
        )


def load_model(model: ModelSource = None, variables: Sequence[str] | None = None) -> LoadedModel:
    """Load a model file (default: the shipped model), checking it is one of ours.

    Parameters
    ----------
    model : path, bytes or ModelHandle, optional
        TorchScript file written by :func:`export_model`, or a handle from
        `hepae_coffea.model.handle.open_model` (then the file is not read again).
    variables : sequence of str, optional
        If given, the model's input variables must be these, in this order.
    """
    import torch

    handle = open_model(model)
    if variables is not None:
        handle.check_variables(variables)
    try:
        module = torch.jit.load(io.BytesIO(handle.data), map_location="cpu")
    except Exception as err:  # noqa: BLE001  (readers raise many types for corrupt files)
        raise ModelFileError(f"{handle.label}: cannot load TorchScript model ({err})") from None
    module.eval()
    return LoadedModel(module, handle)
