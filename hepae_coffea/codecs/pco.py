"""The quantiser's integers coded with pcodec (codec name ``pcodec``).

Every float column is quantised exactly as `quantize` does (same grids, same maximum
errors); integer columns are kept as they are. Each column's integers are then coded
losslessly with `pcodec <https://github.com/pcodec/pcodec>`_ (``standalone`` format), one
chunk per block of ``block_events`` events. The chunks are stored in one uint8 branch
(``bytes``): all of a block's chunks in the entry of its first event (the other events'
entries are empty), so ``decode`` needs nothing but the branch, the jet counts and the
plain JSON ``info``. pcodec codes 16- to 64-bit integers: 8-bit codes are widened to 16
bits and narrowed back (after a range check) when decoded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from pcodec import ChunkConfig, standalone

from . import quantize
from .base import CodecError, Encoded, check_columns
from .precision import Precision, parse_precision

__all__ = ["decode", "encode"]

NAME = "pcodec"
#: the one uint8 branch holding every column's chunks
BRANCH = "bytes"
#: events per independently decodable pcodec chunk
BLOCK_EVENTS = 10_000
_CODED = {
    np.dtype(np.uint8): np.dtype(np.uint16),
    np.dtype(np.int8): np.dtype(np.int16),
    np.dtype(np.bool_): np.dtype(np.uint16),
}


def _blocks(counts: np.ndarray, block_events: int) -> Iterator[tuple[int, int, int, int]]:
    offs = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    for s in range(0, len(counts), block_events):
        e = min(s + block_events, len(counts))
        yield s, e, int(offs[s]), int(offs[e])


def encode_integers(
    ints: Mapping[str, np.ndarray], counts: np.ndarray, block_events: int = BLOCK_EVENTS
) -> Encoded:
    """Code integer per-jet columns with pcodec, block by block (lossless).

    Returns `Encoded` with one uint8 branch ``BRANCH``: for each block, the pcodec chunk
    of every column one after the other, all in the entry of the block's first event
    (``entry_sizes``); ``info["columns"][name]`` holds the column's dtype and its bytes
    per block. One branch for all columns keeps the per-branch overhead of a ROOT file
    (metadata, baskets) to one branch and its counter.
    """
    if block_events < 1:
        raise CodecError(f"{NAME}: block_events must be positive, got {block_events}")
    counts = np.asarray(counts, np.int64)
    arrays = {}
    for name, a in ints.items():
        a = np.asarray(a)
        if not np.issubdtype(a.dtype, np.integer) and a.dtype != np.bool_:
            raise CodecError(f"{NAME}: column {name!r} has dtype {a.dtype}, not integers")
        arrays[name] = a
    columns: dict[str, Any] = {
        name: {"dtype": a.dtype.name, "coded": _CODED.get(a.dtype, a.dtype).name, "block_bytes": []}
        for name, a in arrays.items()
    }
    chunks = []
    sizes = np.zeros(len(counts), np.int64)
    for s, _e, js, je in _blocks(counts, block_events):
        for name, a in arrays.items():
            part = np.ascontiguousarray(a[js:je].astype(columns[name]["coded"], copy=False))
            b = standalone.simple_compress(part, ChunkConfig())
            chunks.append(np.frombuffer(b, np.uint8))
            columns[name]["block_bytes"].append(len(b))
            sizes[s] += len(b)
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    info = {"block_events": int(block_events), "columns": columns}
    return Encoded({BRANCH: data}, info, {BRANCH: sizes})


def _chunk(name: str, raw: bytes, coded: np.dtype, n: int) -> np.ndarray:
    try:
        arr = standalone.simple_decompress(raw)
    except RuntimeError as err:
        raise CodecError(f"{NAME} column {name!r}: corrupt chunk: {err}") from None
    arr = np.zeros(0, coded) if arr is None else np.asarray(arr)
    if arr.dtype != coded or len(arr) != n:
        raise CodecError(
            f"{NAME} column {name!r}: a chunk holds {len(arr)} {arr.dtype} values, "
            f"expected {n} {coded}"
        )
    return arr


def decode_integers(
    branches: Mapping[str, np.ndarray], counts: np.ndarray, info: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """The integer columns `encode_integers` coded (exactly), from the ``BRANCH`` bytes."""
    counts = np.asarray(counts, np.int64)
    block_events = int(info.get("block_events", 0))
    if block_events < 1:
        raise CodecError(f"{NAME} payload has a bad block size {block_events}")
    if BRANCH not in branches:
        raise CodecError(f"{NAME} payload lacks the branch {BRANCH!r}")
    data = np.asarray(branches[BRANCH], np.uint8)
    blocks = list(_blocks(counts, block_events))
    entries = dict(info.get("columns", {}))
    total = 0
    for name, entry in entries.items():
        nb = entry["block_bytes"]
        if len(nb) != len(blocks):
            raise CodecError(
                f"{NAME} column {name!r}: {len(nb)} blocks, the jet counts give {len(blocks)}"
            )
        total += sum(int(x) for x in nb)
    if total != len(data):
        raise CodecError(f"{NAME} payload has {len(data)} bytes, its blocks say {total}")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in entries}
    pos = 0
    for b, (_s, _e, js, je) in enumerate(blocks):
        for name, entry in entries.items():
            nb = int(entry["block_bytes"][b])
            coded = np.dtype(entry["coded"])
            parts[name].append(_chunk(name, data[pos : pos + nb].tobytes(), coded, je - js))
            pos += nb
    out: dict[str, np.ndarray] = {}
    for name, entry in entries.items():
        dtype, coded = np.dtype(entry["dtype"]), np.dtype(entry["coded"])
        a = np.concatenate(parts[name]) if parts[name] else np.zeros(0, coded)
        if dtype != coded and len(a):
            lo, hi = (0, 1) if dtype == np.bool_ else (np.iinfo(dtype).min, np.iinfo(dtype).max)
            if a.min() < lo or a.max() > hi:
                raise CodecError(f"{NAME} column {name!r}: values outside {dtype}'s range")
        out[name] = a.astype(dtype)
    return out


def encode(
    columns: Mapping[str, np.ndarray],
    counts: np.ndarray,
    spec: str | Precision = "nanoaod",
    *,
    block_events: int = BLOCK_EVENTS,
) -> Encoded:
    """Quantise the float columns to ``spec`` (as `quantize`), code every column with pcodec.

    Returns
    -------
    Encoded
        One uint8 branch ``bytes`` (a block's pcodec chunks in its first event's entry);
        ``info["quantize"]``: the quantiser's grids and offsets.
    """
    prec = parse_precision(spec)
    cols, counts = check_columns(columns, counts, NAME)
    q = quantize.encode(cols, counts, prec)
    enc = encode_integers(q.branches, counts, block_events)
    info = {"codec": NAME, "version": 1, "precision": prec.to_json(), "quantize": q.info}
    info.update(enc.info)
    return Encoded(enc.branches, info, enc.entry_sizes)


def decode(
    branches: Mapping[str, np.ndarray], counts: np.ndarray, info: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Float32 values (integer columns unchanged) from the pcodec branches."""
    if info.get("codec") != NAME:
        raise CodecError(f"payload was written by codec {info.get('codec')!r}, not {NAME!r}")
    ints = decode_integers(branches, counts, info)
    return quantize.decode(ints, counts, info["quantize"])
