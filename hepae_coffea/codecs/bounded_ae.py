"""Autoencoder latents with guaranteed bounds: out-of-bound values get stored corrections.

The latents (float32, optionally rounded to ``latent_bits`` mantissa bits) are stored per
jet. Every value whose reconstruction misses its bound is stored again as the `quantize`
integer of the *original* value (so the correction does not depend on the decoder
reproducing the encoder's reconstruction bit for bit). A jet's reconstruction is checked
against ``safety`` times the bound, so that a decoder whose floating-point results differ
slightly (another CPU, another torch) still meets the bound.

Branches: ``z0..z{k-1}`` (per jet), ``fix`` (per jet, uint8 bit mask of corrected
variables, bit i for the i-th variable) and ``fix_<var>`` (the corrected values' integers,
per event, in jet order). ``info`` reports the fraction of jets and values corrected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .base import CodecError, Encoded, check_columns, circular_error, smallest_int_dtype
from .precision import Precision, parse_precision
from .quantize import Grid, make_grid
from .truncate import round_mantissa

__all__ = ["decode", "encode", "value_errors"]

NAME = "ae-bounded"
Transform = Callable[[np.ndarray], np.ndarray]


def value_errors(var: str, grid: Grid, rec: np.ndarray, orig: np.ndarray) -> np.ndarray:
    """The error the grid's bound is about: relative (log grids), circular (phi) or absolute."""
    a, b = np.asarray(orig, np.float64), np.asarray(rec, np.float64)
    if grid.coord == "log":
        return np.abs(b - a) / np.where(a != 0, np.abs(a), 1.0) + np.where(a == 0, np.abs(b), 0)
    if grid.coord == "angle":
        return circular_error(b, a)
    return np.abs(b - a)


def encode(
    columns: Mapping[str, np.ndarray],
    counts: np.ndarray,
    spec: str | Precision,
    *,
    encoder: Transform,
    decoder: Transform,
    variables: Sequence[str],
    latent_bits: int | None = None,
    safety: float = 0.999,
    model_ref: Mapping[str, Any] | None = None,
) -> Encoded:
    """Latents + corrections so that every decoded value meets ``spec``.

    Parameters
    ----------
    encoder, decoder
        ``(n, len(variables)) float32 -> (n, k)`` and back (e.g. a TorchScript model's
        ``encode`` / ``decode`` wrapped to numpy).
    variables
        The model's input variables, in order (all must be in ``columns``).
    latent_bits
        Round the latents to this many mantissa bits (None: float32).
    safety
        Values are corrected when their error exceeds ``safety`` times the bound.
    model_ref
        Plain JSON identifying the model (name, SHA-256), copied into ``info``.
    """
    prec = parse_precision(spec)
    cols, counts = check_columns({v: columns[v] for v in variables}, counts, NAME)
    prec.require(variables)
    if not 0 < safety <= 1:
        raise CodecError(f"safety must be in (0, 1], got {safety}")
    x = np.stack([cols[v].astype(np.float32) for v in variables], axis=1)
    z = np.asarray(encoder(x), np.float32)
    if latent_bits is not None:
        z = round_mantissa(z, latent_bits)
    rec = np.asarray(decoder(z), np.float32)
    n = len(x)
    mask = np.zeros(n, np.uint8)
    branches: dict[str, np.ndarray] = {f"z{i}": z[:, i].copy() for i in range(z.shape[1])}
    sizes: dict[str, np.ndarray] = {}
    grids, stats = {}, {}
    event_of_jet = np.repeat(np.arange(len(counts)), counts)
    for i, v in enumerate(variables):
        grid = make_grid(v, prec[v], cols[v])
        err = value_errors(v, grid, rec[:, i], cols[v])
        bad = err > safety * grid.max_error
        q, sign = grid.to_int(cols[v][bad])
        if grid.coord == "log":  # sign folded in: sign * (k - kmin + 1)
            assert sign is not None  # log grids return the signs
            kmin = int(q[sign != 0].min()) if np.any(sign != 0) else 0
            code = sign.astype(np.int64) * (q - kmin + 1)
        else:
            kmin = int(q.min()) if len(q) else 0
            code = q - kmin if grid.coord == "linear" else q
            kmin = kmin if grid.coord == "linear" else 0
        lo, hi = (int(code.min()), int(code.max())) if len(code) else (0, 0)
        branches[f"fix_{v}"] = code.astype(smallest_int_dtype(lo, hi))
        sizes[f"fix_{v}"] = np.bincount(event_of_jet[bad], minlength=len(counts)).astype(np.int64)
        mask |= bad.astype(np.uint8) << np.uint8(i)
        grids[v] = {"grid": grid.to_json(), "offset": kmin}
        stats[v] = {
            "corrected": int(bad.sum()),
            "max_error_before": float(err.max(initial=0.0)),
        }
    if len(variables) > 8:
        raise CodecError("ae-bounded corrects at most 8 variables (uint8 mask)")
    branches["fix"] = mask
    info = {
        "codec": NAME,
        "version": 1,
        "precision": prec.to_json(),
        "variables": list(variables),
        "latent_dim": int(z.shape[1]),
        "latent_bits": latent_bits,
        "safety": safety,
        "columns": grids,
        "corrections": stats,
        "fraction_jets_corrected": float(np.mean(mask != 0)) if n else 0.0,
        "model": dict(model_ref or {}),
    }
    return Encoded(branches, info, sizes)


def decode(
    branches: Mapping[str, np.ndarray],
    counts: np.ndarray,
    info: Mapping[str, Any],
    *,
    decoder: Transform,
) -> dict[str, np.ndarray]:
    """Decoded columns: the AE reconstruction, with corrected values put back."""
    if info.get("codec") != NAME:
        raise CodecError(f"payload was written by codec {info.get('codec')!r}, not {NAME!r}")
    k = int(info["latent_dim"])
    z = np.stack([np.asarray(branches[f"z{i}"], np.float32) for i in range(k)], axis=1)
    rec = np.asarray(decoder(z), np.float32)
    mask = np.asarray(branches["fix"], np.uint8)
    out = {}
    for i, v in enumerate(info["variables"]):
        col = rec[:, i].copy()
        bad = (mask >> np.uint8(i)) & np.uint8(1) == 1
        entry = info["columns"][v]
        grid = Grid.from_json(entry["grid"])
        code = np.asarray(branches[f"fix_{v}"], np.int64)
        if len(code) != int(bad.sum()):
            raise CodecError(
                f"ae-bounded payload: {len(code)} corrections of {v}, mask says {int(bad.sum())}"
            )
        off = int(entry["offset"])
        if grid.coord == "log":
            col[bad] = grid.from_int(np.abs(code) + off - 1, np.sign(code).astype(np.int8))
        else:
            col[bad] = grid.from_int(code + off)
        out[v] = col
    return out
