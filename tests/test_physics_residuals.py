"""Residuals, widths and the unphysical mask against hand-worked numbers.

Every expected value here is written out by hand (or computed with plain numpy on the raw
arrays), never with the function under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hepae_coffea.processing.metrics import (
    is_count,
    residual_kind,
    residual_summary,
    residuals,
    sigma68,
    unphysical_mask,
)

VARS = ["pt", "eta", "phi", "mass"]


def test_residuals_hand_worked():
    orig = np.array([[100.0, 1.0, 3.0, 10.0], [50.0, -2.0, -0.5, 4.0]])
    rec = np.array([[110.0, 1.5, -3.0, 9.0], [45.0, -2.25, -0.25, 5.0]])
    r = residuals(orig, rec, VARS)
    # pt, mass relative; eta, phi absolute; phi: -3 - 3 = -6 -> -6 + 2 pi
    expect = np.array(
        [
            [0.1, 0.5, 2 * math.pi - 6.0, -0.1],
            [-0.1, -0.25, 0.25, 0.25],
        ]
    )
    np.testing.assert_allclose(r, expect, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("orig", "rec", "expect"),
    [
        (3.1, -3.1, 2 * math.pi - 6.2),  # across the seam, counter-clockwise
        (-3.1, 3.1, 6.2 - 2 * math.pi),  # across the seam, clockwise
        (0.0, 2 * math.pi + 0.25, 0.25),  # a full turn more
        (0.5, 0.5 - 4 * math.pi, 0.0),  # two full turns less
        (-1.0, 1.0, 2.0),  # no wrapping needed
        (1.0, 1.0 + 3.0, 3.0),
        (1.0, 1.0 - 3.0, -3.0),
    ],
)
def test_phi_residual_is_wrapped(orig, rec, expect):
    r = residuals(np.array([[orig]]), np.array([[rec]]), ["phi"])
    assert r[0, 0] == pytest.approx(expect, abs=1e-12)


def test_phi_residual_of_half_a_turn_has_magnitude_pi():
    r = residuals(np.array([[0.0], [1.0]]), np.array([[math.pi], [1.0 - math.pi]]), ["phi"])
    np.testing.assert_allclose(np.abs(r[:, 0]), math.pi, rtol=1e-15)


def test_eta_is_not_wrapped_and_aliases_work():
    r = residuals(np.array([[0.0, 0.0, 2.0]]), np.array([[7.0, 7.0, 3.0]]), ["eta", "Phi", "m"])
    assert r[0, 0] == 7.0  # eta: no wrapping
    assert r[0, 1] == pytest.approx(7.0 - 2 * math.pi, abs=1e-12)  # Phi is phi
    assert r[0, 2] == 0.5  # m is mass: relative


def test_relative_residual_of_zero_original_is_nan():
    r = residuals(
        np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([[1.0, 1.0], [3.0, 1.0]]), ["pt", "eta"]
    )
    assert np.isnan(r[0, 0])
    assert r[1, 0] == 0.5
    assert r[0, 1] == 1.0  # absolute residuals are defined at zero


def test_relative_residual_of_a_negative_original_divides_by_it():
    # (rec - orig) / orig with its sign: no absolute value without a floor (width has none);
    # the mass divides by max(|orig|, 1 GeV)
    orig = np.array([[-2.0, -0.5], [-4.0, -3.0]])
    rec = np.array([[-1.0, 0.5], [-5.0, -1.5]])
    r = residuals(orig, rec, ["width", "mass"])
    np.testing.assert_array_equal(r, [[-0.5, 1.0], [0.25, 0.5]])


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("pt", "relative"),
        ("pT", "relative"),
        ("mass", "relative"),
        ("width", "relative"),
        ("eta", "absolute"),
        ("phi", "absolute"),
        ("chHEF", "absolute"),
        ("Jet_muEF", "absolute"),
        ("nConstituents", "absolute"),
        ("ptFrac", "absolute"),
        ("neutral", "relative"),  # 'n' + lower case: not a count
    ],
)
def test_residual_kind(name, kind):
    assert residual_kind(name) == kind


def test_is_count():
    assert is_count("nConstituents")
    assert is_count("Jet_nMuons")
    assert not is_count("n")
    assert not is_count("neEmEF")


def test_sigma68_hand_worked():
    # 0, 1, ..., 100: the p-th percentile (linear interpolation) is p itself
    x = np.arange(101.0)
    expect = 0.5 * (84.13447460685429 - 15.865525393145708)
    assert sigma68(x) == pytest.approx(expect, rel=1e-12)
    # non-finite values are ignored, not counted
    assert sigma68(np.concatenate([x, [np.nan, np.inf, -np.inf]])) == pytest.approx(expect)
    assert math.isnan(sigma68(np.array([np.nan])))
    # of a unit normal: 1 (large sample)
    rng = np.random.default_rng(0)
    assert sigma68(rng.normal(0.0, 1.0, 200_000)) == pytest.approx(1.0, abs=0.01)


def test_unphysical_mask_each_condition():
    names = ["pt", "eta", "phi", "mass", "E"]
    rows = np.array(
        [
            [10.0, 0.0, 0.0, 1.0, 20.0],  # fine
            [-1e-3, 0.0, 0.0, 1.0, 20.0],  # negative pt
            [10.0, 0.0, 0.0, -1.0, 20.0],  # negative mass
            [10.0, 0.0, 0.0, 1.0, -20.0],  # negative energy
            [10.0, 0.0, 3.2, 1.0, 20.0],  # phi above pi
            [10.0, 0.0, -3.2, 1.0, 20.0],  # phi below -pi
            [10.0, np.nan, 0.0, 1.0, 20.0],  # non-finite
            [10.0, 0.0, np.inf, 1.0, 20.0],  # non-finite
            [0.0, 9.0, math.pi, 0.0, 0.0],  # zero pt/mass/E, phi = pi, large eta: fine
            [10.0, -9.0, -math.pi, 1.0, 20.0],  # phi = -pi: fine (float32 rounding margin)
        ]
    )
    expect = [False, True, True, True, True, True, True, True, False, False]
    assert unphysical_mask(rows, names).tolist() == expect
    # the float32 value nearest pi lies above pi: still physical
    assert not unphysical_mask(np.array([[np.float32(math.pi)]]), ["phi"])[0]
    # eta and non-kinematic variables may be negative
    assert not unphysical_mask(np.array([[-5.0, -1.0]]), ["eta", "width"]).any()


def test_residual_summary_hand_worked():
    orig = np.array([[100.0, 0.0, 1.0, 10.0]] * 3 + [[100.0, 0.0, 1.0, 0.0]])
    rec = np.array(
        [
            [110.0, 0.02, 1.0, 10.0],
            [90.0, -0.02, 1.0, 10.0],
            [130.0, np.nan, 1.0, 10.0],
            [100.0, 0.04, 1.0, 1.0],  # mass 0: judged relative to the 1 GeV floor
        ]
    )
    s = residual_summary(orig, rec, VARS)
    pt = s["pt"]
    assert pt["kind"] == "relative"
    assert pt["mean"] == pytest.approx(0.075)  # (0.1 - 0.1 + 0.3 + 0) / 4
    assert pt["rms"] == pytest.approx(math.sqrt((0.01 + 0.01 + 0.09) / 4))
    assert pt["frac_above_1pct"] == 0.75
    # |r| sorted: 0, 0.1, 0.1, 0.3; the 99th percentile sits 0.97 of the way from 0.1 to 0.3
    assert pt["q99_abs"] == pytest.approx(0.1 + 0.97 * 0.2)
    # r sorted: -0.1, 0, 0.1, 0.3; percentiles at positions 3 * 0.1587 and 3 * 0.8413
    lo = -0.1 + (3 * 0.15865525393145708) * 0.1
    hi = 0.1 + (3 * 0.8413447460685429 - 2) * 0.2
    assert pt["sigma68"] == pytest.approx(0.5 * (hi - lo))
    assert pt["frac_above_5pct"] == 0.75
    assert pt["n_nonfinite"] == 0
    eta = s["eta"]
    assert eta["kind"] == "absolute"
    assert eta["mean"] == pytest.approx(0.04 / 3)
    assert eta["rms"] == pytest.approx(math.sqrt((0.0004 + 0.0004 + 0.0016) / 3))
    assert eta["n_nonfinite"] == 1  # counted per variable
    assert s["phi"]["rms"] == 0.0
    # mass residuals 0, 0, 0 and (1 - 0) / max(0, 1 GeV) = 1
    assert s["mass"]["n_nonfinite"] == 0
    assert s["mass"]["mean"] == pytest.approx(0.25)
    assert s["_jets"] == {"n": 4, "unphysical": 1}  # the NaN eta


def test_unphysical_phi_tolerance_is_exact():
    """|phi| up to pi + 1e-6 is physical (float32 rounding of pi), one float more is not."""
    edge = math.pi + 1e-6
    rows = np.array([[edge], [-edge], [np.nextafter(edge, 4.0)], [-np.nextafter(edge, 4.0)]])
    assert unphysical_mask(rows, ["phi"]).tolist() == [False, False, True, True]


def test_residual_fractions_are_strictly_above_the_cut():
    # residuals of exactly 1% and 5% (1/100 and 5/100 are the floats 0.01 and 0.05)
    orig = np.full((4, 1), 100.0)
    rec = np.array([[101.0], [105.0], [99.0], [100.5]])
    s = residual_summary(orig, rec, ["pt"])["pt"]
    assert s["frac_above_1pct"] == 0.25  # only the 5% one
    assert s["frac_above_5pct"] == 0.0
