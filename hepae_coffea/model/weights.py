"""Model storage without code: a JSON description and raw little-endian tensors.

Compressed files carry their model in this form, never as TorchScript or pickle. Reading
it runs no code from the file: the header is parsed as JSON, the tensors are read with
:func:`numpy.frombuffer`, and the network is rebuilt by this package's own classes
(:func:`~hepae_coffea.model.networks.build_model` with a
:class:`~hepae_coffea.model.normalize.Normalizer`) before the tensors are loaded into it.

Layout of a weights blob::

    8 bytes   magic  b"HEPAEW\\x00\\x01"
    8 bytes   header length N (uint64, little-endian)
    N bytes   header: UTF-8 JSON (format, model architecture, variables with units,
              normalisation, and per tensor: name, dtype, shape, offset, nbytes)
    rest      tensor bytes, little-endian, C order, at the offsets the header states

A blob is identified by the SHA-256 of all its bytes; :func:`load_weights` checks it before
anything else. The SHA-256 guards against corruption, not against a forged file (whoever
edits the blob can recompute it); safety comes from the format holding no code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelFileError

__all__ = [
    "WEIGHTS_FORMAT",
    "blob_sha256",
    "load_weights",
    "pack_state",
    "read_header",
    "rebuild",
    "weights_from_model_file",
]

log = logging.getLogger(__name__)

WEIGHTS_FORMAT = "hepae-coffea-weights"
WEIGHTS_VERSION = 1
MAGIC = b"HEPAEW\x00\x01"
_DTYPES: dict[str, tuple[torch.dtype, np.dtype[Any]]] = {
    "float32": (torch.float32, np.dtype("<f4")),
    "float64": (torch.float64, np.dtype("<f8")),
    "int64": (torch.int64, np.dtype("<i8")),
    "int32": (torch.int32, np.dtype("<i4")),
    "bool": (torch.bool, np.dtype("|b1")),
}
_TORCH_NAMES = {v[0]: k for k, v in _DTYPES.items()}
#: model fields copied from a model file's metadata into the header (all plain JSON)
_MODEL_KEYS = (
    "level",
    "event_jets",
    "kind",
    "loss",
    "bottleneck",
    "levels",
    "latent_dim",
    "variables",
    "normalisation",
    "unit_range",
    "architecture",
    "loss_weights",
    "latent_range",
)
_CACHE: dict[str, nn.Module] = {}
_PACKED: dict[str, bytes] = {}


def blob_sha256(blob: bytes) -> str:
    """SHA-256 (hex) of a weights blob."""
    return hashlib.sha256(blob).hexdigest()


def _description(metadata: Mapping[str, Any]) -> dict[str, Any]:
    missing = [
        k for k in ("variables", "normalisation", "latent_dim", "architecture") if k not in metadata
    ]
    if missing:
        raise ModelFileError(
            f"{metadata.get('path', 'model')}: metadata lacks {missing}; cannot describe the model"
        )
    return {k: metadata.get(k) for k in _MODEL_KEYS}


def pack_state(
    state: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any],
    source: Mapping[str, Any] | None = None,
) -> bytes:
    """Weights blob of a model state whose architecture ``metadata`` describes.

    Parameters
    ----------
    state : mapping
        Tensor name -> tensor (a model's ``state_dict``).
    metadata : mapping
        The model file's metadata (architecture, variables, normalisation, ...).
    source : mapping, optional
        Provenance stored in the header (e.g. the model file's name and SHA-256).
    """
    header: dict[str, Any] = {
        "format": WEIGHTS_FORMAT,
        "format_version": WEIGHTS_VERSION,
        "model": _description(metadata),
        "source": dict(source or {}),
        "tensors": [],
    }
    chunks = []
    offset = 0
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        if t.dtype not in _TORCH_NAMES:
            raise ModelFileError(f"tensor {name!r} has unsupported dtype {t.dtype}")
        dtype = _TORCH_NAMES[t.dtype]
        raw = t.numpy().astype(_DTYPES[dtype][1], copy=False).tobytes(order="C")
        header["tensors"].append(
            {
                "name": name,
                "dtype": dtype,
                "shape": list(t.shape),
                "offset": offset,
                "nbytes": len(raw),
            }
        )
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return MAGIC + struct.pack("<Q", len(head)) + head + b"".join(chunks)


def read_header(blob: bytes, label: str = "model weights") -> dict[str, Any]:
    """Parse and validate a blob's JSON header (no tensors are built)."""
    if len(blob) < 16 or blob[:8] != MAGIC:
        raise ModelFileError(f"{label}: not a hepae-coffea weights blob (bad magic bytes)")
    (n,) = struct.unpack("<Q", blob[8:16])
    if n > len(blob) - 16:
        raise ModelFileError(f"{label}: weights header length {n} exceeds the blob")
    try:
        header = json.loads(blob[16 : 16 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{label}: weights header is not valid JSON ({err})") from None
    if not isinstance(header, dict) or header.get("format") != WEIGHTS_FORMAT:
        raise ModelFileError(f"{label}: weights header format is not {WEIGHTS_FORMAT!r}")
    if int(header.get("format_version", 0)) > WEIGHTS_VERSION:
        raise ModelFileError(
            f"{label}: weights format version {header['format_version']} is newer than this "
            f"package supports ({WEIGHTS_VERSION}); upgrade hepae-coffea"
        )
    data_len = len(blob) - 16 - n
    for t in header.get("tensors", []):
        if t.get("dtype") not in _DTYPES:
            raise ModelFileError(f"{label}: tensor {t.get('name')!r} has dtype {t.get('dtype')!r}")
        size = int(np.prod(t["shape"], dtype=np.int64)) * _DTYPES[t["dtype"]][1].itemsize
        if size != t["nbytes"] or not 0 <= t["offset"] <= data_len - size:
            raise ModelFileError(
                f"{label}: tensor {t['name']!r} (shape {t['shape']}) does not fit the blob"
            )
    header["_data_start"] = 16 + n
    return header


def rebuild(description: Mapping[str, Any]) -> nn.Module:
    """An untrained eager model with the architecture ``description`` states."""
    from .networks import ModelConfig, build_model
    from .normalize import Normalizer, VariableTransform

    d = description
    arch = d.get("architecture") or {}
    level = d.get("level") or "jet"
    variables = [v["name"] for v in d["variables"]]
    config = ModelConfig(
        variables=list(variables),
        latent_dim=int(d["latent_dim"]),
        hidden=[int(h) for h in arch.get("hidden", ())],
        activation=str(arch.get("activation", "silu")),
        kind=str(d.get("kind", "ae")),
        loss=str(d.get("loss", "mse")),
        bottleneck=str(d.get("bottleneck") or "plain"),
        levels=int(d.get("levels") or 1024),
        weights={k: float(v) for k, v in (d.get("loss_weights") or {}).items()},
        level=level,
        event_jets=int(d.get("event_jets") or 4),
    )
    fields = set(VariableTransform.__dataclass_fields__)
    transforms = [
        VariableTransform(**{k: v for k, v in t.items() if k in fields}) for t in d["normalisation"]
    ]
    ur = d.get("unit_range")
    unit_range = (
        (np.asarray(ur["lo"]), np.asarray(ur["lo"]) + np.asarray(ur["width"])) if ur else None
    )
    return build_model(config, Normalizer(transforms, unit_range))


def _state_dict(blob: bytes, header: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    start = header["_data_start"]
    out = {}
    for t in header["tensors"]:
        tdtype, ndtype = _DTYPES[t["dtype"]]
        a = np.frombuffer(
            blob, ndtype, count=int(np.prod(t["shape"], dtype=np.int64)), offset=start + t["offset"]
        )
        out[t["name"]] = (
            torch.from_numpy(a.astype(ndtype.newbyteorder("="), copy=True))
            .reshape(t["shape"])
            .to(tdtype)
        )
    return out


def load_weights(
    blob: bytes, sha256: str, label: str = "model weights"
) -> tuple[nn.Module, dict[str, Any]]:
    """The eager model stored in ``blob`` (checked against ``sha256``) and its header.

    Raises :class:`~hepae_coffea.errors.ModelFileError` if the SHA-256 differs, the header is
    malformed, or the tensors do not fit the described architecture.
    """
    actual = blob_sha256(blob)
    if actual != sha256:
        raise ModelFileError(
            f"{label}: stored model weights have SHA-256 {actual[:16]}..., the file records "
            f"{str(sha256)[:16]}...; refused (corrupted or altered)"
        )
    header = read_header(blob, label)
    module = _CACHE.get(actual)
    if module is None:
        try:
            module = rebuild(header["model"])
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{label}: cannot rebuild the described model ({err})") from None
        state = _state_dict(blob, header)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ModelFileError(
                f"{label}: weights do not fit the architecture ({first})"
            ) from None
        module.eval()
        _CACHE[actual] = module
    return module, header


def _probe_inputs(
    module: Any, description: Mapping[str, Any]
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Deterministic (encode args, decode args): physical values from the normaliser's
    inverse of uniform normalised points, latents uniform in the latent range."""
    gen = torch.Generator().manual_seed(12345)
    n = 512
    k = int(description["latent_dim"])
    lat_lo, lat_hi = description.get("latent_range") or [0.0, 1.0]
    with torch.inference_mode():
        x = module.normalizer.inverse(torch.rand(n, int(module.normalizer.n_norm), generator=gen))
        if (description.get("level") or "jet") == "event":
            j = int(description["event_jets"])
            x = x[: (n // j) * j].reshape(-1, j, x.shape[1])
            mask = (torch.rand(x.shape[0], j, generator=gen) < 0.8).float()
            mask[:, 0] = 1.0
            zl = lat_lo + (lat_hi - lat_lo) * torch.rand(x.shape[0], k, generator=gen)
            return (x, mask), (zl, mask)
        zl = lat_lo + (lat_hi - lat_lo) * torch.rand(n, k, generator=gen)
        return (x,), (zl,)


def _outputs(
    module: Any, enc_args: tuple[torch.Tensor, ...], dec_args: tuple[torch.Tensor, ...]
) -> list[torch.Tensor]:
    with torch.inference_mode():
        return [module.encode(*enc_args), module.decode(*dec_args)]


def weights_from_model_file(
    model_bytes: bytes, label: str = "model"
) -> tuple[bytes, dict[str, Any]]:
    """Convert a hepae-coffea TorchScript model file (chosen by the user) to a weights blob.

    The TorchScript file is loaded (it is code the user chose to run), its tensors are put
    into a model rebuilt from the file's metadata, and both are run on the same probe inputs:
    the blob is returned only if the rebuilt model's outputs equal the TorchScript's bit for
    bit. Returns ``(blob, metadata)``.
    """
    from .cache import get_model, model_bytes_sha256
    from .export import metadata_from_bytes

    sha = model_bytes_sha256(model_bytes)
    meta = metadata_from_bytes(model_bytes, label)
    blob = _PACKED.get(sha)
    if blob is not None:
        return blob, meta
    scripted, _ = get_model(model_bytes, sha)
    desc = _description(meta)
    # flags the metadata of older models may lack are read from the module itself
    ceiling = getattr(scripted.normalizer, "ceiling", None)
    if ceiling is not None:
        desc["normalisation"] = [
            {**t, "unit": bool(float(c) == 1.0)}
            for t, c in zip(desc["normalisation"], ceiling.tolist(), strict=True)
        ]
    label = str(label)
    template = rebuild(desc)
    wanted = template.state_dict()
    have = scripted.state_dict()
    missing = sorted(set(wanted) - set(have))
    if missing:
        raise ModelFileError(f"{label}: model lacks tensors {missing[:5]} of its architecture")
    derived = dict(template.named_buffers())
    for name in sorted(set(have) - set(wanted)):  # buffers the package derives, not stores
        if name not in derived or not torch.equal(derived[name], have[name]):
            raise ModelFileError(f"{label}: tensor {name!r} is not part of the architecture")
    state = {name: have[name] for name in wanted}
    blob = pack_state(state, {**meta, **desc}, {"sha256": sha})
    eager, _ = load_weights(blob, blob_sha256(blob), label)
    enc_args, dec_args = _probe_inputs(eager, desc)
    pairs = zip(
        _outputs(scripted, enc_args, dec_args), _outputs(eager, enc_args, dec_args), strict=True
    )
    for a, b in pairs:
        if not torch.equal(a, b):
            diff = float((a - b).abs().max())
            raise ModelFileError(
                f"{label}: the model rebuilt from its weights differs from the TorchScript "
                f"model (max |diff| {diff:.3g}); it cannot be stored as plain weights"
            )
    _PACKED[sha] = blob
    log.debug("packed %s into %d bytes of plain weights", label, len(blob))
    return blob, meta
