"""Mantissa truncation: float32 values rounded to N mantissa bits (round to nearest).

N bits guarantee a relative error of at most ``2**-(N+1)``. A bound given as an error is
met with the fewest bits that guarantee it (absolute errors: for the largest |value| in
the data). Phi is wrapped into (-pi, pi] after rounding (so its error is measured modulo
2 pi). Integer columns are stored unchanged. The branches stay float32, so ROOT's own
compression (LZMA, ZSTD, ...) removes the zeroed low bits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .base import Encoded, check_columns, phi_float32, wrap_phi
from .precision import (
    Bound,
    Precision,
    PrecisionError,
    bits_for_abs_error,
    bits_for_rel_error,
    parse_precision,
)

__all__ = ["bits_for", "decode", "encode", "round_mantissa"]

NAME = "truncate"


def round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 values to ``bits`` mantissa bits (to nearest, ties away from zero).

    ``bits`` in 0..23 (23 returns a copy). Non-finite values are kept as they are.

    Examples
    --------
    >>> round_mantissa(np.array([1.3, 1.7], np.float32), 1).tolist()
    [1.5, 2.0]
    """
    if not 0 <= bits <= 23:
        raise PrecisionError(f"mantissa bits must be in 0..23, got {bits}")
    a = np.ascontiguousarray(x, dtype=np.float32)
    if bits == 23:
        return a.copy()
    drop = 23 - bits
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + (1 << (drop - 1))) & ~np.uint64((1 << drop) - 1)
    out = u.astype(np.uint32).view(np.float32)
    return np.where(np.isfinite(a), out, a)


def bits_for(var: str, bound: Bound, x: np.ndarray) -> int:
    """Mantissa bits meeting ``bound`` for the values ``x`` of variable ``var``."""
    if bound.kind == "bits":
        return int(bound.value)
    if bound.kind == "rel":
        return bits_for_rel_error(bound.value)
    max_abs = float(np.max(np.abs(x), initial=0.0))
    if var == "phi":
        max_abs = max(max_abs, math.pi)
    # a value that rounds up into the next binade still errs by at most half an ulp of its own
    return bits_for_abs_error(bound.value, max_abs)


def encode(
    columns: Mapping[str, np.ndarray], counts: np.ndarray, spec: str | Precision = "nanoaod"
) -> Encoded:
    """Round each float column to its bits; ``info`` records them.

    Parameters
    ----------
    columns
        Flat per-jet arrays by variable name (pt, eta, phi, mass, ...).
    counts
        Jets per event.
    spec
        Precision SPEC or `Precision`; every float column needs a bound.
    """
    prec = parse_precision(spec)
    cols, counts = check_columns(columns, counts, NAME)
    branches: dict[str, np.ndarray] = {}
    bits: dict[str, int] = {}
    for var, x in cols.items():
        if not np.issubdtype(x.dtype, np.floating):
            branches[var] = x.copy()
            continue
        n = bits_for(var, prec[var], x)
        y = round_mantissa(x, n)
        if var == "phi":
            y = phi_float32(wrap_phi(y))
        branches[var] = y
        bits[var] = n
    info = {"codec": NAME, "version": 1, "precision": prec.to_json(), "bits": bits}
    return Encoded(branches, info)


def decode(
    branches: Mapping[str, np.ndarray], counts: np.ndarray, info: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """The stored values are the decoded values: float columns as float32."""
    del counts, info
    return {
        k: (np.asarray(v, np.float32) if np.issubdtype(np.asarray(v).dtype, np.floating) else v)
        for k, v in branches.items()
    }
