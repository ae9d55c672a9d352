"""Residuals and their summary figures (sigma68, RMS), and unphysical-jet counts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..variables.registry import (
    ABSOLUTE_VARIABLES,
    canonical_variable,
    is_count,
    nonnegative_energy,
    relative_floor,
    residual_kind,
    wrap_phi,
)

__all__ = [
    "ABSOLUTE_VARIABLES",
    "is_count",
    "residual_kind",
    "residual_summary",
    "residuals",
    "sigma68",
    "unphysical_mask",
]


def residuals(
    original: np.ndarray,
    reconstructed: np.ndarray,
    variables: Sequence[str],
    units: str = "GeV",
    *,
    diff: np.ndarray | None = None,
) -> np.ndarray:
    """Per-jet residuals: (rec - orig)/orig, or rec - orig for eta and phi (phi wrapped).

    The jet mass is judged relative to ``max(|orig|, 1 GeV)`` (``units`` says what the
    values are in): near m = 0 a plain relative residual explodes. Other relative residuals
    of jets with ``orig == 0`` are NaN (and count as non-finite). ``diff``, if given, is
    ``rec - orig`` in float64, computed once by a caller that needs several residuals.
    """
    orig = np.asarray(original, dtype=np.float64)
    if diff is None:
        diff = np.asarray(reconstructed, dtype=np.float64) - orig
    out = np.empty_like(orig)
    for i, v in enumerate(variables):
        d = diff[:, i]
        if canonical_variable(v) == "phi":
            d = wrap_phi(d)
        if residual_kind(v) == "absolute":
            out[:, i] = d
        else:
            floor = relative_floor(v, units)
            den = np.maximum(np.abs(orig[:, i]), floor) if floor > 0 else orig[:, i]
            col = out[:, i]
            col[...] = np.nan
            np.divide(d, den, out=col, where=den != 0)
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
    """Jets with a non-finite value, negative pt/mass/E, or |phi| > pi (+1e-6).

    One pass over the jets (`hepae_coffea.processing.fill_kernels.unphysical`); the phi
    limit is compared in the values' own float type, as numpy compares an array with a
    Python float.
    """
    from .fill_kernels import unphysical  # numba: imported when first needed

    v = np.asarray(values)
    canon = [canonical_variable(name) for name in variables]
    kind = np.array(
        [1 if nonnegative_energy(c) else 2 if c == "phi" else 0 for c in canon], dtype=np.int64
    )
    if v.ndim != 2 or v.shape[1] != len(canon):
        raise ValueError(
            f"expected (jets, {len(canon)}) values of {list(variables)}, got {v.shape}"
        )
    dtype = v.dtype if v.dtype.kind == "f" else np.dtype(np.float64)
    phi_max = float(np.asarray(math.pi + 1e-6, dtype=dtype))
    if v.dtype not in (np.float32, np.float64):
        v = v.astype(np.float64)
    out = np.empty(len(v), dtype=bool)
    unphysical(v, kind, phi_max, out)
    return out


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
