"""The fitted transforms (centres, scales, offsets and flags) of five jets, by hand.

Quantiles are written out as numpy's default (linear) interpolation: for 5 sorted values
the 15.87% and 84.13% quantiles sit at positions 4 * 0.15865525 and 4 * 0.84134475.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hepae_coffea.model.normalize import choose_transforms

Q16, Q84 = 0.15865525, 0.84134475
NAMES = ["pt", "eta", "phi", "mass", "width", "nConstituents", "chHEF"]
X = np.array(
    [
        [10.0, -2.0, -3.0, 0.0, 0.1, 1.0, 0.0],
        [20.0, -1.0, -1.0, 1.0, 0.2, 3.0, 0.25],
        [40.0, 0.0, 0.0, 2.0, 0.3, 5.0, 0.5],
        [80.0, 1.0, 1.0, 4.0, 0.4, 7.0, 0.75],
        [160.0, 2.0, 3.0, 8.0, 0.5, 9.0, 1.0],
    ]
)


def _robust(sorted5: list[float]) -> tuple[float, float]:
    """Median and half the 16-84% width of five sorted values (linear interpolation)."""

    def q(p: float) -> float:
        pos = 4 * p
        i = math.floor(pos)
        return sorted5[i] + (pos - i) * (sorted5[i + 1] - sorted5[i])

    return sorted5[2], 0.5 * (q(Q84) - q(Q16))


def _fields(t):
    return (t.kind, t.center, t.scale, t.offset, t.nonneg, t.integer, t.unit)


def test_automatic_transforms_by_hand():
    tr = {t.variable: t for t in choose_transforms(X, NAMES)}
    # pt: log, no offset (min 10 > 1% of the median); log pt is evenly spaced by log 2
    assert _fields(tr["pt"])[:2] == ("log", pytest.approx(math.log(40.0), rel=1e-14))
    assert tr["pt"].scale == pytest.approx(0.5 * 4 * (Q84 - Q16) * math.log(2.0), rel=1e-12)
    assert (tr["pt"].offset, tr["pt"].nonneg, tr["pt"].integer, tr["pt"].unit) == (
        0.0,
        True,
        False,
        False,
    )
    # eta: robust standard (kinematic)
    assert _fields(tr["eta"]) == (
        "standard",
        0.0,
        pytest.approx(0.5 * 4 * (Q84 - Q16), rel=1e-12),
        0.0,
        False,
        False,
        False,
    )
    assert _fields(tr["phi"]) == ("angle", 0.0, 1.0, 0.0, False, False, False)
    # mass: a zero mass (min 0 <= 1% of the median 2) -> offset twice that, 0.04
    logs = [math.log(v + 0.04) for v in (0.0, 1.0, 2.0, 4.0, 8.0)]
    centre, width = _robust(logs)
    m = tr["mass"]
    assert (m.kind, m.offset, m.nonneg, m.integer, m.unit) == ("log", 0.04, True, False, False)
    assert m.center == pytest.approx(centre, rel=1e-14)
    assert m.scale == pytest.approx(width, rel=1e-12)
    # non-kinematic: mean and (population) standard deviation
    assert _fields(tr["width"]) == (
        "standard",
        pytest.approx(0.3, rel=1e-14),
        pytest.approx(math.sqrt(0.02), rel=1e-12),
        0.0,
        True,
        False,
        True,  # a fraction: decoded within [0, 1]
    )
    assert _fields(tr["nConstituents"]) == (
        "standard",
        5.0,
        pytest.approx(math.sqrt(8.0), rel=1e-14),
        0.0,
        True,
        True,  # whole numbers: decoded as integers
        False,
    )
    assert _fields(tr["chHEF"]) == (
        "standard",
        0.5,
        pytest.approx(math.sqrt(0.125), rel=1e-14),
        0.0,
        True,
        False,
        True,
    )


def test_small_pt_gets_an_offset():
    x = X.copy()
    x[0, 0] = 0.1  # below 1% of the median (0.4): offset 0.8
    (t,) = choose_transforms(x[:, :1], ["pt"])
    assert (t.kind, t.offset) == ("log", 0.8)
    centre, width = _robust([math.log(v + 0.8) for v in (0.1, 20.0, 40.0, 80.0, 160.0)])
    assert t.center == pytest.approx(centre, rel=1e-14)
    assert t.scale == pytest.approx(width, rel=1e-12)
    x[0, 0] = 0.41  # just above 1% of the median: no offset
    assert choose_transforms(x[:, :1], ["pt"])[0].offset == 0.0


def test_overridden_transforms_by_hand():
    over = {
        "pt": "standard",
        "eta": "scale:3",
        "phi": "periodic",
        "mass": "identity",
        "width": "scale",
        "chHEF": "Log",
    }
    tr = {t.variable: t for t in choose_transforms(X, NAMES, over)}
    # pt: robust standard on the values themselves
    q16 = 10.0 + 4 * Q16 * 10.0  # between 10 and 20
    q84 = 80.0 + (4 * Q84 - 3) * 80.0  # between 80 and 160
    assert _fields(tr["pt"]) == (
        "standard",
        40.0,
        pytest.approx(0.5 * (q84 - q16), rel=1e-12),
        0.0,
        True,
        False,
        False,
    )
    assert _fields(tr["eta"]) == ("scale", 0.0, 3.0, 0.0, False, False, False)
    assert _fields(tr["phi"]) == ("periodic", 0.0, math.pi, 0.0, False, False, False)
    assert _fields(tr["mass"]) == ("identity", 0.0, 1.0, 0.0, True, False, False)
    assert _fields(tr["width"]) == ("scale", 0.0, 0.5, 0.0, True, False, True)  # max |x|
    # log of a fraction with a zero: offset max(2% of the median 0.5, 1e-6) = 0.01
    c = tr["chHEF"]
    assert (c.kind, c.offset, c.nonneg, c.unit) == ("log", 0.01, True, True)
    centre, width = _robust([math.log(v + 0.01) for v in (0.0, 0.25, 0.5, 0.75, 1.0)])
    assert c.center == pytest.approx(centre, rel=1e-14)
    assert c.scale == pytest.approx(width, rel=1e-12)


def test_scale_of_a_zero_column_is_one():
    x = np.stack([X[:, 0], np.zeros(5)], axis=1)
    (_, t) = choose_transforms(x, ["pt", "width"], {"width": "scale"})
    assert (t.kind, t.scale) == ("scale", 1.0)
    (_, s) = choose_transforms(x, ["pt", "width"])
    assert (s.kind, s.center, s.scale) == ("standard", 0.0, 1.0)  # std 0 -> 1


def test_onehot_ranges_by_hand():
    tr = choose_transforms(X, NAMES, {"nConstituents": "onehot"})
    t = tr[NAMES.index("nConstituents")]
    assert _fields(t) == ("onehot", 1.0, 9.0, 0.0, True, True, False)  # values 1 .. 9
    t = choose_transforms(X, NAMES, {"nConstituents": "onehot:12"})[5]
    assert (t.center, t.scale) == (1.0, 12.0)
    two = np.stack([X[:, 0], [3.0, 4.0, 3.0, 4.0, 3.0]], axis=1)
    assert choose_transforms(two, ["pt", "n"], {"n": "onehot"})[1].scale == 2.0
    one = np.stack([X[:, 0], np.full(5, 3.0)], axis=1)
    with pytest.raises(ValueError, match="1 values"):
        choose_transforms(one, ["pt", "n"], {"n": "onehot"})
    with pytest.raises(ValueError, match="1025 values"):
        choose_transforms(X, NAMES, {"nConstituents": "onehot:1025"})
    assert choose_transforms(X, NAMES, {"nConstituents": "onehot:1024"})[5].scale == 1024.0
    with pytest.raises(ValueError, match=r"whole-number values, found 0\.25"):
        choose_transforms(X, NAMES, {"chHEF": "onehot"})


def test_integer_and_unit_flags():
    tr = choose_transforms(X, NAMES, integers=["width"])
    assert [t.integer for t in tr] == [False, False, False, False, True, False, False]
    assert [t.unit for t in tr] == [False] * 6 + [True]  # chHEF only: width is an integer now
    none = choose_transforms(X, NAMES, integers=[])
    assert not any(t.integer for t in none)
    assert [t.unit for t in none] == [False, False, False, False, True, False, True]
    # above 1 or below 0: not a fraction
    x = X.copy()
    x[4, 6] = 1.0 + 1e-9
    assert not choose_transforms(x, NAMES)[6].unit
    x[4, 6], x[0, 6] = 1.0, -1e-9
    t = choose_transforms(x, NAMES)[6]
    assert (t.unit, t.nonneg) == (False, False)


def test_log_override_refused_for_negative_values():
    with pytest.raises(ValueError, match="log transform for 'eta' needs values >= 0"):
        choose_transforms(X, NAMES, {"eta": "log"})
