from __future__ import annotations

import math
import typing

import hist
import numpy as np
import pytest

from hepae_coffea.processing.binning import (
    Log2Binning,
    RegularBinning,
    VariableBinning,
    add_counts,
    add_per_column,
)
from hepae_coffea.processing.hists import (
    COARSE_RESIDUAL_BINNING,
    PT_BINNING,
    RESIDUAL_BINNING,
    SCORE_BINNING,
)

BINNINGS = [RESIDUAL_BINNING, COARSE_RESIDUAL_BINNING, PT_BINNING, SCORE_BINNING]


def _hard_values(b: Log2Binning) -> np.ndarray:
    rng = np.random.default_rng(3)
    e = b.edges()
    special = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 5e-324, -5e-324, 1e308, -1e308]
    return np.concatenate(
        [
            e,
            np.nextafter(e, np.inf),
            np.nextafter(e, -np.inf),
            special,
            rng.normal(0.0, 1e-3, 20_000),
            rng.normal(0.0, 30.0, 5_000),
            np.exp(rng.uniform(-90.0, 25.0, 20_000)) * rng.choice([-1.0, 1.0], 20_000),
        ]
    )


@pytest.mark.parametrize("b", BINNINGS, ids=repr)
def test_index_equals_searchsorted_and_hist(b):
    edges = b.edges()
    assert np.all(np.diff(edges) > 0)
    values = _hard_values(b)
    idx = b.index(values)
    expected = np.searchsorted(edges, values, side="right")
    expected[np.isnan(values)] = len(edges)  # boost-histogram: NaN -> overflow
    np.testing.assert_array_equal(idx, expected)
    ref = hist.Hist(b.axis("x", "x"))
    ref.fill(x=values)
    ours = hist.Hist(b.axis("x", "x"))
    add_counts(ours, (), idx)
    np.testing.assert_array_equal(ours.view(flow=True), ref.view(flow=True))


def test_edges_are_near_log_spaced():
    pos = RESIDUAL_BINNING.positive_edges()
    ratio = pos[1:] / pos[:-1]
    assert ratio.max() == pytest.approx(1 + 1 / 16)
    assert ratio.min() == pytest.approx(1 + 1 / 32, rel=1e-3)
    assert pos[0] == 2.0**-24
    assert pos[-1] == 16.0


def test_add_per_column_matches_hist_fill():
    rng = np.random.default_rng(5)
    n, cols = 3_000, 3
    r = rng.normal(0.0, 1e-2, (n, cols))
    r[::97, 1] = np.nan
    pt = np.exp(rng.uniform(2.0, 9.5, n))
    names = ["a", "b", "c"]
    ours = hist.Hist(
        hist.axis.StrCategory(names, name="variable", overflow=False),
        PT_BINNING.axis("pt", "pt"),
        COARSE_RESIDUAL_BINNING.axis("residual", "r"),
    )
    add_per_column(
        ours, PT_BINNING.index(pt), COARSE_RESIDUAL_BINNING.index(r), valid=np.isfinite(r)
    )
    ref = ours.copy()
    ref.reset()
    for c, name in enumerate(names):
        ok = np.isfinite(r[:, c])
        ref.fill(variable=name, pt=pt[ok], residual=r[ok, c])
    np.testing.assert_array_equal(ours.view(flow=True), ref.view(flow=True))
    assert ours.sum(flow=True) == np.isfinite(r).sum()


def test_invalid_binning():
    with pytest.raises(ValueError, match="invalid log2 binning"):
        Log2Binning(3, 3, 2)


def test_add_per_column_refuses_a_wrong_number_of_index_arrays():
    h = hist.Hist(
        hist.axis.StrCategory(["a", "b"], name="variable", overflow=False),
        hist.axis.Regular(3, 0.0, 3.0, name="x"),
    )
    idx = np.array([[1, 2], [3, 0]])
    with pytest.raises(ValueError, match="zip"):
        add_per_column(h, idx, idx)  # one axis after the category, two index arrays
    assert h.sum(flow=True) == 0
    add_per_column(h, idx)
    # column 0 -> category a, flow indices 1 and 3; column 1 -> b, indices 2 and 0
    np.testing.assert_array_equal(h.view(flow=True), [[0, 1, 0, 1, 0], [1, 0, 1, 0, 0]])


def test_add_counts_one_value_and_none():
    h = hist.Hist(
        hist.axis.StrCategory(["a", "b"], name="c", overflow=False),
        hist.axis.Regular(3, 0.0, 3.0, name="x"),
    )
    add_counts(h, (1,), np.array([2]))  # a single value: flow index 2 = bin [1, 2)
    add_counts(h, (0,), np.array([], dtype=np.int64))  # no values: nothing added
    np.testing.assert_array_equal(h.view(flow=True), [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0]])


@pytest.mark.parametrize("func", [add_counts, add_per_column, Log2Binning.index])
def test_binning_annotations_resolve(func):
    # documentation and type tools evaluate the (postponed) annotations: they must resolve
    hints = typing.get_type_hints(func)
    assert hints["return"] in (None, type(None), np.ndarray)
    if func is add_per_column:
        assert hints["valid"] == np.ndarray | None


def _around(edges: np.ndarray) -> np.ndarray:
    """The edges and the floats just below and above each."""
    return np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])


@pytest.mark.parametrize(
    ("n", "lo", "hi"), [(64, -math.pi, math.pi), (100, -5.0, 5.0), (200, 0.0, 1.0), (60, -0.1, 1.3)]
)
def test_regular_index_equals_hist_fill(n, lo, hi):
    b = RegularBinning(n, lo, hi)
    ax = b.axis("v")
    rng = np.random.default_rng(n)
    x = np.concatenate(
        [rng.uniform(lo - 1, hi + 1, 50_000), _around(ax.edges), [np.nan, np.inf, -np.inf]]
    )
    h = hist.Hist(ax)
    h.fill(x)
    np.testing.assert_array_equal(np.bincount(b.index(x), minlength=n + 2), h.values(flow=True))
    # by hand: 0 underflow, 1..n bins, n + 1 overflow (NaN included)
    assert b.index(np.array([lo - 1e-9, lo, hi, np.nan])).tolist() == [0, 1, n + 1, n + 1]


def test_variable_index_equals_hist_fill():
    b = VariableBinning(tuple(np.geomspace(0.5, 3000.0, 81)))
    edges = np.asarray(b.edges)
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(0, 4000, 50_000), _around(edges), [np.nan, -np.inf, 0.0]])
    h = hist.Hist(b.axis("v"))
    h.fill(x)
    np.testing.assert_array_equal(np.bincount(b.index(x), minlength=82), h.values(flow=True))
    assert b.index(np.array([0.4, 0.5, 3000.0])).tolist() == [0, 1, 81]
    with pytest.raises(ValueError, match="edges must increase"):
        VariableBinning((1.0, 1.0))


def test_coarsen_to_equals_indexing_the_coarse_binning():
    fine, coarse = Log2Binning(-24, 4, 4, symmetric=True), Log2Binning(-20, 4, 2, symmetric=True)
    lut = fine.coarsen_to(coarse)
    rng = np.random.default_rng(2)
    x = rng.standard_normal(100_000) * 10.0 ** rng.uniform(-9, 2, 100_000)
    x = np.concatenate([x, _around(fine.edges()), [0.0, -0.0, np.nan, np.inf, -np.inf, 1e300]])
    np.testing.assert_array_equal(lut[fine.index(x)], coarse.index(x))
    with pytest.raises(ValueError, match="not a coarsening"):
        coarse.coarsen_to(fine)  # the other way round
    with pytest.raises(ValueError, match="not a coarsening"):
        Log2Binning(-24, 4, 4, symmetric=True).coarsen_to(Log2Binning(-20, 5, 2, symmetric=True))
