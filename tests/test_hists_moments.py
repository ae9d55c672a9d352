"""Mean and RMS read back from the residual-moments histogram, against hand-worked values."""

from __future__ import annotations

import math

import hist
import pytest

from hepae_coffea.processing.hists import moments_mean_rms


def _moments() -> hist.Hist:
    return hist.Hist(
        hist.axis.StrCategory(["pt", "eta"], name="variable"),
        hist.axis.StrCategory(["relative", "absolute"], name="kind", overflow=False),
        storage=hist.storage.Mean(),
    )


def test_mean_and_rms_of_filled_values():
    h = _moments()
    # pt relative: 1, 2, 6 -> mean 3, RMS sqrt((1 + 4 + 36) / 3)
    h.fill(variable="pt", kind="relative", sample=[1.0, 2.0, 6.0])
    # eta absolute: -2, 2 -> mean 0, RMS 2
    h.fill(variable="eta", kind="absolute", sample=[-2.0, 2.0])
    # pt absolute: 3, 5 -> mean 4, RMS sqrt(17): the mean enters the RMS
    h.fill(variable="pt", kind="absolute", sample=[3.0, 5.0])
    assert moments_mean_rms(h, "pt", "relative") == pytest.approx((3.0, math.sqrt(41 / 3)))
    assert moments_mean_rms(h, "eta", "absolute") == pytest.approx((0.0, 2.0))
    assert moments_mean_rms(h, "pt", "absolute") == pytest.approx((4.0, math.sqrt(17.0)))


def test_empty_cell_gives_nan():
    h = _moments()
    h.fill(variable="pt", kind="relative", sample=[1.0])
    mean, rms = moments_mean_rms(h, "eta", "relative")
    assert math.isnan(mean)
    assert math.isnan(rms)
    assert moments_mean_rms(h, "pt", "relative") == pytest.approx((1.0, 1.0))
