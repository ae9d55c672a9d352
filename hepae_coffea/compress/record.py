"""The compression record: the JSON string ``hepae_compression`` in every compressed file.

It holds the format and package versions, the model entry (`model_store.model_record`) or
the array codec's information, the variables, the layout of the compressed tree
(`layout.layout_record`), the numbers of events and jets, the output compression and the
inputs. Decompress reads it (and the embedded weights) without running or unpickling
anything from the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import HepaeError, InputFileError, ModelFileError
from ..io.rootfile import open_root
from .choose import CodecPayload
from .model_store import LEGACY_MODEL_KEY, read_embedded_weights

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INFO_KEY",
    "build_record",
    "describe_compression",
    "read_compression_info",
    "write_record",
]

INFO_KEY = "hepae_compression"
FORMAT = "hepae-coffea-compressed"
FORMAT_VERSION = 2


def describe_compression(comp: Any) -> list[Any]:
    """``[algorithm, level]`` of an uproot compression (``["none", 0]`` for None)."""
    return [type(comp).__name__.lower(), int(comp.level)] if comp is not None else ["none", 0]


def build_record(
    model_info: dict[str, Any] | None,
    payload: CodecPayload | None,
    variables: Sequence[str],
    layout: dict[str, Any],
    events: int,
    jets: int,
    comp: Any,
    inputs: list[str],
    **more: Any,
) -> dict[str, Any]:
    """The compression record stored as ``hepae_compression`` (whole files and chunks)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "model": model_info,
        "codec": payload.info if payload is not None else {"name": "ae"},
        "variables": list(variables),
        **layout,
        "events": events,
        "jets": jets,
        "compression": describe_compression(comp),
        "inputs": inputs,
        **more,
    }


def write_record(fout: Any, record: dict[str, Any]) -> None:
    """Store ``record`` in the open output file ``fout``."""
    fout[INFO_KEY] = json.dumps(record)


def _check_format(path: str, f: Any) -> dict[str, Any]:
    """The record of the open file ``f``, refused unless this version can read it."""
    if INFO_KEY not in f:
        raise InputFileError(
            f"{path}: not a file written by hepae compress (no {INFO_KEY!r} object)"
        )
    if LEGACY_MODEL_KEY in f:
        raise ModelFileError(
            f"{path}: written by an older hepae compress that embedded the model as "
            f"TorchScript code; refused, nothing from it is run (compress the original "
            f"again with this version)"
        )
    info: dict[str, Any] = json.loads(str(f[INFO_KEY]))
    if info.get("format") != FORMAT or int(info.get("format_version", 1)) != FORMAT_VERSION:
        raise InputFileError(
            f"{path}: compressed-file format {info.get('format')!r} version "
            f"{info.get('format_version', 1)} is not supported (expected {FORMAT_VERSION})"
        )
    return info


def read_compression_info(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes | None]:
    """The compression metadata of a compressed file and its stored weights blob (``None``
    for a model stored by reference). Nothing in the file is executed or unpickled."""
    path = str(path)
    f = open_root(path)
    try:
        with f:
            info = _check_format(path, f)
            blob = read_embedded_weights(f, path, info)
    except HepaeError:
        raise
    except Exception as err:  # noqa: BLE001
        raise InputFileError(f"{path}: cannot be read as a ROOT file ({err})") from None
    return info, blob
