"""The processor's histograms, moments, counters and the report's verdicts, against a model
whose reconstruction is a known formula (tests/known_model.py).

The expected residuals are the formula's (a constant shift or scale), computed with plain
numpy on the raw input arrays; nothing here calls the library's residual functions.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from hepae_coffea.plots.report import report_table, write_report
from hepae_coffea.processing.run import run

from .conftest import make_jets, write_nanoaod
from .known_model import expected_reconstruction, export_known_model

VARS = ("pt", "eta", "phi", "mass")
SHIFTED = {
    "pt_scale": 1.02,
    "pt_shift": 0.5,
    "eta_shift": 0.003,
    "phi_shift": 0.45,  # moves ~7% of the jets across the phi = +-pi seam
    "mass_scale": 0.99,
}
# only phi and the threshold decide the verdict: widths of the others are below 1e-6
LOOSE = {"pt": 1.0, "eta": 1.0, "phi": 1.0, "mass": 1.0}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("physics")
    counts, jets = make_jets(500, seed=41)
    counts[:60] = 0  # a chunk without jets
    n = int(counts.sum())
    jets = {k: v[:n] for k, v in jets.items()}
    # masses above the 1 GeV floor of the relative mass residual, so that a mass scale of
    # 0.99 gives exactly -1% for every jet (the floor has its own tests)
    jets["mass"] = np.maximum(jets["mass"], np.float32(1.5))
    path = d / "sample.root"
    write_nanoaod(path, counts, jets)
    x = np.stack([jets[v] for v in ("pt", "eta", "phi", "mass")], axis=1).astype(np.float32)
    return path, counts, x


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("known_models")
    return {
        "shifted": export_known_model(d / "shifted.pt", **SHIFTED),
        "identity": export_known_model(d / "identity.pt"),
        "negative_pt": export_known_model(d / "negative_pt.pt", pt_shift=-40.0),
        "phi_unwrapped": export_known_model(d / "phi_unwrapped.pt", phi_shift=0.9, wrap_phi=False),
    }


def _moments(out):
    """(count, mean, sum of squared deviations) per variable and kind, as numpy arrays."""
    view = out["residual_moments"].view()
    return view["count"], view["value"], view["_sum_of_deltas_squared"]


@pytest.fixture(scope="module")
def shifted_output(sample, models):
    path, _, _ = sample
    return run([path], models["shifted"], chunksize=120).output["sample"]


def test_shifted_model_moments_are_the_formula(sample, shifted_output):
    _, _, x = sample
    n = len(x)
    count, mean, ssd = _moments(shifted_output)
    assert count.tolist() == [[n, n]] * 4
    # expected residuals, from the formula on the raw inputs (float64)
    pt = x[:, 0].astype(np.float64)
    rel_pt = 0.02 + 0.5 / pt
    # relative pt and mass, absolute eta and phi (phi: the wrapped difference is the shift)
    assert mean[0, 0] == pytest.approx(rel_pt.mean(), rel=1e-5)
    assert mean[1, 1] == pytest.approx(0.003, abs=2e-6)
    assert mean[2, 1] == pytest.approx(0.45, abs=2e-6)
    assert mean[3, 0] == pytest.approx(-0.01, abs=2e-7)
    # spreads: var(0.5 / pt) for pt; the shifts are constants (float32 rounding only)
    assert ssd[0, 0] / n == pytest.approx(rel_pt.var(), rel=1e-3)
    assert ssd[1, 1] / n < 1e-11
    assert ssd[2, 1] / n < 1e-11  # unwrapped phi residuals (0.45 - 2 pi) would make it ~2
    assert ssd[3, 0] / n < 1e-13


def test_shifted_model_histograms(sample, shifted_output):
    _, counts, x = sample
    n = len(x)
    out = shifted_output
    c = out["counters"]
    assert (c["events"], c["jets"], c["jets_selected"]) == (len(counts), n, n)
    assert (c["jets_nonfinite"], c["jets_unphysical"]) == (0, 0)
    # every phi residual (absolute) sits in the bin of +0.45, every mass residual
    # (relative) in the bin of -0.01: neither value is near a bin edge
    for hist_name, v, r in (("residual_abs", "phi", 0.45), ("residual", "mass", -0.01)):
        h = out[hist_name][{"variable": v}]
        i = int(np.searchsorted(h.axes[0].edges, r, side="right")) - 1
        assert h.values()[i] == n, v
    # scores: sum of squared differences, from the formula
    rec = expected_reconstruction(x, **SHIFTED).astype(np.float64)
    d = rec - x  # the score uses the raw (unwrapped) difference
    score = np.sum(d**2, axis=1)
    s_edges = out["score_jet"].axes[0].edges
    expect = np.histogram(score, bins=s_edges)[0]
    got = out["score_jet"].values()
    # bins may differ by float32 rounding of values on an edge: compare the cumulative
    assert abs(np.cumsum(got) - np.cumsum(expect)).max() <= 2
    # event max / mean over jets, events with jets only
    assert out["score_event_max"].sum(flow=True) == int((counts > 0).sum())


def test_report_rms_and_mean_are_the_formula(sample, shifted_output):
    _, _, x = sample
    rows = report_table({"sample": shifted_output}, LOOSE)["sample"]["variables"]
    rel_pt = 0.02 + 0.5 / x[:, 0].astype(np.float64)
    assert rows["pt"]["rms"] == pytest.approx(math.sqrt(np.mean(rel_pt**2)), rel=1e-5)
    assert rows["eta"]["rms"] == pytest.approx(0.003, abs=2e-6)
    assert rows["phi"]["rms"] == pytest.approx(0.45, abs=2e-6)
    assert rows["mass"]["rms"] == pytest.approx(0.01, abs=2e-7)
    assert rows["mass"]["mean"] == pytest.approx(-0.01, abs=2e-7)
    # all residuals of phi beyond 5%, none of them beyond 100%
    assert rows["phi"]["frac_beyond_5pct"] == pytest.approx(1.0)
    assert rows["phi"]["sigma68"] < 0.25 / 16  # within one bin of the residual axis
    assert all(r["verdict"] == "PASS" for r in rows.values())


def test_identity_model_has_zero_residuals(sample, models):
    path, _, x = sample
    out = run([path], models["identity"], chunksize=120).output["sample"]
    count, mean, ssd = _moments(out)
    n = len(x)
    assert count[0, 0] == n
    np.testing.assert_array_equal(mean[[0, 1, 3], :], 0.0)
    np.testing.assert_array_equal(ssd[[0, 1, 3], :], 0.0)
    # phi passes atan2(sin, cos): a few float32 ulps
    assert abs(mean[2, 1]) < 1e-6
    assert out["counters"]["jets_unphysical"] == 0
    # all residuals in the central bin [-2**-24, 2**-24) except phi's ulps
    for v in ("pt", "eta", "mass"):
        h = out["residual_abs"][{"variable": v}]
        assert h.values()[len(h.values()) // 2] == n, v


@pytest.mark.parametrize(
    ("model", "bad"),
    [
        ("negative_pt", lambda x: x[:, 0] - np.float32(40.0) < 0),
        ("phi_unwrapped", lambda x: np.abs(x[:, 2] + np.float32(0.9)) > math.pi),
    ],
)
def test_unphysical_counter_counts_each_bad_jet(sample, models, model, bad):
    path, _, x = sample
    expect = int(bad(x).sum())
    assert 0 < expect < len(x)  # the sample has both kinds of jet
    out = run([path], models[model], chunksize=120).output["sample"]
    assert out["counters"]["jets_unphysical"] == expect


def test_unphysical_jets_flip_the_verdict(sample, models, tmp_path):
    """Same residual widths (a constant phi shift of 0.9), with and without wrapping the
    decoded phi: only the unwrapped model makes |phi| > pi and fails."""
    path, _, _ = sample
    bad = run([path], models["phi_unwrapped"], chunksize=120).output["sample"]
    good_model = export_known_model(tmp_path / "phi_wrapped.pt", phi_shift=0.9)
    good = run([path], good_model, chunksize=120).output["sample"]
    t_good = report_table({"d": good}, LOOSE)["d"]["variables"]
    t_bad = report_table({"d": bad}, LOOSE)["d"]["variables"]
    for v in ("pt", "eta", "phi", "mass"):
        assert t_good[v]["sigma68"] == pytest.approx(t_bad[v]["sigma68"], abs=1e-9)
        assert t_good[v]["verdict"] == "PASS"
        assert t_bad[v]["verdict"] == "FAIL"
    page_bad = write_report({"d": bad}, tmp_path / "bad", thresholds=LOOSE).read_text()
    page_good = write_report({"d": good}, tmp_path / "good", thresholds=LOOSE).read_text()
    assert "**Overall verdict: FAIL**" in page_bad
    assert "**Overall verdict: PASS**" in page_good
    # a width above its threshold fails on its own, without unphysical jets
    t = report_table({"d": good}, {**LOOSE, "pt": -1.0})["d"]["variables"]
    assert t["pt"]["verdict"] == "FAIL"
    assert t["eta"]["verdict"] == "PASS"


def test_nonfinite_inputs_are_counted_not_reconstructed(tmp_path, models):
    counts, jets = make_jets(200, seed=42)
    n = int(counts.sum())
    jets = {k: v[:n] for k, v in jets.items()}
    jets["pt"][[0, 5]] = np.nan
    jets["eta"][7] = np.inf
    jets["mass"][[5, 9]] = -np.inf  # jet 5: two bad variables, one bad jet
    path = tmp_path / "nonfinite.root"
    write_nanoaod(path, counts, jets)
    out = run([path], models["identity"], chunksize=70).output["nonfinite"]
    c = out["counters"]
    assert c["jets"] == n
    assert c["jets_nonfinite"] == 4  # jets 0, 5, 7, 9
    assert out["score_jet"].sum(flow=True) == n - 4
    count, _, _ = _moments(out)
    assert count[0, 0] == n - 4


def test_executors_agree_on_spread(sample, models, shifted_output):
    path, _, _ = sample
    fut = run([path], models["shifted"], chunksize=120, executor="futures", workers=2)
    a, b = _moments(shifted_output), _moments(fut.output["sample"])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-9, atol=1e-16)


def test_one_chunk_counters_moments_and_fills(sample, models):
    """One ``process`` call per model on the whole sample (fast: no Runner), every counter,
    moment and fill against numpy on the raw inputs."""
    import awkward as ak
    from coffea.nanoevents import NanoEventsFactory

    from hepae_coffea.io.schemas import JetNanoAODSchema
    from hepae_coffea.processors.compression import JetCompressionProcessor

    path, counts, x = sample
    n = len(x)
    events = NanoEventsFactory.from_root(
        {str(path): "Events"},
        schemaclass=JetNanoAODSchema,
        mode="eager",
        metadata={"dataset": "one"},
    ).events()
    out = JetCompressionProcessor(models["shifted"]).process(events)["one"]
    c = out["counters"]
    assert (c["events"], c["jets"], c["jets_selected"]) == (len(counts), n, n)
    assert (c["jets_nonfinite"], c["jets_unphysical"], c["jets_beyond_event_jets"]) == (0, 0, 0)
    count, mean, ssd = _moments(out)
    rel_pt = 0.02 + 0.5 / x[:, 0].astype(np.float64)
    np.testing.assert_array_equal(count, n)
    assert mean[0, 0] == pytest.approx(rel_pt.mean(), rel=1e-5)
    assert ssd[0, 0] == pytest.approx(((rel_pt - rel_pt.mean()) ** 2).sum(), rel=1e-3)
    assert mean[1, 1] == pytest.approx(0.003, abs=2e-6)
    assert mean[2, 1] == pytest.approx(0.45, abs=2e-6)
    assert mean[3, 0] == pytest.approx(-0.01, abs=2e-7)
    assert ssd[2, 1] < 1e-8
    assert ssd[3, 0] < 1e-10
    # absolute moments of the relative variables: rec - orig
    assert mean[3, 1] == pytest.approx(-0.01 * x[:, 3].astype(np.float64).mean(), rel=1e-4)
    for hist_name, v, r in (("residual_abs", "phi", 0.45), ("residual", "mass", -0.01)):
        h = out[hist_name][{"variable": v}]
        i = int(np.searchsorted(h.axes[0].edges, r, side="right")) - 1
        assert h.values()[i] == n, v
    for v in ("pt", "eta", "phi", "mass"):
        assert out["residual"][{"variable": v}].sum(flow=True) == n
        assert out["residual_abs"][{"variable": v}].sum(flow=True) == n
        vs_pt = out["residual_vs_pt"][{"variable": v}]
        assert vs_pt.sum(flow=True) == n
        d = out["distribution"][v]
        assert d[{"version": "original"}].sum(flow=True) == n
        assert d[{"version": "reconstructed"}].sum(flow=True) == n
    # residual vs pt: the residual axis holds each variable's preferred residual
    # (absolute for phi: all in the coarse bin of +0.45; relative for mass: of -0.01)
    for v, r in (("phi", 0.45), ("mass", -0.01)):
        vs = out["residual_vs_pt"][{"variable": v}]
        per_residual = vs.values(flow=True).sum(axis=0)
        i = int(np.searchsorted(vs.axes["residual"].edges, r, side="right"))  # flow index
        assert per_residual[i] == n, v
    # the pt axis holds the original pt
    pt_counts = out["residual_vs_pt"][{"variable": "pt"}].values(flow=True).sum(axis=1)
    pt_edges = out["residual_vs_pt"].axes["pt"].edges
    expect = np.bincount(
        np.searchsorted(pt_edges, x[:, 0].astype(np.float64), side="right"),
        minlength=len(pt_edges) + 1,
    )
    np.testing.assert_array_equal(pt_counts, expect)
    # the original distribution holds the inputs, the reconstructed one the formula
    rec = expected_reconstruction(x, **SHIFTED).astype(np.float64)
    # relative moments of eta: (rec - orig) / orig, no floor (unlike the mass)
    x64 = x.astype(np.float64)
    assert mean[1, 0] == pytest.approx(np.mean((rec[:, 1] - x64[:, 1]) / x64[:, 1]), rel=1e-3)
    for i, v in enumerate(("pt", "eta", "phi", "mass")):
        d = out["distribution"][v]
        for version, values in (
            ("original", x[:, i].astype(np.float64)),
            ("reconstructed", rec[:, i]),
        ):
            edges = d.axes[0].edges
            got = d[{"version": version}].values(flow=True)
            ref = np.bincount(
                np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1
            )
            assert abs(got - ref).sum() <= 2, (v, version)  # float32 rounding at an edge
    # event scores: max and mean of the formula's per-jet score over each event's jets
    score = np.sum((rec - x.astype(np.float64)) ** 2, axis=1)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    per_event = [score[a:b] for a, b in pairwise(bounds) if b > a]
    for name, values in (
        ("score_event_max", [e.max() for e in per_event]),
        ("score_event_mean", [e.mean() for e in per_event]),
    ):
        edges = out[name].axes[0].edges
        ref = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        got = out[name].values(flow=True)
        assert np.abs(np.cumsum(got) - np.cumsum(ref)).max() <= 2, name
    assert out["score_jet"].sum(flow=True) == n
    # latents: the inputs themselves, 4 per jet; every pair among the first four filled
    assert out["latent"].sum(flow=True) == 4 * n
    assert out["latent"][{"dim": 1}].sum() == np.sum(np.abs(x[:, 1]) < 1000)
    pairs = out["latent_pairs"]
    assert list(pairs.axes["pair"]) == ["0-1", "0-2", "0-3", "1-2", "1-3", "2-3"]
    for name in pairs.axes["pair"]:
        assert pairs[{"pair": name}].sum(flow=True) == n, name
    lo, hi = pairs.axes["zx"].edges[[0, -1]]
    inside = (x[:, 1] >= lo) & (x[:, 1] < hi) & (x[:, 3] >= lo) & (x[:, 3] < hi)
    assert pairs[{"pair": "1-3"}].sum() == int(inside.sum())

    # unphysical reconstructions, counted jet by jet
    for model, bad in (
        ("negative_pt", x[:, 0] - np.float32(40.0) < 0),
        ("phi_unwrapped", np.abs(x[:, 2] + np.float32(0.9)) > math.pi),
    ):
        o = JetCompressionProcessor(models[model]).process(events)["one"]
        assert o["counters"]["jets_unphysical"] == int(bad.sum()), model

    # massless jets: the relative mass residual is taken against the 1 GeV floor,
    # (m_rec - 0) / max(0, 1 GeV) = 0 for the identity model, so it is defined and counted
    massless = x.copy()
    massless[:, 3] = 0.0
    arrays = ak.Array(
        {"Jet": ak.zip({v: ak.unflatten(massless[:, i], counts) for i, v in enumerate(VARS)})}
    )
    o = JetCompressionProcessor(models["identity"]).process(arrays)["dataset"]
    count, mean, _ = _moments(o)
    assert (count[3, 0], count[3, 1], count[0, 0]) == (n, n, n)
    assert mean[3, 0] == 0.0
    assert o["residual"][{"variable": "mass"}].sum(flow=True) == n
    assert o["residual_abs"][{"variable": "mass"}].sum(flow=True) == n

    # a chunk with a single jet is filled like any other
    one = ak.Array({"Jet": ak.zip({v: ak.unflatten(x[:1, i], [1]) for i, v in enumerate(VARS)})})
    o = JetCompressionProcessor(models["shifted"]).process(one)["dataset"]
    assert o["counters"]["jets"] == 1
    assert o["score_jet"].sum(flow=True) == 1
    assert o["residual"][{"variable": "pt"}].sum(flow=True) == 1
    assert _moments(o)[0][0, 0] == 1

    # the worker's torch threads are set as asked
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        JetCompressionProcessor(models["identity"], torch_threads=1).process(events)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)

    # selection before the model
    o = JetCompressionProcessor(models["identity"], pt_min=50.0, abs_eta_max=1.5).process(events)
    keep = (x[:, 0] > 50) & (np.abs(x[:, 1]) < 1.5)
    assert o["one"]["counters"]["jets_selected"] == int(keep.sum())
    assert o["one"]["score_jet"].sum(flow=True) == int(keep.sum())

    # non-finite inputs: counted (per jet) and left out of every histogram
    bad = x.copy()
    bad[[0, 3], 0] = np.nan
    bad[3, 2] = np.inf
    bad[7, 3] = -np.inf
    arrays = ak.Array(
        {
            "Jet": ak.zip(
                {
                    v: ak.unflatten(bad[:, i], counts)
                    for i, v in enumerate(("pt", "eta", "phi", "mass"))
                }
            )
        }
    )
    o = JetCompressionProcessor(models["identity"]).process(arrays)["dataset"]
    assert o["counters"]["jets_nonfinite"] == 3
    assert o["counters"]["jets"] == n
    assert o["score_jet"].sum(flow=True) == n - 3
    assert _moments(o)[0][0, 0] == n - 3


def test_set_moments_by_hand_and_of_no_values():
    """A Mean cell set from values equals count, mean and squared deviations by hand; no
    values (e.g. every relative residual non-finite) leave the cell empty, not NaN."""
    import hist

    from hepae_coffea.processors.compression import _set_moments

    h = hist.Hist(
        hist.axis.Integer(0, 2, name="v", flow=False),
        hist.axis.Integer(0, 2, name="k", flow=False),
        storage=hist.storage.Mean(),
    )
    _set_moments(h, 1, 0, np.array([1.0, 2.0, 6.0]))
    _set_moments(h, 0, 1, np.array([], np.float64))
    count, mean, ssd = _moments({"residual_moments": h})
    np.testing.assert_array_equal(count, [[0.0, 0.0], [3.0, 0.0]])
    np.testing.assert_array_equal(mean, [[0.0, 0.0], [3.0, 0.0]])
    np.testing.assert_array_equal(ssd, [[0.0, 0.0], [14.0, 0.0]])  # 4 + 1 + 9
