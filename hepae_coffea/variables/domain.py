"""The model's domain: which jets a model may decode, and why the others may not.

A jet is *out of domain* (not given to the model, not compared, counted per reason) when,
in the model's units and checked in this order:

``nonfinite``
    a variable is NaN or infinite;
``absurd``
    a value's magnitude exceeds :data:`ABSURD_GEV` (1e6 GeV: no collider jet has it; a
    1e30 is a filler or a corrupt value);
``pt_nonpositive``
    pt <= 0;
``mass_negative``
    mass < -tolerance, the tolerance being :data:`MASS_TOLERANCE_REL` x pt, at most half
    the offset of the model's log transform of the mass (reconstruction writes tiny negative masses from rounding;
    larger ones are not jets the model knows);
``phi_range``
    |phi| > pi (beyond rounding);
``outside_training``
    a value outside the model's training range by more than the margin: energy-like
    variables (pt, mass, E) below the training minimum / 1.1 or above the training
    maximum x 1.1 (10% in both directions); other variables beyond 10% of the training
    range's width on either side. Phi is never checked against the training range.
    Beyond this the model extrapolates, and its reconstruction degrades quickly: for the
    shipped model (trained on pt 20-476 GeV) the sigma68 of the eta residual is 0.010 at
    20 GeV, 0.020 at 15 GeV and 0.05 at 10 GeV.

The training range is the model metadata's ``training.data.ranges`` (min, median, max). A
model without it falls back to its normalisation: centre +- 5 scales of each variable's
transform (in log space for log transforms).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .registry import canonical_variable, model_units, nonnegative_energy, unit_scale

__all__ = [
    "ABSURD_GEV",
    "MASS_TOLERANCE_REL",
    "REASONS",
    "Domain",
    "model_domain",
]

#: Magnitude (GeV, or the plain value for dimensionless variables) beyond which a value is absurd.
ABSURD_GEV = 1e6
#: Negative masses down to -MASS_TOLERANCE_REL x pt are in the domain (rounding in reconstruction).
MASS_TOLERANCE_REL = 0.01
#: Margin beyond the training range: a factor for energy-like variables ...
ENERGY_MARGIN_FACTOR = 1.1
#: ... and a fraction of the range's width for the others.
OTHER_MARGIN_FRACTION = 0.1
#: Fallback range from the normalisation: centre +- this many scales.
FALLBACK_SCALES = 5.0

REASONS = (
    "nonfinite",
    "absurd",
    "pt_nonpositive",
    "mass_negative",
    "phi_range",
    "outside_training",
)


@dataclass(frozen=True)
class Domain:
    """Allowed values per model variable (in the model's units).

    Attributes
    ----------
    variables : tuple of str
        The model's variables, in order.
    lo, hi : tuple of float
        Allowed interval per variable (``-inf``/``inf`` where unbounded).
    mass_tolerance_cap : float
        Largest negative-mass tolerance (the mass transform's offset; inf without one).
    units : str
        The model's energy unit.
    source : str
        ``"training ranges"`` or ``"normalisation"`` (the fallback).
    """

    variables: tuple[str, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    mass_tolerance_cap: float
    units: str
    source: str

    def reasons(self, values: np.ndarray) -> np.ndarray:
        """Per jet: index into :data:`REASONS` of the first reason it is out, or -1 (in)."""
        from ..processing.fill_kernels import domain_codes  # numba: imported when needed

        x = np.asarray(values)
        if x.dtype != np.float32:  # float32 stays: the kernel compares in float64
            x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.variables):
            raise ValueError(
                f"expected (jets, {len(self.variables)}) values of {list(self.variables)}, "
                f"got shape {x.shape}"
            )
        canon = [canonical_variable(v) for v in self.variables]
        scale = unit_scale(self.units)
        absurd = np.array(
            [
                ABSURD_GEV / scale
                if nonnegative_energy(v) or v in ("px", "py", "pz")
                else ABSURD_GEV
                for v in self.variables
            ]
        )
        out = np.empty(len(x), dtype=np.int8)
        domain_codes(  # one pass over the jets, the reasons checked in order
            x,
            absurd,
            canon.index("pt") if "pt" in canon else -1,
            canon.index("mass") if "mass" in canon else -1,
            canon.index("phi") if "phi" in canon else -1,
            MASS_TOLERANCE_REL,
            self.mass_tolerance_cap,
            math.pi + 1e-6,
            np.asarray(self.lo, dtype=np.float64),
            np.asarray(self.hi, dtype=np.float64),
            out,
        )
        return out

    def counts(self, codes: np.ndarray) -> dict[str, int]:
        """``{reason: number of jets}`` of :meth:`reasons`' output."""
        return {r: int((codes == k).sum()) for k, r in enumerate(REASONS)}


def _from_ranges(variable: str, rng: Sequence[float]) -> tuple[float, float]:
    lo, hi = float(rng[0]), float(rng[-1])
    canon = canonical_variable(variable)
    if canon == "phi":
        return -math.inf, math.inf
    if nonnegative_energy(canon):  # a training minimum of 0: the mass tolerance rules below 0
        return (lo / ENERGY_MARGIN_FACTOR if lo > 0 else -math.inf), hi * ENERGY_MARGIN_FACTOR
    pad = OTHER_MARGIN_FRACTION * (hi - lo)
    return lo - pad, hi + pad


def _from_normalisation(t: Mapping[str, Any]) -> tuple[float, float]:
    kind = t.get("kind")
    c, s = float(t.get("center", 0.0)), float(t.get("scale", 1.0))
    if kind == "log":
        off = float(t.get("offset", 0.0))
        return math.exp(c - FALLBACK_SCALES * s) - off, math.exp(c + FALLBACK_SCALES * s) - off
    if kind in ("standard", "scale"):
        return c - FALLBACK_SCALES * s, c + FALLBACK_SCALES * s
    return -math.inf, math.inf


def model_domain(metadata: Mapping[str, Any]) -> Domain:
    """The domain of a model, from its metadata (training ranges, else normalisation)."""
    variables = tuple(v["name"] for v in metadata["variables"])
    ranges = (metadata.get("training") or {}).get("data", {}).get("ranges") or {}
    norm = {t.get("variable"): t for t in metadata.get("normalisation") or []}
    lo: list[float] = []
    hi: list[float] = []
    use_ranges = all(v in ranges for v in variables)
    for v in variables:
        if use_ranges:
            a, b = _from_ranges(v, ranges[v])
        elif canonical_variable(v) == "phi":
            a, b = -math.inf, math.inf
        else:
            a, b = _from_normalisation(norm.get(v, {}))
        lo.append(a)
        hi.append(b)
    cap = math.inf
    for v in variables:
        t = norm.get(v, {})
        if canonical_variable(v) == "mass" and t.get("kind") == "log":
            cap = 0.5 * float(t.get("offset", 0.0))  # log(m + offset) stays finite
    return Domain(
        variables,
        tuple(lo),
        tuple(hi),
        cap,
        model_units(metadata),
        "training ranges" if use_ranges else "normalisation",
    )
