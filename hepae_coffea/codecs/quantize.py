"""Uniform quantisation in physics coordinates, with a guaranteed maximum error.

Each variable gets a `Grid` from its bound:

- relative bound (``Xrel`` or N bits on pt, mass, E, or any variable without a nominal
  range): ``log|x|`` on a grid of step ``2 log(1 + e')``, so ``|x'/x - 1| <= e``. The
  sign is kept; **zero decodes to exactly zero**, negative values (e.g. negative masses)
  keep their sign, and **tiny values** are quantised like any other (the relative bound
  holds for every normal float32; subnormal inputs, |x| < 1.2e-38, keep an absolute error
  below 1.2e-38);
- absolute bound (``X``, or N bits on eta/phi, taken as the error N bits give at the
  nominal range |eta| <= 4.7, |phi| <= pi): ``x`` on a grid of step ``2 e'``;
- phi (absolute): ``L = ceil(pi / e')`` levels around the circle, step ``2 pi / L``,
  integers in ``[0, L)``, decoded into (-pi, pi]; the error is measured modulo 2 pi.

``e'`` is the requested error less a margin for the float32 rounding of the decoded value,
so the bound holds for the float32 output. Integers are stored with an offset in the
smallest integer type (``smallest_int_dtype``); integer input columns are kept as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .base import CodecError, Encoded, check_columns, phi_float32, smallest_int_dtype
from .precision import NOMINAL_RANGE, Bound, Precision, PrecisionError, parse_precision

__all__ = ["Grid", "decode", "encode", "make_grid"]

NAME = "quantize"
#: variables quantised in log|x| when their bound is given in bits
LOG_VARIABLES = frozenset({"pt", "mass", "m", "e", "energy", "E"})
#: relative margin for the float32 rounding of decoded values (2 ** -22 > 2 ulp / 2)
_REL_MARGIN = 2.0**-22
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Grid:
    """One variable's quantisation grid.

    Attributes
    ----------
    coord
        'log' (``k = round(log|x| / step)`` plus the sign), 'linear' (``round(x / step)``)
        or 'angle' (``round(x / step) mod levels``, decoded into (-pi, pi]).
    step
        Grid spacing in that coordinate.
    levels
        Number of levels around the circle ('angle' only, else 0).
    max_error
        The guaranteed bound: relative for 'log', absolute otherwise.
    """

    coord: Literal["log", "linear", "angle"]
    step: float
    levels: int = 0
    max_error: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "coord": self.coord,
            "step": self.step,
            "levels": self.levels,
            "max_error": self.max_error,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Grid:
        coord = d.get("coord")
        if coord not in ("log", "linear", "angle"):
            raise CodecError(f"quantisation grid with unknown coordinate {coord!r}")
        step = float(d["step"])
        if not (step > 0 and math.isfinite(step)):
            raise CodecError(f"quantisation grid with bad step {step!r}")
        levels = int(d.get("levels", 0))
        if coord == "angle" and levels < 1:
            raise CodecError(f"angle grid with bad number of levels {levels!r}")
        return cls(coord, step, levels, float(d.get("max_error", 0.0)))

    # ------------------------------------------------------------------ integers
    def to_int(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Integer codes of ``x`` (int64) and, for 'log', the signs (int8: -1, 0, 1)."""
        x = np.asarray(x, dtype=np.float64)
        if self.coord == "log":
            sign = np.sign(x).astype(np.int8)
            ax = np.abs(x)
            with np.errstate(divide="ignore"):
                lx = np.log(np.where(ax > 0, ax, 1.0))
            return np.rint(lx / self.step).astype(np.int64), sign
        q = np.rint(x / self.step).astype(np.int64)
        if self.coord == "angle":
            q = np.mod(q, self.levels)
        return q, None

    def from_int(self, q: np.ndarray, sign: np.ndarray | None = None) -> np.ndarray:
        """Float32 values of integer codes (the inverse of `to_int` up to the grid)."""
        if self.coord == "log":
            q = np.asarray(q, dtype=np.float64)
            if sign is None:
                raise CodecError("log grid needs the signs to decode")
            with np.errstate(over="ignore"):
                v = np.asarray(sign, np.float64) * np.exp(q * self.step)
        elif self.coord == "angle":
            qi = np.mod(np.asarray(q, np.int64), self.levels)
            qi = np.where(2 * qi > self.levels, qi - self.levels, qi)
            return phi_float32(qi * self.step)
        else:
            v = q * self.step
        # a grid point beyond float32's range: the largest float32 is nearer to the value
        return np.clip(v, -_F32_MAX, _F32_MAX).astype(np.float32)


def make_grid(var: str, bound: Bound, x: np.ndarray | None = None) -> Grid:
    """The grid that meets ``bound`` for variable ``var`` (``x``: the values, for margins).

    Raises
    ------
    PrecisionError
        If the bound is finer than float32 can hold after decoding.
    """
    kind = bound.kind
    if kind == "bits" and var not in LOG_VARIABLES and var in NOMINAL_RANGE:
        err, kind = bound.max_abs_error(NOMINAL_RANGE[var]), "abs"
    elif kind == "bits":
        err, kind = bound.max_rel_error(), "rel"
    else:
        err = bound.value
    if err <= 0:
        raise PrecisionError(f"{var}: {bound} asks for lossless storage; use float32 instead")
    if kind == "rel":
        eff = err - _REL_MARGIN
        if eff <= 0:
            raise PrecisionError(
                f"{var}: relative error {err:g} is finer than float32 holds (> {_REL_MARGIN:g})"
            )
        return Grid("log", 2.0 * math.log1p(eff), 0, err)
    max_abs = float(np.max(np.abs(x), initial=0.0)) if x is not None and len(x) else 0.0
    if var == "phi":
        max_abs = max(max_abs, math.pi)
    max_abs += err
    # one float32 ulp at the largest decoded |value|: covers its rounding to float32
    margin = 2.0 ** (math.floor(math.log2(max_abs)) - 23) if max_abs > 0 else 0.0
    eff = err - margin
    if eff <= 0:
        raise PrecisionError(
            f"{var}: absolute error {err:g} is finer than float32 holds at |{var}| ~ {max_abs:g}"
        )
    if var == "phi":
        levels = math.ceil(math.pi / eff)
        return Grid("angle", 2 * math.pi / levels, levels, err)
    return Grid("linear", 2.0 * eff, 0, err)


def encode(
    columns: Mapping[str, np.ndarray], counts: np.ndarray, spec: str | Precision = "nanoaod"
) -> Encoded:
    """Quantise every float column; store offset integers in the smallest integer type.

    'log' columns store ``sign * (k - kmin + 1)`` (0 means exactly zero), 'linear' ones
    ``q - qmin``, 'angle' ones ``q`` in ``[0, levels)``. ``info`` holds each grid and
    offset, and the number of zero, negative and subnormal values per log column.
    """
    prec = parse_precision(spec)
    cols, counts = check_columns(columns, counts, NAME)
    branches: dict[str, np.ndarray] = {}
    grids: dict[str, Any] = {}
    for var, x in cols.items():
        if not np.issubdtype(x.dtype, np.floating):
            branches[var] = x.copy()
            continue
        grid = make_grid(var, prec[var], x)
        q, sign = grid.to_int(x)
        entry: dict[str, Any] = {"grid": grid.to_json()}
        if grid.coord == "log":
            assert sign is not None  # log grids return the signs
            nz = sign != 0
            kmin = int(q[nz].min()) if np.any(nz) else 0
            code = sign.astype(np.int64) * (q - kmin + 1)
            entry.update(
                offset=kmin,
                zeros=int(np.count_nonzero(~nz)),
                negatives=int(np.count_nonzero(sign < 0)),
                subnormal=int(np.count_nonzero(nz & (np.abs(x) < np.finfo(np.float32).tiny))),
            )
        elif grid.coord == "linear":
            qmin = int(q.min()) if len(q) else 0
            code = q - qmin
            entry["offset"] = qmin
        else:
            code = q
            entry["offset"] = 0
        lo, hi = (int(code.min()), int(code.max())) if len(code) else (0, 0)
        branches[var] = code.astype(smallest_int_dtype(lo, hi))
        grids[var] = entry
    info = {"codec": NAME, "version": 1, "precision": prec.to_json(), "columns": grids}
    return Encoded(branches, info)


def decode(
    branches: Mapping[str, np.ndarray], counts: np.ndarray, info: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Float32 values from the stored integers (integer columns returned unchanged)."""
    del counts
    if info.get("codec") != NAME:
        raise CodecError(f"payload was written by codec {info.get('codec')!r}, not {NAME!r}")
    out: dict[str, np.ndarray] = {}
    entries = info.get("columns", {})
    for var, code in branches.items():
        if var not in entries:
            out[var] = np.asarray(code)
            continue
        entry = entries[var]
        grid = Grid.from_json(entry["grid"])
        c = np.asarray(code, dtype=np.int64)
        off = int(entry.get("offset", 0))
        if grid.coord == "log":
            sign = np.sign(c).astype(np.int8)
            out[var] = grid.from_int(np.abs(c) + off - 1, sign)
        else:
            out[var] = grid.from_int(c + off)
    missing = [v for v in entries if v not in branches]
    if missing:
        raise CodecError(f"quantize payload lacks the branches {missing}")
    return out
