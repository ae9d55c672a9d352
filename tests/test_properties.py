"""Property-based tests (hypothesis): the properties are the specification.

Normalisation inverses, the angle wrap's interval, bin indices at and around every edge,
mantissa rounding and compress -> decompress round trips. Runs are kept small
(``max_examples``) so the suite stays fast.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hepae_coffea.compress.files import truncate_mantissa
from hepae_coffea.model.normalize import Normalizer, _wrap_angle, choose_transforms
from hepae_coffea.processing.binning import Log2Binning
from hepae_coffea.processing.hists import (
    COARSE_RESIDUAL_BINNING,
    PT_BINNING,
    RESIDUAL_BINNING,
    SCORE_BINNING,
)
from hepae_coffea.processing.metrics import residuals, unphysical_mask

# tools/mutation.sh: the same examples for every mutant, no database carried between them
settings.register_profile("mutation", derandomize=True, database=None)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])

SMALL = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TWO_PI = 2.0 * math.pi

finite64 = st.floats(allow_nan=False, allow_infinity=False, width=64)


# --- the angle wrap ----------------------------------------------------------------------


def _congruent(x: float, r: float, dtype=np.float64) -> bool:
    """r = x + 2 pi k for an integer k, up to the rounding of x's magnitude in ``dtype``."""
    k = round((r - x) / TWO_PI)
    ulp = float(np.spacing(dtype(max(abs(x), TWO_PI))))
    return abs(r - x - k * TWO_PI) <= 8 * ulp * max(abs(k), 1)


@pytest.mark.parametrize(
    ("x", "expect"),
    [
        (math.pi, math.pi),  # the interval's closed end
        (-math.pi, math.pi),  # its open end: -pi is pi
        (0.0, 0.0),
        (1.0, 1.0),
        (-1.0, -1.0),
        (math.pi + 1.0, 1.0 - math.pi),
        (-math.pi - 1.0, math.pi - 1.0),
        (TWO_PI, 0.0),
        (-TWO_PI, 0.0),
        (5 * math.pi, math.pi),
        (-5 * math.pi, math.pi),
    ],
)
def test_wrap_angle_hand_worked(x, expect):
    r = float(_wrap_angle(torch.tensor([x], dtype=torch.float64))[0])
    assert r == pytest.approx(expect, abs=1e-12)
    assert -math.pi < r <= math.pi


@SMALL
@given(st.one_of(st.floats(-1e6, 1e6), st.integers(-1000, 1000).map(lambda k: k * math.pi)))
def test_wrap_angle_interval_float64(x):
    r = float(_wrap_angle(torch.tensor([x], dtype=torch.float64))[0])
    assert -math.pi < r <= math.pi
    assert _congruent(x, r)
    if -math.pi < x <= math.pi:
        assert r == x  # inside: unchanged, bit for bit


@SMALL
@given(st.floats(-1e4, 1e4, width=32))
def test_wrap_angle_interval_float32(x):
    pi32 = float(np.float32(math.pi))  # float32's pi (just above the real pi)
    r = float(_wrap_angle(torch.tensor([x], dtype=torch.float32))[0])
    assert -pi32 < r <= pi32
    assert _congruent(x, r, np.float32)
    if -pi32 < x <= pi32:
        assert r == x


@SMALL
@given(finite64.filter(lambda v: abs(v) < 1e12), finite64.filter(lambda v: abs(v) < 1e12))
def test_phi_residual_is_the_shortest_turn(orig, rec):
    r = float(residuals(np.array([[orig]]), np.array([[rec]]), ["phi"])[0, 0])
    assert -math.pi <= r <= math.pi
    assert _congruent(rec - orig, r)
    if -math.pi < rec - orig < math.pi:
        assert r == pytest.approx(rec - orig, abs=1e-12)


# --- normalisation -----------------------------------------------------------------------


def _training_sample():
    rng = np.random.default_rng(7)
    n = 4000
    pt = 20 + rng.exponential(60, n)
    return np.stack(
        [
            pt,
            rng.normal(0, 1.5, n),
            rng.uniform(-math.pi, math.pi, n),
            pt * rng.uniform(0.0, 0.2, n),  # masses down to 0: log with an offset
            rng.uniform(0, 1, n),  # a fraction
            rng.integers(1, 30, n).astype(float),  # a count
            rng.normal(5, 2, n),
        ],
        axis=1,
    )


NAMES = ["pt", "eta", "phi", "mass", "chHEF", "nConstituents", "width"]
TRANSFORMS = choose_transforms(
    _training_sample(), NAMES, overrides={"eta": "scale:3", "width": "periodic"}
)
NORMALIZER = Normalizer(TRANSFORMS).eval()
NORMALIZER_DEFAULT = Normalizer(choose_transforms(_training_sample(), NAMES)).eval()

jets = st.tuples(
    st.floats(0.0, 5000.0),
    st.floats(-5.0, 5.0),
    st.floats(-math.pi, math.pi).filter(lambda p: p > -math.pi),
    st.floats(0.0, 800.0),
    st.floats(0.0, 1.0),
    st.integers(1, 29).map(float),
    st.floats(-3.0, 3.0),
)


def test_chosen_transforms():
    kinds = {t.variable: t.kind for t in TRANSFORMS}
    assert kinds == {
        "pt": "log",
        "eta": "scale",
        "phi": "angle",
        "mass": "log",
        "chHEF": "standard",
        "nConstituents": "standard",
        "width": "periodic",
    }
    by = {t.variable: t for t in TRANSFORMS}
    assert by["pt"].offset == 0.0  # pt >= 20: no offset needed
    assert by["mass"].offset > 0.0  # masses near 0: an offset
    assert by["eta"].scale == 3.0
    assert by["nConstituents"].integer
    assert by["chHEF"].unit
    assert by["pt"].nonneg
    assert by["mass"].nonneg
    # the log transform's centre and scale are robust: the median of log(x + offset) and
    # half the distance between its 15.87% and 84.13% quantiles (a Gaussian's sigma)
    lx = np.sort(np.log(_training_sample()[:, 0].astype(np.float64)))
    n = len(lx)

    def quantile(q):  # linear interpolation between order statistics, by hand
        pos = q * (n - 1)
        lo = int(np.floor(pos))
        return lx[lo] + (pos - lo) * (lx[min(lo + 1, n - 1)] - lx[lo])

    assert by["pt"].center == pytest.approx(quantile(0.5))
    assert by["pt"].scale == pytest.approx(0.5 * (quantile(0.84134475) - quantile(0.15865525)))


@SMALL
@given(st.lists(jets, min_size=1, max_size=20))
@pytest.mark.parametrize("norm", [NORMALIZER, NORMALIZER_DEFAULT], ids=["overrides", "default"])
def test_normalisation_inverse(norm, rows):
    x = np.array(rows, dtype=np.float32)
    with torch.no_grad():
        back = norm.inverse(norm(torch.from_numpy(x))).numpy().astype(np.float64)
    x = x.astype(np.float64)
    tol = 3e-6
    offset = {t.variable: t.offset for t in TRANSFORMS}
    np.testing.assert_allclose(back[:, 0], x[:, 0], rtol=tol, atol=tol)  # pt
    np.testing.assert_allclose(back[:, 1], x[:, 1], rtol=0, atol=tol * 5)  # eta
    dphi = np.angle(np.exp(1j * (back[:, 2] - x[:, 2])))
    np.testing.assert_allclose(dphi, 0.0, atol=tol)
    np.testing.assert_allclose(back[:, 3], x[:, 3], rtol=tol, atol=tol * (1 + offset["mass"]))
    np.testing.assert_allclose(back[:, 4], x[:, 4], rtol=0, atol=tol)  # fraction
    np.testing.assert_array_equal(back[:, 5], x[:, 5])  # counts: exact
    np.testing.assert_allclose(back[:, 6], x[:, 6], rtol=0, atol=tol * 3)  # width


@SMALL
@given(hnp.arrays(np.float32, (8, NORMALIZER.n_norm), elements=st.floats(-6.0, 6.0, width=32)))
def test_decoded_values_are_always_physical(z):
    """Whatever the network outputs (in its normalised space), the decoded jet is physical."""
    with torch.no_grad():
        x = NORMALIZER.inverse(torch.from_numpy(z)).numpy().astype(np.float64)
    assert np.isfinite(x).all()
    assert not unphysical_mask(x, NAMES).any()
    assert np.all(x[:, 0] >= 0)
    assert np.all(x[:, 3] >= 0)
    assert np.all(np.abs(x[:, 2]) <= math.pi + 1e-6)
    assert np.all((x[:, 4] >= 0) & (x[:, 4] <= 1))  # fraction
    np.testing.assert_array_equal(x[:, 5], np.round(x[:, 5]))  # count
    assert np.all((x[:, 6] > -math.pi - 1e-6) & (x[:, 6] <= math.pi + 1e-6))  # periodic


# --- bins --------------------------------------------------------------------------------


binnings = st.sampled_from([RESIDUAL_BINNING, COARSE_RESIDUAL_BINNING, PT_BINNING, SCORE_BINNING])


@st.composite
def binning_and_value(draw):
    b = draw(
        st.one_of(
            binnings,
            st.builds(
                lambda lo, span, bits, sym: Log2Binning(lo, lo + span, bits, sym),
                st.integers(-40, 20),
                st.integers(1, 12),
                st.integers(0, 6),
                st.booleans(),
            ),
        )
    )
    edges = b.edges()
    edge = edges[draw(st.integers(0, len(edges) - 1))]
    near = draw(st.sampled_from(["edge", "above", "below", "any"]))
    if near == "edge":
        x = edge
    elif near == "above":
        x = np.nextafter(edge, np.inf)
    elif near == "below":
        x = np.nextafter(edge, -np.inf)
    else:
        x = draw(st.floats(allow_nan=True, allow_infinity=True, width=64))
    return b, float(x)


def _reference_index(edges: np.ndarray, x: float) -> int:
    """Flow-inclusive bin: 0 below the first edge, i for edges[i-1] <= x < edges[i],
    len(edges) at or above the last edge and for NaN (boost-histogram's rule)."""
    if math.isnan(x):
        return len(edges)
    return sum(1 for e in edges if e <= x)


@settings(max_examples=300, deadline=None)
@given(binning_and_value())
def test_bin_index_at_edges_and_their_neighbours(case):
    b, x = case
    got = int(b.index(np.array([x]))[0])
    assert got == _reference_index(b.edges(), x)


def test_bin_edges_are_the_documented_floats():
    b = Log2Binning(-2, 1, 2, symmetric=True)
    pos = [0.25, 0.3125, 0.375, 0.4375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 1.75, 2.0]
    np.testing.assert_array_equal(b.positive_edges(), pos)
    np.testing.assert_array_equal(b.edges(), [-p for p in reversed(pos)] + pos)
    # zero and tiny values of either sign share the central bin [-0.25, 0.25)
    idx = b.index(np.array([0.0, -0.0, 1e-300, -1e-300, -0.25, 0.25, np.nextafter(0.25, 0)]))
    assert idx.tolist() == [13, 13, 13, 13, 13, 14, 13]


# --- mantissa rounding and round trips -------------------------------------------------------


def _round_to_bits(x: np.ndarray, bits: int) -> np.ndarray:
    """Round to ``bits`` mantissa bits, ties away from zero, in float64 (exact)."""
    m, e = np.frexp(x.astype(np.float64))
    scale = 2.0 ** (bits + 1)
    q = np.sign(m) * np.floor(np.abs(m) * scale + 0.5) / scale
    with np.errstate(over="ignore"):
        return np.ldexp(q, e).astype(np.float32)


normal32 = st.floats(width=32, allow_nan=False, allow_infinity=False).filter(
    lambda v: v == 0 or abs(v) >= 2.0**-126
)


@SMALL
@given(hnp.arrays(np.float32, st.integers(1, 30), elements=normal32), st.integers(0, 23))
def test_truncate_mantissa_rounds_to_nearest(x, bits):
    got = truncate_mantissa(x, bits)
    np.testing.assert_array_equal(got, _round_to_bits(x, bits))
    if bits == 23:
        np.testing.assert_array_equal(got.view(np.uint32), x.view(np.uint32))


@pytest.mark.parametrize("bits", [-1, 24, 30])
def test_truncate_mantissa_refuses_bits_outside_0_to_23(bits):
    with pytest.raises(ValueError, match=r"0\.\.23"):
        truncate_mantissa(np.ones(3, np.float32), bits)


def test_truncate_mantissa_keeps_nonfinite():
    x = np.array([np.nan, np.inf, -np.inf], dtype=np.float32)
    got = truncate_mantissa(x, 4)
    assert np.isnan(got[0])
    assert got[1] == np.inf
    assert got[2] == -np.inf


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=12),
    st.data(),
)
def test_compress_round_trip_every_variable(tmp_path_factory, counts, data):
    """Any jets in the model's range, any event structure: decompress gives back the shipped
    model's own reconstruction (run as TorchScript, not by compress) for every variable,
    the event structure, and every other branch bit for bit."""
    import warnings

    import awkward as ak
    import torch
    import uproot

    from hepae_coffea.compress.files import compress, decompress
    from hepae_coffea.model.export import default_model_path

    from .conftest import write_nanoaod

    n = sum(counts)
    pos = hnp.arrays(np.float32, n, elements=st.floats(10, 3000, width=32))
    col = hnp.arrays(np.float32, n, elements=st.floats(-4.5, 4.5, width=32))
    ang = hnp.arrays(
        np.float32, n, elements=st.floats(-3.141590118408203, 3.141590118408203, width=32)
    )
    frac = hnp.arrays(np.float32, n, elements=st.floats(0.0, 0.25, width=32))
    jets = {"pt": data.draw(pos), "eta": data.draw(col), "phi": data.draw(ang)}
    jets["mass"] = jets["pt"] * data.draw(frac)
    jets["nConstituents"] = np.arange(n, dtype=np.int32)
    d = tmp_path_factory.mktemp("prop_rt")
    src = d / "src.root"
    write_nanoaod(src, np.array(counts), jets)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Missing cross-reference index")
        compress(src, d / "c.root", allow_larger=True)
        decompress(d / "c.root", d / "r.root")
    with uproot.open(src) as f:
        a = f["Events"].arrays(library="ak")
    with uproot.open(d / "r.root") as f:
        b = f["Events"].arrays(library="ak")
    assert b.fields == a.fields
    x4 = np.stack([jets[v] for v in ("pt", "eta", "phi", "mass")], axis=1).astype(np.float32)
    module = torch.jit.load(str(default_model_path()), map_location="cpu")
    with torch.inference_mode():
        expect = module.decode(module.encode(torch.from_numpy(x4))).numpy()
    for k in a.fields:
        assert ak.all(ak.num(b[k], axis=-1) == ak.num(a[k], axis=-1)) if a[k].ndim > 1 else True
        x, y = ak.to_numpy(ak.flatten(a[k], axis=None)), ak.to_numpy(ak.flatten(b[k], axis=None))
        if k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"):
            i = ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass").index(k)
            np.testing.assert_allclose(y, expect[:, i], rtol=2e-6, atol=2e-6, err_msg=k)
        else:
            np.testing.assert_array_equal(y, x, err_msg=k)
