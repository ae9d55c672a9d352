"""Precision specifications: how far each decoded value may be from the original.

A SPEC is a preset name or comma-separated ``VAR=VALUE`` tokens:

- ``nanoaod``: pt 10, eta 12, phi 12, mass 10 mantissa bits (what CMS NanoAOD keeps);
- ``atlas-high``: 7 bits for pt, eta, phi, mass; ``atlas-low``: 15 bits;
- ``VAR=Nbits`` (``pt=10bits``): N mantissa bits, round to nearest, so a relative error of
  at most ``2**-(N+1)``;
- ``VAR=X`` (``eta=4.9e-4``): absolute maximum error X (a bare number is always an error,
  ``eta=1`` means 1.0, not one bit);
- ``VAR=Xrel`` (``pt=4.9e-4rel``): relative maximum error X.

Bits and errors are comparable: ``bits_max_rel_error(N)`` is the relative error N bits
guarantee and ``bits_max_abs_error(N, max_abs)`` the absolute error they guarantee for
values up to ``max_abs`` (half a unit in the last place of the largest binade).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import HepaeError

__all__ = [
    "NOMINAL_RANGE",
    "PRESETS",
    "Bound",
    "Precision",
    "PrecisionError",
    "bits_for_abs_error",
    "bits_for_rel_error",
    "bits_max_abs_error",
    "bits_max_rel_error",
    "parse_precision",
]

#: largest |value| used to turn a bit count into an absolute error for angle-like variables
#: (NanoAOD jets reach |eta| < 4.7; |phi| <= pi)
NOMINAL_RANGE = {"eta": 4.7, "phi": math.pi}

PRESETS: dict[str, dict[str, int]] = {
    "nanoaod": {"pt": 10, "eta": 12, "phi": 12, "mass": 10},
    "atlas-high": {"pt": 7, "eta": 7, "phi": 7, "mass": 7},
    "atlas-low": {"pt": 15, "eta": 15, "phi": 15, "mass": 15},
}

_NUMBER = r"[+]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_TOKEN = re.compile(rf"^(?P<var>[A-Za-z_][A-Za-z0-9_]*)=(?P<num>{_NUMBER})(?P<unit>bits?|rel)?$")


class PrecisionError(HepaeError, ValueError):
    """A precision SPEC (or a bound in it) cannot be understood or met."""


@dataclass(frozen=True)
class Bound:
    """One variable's precision: ``kind`` 'bits' (value = N), 'abs' or 'rel' (max error)."""

    kind: Literal["bits", "abs", "rel"]
    value: float

    def __str__(self) -> str:
        if self.kind == "bits":
            return f"{int(self.value)}bits"
        return f"{self.value:g}" + ("rel" if self.kind == "rel" else "")

    def max_rel_error(self) -> float:
        """Relative max error (bits: ``2**-(N+1)``); an absolute bound has none."""
        if self.kind == "bits":
            return bits_max_rel_error(int(self.value))
        if self.kind == "rel":
            return self.value
        raise PrecisionError(f"bound {self} is absolute, it has no relative max error")

    def max_abs_error(self, max_abs: float) -> float:
        """Absolute max error for values with ``|x| <= max_abs``."""
        if self.kind == "bits":
            return bits_max_abs_error(int(self.value), max_abs)
        if self.kind == "abs":
            return self.value
        return self.value * max_abs


def bits_max_rel_error(bits: int) -> float:
    """Relative max error of round-to-nearest to ``bits`` mantissa bits: ``2**-(bits+1)``.

    23 bits is float32 itself (error 0).
    """
    _check_bits(bits)
    return 0.0 if bits >= 23 else 2.0 ** -(bits + 1)


def bits_max_abs_error(bits: int, max_abs: float) -> float:
    """Absolute max error of ``bits`` mantissa bits for ``|x| <= max_abs``.

    Half a unit in the last place of the binade holding ``max_abs``:
    ``2**(floor(log2(max_abs)) - bits - 1)``; e.g. 12 bits and |phi| <= pi give 2**-12.
    """
    _check_bits(bits)
    if bits >= 23 or max_abs <= 0:
        return 0.0
    return 2.0 ** (math.floor(math.log2(max_abs)) - bits - 1)


def bits_for_rel_error(err: float) -> int:
    """Fewest mantissa bits whose round-to-nearest relative error is at most ``err``."""
    if not err > 0:
        return 23
    return min(23, max(0, math.ceil(-math.log2(err) - 1)))


def bits_for_abs_error(err: float, max_abs: float) -> int:
    """Fewest mantissa bits whose absolute error is at most ``err`` for ``|x| <= max_abs``."""
    if max_abs <= 0 or not math.isfinite(max_abs):
        return 0 if max_abs <= 0 else 23
    if not err > 0:
        return 23
    exp = math.floor(math.log2(max_abs))
    return min(23, max(0, math.ceil(exp - 1 - math.log2(err))))


def _check_bits(bits: int) -> None:
    if not 0 <= bits <= 23:
        raise PrecisionError(f"mantissa bits must be in 0..23, got {bits}")


@dataclass(frozen=True)
class Precision:
    """Per-variable bounds, parsed from a SPEC (see the module docstring)."""

    bounds: Mapping[str, Bound]
    spec: str = ""

    def __getitem__(self, var: str) -> Bound:
        try:
            return self.bounds[var]
        except KeyError:
            raise PrecisionError(
                f"precision {self.spec!r} gives no bound for variable {var!r} "
                f"(it has: {', '.join(self.bounds)})"
            ) from None

    def __contains__(self, var: object) -> bool:
        return var in self.bounds

    def require(self, variables: Iterable[str]) -> None:
        """Raise `PrecisionError` naming every variable without a bound."""
        missing = [v for v in variables if v not in self.bounds]
        if missing:
            raise PrecisionError(
                f"precision {self.spec!r} gives no bound for {', '.join(missing)} "
                f"(it has: {', '.join(self.bounds)})"
            )

    def to_json(self) -> dict[str, list[Any]]:
        """``{var: [kind, value]}``, plain JSON."""
        return {v: [b.kind, b.value] for v, b in self.bounds.items()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Precision:
        """Inverse of `to_json`."""
        bounds: dict[str, Bound] = {}
        for v, kv in d.items():
            if not (isinstance(kv, list | tuple) and len(kv) == 2):
                raise PrecisionError(f"precision entry for {v!r} is not [kind, value]: {kv!r}")
            kind, value = kv
            if kind not in ("bits", "abs", "rel"):
                raise PrecisionError(f"precision kind for {v!r} unknown: {kind!r}")
            bounds[v] = Bound(kind, float(value))
        spec = ",".join(f"{v}={b}" for v, b in bounds.items())
        return cls(bounds, spec)


def parse_precision(spec: str | Precision) -> Precision:
    """Parse a SPEC (preset name or ``VAR=Nbits|X|Xrel`` tokens) into a `Precision`.

    Raises
    ------
    PrecisionError
        Naming the token that is not understood (unknown preset, bad number, bits outside
        0..23, an error that is not positive, a variable given twice).

    Examples
    --------
    >>> p = parse_precision("pt=4.9e-4rel,eta=4.9e-4,phi=12bits")
    >>> p["pt"], p["eta"], p["phi"]
    (Bound(kind='rel', value=0.00049), Bound(kind='abs', value=0.00049), Bound(kind='bits', value=12.0))
    """
    if isinstance(spec, Precision):
        return spec
    text = str(spec).strip()
    if not text:
        raise PrecisionError("empty precision spec")
    if text.lower() in PRESETS:
        name = text.lower()
        return Precision({v: Bound("bits", float(b)) for v, b in PRESETS[name].items()}, name)
    bounds: dict[str, Bound] = {}
    for raw in text.split(","):
        tok = raw.strip()
        m = _TOKEN.match(tok)
        if m is None:
            hint = (
                f"; presets: {', '.join(PRESETS)}"
                if "=" not in tok
                else " (expected VAR=Nbits, VAR=X or VAR=Xrel)"
            )
            raise PrecisionError(f"precision token {tok!r} in {text!r} not understood{hint}")
        var, num, unit = m["var"], m["num"], m["unit"]
        if var in bounds:
            raise PrecisionError(f"precision token {tok!r}: variable {var!r} given twice")
        value = float(num)
        if unit in ("bit", "bits"):
            if not value.is_integer() or not 0 <= value <= 23:
                raise PrecisionError(
                    f"precision token {tok!r}: mantissa bits must be an integer in 0..23"
                )
            bounds[var] = Bound("bits", value)
        else:
            if not (value > 0 and math.isfinite(value)):
                raise PrecisionError(f"precision token {tok!r}: max error must be positive")
            if unit == "rel" and value >= 1:
                raise PrecisionError(f"precision token {tok!r}: relative error must be below 1")
            bounds[var] = Bound("rel" if unit == "rel" else "abs", value)
    return Precision(bounds, text)
