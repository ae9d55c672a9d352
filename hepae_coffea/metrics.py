"""Residuals and their summary figures (sigma68, RMS), and unphysical-jet counts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .data import canonical_variable

__all__ = [
    "ABSOLUTE_VARIABLES",
    "is_count",
    "residual_kind",
    "residual_summary",
    "residuals",
    "sigma68",
    "unphysical_mask",
]

#: Variables whose residual is absolute (rec - orig), not relative.
ABSOLUTE_VARIABLES = frozenset({"eta", "phi"})
_NONNEG = frozenset({"pt", "mass", "E"})


def residual_kind(variable: str) -> str:
    """``"absolute"`` or ``"relative"``: the residual a variable is judged by.

    Absolute for eta and phi, for energy fractions (NanoAOD names ending in ``EF``, such as
    ``chHEF`` or ``muEF``, or in ``Frac``/``Fraction``) and for counts (``n`` + capital
    letter, e.g. ``nConstituents``): these are often 0, where a relative residual is
    undefined. Relative otherwise (pt, mass, E, width, ...).
    """
    canon = canonical_variable(variable)
    if canon in ABSOLUTE_VARIABLES or _is_fraction_or_count(canon):
        return "absolute"
    return "relative"


def _is_fraction_or_count(name: str) -> bool:
    short = name.split("_", 1)[-1]
    return short.endswith(("EF", "Frac", "Fraction", "frac", "fraction")) or is_count(short)


def is_count(variable: str) -> bool:
    """A count by its name: ``n`` followed by a capital letter (``nConstituents``)."""
    short = canonical_variable(variable).split("_", 1)[-1]
    return len(short) > 1 and short[0] == "n" and short[1].isupper()


def residuals(
    original: np.ndarray, reconstructed: np.ndarray, variables: Sequence[str]
) -> np.ndarray:
    """Per-jet residuals: (rec - orig)/orig, or rec - orig for eta and phi (phi wrapped).

    Relative residuals of jets with ``orig == 0`` are NaN (and count as non-finite).
    """
    orig = np.asarray(original, dtype=np.float64)
    rec = np.asarray(reconstructed, dtype=np.float64)
    out = np.empty_like(orig)
    for i, v in enumerate(variables):
        d = rec[:, i] - orig[:, i]
        if canonical_variable(v) == "phi":
            d = (d + math.pi) % (2 * math.pi) - math.pi
        if residual_kind(v) == "absolute":
            out[:, i] = d
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[:, i] = np.where(orig[:, i] != 0, d / orig[:, i], np.nan)
    return out


def sigma68(x: np.ndarray) -> float:
    """Half the width of the central 68% interval (16th to 84th percentile)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    lo, hi = np.percentile(x, [15.865525393145708, 84.13447460685429])
    return float(0.5 * (hi - lo))


def unphysical_mask(values: np.ndarray, variables: Sequence[str]) -> np.ndarray:
    """Jets with a non-finite value, negative pt/mass/E, or |phi| > pi."""
    v = np.asarray(values)
    bad = ~np.isfinite(v).all(axis=1)
    for i, name in enumerate(variables):
        c = canonical_variable(name)
        if c in _NONNEG:
            bad |= v[:, i] < 0
        elif c == "phi":
            bad |= np.abs(v[:, i]) > math.pi + 1e-6
    return bad


def residual_summary(
    original: np.ndarray, reconstructed: np.ndarray, variables: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per variable: kind, mean, RMS, sigma68, 99th percentile of |residual|, fractions.

    Also a ``"_jets"`` entry with the number of jets and of unphysical reconstructions.
    """
    res = residuals(original, reconstructed, variables)
    out: dict[str, dict[str, float]] = {}
    for i, v in enumerate(variables):
        r = res[:, i]
        fin = r[np.isfinite(r)]
        out[v] = {
            "kind": residual_kind(v),  # type: ignore[dict-item]
            "mean": float(fin.mean()) if fin.size else float("nan"),
            "rms": float(np.sqrt(np.mean(fin**2))) if fin.size else float("nan"),
            "sigma68": sigma68(fin),
            "q99_abs": float(np.percentile(np.abs(fin), 99)) if fin.size else float("nan"),
            "frac_above_1pct": float(np.mean(np.abs(fin) > 0.01)) if fin.size else float("nan"),
            "frac_above_5pct": float(np.mean(np.abs(fin) > 0.05)) if fin.size else float("nan"),
            "n_nonfinite": int(r.size - fin.size),
        }
    out["_jets"] = {
        "n": len(res),
        "unphysical": int(unphysical_mask(reconstructed, variables).sum()),
    }
    return out
