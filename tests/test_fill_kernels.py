"""The numba fill kernels give the bins and sums of the numpy references and of hist."""

from __future__ import annotations

import math

import hist
import numpy as np
import pytest

from hepae_coffea.model.handle import open_model
from hepae_coffea.processing import fill_kernels as fk
from hepae_coffea.processing.anomaly import event_baselines
from hepae_coffea.processing.anomaly_hists import (
    BASELINE_BINNING,
    BASELINES,
    LEADING_BINNING,
    make_anomaly_hists,
)
from hepae_coffea.processing.binning import Log2Binning, RegularBinning, VariableBinning
from hepae_coffea.processing.hists import (
    COARSE_RESIDUAL_BINNING,
    PT_BINNING,
    RESIDUAL_BINNING,
    SCORE_BINNING,
    distribution_binnings,
    make_hists,
)
from hepae_coffea.processing.metrics import residuals, unphysical_mask
from hepae_coffea.processors.compression import ChunkResult, fill_hists
from hepae_coffea.variables.domain import Domain, model_domain
from hepae_coffea.variables.registry import to_gev, wrap_phi

LOG2 = [
    RESIDUAL_BINNING,
    COARSE_RESIDUAL_BINNING,
    PT_BINNING,
    SCORE_BINNING,
    BASELINE_BINNING,
    LEADING_BINNING,
    Log2Binning(-3, 2, 0, symmetric=True),
    Log2Binning(0, 1, 8),
]
SPECIAL = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 5e-324, -5e-324, 2.2e-308, -2.2e-308]
SPECIAL += [1e-300, -1e-300, 1e300, -1e300, np.finfo(float).max, -np.finfo(float).max]


def _adversarial(edges: np.ndarray, seed: int = 0) -> np.ndarray:
    """Edges, their neighbouring floats, specials, and spread random values."""
    rng = np.random.default_rng(seed)
    scale = float(np.max(np.abs(edges)))
    return np.concatenate(
        [
            edges,
            np.nextafter(edges, np.inf),
            np.nextafter(edges, -np.inf),
            SPECIAL,
            rng.normal(0.0, scale, 3000),
            np.exp(rng.uniform(-80.0, 20.0, 3000)) * rng.choice([-1.0, 1.0], 3000),
        ]
    )


def _flow_counts(axis: hist.axis.AxisProtocol, values: np.ndarray) -> np.ndarray:
    h = hist.Hist(axis)
    h.fill(values)
    return np.asarray(h.view(flow=True))


def _reference_index(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    expect = np.searchsorted(edges, x, side="right")
    expect[np.isnan(x)] = len(edges)  # boost-histogram: NaN -> overflow
    return expect


@pytest.mark.parametrize("b", LOG2, ids=repr)
def test_log2_index_equals_numpy_searchsorted_and_hist(b: Log2Binning) -> None:
    edges = b.edges()
    x = _adversarial(edges)
    ours = np.array([fk.log2_index(v, b.lo_exp, b.hi_exp, b.bits, b.symmetric) for v in x])
    np.testing.assert_array_equal(ours, b.index(x))
    np.testing.assert_array_equal(ours, _reference_index(edges, x))
    counts = np.bincount(ours, minlength=len(edges) + 1)
    np.testing.assert_array_equal(counts, _flow_counts(b.axis("x", "x"), x))


def test_log2_index_of_hand_picked_values() -> None:
    b = Log2Binning(-1, 1, 1, symmetric=True)  # edges -2 -1.5 -1 -0.75 -0.5 0.5 0.75 1 1.5 2
    cases = [
        (-0.0, 5),  # the centre bin [-0.5, 0.5)
        (0.0, 5),
        (-0.5, 5),  # an edge belongs to the bin above
        (0.5, 6),
        (-2.0, 1),
        (2.0, 10),  # overflow
        (-np.inf, 0),
        (np.inf, 10),
        (np.nan, 10),
        (-np.nan, 10),
        (5e-324, 5),
    ]
    for x, expect in cases:
        assert fk.log2_index(x, b.lo_exp, b.hi_exp, b.bits, b.symmetric) == expect, x


REGULAR = [
    RegularBinning(64, -math.pi, math.pi),
    RegularBinning(100, -5.0, 5.0),
    RegularBinning(200, 0.0, 1.0),
    RegularBinning(60, -0.3, 1.7),
    RegularBinning(7, 1e-3, 3e-3),
]


@pytest.mark.parametrize("b", REGULAR, ids=repr)
def test_regular_index_equals_numpy_and_hist(b: RegularBinning) -> None:
    edges = np.asarray(b.axis("x").edges)
    x = _adversarial(edges, seed=1)
    ours = np.array([fk.regular_index(v, b.n, b.lo, b.hi - b.lo) for v in x])
    with np.errstate(over="ignore", invalid="ignore"):  # (x - lo) / width * n of huge x
        np.testing.assert_array_equal(ours, b.index(x))
    assert ours[np.isnan(x)].tolist() == [b.n + 1] * int(np.isnan(x).sum())
    assert fk.regular_index(-np.inf, b.n, b.lo, b.hi - b.lo) == 0
    assert fk.regular_index(np.inf, b.n, b.lo, b.hi - b.lo) == b.n + 1
    counts = np.bincount(ours, minlength=b.n + 2)
    np.testing.assert_array_equal(counts, _flow_counts(b.axis("x"), x))


@pytest.mark.parametrize(
    "b",
    [
        VariableBinning(tuple(np.geomspace(0.02, 8000.0, 81))),
        VariableBinning((-1.0, -0.0, 1.0)),
        VariableBinning((0.5, 1.0)),
    ],
    ids=lambda b: f"{len(b.edges)} edges",
)
def test_variable_index_equals_searchsorted_and_hist(b: VariableBinning) -> None:
    edges = np.asarray(b.edges)
    x = _adversarial(edges, seed=2)
    ours = np.array([fk.variable_index(v, edges) for v in x])
    np.testing.assert_array_equal(ours, b.index(x))
    np.testing.assert_array_equal(ours, _reference_index(edges, x))
    counts = np.bincount(ours, minlength=len(edges) + 1)
    np.testing.assert_array_equal(counts, _flow_counts(b.axis("x"), x))


@pytest.mark.parametrize(
    "edges",
    [
        np.geomspace(0.02, 8000.0, 81),  # the distributions of pt, mass and E
        np.geomspace(1e-3, 2.0, 81),
        np.array([0.5, 1.0, 2.0, 4.0]),  # every edge at the lower end of a bucket
        np.array([1.0, 1.5, 1.75, 3.0, 1e300]),
        np.array([3.1, 3.1000001, 7.0]),  # 2**-25 octaves apart inside a bucket: no table
    ],
    ids=lambda e: f"{len(e)} edges from {e[0]:g}",
)
def test_table_index_equals_searchsorted(edges: np.ndarray) -> None:
    lookup = VariableBinning(tuple(edges)).bucket_table()
    if edges[1] / edges[0] < 1.0 + 1e-6:
        assert lookup is None
        return
    assert lookup is not None
    table, k0, shift = lookup
    # at most one edge strictly inside a bucket, and the first bucket holds the first edge
    keys = edges.view(np.int64) >> shift
    assert keys[0] == k0
    assert len(table) == keys[-1] - k0 + 1
    ext = np.append(edges, np.inf)
    x = np.concatenate([_adversarial(edges, seed=5), edges * 1.0000001, edges * 0.9999999])
    ours = np.array([fk.table_index(v, ext, len(edges), table, k0, shift) for v in x])
    np.testing.assert_array_equal(ours, np.searchsorted(edges, x, side="right"))
    np.testing.assert_array_equal(ours, _reference_index(edges, x))


def test_no_bucket_table_for_edges_from_zero_or_below() -> None:
    assert VariableBinning((0.0, 1.0, 2.0)).bucket_table() is None
    assert VariableBinning((-1.0, 1.0)).bucket_table() is None


def test_wrap_phi_equals_the_numpy_reference() -> None:
    rng = np.random.default_rng(4)
    pi = math.pi
    d = np.concatenate(
        [
            rng.normal(0.0, 4.0, 5000),
            [0.0, -0.0, pi, -pi, 2 * pi, -2 * pi, 3 * pi, np.nextafter(pi, 0.0)],
            [np.nextafter(-pi, 0.0), np.nextafter(pi, 4.0), np.nextafter(-pi, -4.0)],
            [1e300, -1e300, 5e-324, np.inf, -np.inf, np.nan],
            # d + pi at the ends of (0, 2 pi), where the kernel skips fmod, and just outside
            [np.nextafter(-pi, -4.0) + 1e-16, pi - 1e-15, pi + 1e-15, -pi + 5e-324],
            np.nextafter(2 * pi, [0.0, 8.0]) - pi,
            rng.uniform(-2 * pi, 2 * pi, 2000),
        ]
    )
    ours = np.array([fk.wrap_phi(v) for v in d])
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(ours, wrap_phi(d))
    assert fk.wrap_phi(-pi) == pi  # (-pi, pi]


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17, 127, 128, 129, 255, 256, 1000, 70_001])
def test_pairwise_sum_and_moments_are_numpys(n: int) -> None:
    rng = np.random.default_rng(n)
    a = rng.normal(0.0, 1.0, n) * rng.choice([1.0, 1e-8, 1e8], n)
    if n == 0:
        assert fk.pairwise_sum(a, 0, 0) == 0.0
        return
    assert fk.pairwise_sum(a, 0, n) == np.sum(a)  # the same float, not close
    a32 = a.astype(np.float32)  # summed as float64, as numpy sums a float64 copy
    assert fk.pairwise_sum(a32, 0, n) == np.sum(a32.astype(np.float64))
    m = np.empty(3)
    fk.moments(a, m)
    mean = a.mean()
    assert (m[0], m[1], m[2]) == (n, mean, np.sum((a - mean) ** 2))


def test_event_sums_equal_reduceat() -> None:
    rng = np.random.default_rng(6)
    counts = rng.integers(1, 300, 200)
    x = rng.exponential(1.0, counts.sum()) * rng.choice([1.0, 1e6], counts.sum())
    starts = np.cumsum(counts) - counts
    ours = [x[s] + fk.pairwise_sum(x, s + 1, c - 1) for s, c in zip(starts, counts, strict=True)]
    np.testing.assert_array_equal(ours, np.add.reduceat(x, starts))


def _chunk(n_events: int, units: str, seed: int) -> tuple[ChunkResult, list[str]]:
    """A chunk with awkward values: zero and negative originals, masses below 1 GeV,
    phi differences around +-pi, huge and NaN reconstructions, tied pT, empty events."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 9, n_events)
    counts[:3] = [0, 4, 130]
    n = int(counts.sum())
    scale = 1000.0 if units == "MeV" else 1.0
    pt = np.exp(rng.uniform(2.0, 7.0, n))
    eta = rng.uniform(-5.0, 5.0, n)
    phi = rng.uniform(-math.pi, math.pi, n)
    mass = np.exp(rng.uniform(-3.0, 4.0, n))
    orig = np.stack([pt * scale, eta, phi, mass * scale], 1)
    rec = orig * rng.normal(1.0, 0.02, orig.shape)
    rec[:, 2] = orig[:, 2] + rng.normal(0.0, 0.1, n)
    rec[:20, 2] = -np.sign(orig[:20, 2]) * 3.14  # wrapped across +-pi
    orig[4:6, 3] = 0.0  # massless: relative to the 1 GeV floor
    orig[6, 1] = 0.0  # eta == 0: relative residual NaN
    orig[7, 1] = -0.0
    rec[8] = [np.inf, 1e300, np.nan, -1e-300]
    rec[9, 1] = orig[9, 1]  # a zero residual
    orig[10:14, 0] = 3000.0 * scale  # the highest pT, tied, in the second event
    orig[4:6, 1], rec[4:6, 1] = -0.5, -0.5
    score = rng.exponential(1e-3, n).astype(np.float32)
    score[11] = np.float32(np.nan)  # second event: its max is NaN (overflow)
    score[2] = np.float32(np.inf)  # first event
    latent = rng.uniform(-0.2, 1.2, (n, 3)).astype(np.float32)
    latent[:4] = [[0.0, 1.0, np.nan], [1e30, -1e30, -0.0], [0.5, 0.25, 1.0], [-1.0, 2.0, 0.1]]
    with np.errstate(over="ignore"):  # 1e300 -> inf in float32
        orig32, rec32 = orig.astype(np.float32), rec.astype(np.float32)
    res = ChunkResult(
        orig32,
        rec32,
        latent,
        score,
        counts.astype(np.int64),
        n,
        n,
        0,
        False,
        units=units,
    )
    return res, ["pt", "eta", "phi", "mass"]


@pytest.mark.parametrize("units", ["GeV", "MeV"])
def test_fill_hists_equals_plain_hist_fill(units: str) -> None:
    """Every histogram of ``fill_hists`` equals ``Hist.fill`` of values computed with numpy
    (``metrics.residuals``, ``np.add.reduceat``, ``event_baselines``); the moments are
    numpy's own floats."""
    metadata = open_model(None).metadata
    res, variables = _chunk(400, units, seed=7)
    out = make_hists(metadata)
    timings: dict[str, float] = {}
    fill_hists(out, res, variables, metadata, timings)
    assert {"residuals", "residual_moments", "distribution", "scores", "anomaly"} <= set(timings)

    orig = to_gev(res.original, variables, units)
    rec = to_gev(res.reconstructed, variables, units)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = residuals(orig, rec, ["pt", "eta", "phi", "mass"])
        rel[:, 1:3] = (rec[:, 1:3] - orig[:, 1:3]) / orig[:, 1:3]  # plain relative, no wrap
        absr = rec - orig
        absr[:, 2] = wrap_phi(absr[:, 2])
    ref = make_hists(metadata)
    for i, v in enumerate(variables):
        fin = np.isfinite(rel[:, i])
        ref["residual"].fill(variable=v, residual=rel[fin, i])
        ref["residual_abs"].fill(variable=v, residual=absr[:, i])
        pref = absr[:, i] if v in ("eta", "phi") else rel[:, i]
        ok = np.isfinite(pref)
        ref["residual_vs_pt"].fill(variable=v, pt=orig[ok, 0], residual=pref[ok])
        ref["distribution"][v].fill(value=orig[:, i], version="original")
        ref["distribution"][v].fill(value=rec[:, i], version="reconstructed")
    for d in range(3):
        ref["latent"].fill(dim=d, z=res.latent[:, d])
    for i, j in ((0, 1), (0, 2), (1, 2)):
        ref["latent_pairs"].fill(pair=f"{i}-{j}", zx=res.latent[:, i], zy=res.latent[:, j])
    score = res.score.astype(np.float64)
    has = res.counts > 0
    starts = (np.cumsum(res.counts) - res.counts)[has]
    ev = {
        "max": np.maximum.reduceat(score, starts),
        "mean": np.add.reduceat(score, starts) / res.counts[has],
    }
    ref["score_jet"].fill(score=score)
    ref["score_event_max"].fill(score=ev["max"])
    ref["score_event_mean"].fill(score=ev["mean"])
    for name in ("residual", "residual_abs", "residual_vs_pt", "latent", "latent_pairs"):
        np.testing.assert_array_equal(out[name].view(flow=True), ref[name].view(flow=True), name)
    for name in ("score_jet", "score_event_max", "score_event_mean"):
        np.testing.assert_array_equal(out[name].view(flow=True), ref[name].view(flow=True), name)
    for v in variables:
        a, b = out["distribution"][v].view(flow=True), ref["distribution"][v].view(flow=True)
        np.testing.assert_array_equal(a, b, v)
    assert set(distribution_binnings(metadata)) == set(variables)
    # moments: numpy's mean and sum of squared deviations of the finite relative residuals
    # and of all absolute ones (NaN where one is NaN)
    mom = out["residual_moments"].view()
    for i in range(4):
        for k, values in enumerate((rel[np.isfinite(rel[:, i]), i], absr[:, i])):
            with np.errstate(invalid="ignore"):  # inf - inf
                mean = values.mean()
                ssd = np.sum((values - mean) ** 2)
            assert mom["count"][i, k] == values.size
            np.testing.assert_array_equal(mom["value"][i, k], mean)
            np.testing.assert_array_equal(mom["_sum_of_deltas_squared"][i, k], ssd)
    # anomaly histograms (in GeV, whatever the model's units), by hand
    anomaly = make_anomaly_hists()
    o = res.original.astype(np.float64) * (1e-3 if units == "MeV" else 1.0)
    base = event_baselines(o[:, 0], o[:, 3], res.counts)
    for name in BASELINES:
        anomaly["baseline"].fill(observable=name, value=base[name])
    for kind in ("max", "mean"):
        for name in BASELINES[:2]:
            anomaly["score_vs_leading"].fill(
                kind=kind, observable=name, score=ev[kind], value=base[name]
            )
    for name, h in anomaly.items():
        np.testing.assert_array_equal(out["anomaly"][name].view(flow=True), h.view(flow=True))


def test_fill_hists_of_an_empty_chunk_leaves_the_histograms_empty() -> None:
    metadata = open_model(None).metadata
    z = np.zeros((0, 4), np.float32)
    res = ChunkResult(
        z,
        z,
        np.zeros((0, 3), np.float32),
        np.zeros(0, np.float32),
        np.zeros(3, np.int64),
        0,
        0,
        0,
        False,
    )
    out = make_hists(metadata)
    fill_hists(out, res, ["pt", "eta", "phi", "mass"], metadata)
    for name in ("residual", "residual_abs", "residual_vs_pt", "score_jet", "latent"):
        assert out[name].sum(flow=True) == 0, name
    assert out["residual_moments"].view()["count"].sum() == 0


def _reasons_numpy(domain: Domain, x: np.ndarray) -> np.ndarray:
    """``Domain.reasons`` written with numpy masks, reason by reason."""
    out = np.full(len(x), -1, dtype=np.int8)

    def mark(code: int, bad: np.ndarray) -> None:
        out[(out < 0) & bad] = code

    canon = list(domain.variables)
    with np.errstate(invalid="ignore"):
        mark(0, ~np.isfinite(x).all(axis=1))
        limit = np.array([1e6 * (1000.0 if domain.units == "MeV" else 1.0)] * 4)  # 1e6 GeV
        limit[[1, 2]] = 1e6  # eta, phi: plain values
        mark(1, (np.abs(x) > limit).any(axis=1))
        pt, m = x[:, canon.index("pt")], x[:, canon.index("mass")]
        mark(2, pt <= 0)
        mark(3, m < -np.minimum(0.01 * np.abs(pt), domain.mass_tolerance_cap))
        mark(4, np.abs(x[:, canon.index("phi")]) > math.pi + 1e-6)
        mark(5, ((x < np.array(domain.lo)) | (x > np.array(domain.hi))).any(axis=1))
    return out


@pytest.mark.parametrize("units", ["GeV", "MeV"])
def test_domain_reasons_equal_numpy_masks(units: str) -> None:
    metadata = dict(open_model(None).metadata)
    metadata["units"] = units
    domain = model_domain(metadata)
    rng = np.random.default_rng(8)
    n = 20_000
    scale = 1000.0 if units == "MeV" else 1.0
    x = np.stack(
        [
            np.exp(rng.uniform(1.0, 9.0, n)) * scale,
            rng.uniform(-6.0, 6.0, n),
            rng.uniform(-3.2, 3.2, n),
            np.exp(rng.uniform(-4.0, 7.0, n)) * scale * rng.choice([1.0, -0.001, -1.0], n),
        ],
        1,
    )
    x[rng.random(n) < 0.01, 0] = np.nan
    x[rng.random(n) < 0.01, 1] = np.inf
    x[rng.random(n) < 0.01, 3] = 2e6 * scale
    x[rng.random(n) < 0.01, 0] = rng.choice([0.0, -0.0, -5.0])
    x[:4, 2] = [math.pi + 1e-6, np.nextafter(math.pi + 1e-6, 4.0), -math.pi - 2e-6, math.pi]
    codes = domain.reasons(x)
    np.testing.assert_array_equal(codes, _reasons_numpy(domain, x))
    assert set(np.unique(codes)) == set(range(-1, 6))  # every reason occurs


def _unphysical_numpy(v: np.ndarray) -> np.ndarray:
    """``unphysical_mask`` of (pt, eta, phi, mass) with numpy masks."""
    bad = ~np.isfinite(v).all(axis=1)
    bad |= (v[:, 0] < 0) | (v[:, 3] < 0)
    bad |= np.abs(v[:, 2]) > math.pi + 1e-6  # in the array's float type (NEP 50)
    return bad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unphysical_mask_equals_numpy_masks(dtype: type) -> None:
    rng = np.random.default_rng(9)
    n = 5000
    v = np.stack(
        [
            rng.normal(50, 60, n),
            rng.normal(0, 2, n),
            rng.uniform(-3.3, 3.3, n),
            rng.normal(5, 6, n),
        ],
        1,
    ).astype(dtype)
    lim32 = np.float32(math.pi + 1e-6)
    v[:9] = [50.0, 0.0, 0.0, 5.0]
    v[:6, 2] = [lim32, np.nextafter(lim32, np.float32(4)), -lim32, math.pi, np.nan, -np.inf]
    v[6:9, 0] = [-0.0, 0.0, np.inf]
    ours = unphysical_mask(v, ["pt", "eta", "phi", "mass"])
    np.testing.assert_array_equal(ours, _unphysical_numpy(v))
    assert ours[[1, 4, 5, 8]].all()  # beyond the limit, NaN, -inf, pt = inf
    assert not ours[6]  # pt = -0.0
    # the limit rounded to float32 is above pi + 1e-6: out in float64, in (on it) in float32
    assert ours[0] == (dtype == np.float64)


def test_kernels_work_without_a_writable_cache_folder() -> None:
    """Where numba finds no writable cache folder (a read-only install), the module still
    imports and its kernels compile in the process."""
    import subprocess
    import sys

    code = (
        "import numba.core.caching as c\n"
        "def refuse(self): raise PermissionError('read-only')\n"
        "c._CacheLocator.ensure_cache_path = refuse\n"
        "from hepae_coffea.processing import fill_kernels as fk\n"
        "assert type(fk.log2_index._cache).__name__ == 'NullCache'\n"  # not cached
        "print(fk.log2_index(3.0, 0, 2, 1, False))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split()[-1] == "4"  # edges 1 1.5 2 3 4: 3.0 is in [3, 4), flow bin 4


def test_fill_distributions_each_kind_of_binning() -> None:
    """Regular bins, edges found by binary search and edges found by the bucket table
    count every value where numpy's searchsorted puts it."""
    rng = np.random.default_rng(8)
    regular = RegularBinning(40, -2.0, 2.0)
    searched = VariableBinning((-1.0, 0.0, 0.5, 2.0, 10.0))  # from below zero: no table
    tabled = VariableBinning(tuple(np.geomspace(0.1, 1000.0, 41)))
    assert searched.bucket_table() is None
    lookup = tabled.bucket_table()
    assert lookup is not None
    n = 5000
    orig = np.stack(
        [rng.normal(0, 1.5, n), rng.normal(1, 3, n), np.exp(rng.uniform(-4, 8, n))], axis=1
    ).astype(np.float32)
    orig[:5] = [[np.nan, np.nan, np.nan], [0, 0, 0], [-0.0, -0.0, -0.0]] + [[np.inf] * 3] * 2
    rec = (orig * rng.normal(1.0, 0.05, orig.shape)).astype(np.float32)
    scale = np.array([1.0, 1.0, 2.0])
    edges = np.full((3, 42), np.inf)
    edges[1, :5] = searched.edges
    edges[2, :41] = tabled.edges
    tables = np.zeros((3, len(lookup[0])), dtype=np.int64)
    tables[2] = lookup[0]
    counts = np.zeros((3, 43, 2))
    fk.fill_distributions(
        orig,
        rec,
        scale,
        np.array([0, 1, 2]),
        np.array([40, 1, 1]),
        np.array([-2.0, 0.0, 0.0]),
        np.array([4.0, 1.0, 1.0]),
        edges,
        np.array([0, 5, 41]),
        tables,
        np.array([0, 0, len(lookup[0])]),
        np.array([0, 0, lookup[1]]),
        np.array([0, 0, lookup[2]]),
        counts,
    )
    for k, values in enumerate((orig, rec)):
        x = values.astype(np.float64) * scale
        for i, (b, size) in enumerate(((regular, 42), (searched, 6), (tabled, 42))):
            expect = np.bincount(b.index(x[:, i]), minlength=size)
            np.testing.assert_array_equal(counts[i, :size, k], expect, err_msg=f"{i} {k}")
