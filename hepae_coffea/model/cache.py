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
from collections.abc import Callable

import torch

__all__ = [
    "BLOCK",
    "DEVICES",
    "block_rows",
    "cache_info",
    "get_model",
    "in_blocks",
    "model_bytes_sha256",
    "resolve_device",
]

#: values of ``--device``
DEVICES = ("auto", "cpu", "cuda")

#: Jets per model call and torch thread. Blocks that fit the CPU caches run the MLPs about
#: 3x faster than one call on a 100k-jet chunk (benchmarks/README.md, processor speed);
#: 16,384 rather than 8,192 halves the calls' fixed costs (about 4% of `hepae run`).
BLOCK = 16384

log = logging.getLogger(__name__)

_CACHE: dict[str, torch.jit.ScriptModule] = {}


def model_bytes_sha256(data: bytes) -> str:
    """SHA-256 of a model file's bytes."""
    return hashlib.sha256(data).hexdigest()


def resolve_device(device: str | None = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is available, else ``cpu``; ``cuda`` without a GPU
    is an error.

    Parameters
    ----------
    device : str or None
        ``auto`` (None means the same), ``cpu`` or ``cuda`` (``cuda:N`` also accepted).
    """
    name = (device or "auto").strip().lower()
    base = name.split(":", 1)[0]
    if base not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    if base == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA GPU is available")
    return name


def get_model(data: bytes, sha256: str, device: str = "cpu") -> tuple[torch.jit.ScriptModule, bool]:
    """The model for ``sha256`` on ``device``, loading it from ``data`` if this process
    has not yet.

    Model files are device-neutral (saved from CPU); the copy is moved to ``device``
    (already resolved, see :func:`resolve_device`). Returns the module and whether this
    call loaded it.
    """
    key = sha256 if device == "cpu" else f"{sha256}@{device}"
    module = _CACHE.get(key)
    if module is not None:
        return module, False
    module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    if device != "cpu":
        module = module.to(device)
    module.eval()
    _CACHE[key] = module
    log.debug("loaded model %s in process %d", sha256[:12], os.getpid())
    return module, True


def block_rows() -> int:
    """Jets per model call: :data:`BLOCK` per torch intra-op thread."""
    return BLOCK * max(1, torch.get_num_threads())


_Outputs = torch.Tensor | tuple[torch.Tensor, ...]


def in_blocks(
    fn: Callable[..., _Outputs],
    *arrays: torch.Tensor,
    block: int | None = None,
    device: str = "cpu",
) -> tuple[torch.Tensor, ...]:
    """Call ``fn`` on consecutive row blocks of ``arrays`` (default :func:`block_rows`)
    and concatenate each output; with ``device`` other than ``cpu`` the blocks go to
    that device and the outputs come back to the CPU."""
    if device != "cpu":
        if block is None:
            block = 1 << 20  # a GPU wants large blocks

        def call(*xs: torch.Tensor) -> _Outputs:
            out = fn(*(x.to(device) for x in xs))
            out = out if isinstance(out, tuple) else (out,)
            return tuple(o.cpu() for o in out)

    else:
        call = fn
    if block is None:
        block = block_rows()
    n = arrays[0].shape[0]
    # on the CPU, TorchScript's optimising executor spends a process's first two calls
    # profiling and rewriting the graph (about 80 ms) and then runs these MLPs no faster
    # than the plain executor; on a GPU it may fuse operations, so it stays on there
    with torch.jit.optimized_execution(device != "cpu"):  # type: ignore[attr-defined]
        if n <= block:
            out = call(*arrays)
            return out if isinstance(out, tuple) else (out,)
        parts = []
        for i in range(0, n, block):
            out = call(*(a[i : i + block] for a in arrays))
            parts.append(out if isinstance(out, tuple) else (out,))
    return tuple(torch.cat([p[k] for p in parts]) for k in range(len(parts[0])))


def cache_info() -> dict[str, object]:
    """Models cached in this process (for tests and diagnostics)."""
    return {"pid": os.getpid(), "models": sorted(_CACHE)}
