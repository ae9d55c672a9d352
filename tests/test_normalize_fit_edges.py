"""Edge cases of the fitted transforms, worked by hand: masses at or just below zero, the
log transform's offset, and the one-hot integer flag with explicit integer variables.

``_fit`` is called directly: these columns are what remains after absurd jets are dropped.
"""

from __future__ import annotations

import numpy as np
import pytest

from hepae_coffea.model.normalize import _fit


def _one(values, var="mass", **kw):
    (t,) = _fit(np.asarray(values, np.float64)[:, None], [var], **kw)
    return t


def test_fit_mass_slightly_below_zero_takes_the_log_with_an_offset():
    # median 10, minimum -0.05 > -1% of the median: rounding, still logged;
    # small = 0.01 * 10 = 0.1, the minimum is below it: offset 2 * small = 0.2
    t = _one([-0.05, 5.0, 10.0, 15.0, 20.0])
    assert t.kind == "log"
    assert t.nonneg
    assert t.offset == pytest.approx(0.2, rel=1e-12)


def test_fit_mass_clearly_below_zero_is_standardised_and_may_be_negative():
    # minimum -0.5 < -1% of the median 10: not a rounding; no log, no clamp at 0
    t = _one([-0.5, 5.0, 10.0, 15.0, 20.0])
    assert t.kind == "standard"
    assert not t.nonneg


def test_fit_mass_with_a_small_median_keeps_the_relative_tolerance():
    # median 0.5: -0.004 > -1% of 0.5 = -0.005, still a rounding, logged
    t = _one([-0.004, 0.25, 0.5, 0.75, 1.0])
    assert t.kind == "log"
    assert t.offset == pytest.approx(2 * 0.01 * 0.5, rel=1e-12)


def test_fit_log_override_at_zero_median_gets_the_minimal_offset():
    # median 0, minimum 0: small = 0, the minimum is not above it: offset max(0, 1e-6)
    t = _one([0.0, 0.0, 0.0, 2.0, 4.0], overrides={"mass": "log"})
    assert t.kind == "log"
    assert t.offset == 1e-6
    assert np.isfinite(t.center)
    assert np.isfinite(t.scale)


def test_fit_log_override_refused_for_a_minimum_just_below_zero():
    with pytest.raises(ValueError, match="log transform for 'x' needs values >= 0"):
        _one([-0.5, 1.0, 2.0, 3.0], var="x", overrides={"x": "log"})


def test_fit_onehot_is_integer_also_with_explicit_integer_variables():
    t = _one([0.0, 1.0, 2.0, 1.0], var="ntag", overrides={"ntag": "onehot"}, integers=[])
    assert t.kind == "onehot"
    assert t.integer
