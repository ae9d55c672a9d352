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

__all__ = ["BLOCK", "block_rows", "cache_info", "get_model", "in_blocks", "model_bytes_sha256"]

#: Jets per model call and torch thread. Blocks that fit the CPU caches run the MLPs about
#: 3x faster than one call on a 100k-jet chunk (benchmarks/README.md, processor speed).
BLOCK = 8192

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


def block_rows() -> int:
    """Jets per model call: :data:`BLOCK` per torch intra-op thread."""
    return BLOCK * max(1, torch.get_num_threads())


def in_blocks(fn, *arrays: torch.Tensor, block: int | None = None) -> tuple[torch.Tensor, ...]:
    """Call ``fn`` on consecutive row blocks of ``arrays`` (default :func:`block_rows`)
    and concatenate each output."""
    if block is None:
        block = block_rows()
    n = arrays[0].shape[0]
    if n <= block:
        out = fn(*arrays)
        return out if isinstance(out, tuple) else (out,)
    parts = []
    for i in range(0, n, block):
        out = fn(*(a[i : i + block] for a in arrays))
        parts.append(out if isinstance(out, tuple) else (out,))
    return tuple(torch.cat([p[k] for p in parts]) for k in range(len(parts[0])))


def cache_info() -> dict[str, object]:
    """Models cached in this process (for tests and diagnostics)."""
    return {"pid": os.getpid(), "models": sorted(_CACHE)}
