"""The model inside a compressed file: embedded as plain weights, or by reference.

Compress stores the model as plain weights and an architecture description
(:mod:`~hepae_coffea.model.weights`, never code) in the tree ``hepae_model``, or with
``model_ref`` only its name and SHA-256. Decompress runs the stored weights (checked
against their SHA-256); a model stored by reference is given as a file, or found by its
SHA-256 among the ``*.pt`` files of a folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import ModelFileError
from ..model.export import file_sha256
from ..model.handle import ModelHandle, ModelSource, open_model
from .blocks import Autoencoder

__all__ = [
    "LEGACY_MODEL_KEY",
    "MODEL_KEY",
    "MODEL_TREE",
    "CompressModel",
    "find_model",
    "model_for_decompress",
    "model_record",
    "open_compress_model",
    "read_embedded_weights",
    "write_model",
]

MODEL_TREE = "hepae_model"
MODEL_KEY = MODEL_TREE  # the stored model's object (kept name for the benchmarks)
#: what older versions stored: the model as TorchScript code (refused, never run)
LEGACY_MODEL_KEY = "hepae_model_b64"


@dataclass(frozen=True)
class CompressModel:
    """The model compress encodes with, and what it stores of it.

    Attributes
    ----------
    name
        The name recorded (the model file's name, ``model`` for one given as bytes).
    label
        Names the model in errors (its path, or ``model bytes``).
    file_sha256
        SHA-256 of the model file (a model stored by reference is found by it).
    blob
        The plain weights stored in the file (what decompress runs).
    metadata
        The model file's metadata (variables, latent size, level).
    module
        The model rebuilt from ``blob``, on the device it runs on.
    """

    name: str
    label: str
    file_sha256: str
    blob: bytes
    metadata: dict[str, Any]
    module: Autoencoder

    @property
    def variables(self) -> list[str]:
        """The model's variables, in order."""
        return [v["name"] for v in self.metadata["variables"]]

    @property
    def event_jets(self) -> int | None:
        """Jets per event of an event-level model; None for a jet-level one."""
        meta = self.metadata
        return int(meta["event_jets"]) if meta.get("level") == "event" else None


def open_compress_model(
    model: ModelSource,
    device: str,
    *,
    label: str | None = None,
    module: Autoencoder | None = None,
) -> CompressModel:
    """Read the model once and convert it to the plain weights compress stores.

    Parameters
    ----------
    model
        A model handle, a model file's bytes, its path, or None for the shipped default.
    device
        Where the model rebuilt from the weights runs.
    label
        Names the model in errors (default: the handle's label).
    module
        An already loaded module of the same model (the processor's), used instead of
        the one rebuilt from the weights.
    """
    from ..model.weights import (  # torch: only with a model
        blob_sha256,
        load_weights,
        weights_from_model_file,
    )

    handle: ModelHandle = open_model(model)
    label = label or handle.label
    blob, meta = weights_from_model_file(handle.data, label)
    if module is None:
        eager, _ = load_weights(blob, blob_sha256(blob), label)  # what decompress runs
        # the rebuilt networks have encode, decode and latent_dim (model.networks)
        module = cast(Autoencoder, eager.to(device))
    name = handle.path.name if handle.path is not None else "model"
    return CompressModel(name, label, handle.sha256, blob, meta, module)


def model_record(model: CompressModel, model_ref: bool) -> dict[str, Any]:
    """The compression record's ``model`` entry (name, hashes, architecture summary)."""
    from ..model.weights import blob_sha256  # torch: only with a model

    meta = model.metadata
    return {
        "storage": "reference" if model_ref else "embedded",
        "name": model.name,
        "file_sha256": model.file_sha256,
        "weights_sha256": blob_sha256(model.blob),
        "weights_bytes": len(model.blob),
        **{
            k: meta.get(k)
            for k in ("level", "event_jets", "kind", "bottleneck", "levels", "latent_dim")
        },
        "variables": meta.get("variables"),
    }


def write_model(fout: Any, blob: bytes) -> None:
    """Store the plain weights ``blob`` in the open output file ``fout``."""
    fout.mktree(MODEL_TREE, {"weights": np.uint8}, title="hepae-coffea model weights (no code)")
    fout[MODEL_TREE].extend({"weights": np.frombuffer(blob, np.uint8)})


def read_embedded_weights(f: Any, path: str, info: dict[str, Any]) -> bytes | None:
    """The weights stored in the open compressed file ``f`` (None for a model stored by
    reference or no model). Raises `ModelFileError` when the record says embedded but
    the weights are missing."""
    if not (info.get("model") and info["model"]["storage"] == "embedded"):
        return None
    if MODEL_TREE not in f:
        raise ModelFileError(f"{path}: the embedded model ({MODEL_TREE!r}) is missing")
    weights: bytes = f[MODEL_TREE]["weights"].array(library="np").tobytes()
    return weights


def _given_model(info: dict[str, Any], path: str, model: ModelSource) -> ModelHandle:
    """The model given for ``path``, refused unless it is the one that compressed it."""
    want = info["model"]["file_sha256"]
    handle = open_model(model)
    if handle.sha256 != want:
        raise ModelFileError(
            f"{handle.label}: SHA-256 {handle.sha256} does not match the model that "
            f"compressed {path} ({info['model']['name']}, SHA-256 {want})"
        )
    return handle


def find_model(
    info: dict[str, Any], path: str, model: ModelSource, model_dir: str | Path | None
) -> ModelHandle | None:
    """The model given (``model``) or found by SHA-256 in ``model_dir`` (None if neither).

    Raises `ModelFileError` when the given model is not the one that compressed ``path``,
    or no ``*.pt`` file in ``model_dir`` has its SHA-256.
    """
    if model is not None:
        return _given_model(info, path, model)
    if model_dir is None:
        return None
    want = info["model"]["file_sha256"]
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelFileError(f"{d}: model folder not found")
    for p in sorted(d.rglob("*.pt")):
        if file_sha256(p) == want:
            return open_model(p)
    raise ModelFileError(
        f"{path}: no *.pt file in {d} has SHA-256 {want} (model {info['model']['name']})"
    )


def model_for_decompress(
    info: dict[str, Any],
    blob: bytes | None,
    path: str,
    model: ModelSource,
    model_dir: str | Path | None,
    device: str = "cpu",
) -> Autoencoder:
    """The model that decodes ``path`` on ``device``: its embedded weights (``blob``), or
    for a model stored by reference the weights of the model given or found in
    ``model_dir``.

    A model given for a file with embedded weights must still be the one that compressed
    it. Every weights blob is checked against the recorded SHA-256 before it is run.
    """
    from ..model.weights import (  # torch: only with a model
        blob_sha256,
        load_weights,
        weights_from_model_file,
    )

    found = find_model(info, path, model, model_dir if blob is None else None)
    if blob is None:
        if found is None:
            raise ModelFileError(
                f"{path}: compressed with model {info['model']['name']} (SHA-256 "
                f"{info['model']['file_sha256']}) stored by reference; give it with --model or "
                f"--model-dir"
            )
        blob, _ = weights_from_model_file(found.data, found.label)
        if blob_sha256(blob) != info["model"]["weights_sha256"]:
            raise ModelFileError(
                f"{found.label}: its weights (SHA-256 {blob_sha256(blob)}) differ from those "
                f"that compressed {path} ({info['model']['weights_sha256']})"
            )
    module, _ = load_weights(blob, info["model"]["weights_sha256"], path)
    return cast(Autoencoder, module.to(device))
