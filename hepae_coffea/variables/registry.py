"""What a jet variable is: one home for names, aliases, units, labels and residual rules.

Every other module asks this one: the file readers (which branch holds a variable in each
format), the model export (units in the metadata), the histograms and figures (axis
labels), the metrics (relative or absolute residual, phi wrapping) and the domain checks
(physical range).

Units: momenta, energies and masses are *energy-like*; their values are scaled by
:func:`to_gev` / :func:`from_gev` between a file's units (MeV for ATLAS xAOD and the 2020
ATLAS Open Data ntuples) and GeV, the unit of models, plots and reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import HepaeError

if TYPE_CHECKING:  # numpy is imported where values are converted: the CLI parser needs none
    import numpy as np

__all__ = [
    "ABSOLUTE_VARIABLES",
    "ENERGY_UNITS",
    "VARIABLES",
    "Variable",
    "canonical_variable",
    "check_units",
    "convert",
    "energy_like",
    "from_gev",
    "get_variable",
    "is_count",
    "model_units",
    "nonnegative_energy",
    "normalise_units",
    "relative_floor",
    "residual_kind",
    "spellings",
    "tex_label",
    "to_gev",
    "unit_label",
    "unit_scale",
    "wrap_phi",
]

#: Energy units a file or model may state, as a factor to GeV.
ENERGY_UNITS: dict[str, float] = {"MeV": 1e-3, "GeV": 1.0, "TeV": 1e3}


@dataclass(frozen=True)
class Variable:
    """One jet variable.

    Attributes
    ----------
    name : str
        Canonical name (``pt``, ``eta``, ``phi``, ``mass``, ``E``, ``px``, ``py``, ``pz``).
    aliases : tuple of str
        Other spellings accepted anywhere (``m``, ``pT``, ``e``, ...).
    by_format : mapping
        The field name the variable has in each file format, where it is not the canonical
        name (e.g. ``{"physlite": "m"}``); the branch is the format's prefix + this name.
    kind : {"energy", "angle", "none"}
        ``energy``: GeV-like (momenta, energies, masses), scaled between MeV and GeV;
        ``angle``: radians; ``none``: dimensionless.
    tex : str
        TeX label without dollars (``p_{T}``).
    residual : {"relative", "absolute"}
        How a reconstruction is judged: (rec - orig)/orig or rec - orig.
    wrap : bool
        An angle defined modulo 2 pi, compared and kept in (-pi, pi].
    physical : (float, float)
        Physical range (GeV for energy-like variables); values outside are not jets.
    floor_gev : float or None
        For relative residuals: the denominator is ``max(|orig|, floor)`` (GeV), so the
        residual of a near-zero value does not explode (the jet mass).
    """

    name: str
    aliases: tuple[str, ...]
    kind: str
    tex: str
    residual: str
    wrap: bool = False
    physical: tuple[float, float] = (-math.inf, math.inf)
    floor_gev: float | None = None
    by_format: Mapping[str, str] = field(default_factory=dict)


#: Mass scale below which the jet mass residual is absolute, in GeV: the relative residual
#: (rec - orig)/orig explodes as orig -> 0, so it is taken as (rec - orig)/max(orig, 1 GeV).
MASS_FLOOR_GEV = 1.0

VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable(
            "pt",
            ("pT", "Pt", "PT"),
            "energy",
            r"p_{T}",
            "relative",
            physical=(0.0, math.inf),
            by_format={"opendata2020": "pt", "opendata2025": "pt"},
        ),
        Variable("eta", ("Eta",), "none", r"\eta", "absolute"),
        Variable(
            "phi",
            ("Phi",),
            "angle",
            r"\phi",
            "absolute",
            wrap=True,
            physical=(-math.pi, math.pi),
        ),
        Variable(
            "mass",
            ("m", "M", "Mass"),
            "energy",
            "m",
            "relative",
            physical=(0.0, math.inf),
            floor_gev=MASS_FLOOR_GEV,
            by_format={"physlite": "m"},
        ),
        Variable(
            "E",
            ("e", "energy", "Energy"),
            "energy",
            "E",
            "relative",
            physical=(0.0, math.inf),
            by_format={"opendata2020": "E", "opendata2025": "e"},
        ),
        Variable("px", ("Px",), "energy", r"p_{x}", "relative"),
        Variable("py", ("Py",), "energy", r"p_{y}", "relative"),
        Variable("pz", ("Pz",), "energy", r"p_{z}", "relative"),
    )
}

_BY_SPELLING: dict[str, str] = {s: v.name for v in VARIABLES.values() for s in (v.name, *v.aliases)}

#: Canonical variables whose residual is absolute (rec - orig), not relative.
ABSOLUTE_VARIABLES = frozenset(n for n, v in VARIABLES.items() if v.residual == "absolute")


def canonical_variable(name: str) -> str:
    """Return the canonical name of a jet variable (``m`` -> ``mass``, ``pT`` -> ``pt``).

    Names not in the registry (``nConstituents``, ``chHEF``) are returned unchanged.

    >>> canonical_variable("m"), canonical_variable("pT"), canonical_variable("chHEF")
    ('mass', 'pt', 'chHEF')
    """
    return _BY_SPELLING.get(name, name)


def get_variable(name: str) -> Variable | None:
    """The registry entry of a variable (any spelling), or None for other variables."""
    return VARIABLES.get(canonical_variable(name))


def spellings(name: str, fmt: str | None = None) -> tuple[str, ...]:
    """Field names to look for, most specific first: the format's name, then all aliases."""
    v = get_variable(name)
    if v is None:
        return (name,)
    first = (v.by_format[fmt],) if fmt and fmt in v.by_format else ()
    return tuple(dict.fromkeys((*first, name, v.name, *v.aliases)))


def energy_like(name: str) -> bool:
    """True for momenta, energies and masses (scaled between MeV and GeV)."""
    v = get_variable(name)
    return v is not None and v.kind == "energy"


def nonnegative_energy(name: str) -> bool:
    """True for pt, mass and E: energy-like and physically >= 0 (log-scaled axes)."""
    v = get_variable(name)
    return v is not None and v.kind == "energy" and v.physical[0] >= 0


def unit_label(name: str, units: str = "GeV") -> str:
    """Unit of a variable's values: ``units`` (GeV) when energy-like, ``rad`` for angles."""
    v = get_variable(name)
    if v is None:
        return ""
    return {"energy": units, "angle": "rad"}.get(v.kind, "")


def tex_label(name: str) -> str:
    """TeX label without dollars (``p_{T}``); other names with underscores escaped."""
    v = get_variable(name)
    return v.tex if v is not None else name.replace("_", r"\_")


def is_count(variable: str) -> bool:
    """A count by its name: ``n`` followed by a capital letter (``nConstituents``)."""
    short = canonical_variable(variable).split("_", 1)[-1]
    return len(short) > 1 and short[0] == "n" and short[1].isupper()


def _is_fraction_or_count(name: str) -> bool:
    short = name.split("_", 1)[-1]
    return short.endswith(("EF", "Frac", "Fraction", "frac", "fraction")) or is_count(short)


def residual_kind(variable: str) -> str:
    """``"absolute"`` or ``"relative"``: the residual a variable is judged by.

    Absolute for eta and phi, for energy fractions (NanoAOD names ending in ``EF``, such as
    ``chHEF`` or ``muEF``, or in ``Frac``/``Fraction``) and for counts (``n`` + capital
    letter, e.g. ``nConstituents``): these are often 0, where a relative residual is
    undefined. Relative otherwise (pt, mass, E, width, ...).
    """
    v = get_variable(variable)
    if v is not None:
        return v.residual
    return "absolute" if _is_fraction_or_count(variable) else "relative"


def relative_floor(variable: str, units: str = "GeV") -> float:
    """Smallest denominator of the variable's relative residual, in ``units`` (0: none)."""
    v = get_variable(variable)
    if v is None or v.floor_gev is None:
        return 0.0
    return v.floor_gev / unit_scale(units)


def wrap_phi(x: np.ndarray | float) -> np.ndarray:
    """Angles (or angle differences) mapped into (-pi, pi]."""
    import numpy as np

    y = np.mod(np.asarray(x, dtype=np.float64) + math.pi, 2 * math.pi) - math.pi
    return np.where(y == -math.pi, math.pi, y)


# ---------------------------------------------------------------------------------------
# units


def normalise_units(units: str, where: str = "units") -> str:
    """Canonical spelling of an energy unit (``mev`` -> ``MeV``); error for others."""
    for u in ENERGY_UNITS:
        if str(units).lower() == u.lower():
            return u
    raise HepaeError(
        f"{where}: unknown energy unit {units!r}; expected one of {list(ENERGY_UNITS)}"
    )


def unit_scale(units: str) -> float:
    """Factor taking values in ``units`` to GeV (MeV -> 1e-3)."""
    return ENERGY_UNITS[normalise_units(units)]


def _scale_columns(values: np.ndarray, variables: Sequence[str], factor: float) -> np.ndarray:
    import numpy as np

    out = np.array(values, dtype=np.float64, copy=True)
    if factor == 1.0:
        return out
    for i, v in enumerate(variables):
        if energy_like(v):
            out[..., i] *= factor
    return out


def to_gev(values: np.ndarray, variables: Sequence[str], units: str) -> np.ndarray:
    """A copy of ``values`` (last axis = ``variables``) with energy-like columns in GeV."""
    return _scale_columns(values, variables, unit_scale(units))


def from_gev(values: np.ndarray, variables: Sequence[str], units: str) -> np.ndarray:
    """Inverse of :func:`to_gev`: energy-like columns from GeV back to ``units``."""
    return _scale_columns(values, variables, 1.0 / unit_scale(units))


def convert(
    values: np.ndarray, variables: Sequence[str], from_units: str, to_units: str
) -> np.ndarray:
    """A copy of ``values`` with the energy-like columns from ``from_units`` to ``to_units``."""
    factor = unit_scale(from_units) / unit_scale(to_units)
    return _scale_columns(values, variables, factor)


def model_units(metadata: Mapping[str, object]) -> str:
    """The energy unit a model works in (its metadata's ``units``; GeV for older models)."""
    return normalise_units(str(metadata.get("units") or "GeV"), "model metadata")


def check_units(values_units: str, metadata: Mapping[str, object], where: str) -> None:
    """Refuse to run a model on values in other units than its own.

    Called where values enter a model: a GeV model fed MeV values decodes plausible-looking
    wrong jets, so this is an error, never a silent mismatch.
    """
    want = model_units(metadata)
    have = normalise_units(values_units, where)
    if have != want:
        raise HepaeError(
            f"{where}: values are in {have} but the model {metadata.get('path', '')!s} works "
            f"in {want}; convert them first (to_gev/from_gev)"
        )
