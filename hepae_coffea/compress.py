"""Real compression of ROOT files: jets replaced by latent values, and back.

``compress`` copies every branch of the input tree unchanged except the jet variables the
model covers (``Jet_pt``, ``Jet_eta``, ... for a (pt, eta, phi, mass) model), which it
replaces by the latent branches ``Jet_z0``, ``Jet_z1``, ... (float32, optionally rounded to
``latent_bits`` mantissa bits). The model file (bytes, SHA-256 and metadata) is stored in
the output as ``TObjString`` objects, so ``decompress`` needs nothing else. Both stream
chunk by chunk, keep event order and jet counts exactly, and write atomically.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch

from . import __version__
from .atomic import atomic_output, is_disk_full
from .data import _find, pad_events
from .errors import HepaeError, InputFileError, MissingBranchError, ModelFileError
from .export import default_model_path, metadata_from_bytes
from .model_cache import get_model, in_blocks, model_bytes_sha256, resolve_device

__all__ = [
    "COMPRESSIONS",
    "CompressionSummary",
    "compress",
    "compress_arrays",
    "compression_info",
    "decompress",
    "read_compression_info",
    "truncate_mantissa",
    "write_compressed_chunk",
]

log = logging.getLogger(__name__)

COMPRESSIONS = ("zlib", "lzma", "lz4", "zstd")
INFO_KEY = "hepae_compression"
MODEL_KEY = "hepae_model_b64"
FORMAT = "hepae-coffea-compressed"


@dataclass
class CompressionSummary:
    """What a compress or decompress call wrote."""

    input_paths: list[str]
    output: str
    events: int
    jets: int
    bytes_in: int
    bytes_out: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Output size over input size."""
        return self.bytes_out / self.bytes_in if self.bytes_in else float("nan")


def truncate_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 values to ``bits`` mantissa bits (round to nearest, ties away from 0).

    ``bits`` in 0..23; 23 returns the values unchanged. Non-finite values are kept.
    """
    if not 0 <= bits <= 23:
        raise ValueError(f"mantissa bits must be in 0..23, got {bits}")
    a = np.ascontiguousarray(x, dtype=np.float32)
    if bits == 23:
        return a.copy()
    drop = 23 - bits
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + (1 << (drop - 1))) & ~np.uint64((1 << drop) - 1)
    out = u.astype(np.uint32).view(np.float32)
    return np.where(np.isfinite(a), out, a)


def _compression(name: str, level: int):
    import uproot

    classes = {"zlib": uproot.ZLIB, "lzma": uproot.LZMA, "lz4": uproot.LZ4, "zstd": uproot.ZSTD}
    if name not in classes:
        raise ValueError(f"compression {name!r} not in {COMPRESSIONS}")
    return classes[name](level)


def _open_tree(path: str, tree: str):
    import uproot

    if not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    try:
        f = uproot.open(path)
        if tree not in f:
            raise InputFileError(f"{path}: no tree {tree!r}; keys: {f.keys(cycle=False)}")
        t = f[tree]
        t.keys()
    except HepaeError:
        raise
    except Exception as err:  # noqa: BLE001  (uproot raises many types for corrupt files)
        raise InputFileError(f"{path}: cannot be read as a ROOT file ({err})") from None
    return f, t


def _collections(keys: Sequence[str], arrays: ak.Array) -> dict[str, str]:
    """Map jagged branch name -> collection (``Jet_pt`` -> ``Jet`` when ``nJet`` exists)."""
    out = {}
    for k in keys:
        if "_" in k and arrays[k].ndim > 1:
            prefix = k.split("_", 1)[0]
            if "n" + prefix in keys:
                out[k] = prefix
    return out


def _to_writable(arrays: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Group jagged ``X_*`` branches into records ``X`` (uproot then writes ``nX`` itself),
    keeping the branches' order: a record takes the place of its counter (or first member)."""
    arr = ak.Array(dict(arrays)) if not isinstance(arrays, ak.Array) else arrays
    coll = _collections(keys, arr)
    names = set(coll.values())
    groups: dict[str, dict[str, Any]] = {}
    for k, c in coll.items():
        groups.setdefault(c, {})[k.split("_", 1)[1]] = arr[k]
    out: dict[str, Any] = {}
    for k in keys:
        group = coll.get(k) or (k[1:] if k.startswith("n") and k[1:] in names else None)
        if group is not None:
            if group not in out:
                out[group] = ak.zip(groups[group])
        else:
            out[k] = arr[k]
    return out


def _types(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}


def compress_arrays(
    arrays: ak.Array,
    keys: Sequence[str],
    model_bytes: bytes,
    sha256: str,
    variables: Sequence[str],
    collection: str = "Jet",
    latent_bits: int | None = None,
    where: str = "input",
    event_jets: int | None = None,
    device: str = "cpu",
) -> tuple[dict[str, Any], int]:
    """One chunk: replace the model's jet branches by latents; return (writable dict, n_jets).

    ``arrays`` holds the chunk's branches ``keys`` (uproot order). The jet branches must be
    finite: non-finite values are refused with a count, never silently altered. For an
    event-level model (``event_jets`` = J) the latents are per event
    (``<collection>Latent_z<i>``), and the jets after the leading J keep their values in
    ``<collection>Extra_<variable>`` branches. ``device``: where the encoder runs
    (``auto``, ``cpu``, ``cuda``).
    """
    device = resolve_device(device)
    module, _ = get_model(model_bytes, sha256, device)
    prefix = collection + "_"
    cols = []
    for v in variables:
        name = _find(keys, prefix, v)
        if name is None:
            raise MissingBranchError(
                f"{where}: no branch for jet variable {v!r} of collection {collection!r}; "
                f"available: {sorted(k for k in keys if k.startswith(prefix))}"
            )
        cols.append(name)
    counts = ak.num(arrays[cols[0]], axis=1)
    x = np.stack([ak.to_numpy(ak.flatten(arrays[c])).astype(np.float32) for c in cols], axis=1)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise HepaeError(
            f"{where}: {int(bad.sum())} jet(s) with non-finite {variables} values; a lossy "
            f"latent cannot store them (drop or fix those jets first)"
        )
    kept = [k for k in keys if k not in cols]
    data = {k: arrays[k] for k in kept}
    if event_jets is not None:
        return _compress_events(
            data, kept, module, x, arrays, cols, collection, event_jets, latent_bits, device
        )
    if len(x):
        with torch.inference_mode():
            (z,) = in_blocks(
                module.encode, torch.from_numpy(np.ascontiguousarray(x)), device=device
            )
            z = z.numpy()
    else:
        z = np.zeros((0, int(module.latent_dim)), np.float32)
    if latent_bits is not None:
        z = truncate_mantissa(z, latent_bits)
    for i in range(z.shape[1]):
        data[f"{prefix}z{i}"] = ak.unflatten(np.ascontiguousarray(z[:, i]), counts)
    order = kept + [f"{prefix}z{i}" for i in range(z.shape[1])]
    return _to_writable(ak.Array(data), order), len(x)


def _compress_events(
    data, kept, module, x, arrays, cols, collection, event_jets, latent_bits, device="cpu"
):
    counts = ak.to_numpy(ak.num(arrays[cols[0]], axis=1))
    xe, me = pad_events(x, counts, event_jets)
    with torch.inference_mode():
        (z,) = in_blocks(
            module.encode,
            torch.from_numpy(xe),
            torch.from_numpy(me.astype(np.float32)),
            block=len(xe) or 1,
            device=device,
        )
        z = z.numpy()
    if latent_bits is not None:
        z = truncate_mantissa(z, latent_bits)
    names = [f"{collection}Latent_z{i}" for i in range(z.shape[1])]
    for i, name in enumerate(names):
        data[name] = np.ascontiguousarray(z[:, i])
    n_extra = np.maximum(counts - event_jets, 0)
    extra_names = [f"{collection}Extra_{c.split('_', 1)[1]}" for c in cols]
    for c, name in zip(cols, extra_names, strict=True):  # the input's own values and type
        data[name] = arrays[c][:, event_jets:]
    data[f"n{collection}Extra"] = n_extra.astype(np.int32)
    order = [*kept, *names, f"n{collection}Extra", *extra_names]
    return _to_writable(ak.Array(data), order), len(x)


def _branch_dtype(tree, name: str | None) -> str:
    """numpy dtype name (native byte order) of a jagged or flat numeric branch."""
    if name is None:
        return "float32"
    interp = tree[name].interpretation
    dt = getattr(getattr(interp, "content", interp), "to_dtype", np.dtype("float32"))
    return np.dtype(dt).newbyteorder("=").name


def compression_info(
    meta: Mapping[str, Any],
    sha256: str,
    keys: Sequence[str],
    *,
    collection: str,
    tree: str,
    latent_bits: int | None,
    compression: str,
    level: int,
    inputs: Sequence[str],
    events: int,
    jets: int,
    dtypes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The JSON metadata stored beside the compressed tree."""
    variables = [v["name"] for v in meta["variables"]]
    return {
        "format": FORMAT,
        "package_version": __version__,
        "model_sha256": sha256,
        "model": {
            k: meta.get(k)
            for k in (
                "level",
                "event_jets",
                "kind",
                "bottleneck",
                "levels",
                "latent_dim",
                "variables",
                "normalisation",
            )
        },
        "collection": collection,
        "tree": tree,
        "latent_bits": latent_bits,
        "branches": list(keys),
        "jet_branches": [_find(keys, collection + "_", v) for v in variables],
        "jet_dtypes": list(dtypes) if dtypes is not None else None,
        "events": events,
        "jets": jets,
        "compression": [compression, level],
        "inputs": [os.path.basename(p) for p in inputs],
    }


def write_compressed_chunk(
    path: str,
    tree: str,
    start: int,
    stop: int,
    output: str | os.PathLike,
    model_bytes: bytes,
    *,
    latent_bits: int | None = None,
    collection: str = "Jet",
    compression: str = "zstd",
    level: int = 5,
    device: str = "cpu",
) -> tuple[int, int]:
    """Compress entries [start, stop) of one file into its own output file (used by the
    processor to compress chunk by chunk on any executor). Returns (events, jets)."""
    import uproot

    meta = metadata_from_bytes(model_bytes)
    sha = model_bytes_sha256(model_bytes)
    variables = [v["name"] for v in meta["variables"]]
    f, t = _open_tree(path, tree)
    with f:
        keys = t.keys()
        arrays = t.arrays(keys, entry_start=start, entry_stop=stop, library="ak")
    data, n = compress_arrays(
        arrays,
        keys,
        model_bytes,
        sha,
        variables,
        collection,
        latent_bits,
        where=f"{path}[{start}:{stop}]",
        event_jets=int(meta["event_jets"]) if meta.get("level") == "event" else None,
        device=device,
    )
    with (
        atomic_output(Path(output), overwrite=True) as tmp,
        uproot.recreate(tmp, compression=_compression(compression, level)) as fout,
    ):
        fout.mktree(tree, _types(data))
        fout[tree].extend(data)
        fout[INFO_KEY] = json.dumps(
            compression_info(
                meta,
                sha,
                keys,
                collection=collection,
                tree=tree,
                latent_bits=latent_bits,
                compression=compression,
                level=level,
                inputs=[path],
                events=len(arrays),
                jets=n,
                dtypes=[_branch_dtype(t, _find(keys, collection + "_", v)) for v in variables],
            )
        )
        fout[MODEL_KEY] = base64.b64encode(model_bytes).decode("ascii")
    return len(arrays), n


def _decode_events(arrays, module, collection, event_jets, zcols, jet_branches, device="cpu"):
    """Event-level latents + extra jets -> (jets per event, flat jets in file order)."""
    counts = ak.to_numpy(arrays[f"n{collection}"]).astype(np.int64)
    z = np.stack([ak.to_numpy(arrays[c]) for c in zcols], axis=1).astype(np.float32)
    mask = np.arange(event_jets)[None, :] < np.minimum(counts, event_jets)[:, None]
    with torch.inference_mode():
        (rec_e,) = in_blocks(
            module.decode,
            torch.from_numpy(z),
            torch.from_numpy(mask.astype(np.float32)),
            block=len(z) or 1,
            device=device,
        )
    lead = ak.unflatten(rec_e.numpy()[mask], np.minimum(counts, event_jets))
    extra = ak.concatenate(
        [arrays[f"{collection}Extra_{b.split('_', 1)[1]}"][:, :, np.newaxis] for b in jet_branches],
        axis=2,
    )
    jets = ak.concatenate([lead, extra], axis=1)  # extra jets keep their stored precision
    return ak.num(jets, axis=1), ak.to_numpy(ak.flatten(jets, axis=1))


def read_compression_info(path: str | os.PathLike) -> tuple[dict[str, Any], bytes]:
    """The compression metadata and the model bytes stored in a compressed file."""
    import uproot

    path = str(path)
    if not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    try:
        with uproot.open(path) as f:
            if INFO_KEY not in f or MODEL_KEY not in f:
                raise InputFileError(
                    f"{path}: not a file written by hepae compress (no {INFO_KEY!r} object)"
                )
            info = json.loads(str(f[INFO_KEY]))
            model = base64.b64decode(str(f[MODEL_KEY]))
    except HepaeError:
        raise
    except Exception as err:  # noqa: BLE001
        raise InputFileError(f"{path}: cannot be read as a ROOT file ({err})") from None
    if model_bytes_sha256(model) != info.get("model_sha256"):
        raise ModelFileError(f"{path}: the stored model does not match its recorded SHA-256")
    return info, model


def compress(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    model: str | os.PathLike | None = None,
    *,
    latent_bits: int | None = None,
    compression: str = "zstd",
    level: int = 5,
    tree: str = "Events",
    collection: str = "Jet",
    step_size: str | int = "100 MB",
    overwrite: bool = False,
    device: str = "cpu",
) -> CompressionSummary:
    """Write ``output`` with the jets of ``inputs`` replaced by the model's latents.

    Parameters
    ----------
    inputs : path or list of paths
        NanoAOD-style ROOT files with the same tree layout (written one after the other).
    model : path, optional
        hepae-coffea model; the shipped default when omitted.
    latent_bits : int, optional
        Round the float32 latents to this many mantissa bits (0..23).
    compression, level : str, int
        ROOT compression of the output (zlib, lzma, lz4, zstd) and its level.
    device : {"auto", "cpu", "cuda"}
        Where the encoder runs (the latents written are the same up to float rounding).
    """
    import uproot

    t0 = time.perf_counter()
    paths = [os.fspath(p) for p in ([inputs] if isinstance(inputs, str | os.PathLike) else inputs)]
    if not paths:
        raise InputFileError("no input files given")
    model_path = Path(model) if model is not None else default_model_path()
    if not model_path.exists():
        raise ModelFileError(f"{model_path}: model file not found")
    model_bytes = model_path.read_bytes()
    meta = metadata_from_bytes(model_bytes, str(model_path))
    sha = model_bytes_sha256(model_bytes)
    variables = [v["name"] for v in meta["variables"]]
    event_jets = int(meta["event_jets"]) if meta.get("level") == "event" else None
    if latent_bits is not None and not 0 <= latent_bits <= 23:
        raise ValueError(f"--latent-bits must be in 0..23, got {latent_bits}")
    comp = _compression(compression, level)
    trees = [_open_tree(p, tree) for p in paths]  # all inputs checked before writing
    keys0 = trees[0][1].keys()
    for p, (_, t) in zip(paths, trees, strict=True):
        if t.keys() != keys0:
            raise InputFileError(f"{p}: branches differ from {paths[0]}'s")
    events = jets = 0
    out = Path(output)
    with atomic_output(out, overwrite) as tmp, uproot.recreate(tmp, compression=comp) as fout:
        created = False
        for p, (f, t) in zip(paths, trees, strict=True):
            try:
                for arrays in t.iterate(keys0, step_size=step_size, library="ak"):
                    data, n = compress_arrays(
                        arrays,
                        keys0,
                        model_bytes,
                        sha,
                        variables,
                        collection,
                        latent_bits,
                        where=p,
                        event_jets=event_jets,
                        device=device,
                    )
                    if not created:
                        fout.mktree(tree, _types(data))
                        created = True
                    fout[tree].extend(data)
                    events += len(arrays)
                    jets += n
            except HepaeError:
                raise
            except Exception as err:  # truncated baskets etc.; re-raised when disk full
                if is_disk_full(err):  # the output's fault, not the input's
                    raise
                raise InputFileError(f"{p}: failed while reading ({err})") from None
            finally:
                f.close()
        info = compression_info(
            meta,
            sha,
            keys0,
            collection=collection,
            tree=tree,
            latent_bits=latent_bits,
            compression=compression,
            level=level,
            inputs=paths,
            events=events,
            dtypes=[
                _branch_dtype(trees[0][1], _find(keys0, collection + "_", v)) for v in variables
            ],
            jets=jets,
        )
        fout[INFO_KEY] = json.dumps(info)
        fout[MODEL_KEY] = base64.b64encode(model_bytes).decode("ascii")
    bytes_in = sum(os.path.getsize(p) for p in paths)
    summary = CompressionSummary(
        paths,
        str(out),
        events,
        jets,
        bytes_in,
        out.stat().st_size,
        time.perf_counter() - t0,
        {"latent_bits": latent_bits},
    )
    log.info(
        "compressed %d events (%d jets): %d -> %d bytes", events, jets, bytes_in, summary.bytes_out
    )
    return summary


def decompress(
    input: str | os.PathLike,
    output: str | os.PathLike,
    model: str | os.PathLike | None = None,
    *,
    compression: str = "zstd",
    level: int = 5,
    step_size: str | int = "100 MB",
    overwrite: bool = False,
    device: str = "cpu",
) -> CompressionSummary:
    """Restore the jet branches of a file written by :func:`compress`.

    The model stored in the file is used; a ``model`` given explicitly must be the same
    file (same SHA-256), else it is refused. Restored files have the original branch
    names and order and read back with NanoAODSchema like the original.
    """
    import uproot

    t0 = time.perf_counter()
    path = os.fspath(input)
    info, model_bytes = read_compression_info(path)
    if model is not None:
        given = Path(model)
        if not given.exists():
            raise ModelFileError(f"{given}: model file not found")
        if model_bytes_sha256(given.read_bytes()) != info["model_sha256"]:
            raise ModelFileError(
                f"{given}: does not match the model that compressed {path} "
                f"(SHA-256 {info['model_sha256'][:12]}...)"
            )
    device = resolve_device(device)
    module, _ = get_model(model_bytes, info["model_sha256"], device)
    tree, collection = info["tree"], info["collection"]
    k = int(info["model"]["latent_dim"])
    event_jets = info["model"].get("event_jets") if info["model"].get("level") == "event" else None
    zcols = [f"{collection}{'Latent' if event_jets else ''}_z{i}" for i in range(k)]
    jet_branches = info["jet_branches"]
    f, t = _open_tree(path, tree)
    keys = t.keys()
    events = jets = 0
    out = Path(output)
    try:
        with (
            atomic_output(out, overwrite) as tmp,
            uproot.recreate(tmp, compression=_compression(compression, level)) as fout,
        ):
            created = False
            for arrays in t.iterate(keys, step_size=step_size, library="ak"):
                if event_jets is None:
                    counts = ak.num(arrays[zcols[0]], axis=1)
                    z = np.stack([ak.to_numpy(ak.flatten(arrays[c])) for c in zcols], axis=1)
                    rec = np.zeros((0, len(jet_branches)), np.float32)
                    if len(z):
                        with torch.inference_mode():
                            (rec,) = in_blocks(
                                module.decode,
                                torch.from_numpy(np.ascontiguousarray(z)),
                                device=device,
                            )
                            rec = rec.numpy()
                else:
                    counts, rec = _decode_events(
                        arrays, module, collection, event_jets, zcols, jet_branches, device
                    )
                    z = rec
                dtypes = info.get("jet_dtypes") or ["float32"] * len(jet_branches)
                decoded = {  # integer variables were rounded by the model: restore the type
                    b: ak.unflatten(np.ascontiguousarray(rec[:, i]).astype(dtypes[i]), counts)
                    for i, b in enumerate(jet_branches)
                }
                branches = info["branches"]  # original names and order
                restored = {b: decoded[b] if b in decoded else arrays[b] for b in branches}
                data = _to_writable(ak.Array(restored), branches)
                if not created:
                    fout.mktree(tree, _types(data))
                    created = True
                fout[tree].extend(data)
                events += len(arrays)
                jets += len(z)
    finally:
        f.close()
    return CompressionSummary(
        [path],
        str(out),
        events,
        jets,
        os.path.getsize(path),
        out.stat().st_size,
        time.perf_counter() - t0,
    )
