"""Per-worker cache of TorchScript models, keyed by the model file's SHA-256.

Processors carry the model file as bytes (they pickle); each worker process deserialises
it once, on first use, and reuses it for every later chunk. This module's dictionary is the
package's only global state.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os

import torch

__all__ = ["cache_info", "get_model", "model_bytes_sha256"]

log = logging.getLogger(__name__)

_CACHE: dict[str, torch.jit.ScriptModule] = {}


def model_bytes_sha256(data: bytes) -> str:
    """SHA-256 of a model file's bytes."""
    return hashlib.sha256(data).hexdigest()


def get_model(data: bytes, sha256: str) -> tuple[torch.jit.ScriptModule, bool]:
    """The model for ``sha256``, loading it from ``data`` if this process has not yet.

    Returns the module and whether this call loaded it.
    """
    module = _CACHE.get(sha256)
    if module is not None:
        return module, False
    module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    module.eval()
    _CACHE[sha256] = module
    log.debug("loaded model %s in process %d", sha256[:12], os.getpid())
    return module, True


def cache_info() -> dict[str, object]:
    """Models cached in this process (for tests and diagnostics)."""
    return {"pid": os.getpid(), "models": sorted(_CACHE)}
