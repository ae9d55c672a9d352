"""The variable registry: names, units, residual rules, unit conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hepae_coffea.errors import HepaeError
from hepae_coffea.io import jets as data_module
from hepae_coffea.processing.metrics import residuals
from hepae_coffea.variables.registry import (
    canonical_variable,
    check_units,
    from_gev,
    residual_kind,
    spellings,
    tex_label,
    to_gev,
    unit_label,
    wrap_phi,
)


@pytest.mark.parametrize(
    ("name", "canon"),
    [("m", "mass"), ("pT", "pt"), ("e", "E"), ("E", "E"), ("Eta", "eta"), ("chHEF", "chHEF")],
)
def test_canonical(name, canon):
    assert canonical_variable(name) == canon
    assert data_module.canonical_variable(name) == canon  # re-exported


def test_labels_units_and_kinds():
    assert (unit_label("pt"), unit_label("m"), unit_label("phi"), unit_label("eta")) == (
        "GeV",
        "GeV",
        "rad",
        "",
    )
    assert unit_label("E", "MeV") == "MeV"
    assert tex_label("pt") == "p_{T}"
    assert tex_label("my_var") == r"my\_var"
    kinds = {
        v: residual_kind(v) for v in ("pt", "m", "eta", "phi", "chHEF", "nConstituents", "width")
    }
    assert kinds == {
        "pt": "relative",
        "m": "relative",
        "eta": "absolute",
        "phi": "absolute",
        "chHEF": "absolute",
        "nConstituents": "absolute",
        "width": "relative",
    }
    assert spellings("mass", "physlite")[0] == "m"
    assert spellings("E", "opendata2025")[0] == "e"


def test_unit_conversion_by_hand():
    x = np.array([[45_000.0, 1.2, -3.0, 7_500.0, 91_000.0]])
    names = ["pt", "eta", "phi", "m", "E"]
    gev = to_gev(x, names, "MeV")
    np.testing.assert_array_equal(gev, [[45.0, 1.2, -3.0, 7.5, 91.0]])
    np.testing.assert_array_equal(from_gev(gev, names, "MeV"), x)
    assert to_gev(x, names, "GeV") is not x  # a copy, never the input altered
    with pytest.raises(HepaeError, match="unknown energy unit 'keV'"):
        to_gev(x, names, "keV")


def test_check_units_refuses_mismatch():
    check_units("GeV", {}, "here")  # models without the field are GeV
    with pytest.raises(HepaeError, match="values are in MeV but the model"):
        check_units("MeV", {"units": "GeV"}, "here")


def test_wrap_phi():
    out = wrap_phi(np.array([math.pi, -math.pi, 3 * math.pi, 0.5, -4.0]))
    np.testing.assert_allclose(out, [math.pi, math.pi, math.pi, 0.5, -4.0 + 2 * math.pi])


def test_mass_residual_floor():
    orig = np.array([[100.0, 0.0, 0.0, 0.05], [100.0, 0.0, 0.0, 20.0]])
    rec = np.array([[100.0, 0.0, 0.0, 0.15], [100.0, 0.0, 0.0, 21.0]])
    r = residuals(orig, rec, ["pt", "eta", "phi", "mass"])
    # below 1 GeV: (0.15 - 0.05) / 1 GeV; above: relative
    np.testing.assert_allclose(r[:, 3], [0.1, 0.05])
    # the same jets in MeV give the same residuals
    r_mev = residuals(orig * 1000, rec * 1000, ["pt", "eta", "phi", "mass"], units="MeV")
    np.testing.assert_allclose(r_mev[:, 3], [0.1, 0.05])
