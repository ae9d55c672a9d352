"""Jets stored with E instead of mass (ATLAS Open Data ntuples).

The array codecs store the file's own (pt, eta, phi, E), each within its bound. The
autoencoder takes the mass, computed here from E; decompress writes E back from the
decoded (pt, eta, mass), and compress reports how far that E is from the file's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import awkward as ak
import numpy as np

from ..errors import HepaeError
from ..variables.registry import to_gev
from .choose import KINEMATICS

__all__ = [
    "ENERGY_DEFAULT_CODEC",
    "ENERGY_KINEMATICS",
    "energy_from_mass",
    "energy_route",
    "energy_summary",
    "mass_from_energy",
    "negative_m2",
    "original_energy",
]

#: the four-vector as ATLAS Open Data ntuples store it (E instead of mass)
ENERGY_KINEMATICS = ("pt", "eta", "phi", "E")
#: the default codec with a precision for jets with E (the entropy coder's model is
#: built for the mass)
ENERGY_DEFAULT_CODEC = "quantize"


def energy_route(
    kw: dict[str, Any],
    codec: str,
    variables: Sequence[str],
    precision: str | None,
    where: str,
    *,
    event_level: bool = False,
) -> tuple[list[str], dict[str, Any]]:
    """The variables to compress for a source found by `detect_source`, and the keyword
    arguments for `resolve_source`.

    Jets with E instead of mass: the array codecs store the file's own pt, eta, phi and E
    (each within its bound); the autoencoder takes the mass, computed from E, and
    decompress writes E back from the decoded values. Raises `HepaeError` for what cannot
    be done with E (an event-level model, a model with other variables, ``ae`` with a
    precision, which would bound the mass rather than E).
    """
    kw = dict(kw)
    if not kw.pop("energy", False):
        return list(variables), kw
    if codec != "ae":
        return list(ENERGY_KINEMATICS), kw
    if list(variables) != list(KINEMATICS) or event_level:
        raise HepaeError(
            f"{where}: the jets have E instead of mass; the autoencoder route computes the mass "
            f"from E for jet-level (pt, eta, phi, mass) models only, not {list(variables)}"
            + (" (event-level)" if event_level else "")
        )
    if precision is not None:
        raise HepaeError(
            f"{where}: the jets have E instead of mass; --codec ae --precision would bound the "
            f"mass computed from E, not E: use --codec quantize or truncate for E within a bound"
        )
    kw["mass_from_energy"] = True
    return list(variables), kw


def mass_from_energy(pt: np.ndarray, eta: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """sqrt(max(E^2 - p^2, 0)) with p = pt cosh(eta) (float64): jets with E < p (negative
    m^2, outside the model's domain) get mass 0; `negative_m2` counts them."""
    p = np.asarray(pt, np.float64) * np.cosh(np.asarray(eta, np.float64))
    e = np.asarray(energy, np.float64)
    return np.sqrt(np.maximum((e - p) * (e + p), 0.0))


def negative_m2(pt: np.ndarray, eta: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Jets whose E is below |p| = pt cosh(eta) (E^2 < p^2: no real mass)."""
    p = np.asarray(pt, np.float64) * np.cosh(np.asarray(eta, np.float64))
    return np.asarray(energy, np.float64) < p


def energy_from_mass(rec: np.ndarray, variables: Sequence[str]) -> np.ndarray:
    """Decoded (pt, eta, phi, mass) with the mass column replaced by
    E = sqrt(m^2 + (pt cosh eta)^2) (any common energy unit)."""
    out = np.array(rec, np.float64, copy=True)
    i, ipt, ieta = (list(variables).index(v) for v in ("mass", "pt", "eta"))
    out[:, i] = np.hypot(out[:, ipt] * np.cosh(out[:, ieta]), out[:, i])
    return out


def original_energy(arrays: Any, branches: dict[str, str], units: str) -> np.ndarray:
    """One block's original (pt, eta, E) in GeV, (n, 3) float64, from the file's branches
    ``branches`` (``{"pt": ..., "eta": ..., "E": ...}``) in ``units``."""
    cols = [branches[v] for v in ("pt", "eta", "E")]
    orig = np.stack([ak.to_numpy(ak.flatten(arrays[c])).astype(np.float64) for c in cols], 1)
    return to_gev(orig, ["pt", "eta", "E"], units)


def energy_summary(
    orig: np.ndarray,
    latents: np.ndarray,
    decode: Callable[[np.ndarray], np.ndarray],
    variables: Sequence[str],
) -> dict[str, Any]:
    """E restored from the decoded (pt, eta, mass), as decompress writes it, against the
    file's E: the largest errors, and the jets with E < |p| (no real mass: out of domain).

    Parameters
    ----------
    orig
        The original (pt, eta, E) in GeV, (n, 3).
    latents
        The stored latents of the same jets, (n, latent_dim) float32.
    decode
        The model's decoder, numpy float32 latents -> (n, len(variables)).
    variables
        The model's variables (pt, eta, phi, mass in some order).
    """
    rec = decode(latents) if len(latents) else np.zeros((0, len(variables)))
    e_rec = energy_from_mass(rec.astype(np.float64), variables)[:, list(variables).index("mass")]
    e = orig[:, 2]
    d = np.abs(e_rec - e)
    rel = np.divide(d, np.abs(e), out=np.where(d > 0, np.inf, 0.0), where=e != 0)
    neg = negative_m2(orig[:, 0], orig[:, 1], e)

    def largest(mask: np.ndarray) -> dict[str, float]:
        return {"abs": float(d[mask].max(initial=0.0)), "rel": float(rel[mask].max(initial=0.0))}

    return {
        "jets": len(e),
        "jets_negative_m2": int(neg.sum()),
        "max_error": largest(np.ones(len(e), bool)),
        "max_error_real_mass": largest(~neg),
        "rel_error_q68": float(np.quantile(rel, 0.68)) if len(rel) else 0.0,
    }
