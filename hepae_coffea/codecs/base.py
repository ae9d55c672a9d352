"""What every codec returns, and the small helpers they share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import HepaeError

__all__ = [
    "CodecError",
    "Encoded",
    "check_columns",
    "circular_error",
    "phi_float32",
    "smallest_int_dtype",
    "wrap_phi",
]

#: integer types tried in order by `smallest_int_dtype` (all writable as ROOT branches)
_INT_TYPES = (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64)


class CodecError(HepaeError, ValueError):
    """Input a codec cannot encode (non-finite values, wrong shapes) or a corrupt payload."""


@dataclass
class Encoded:
    """A codec's output.

    Attributes
    ----------
    branches
        Flat arrays to store as ROOT branches. A branch is per jet (its length is
        ``counts.sum()``, jagged with the event's jet count) unless it is listed in
        ``entry_sizes``.
    info
        Plain JSON-able dict (numbers, strings, lists): everything ``decode`` needs besides
        the branches and the jet counts. It never holds code or pickles.
    entry_sizes
        For branches that are not per jet: the number of elements per event (same length
        as ``counts``), e.g. the entropy codec's coded words, all in a block's first event.
    """

    branches: dict[str, np.ndarray]
    info: dict[str, Any]
    entry_sizes: dict[str, np.ndarray] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Bytes of the branch data before any ROOT compression."""
        return int(sum(a.nbytes for a in self.branches.values()))


def check_columns(
    columns: Mapping[str, np.ndarray], counts: np.ndarray, codec: str
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Validate per-jet columns against per-event ``counts``; return them as numpy arrays.

    Raises `CodecError` naming the column whose length is wrong or that holds non-finite
    values (with their number), since no codec here can store them faithfully.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or (counts.size and (counts.min() < 0)):
        raise CodecError(f"{codec}: counts must be a 1-d array of non-negative jet counts")
    integral = np.issubdtype(counts.dtype, np.integer) or np.all(counts == np.floor(counts))
    if counts.size and not integral:
        raise CodecError(f"{codec}: counts must be integers")
    counts = counts.astype(np.int64)
    n = int(counts.sum())
    out = {}
    for name, col in columns.items():
        a = np.asarray(col)
        if a.ndim != 1 or len(a) != n:
            raise CodecError(
                f"{codec}: column {name!r} has shape {a.shape}, expected ({n},) "
                f"(one value per jet, sum of counts)"
            )
        if np.issubdtype(a.dtype, np.floating):
            bad = int(np.count_nonzero(~np.isfinite(a)))
            if bad:
                raise CodecError(
                    f"{codec}: column {name!r} has {bad} non-finite value(s) (NaN or inf); "
                    f"drop or fix those jets first"
                )
        out[name] = a
    return out, counts


def smallest_int_dtype(lo: int, hi: int) -> np.dtype:
    """The smallest integer dtype holding every value in ``[lo, hi]`` (unsigned first)."""
    for dt in _INT_TYPES:
        ii = np.iinfo(dt)
        if ii.min <= lo and hi <= ii.max:
            return np.dtype(dt)
    raise CodecError(f"integer codes in [{lo}, {hi}] do not fit int64")


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Angles moved into (-pi, pi] by multiples of 2 pi (float64 arithmetic)."""
    p = np.asarray(phi, dtype=np.float64)
    out = np.where(p > math.pi, p - 2 * math.pi, p)
    out = np.where(out <= -math.pi, out + 2 * math.pi, out)
    big = (out > math.pi) | (out <= -math.pi)
    if np.any(big):  # far outside: the general formula
        out[big] = math.pi - np.mod(math.pi - out[big], 2 * math.pi)
    return out


def phi_float32(phi: np.ndarray) -> np.ndarray:
    """Float32 angles in (-pi, pi] (float64 input already wrapped).

    A value just above -pi can round to ``-float32(pi)``, which is below -pi; it becomes
    ``float32(pi)``, the same point on the circle.
    """
    out = np.asarray(phi, np.float64).astype(np.float32)
    out[out < -math.pi] = np.float32(math.pi)
    return out


def circular_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| modulo 2 pi, in [0, pi] (float64)."""
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) % (2 * math.pi)
    return np.minimum(d, 2 * math.pi - d)
