"""ROC, efficiency at fixed background efficiency, baselines and sculpting: hand-worked
score sets, and plain numpy sorting on random ones."""

from __future__ import annotations

import math

import hist
import numpy as np
import pytest

from hepae_coffea.processing.anomaly import (
    efficiency_at,
    event_baselines,
    event_scores,
    roc_from_counts,
    roc_from_hists,
    roc_from_scores,
    sculpting,
    sculpting_from_counts,
    threshold_at,
)


def test_exact_roc_hand_worked_with_a_tie():
    # thresholds 6, 5, 4, 3 (tie: one background and one signal), 2, 1
    roc = roc_from_scores(np.array([1.0, 2, 3, 4]), np.array([3.0, 5, 6]))
    np.testing.assert_allclose(roc.eps_b, [0, 0, 0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(roc.eps_s, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_array_equal(roc.thresholds, [np.inf, 6, 5, 4, 3, 2, 1])
    # 12 pairs: signal 3 beats 2 and ties 1 (2.5), 5 and 6 beat all 4 each: 10.5 / 12
    assert roc.auc == pytest.approx(0.875)
    assert roc.n_background == 4
    assert roc.n_signal == 3
    assert roc.rejection[3] == pytest.approx(4.0)
    assert np.isinf(roc.rejection[:3]).all()


def test_efficiency_interpolates_between_roc_points():
    roc = roc_from_scores(np.array([1.0, 2, 3, 4]), np.array([3.0, 5, 6]))
    wp = efficiency_at(roc, [0.1, 0.3, 0.5], min_background=0)
    assert wp[0].eps_s == pytest.approx(2 / 3)  # flat between (0, 2/3) and (0.25, 2/3)
    assert wp[1].eps_s == pytest.approx(2 / 3 + (0.05 / 0.25) * (1 / 3))
    assert wp[2].eps_s == pytest.approx(1.0)
    assert wp[0].eps_s_error == pytest.approx(math.sqrt(2 / 3 * 1 / 3 / 3))
    assert all(w.measurable for w in wp)


def test_working_point_below_statistical_reach_gives_limit_not_number():
    roc = roc_from_scores(np.array([1.0, 2, 3, 4]), np.array([3.0, 5, 6]))
    (wp,) = efficiency_at(roc, [1e-2])  # 4 background events: 0.04 would pass
    assert not wp.measurable
    assert math.isnan(wp.eps_s)
    assert wp.n_background == 4
    assert wp.n_background_pass == pytest.approx(0.04)
    assert wp.eps_s_no_background == pytest.approx(2 / 3)  # cut above the highest background
    assert wp.rejection_lower_limit == pytest.approx(4 / -math.log(0.05))
    text = wp.describe()
    assert "not measurable" in text
    assert "4 background events" in text
    assert "rejection >" in text


def test_efficiency_against_numpy_sorting():
    rng = np.random.default_rng(3)
    b = rng.normal(0, 1, 20000)
    s = rng.normal(2, 1, 3000)
    wps = efficiency_at(roc_from_scores(b, s), [1e-2, 1e-3, 1e-4])
    desc = np.sort(b)[::-1]
    for wp, k in zip(wps[:2], (200, 20), strict=True):
        # eps_B = k / N exactly: the cut just above the (k+1)-th highest background score
        assert wp.measurable
        assert wp.eps_s == pytest.approx(np.mean(s > desc[k]))
    assert not wps[2].measurable  # 2 background events at 1e-4 < 10
    assert wps[2].eps_s_no_background == pytest.approx(np.mean(s > desc[0]))
    # AUC: Mann-Whitney from ranks with plain numpy
    ranks = np.argsort(np.argsort(np.concatenate([b, s]))) + 1
    u = ranks[b.size :].sum() - s.size * (s.size + 1) / 2
    assert roc_from_scores(b, s).auc == pytest.approx(u / (b.size * s.size), rel=1e-12)


def test_weights_scale_efficiencies_and_effective_counts():
    roc = roc_from_scores(
        np.array([1.0, 2]), np.array([1.5]), background_weights=np.array([3.0, 1.0])
    )
    # cut at 2: background 1/4; at 1.5: signal 1; at 1: everything
    np.testing.assert_allclose(roc.eps_b, [0, 0.25, 0.25, 1])
    np.testing.assert_allclose(roc.eps_s, [0, 0, 1, 1])
    assert roc.n_background == pytest.approx(16 / 10)


def test_bad_scores_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="signal: 1 of 2 scores are not finite"):
        roc_from_scores(np.array([1.0]), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="background: no events"):
        roc_from_scores(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError, match="not in"):
        efficiency_at(roc_from_scores(np.array([1.0]), np.array([2.0])), [0.0])


def test_binned_roc_hand_worked():
    edges = np.array([0.0, 1, 2, 3])
    b = np.array([0, 2, 1, 1, 0])  # underflow, [0,1), [1,2), [2,3), overflow
    s = np.array([0, 0, 1, 2, 1])
    roc = roc_from_counts(b, s, edges)
    np.testing.assert_allclose(roc.eps_b, [0, 0, 0.25, 0.5, 1])
    np.testing.assert_allclose(roc.eps_s, [0, 0.25, 0.75, 1, 1])
    np.testing.assert_array_equal(roc.thresholds, [np.inf, 3, 2, 1, 0])
    assert roc.auc == pytest.approx(13.5 / 16)
    # the same as the exact ROC of the bin centres (overflow at 3.5)
    exact = roc_from_scores(np.array([0.5, 0.5, 1.5, 2.5]), np.array([1.5, 2.5, 2.5, 3.5]))
    assert exact.auc == pytest.approx(roc.auc)


def test_binned_roc_from_hists_matches_counts():
    ax = hist.axis.Variable([0.0, 1, 2, 3], name="score")
    hb, hs = hist.Hist(ax), hist.Hist(ax)
    hb.fill(score=[0.5, 0.5, 1.5, 2.5])
    hs.fill(score=[1.5, 2.5, 2.5, 7.0])
    roc = roc_from_hists(hb, hs)
    np.testing.assert_allclose(roc.eps_s, [0, 0.25, 0.75, 1, 1])
    assert roc.n_background == 4
    with pytest.raises(ValueError, match="different axes"):
        roc_from_hists(hb, hist.Hist(hist.axis.Regular(3, 0, 6)))


def test_event_scores_and_baselines_hand_worked():
    counts = np.array([2, 0, 3])  # the middle event has no jet: left out
    score = np.array([1.0, 3, 2, 2, 5])
    ev = event_scores(score, counts)
    np.testing.assert_allclose(ev["max"], [3, 5])
    np.testing.assert_allclose(ev["mean"], [2, 3])
    pt = np.array([50.0, 80, 30, 200, 100])  # leading jet not first in the second event
    mass = np.array([5.0, 8, 3, 20, 10])
    base = event_baselines(pt, mass, counts)
    np.testing.assert_allclose(base["leading_jet_pt"], [80, 200])
    np.testing.assert_allclose(base["leading_jet_mass"], [8, 20])
    np.testing.assert_allclose(base["ht"], [130, 330])
    with pytest.raises(ValueError, match="counts add up to 4"):
        event_baselines(pt, mass, np.array([2, 2]))
    tie = event_baselines(np.array([50.0, 50, 10]), np.array([1.0, 2, 3]), np.array([2, 1]))
    np.testing.assert_allclose(tie["leading_jet_mass"], [1, 3])  # first of equal-pT jets
    with pytest.raises(ValueError, match="1 jets with non-finite pt"):
        event_baselines(np.array([np.nan, 1.0]), None, np.array([2]))


def test_threshold_at_respects_ties():
    assert threshold_at(np.array([1.0, 2, 3, 4]), 0.5) == 3
    assert threshold_at(np.array([5.0, 3, 3, 1]), 0.5) == 5  # 3 would keep 3 of 4
    assert threshold_at(np.array([1.0, 2, 2, 2]), 0.5) == math.inf
    assert threshold_at(np.array([1.0, 2, 3, 4]), 0.1) == math.inf


def test_sculpting_hand_worked():
    obs = np.array([1.0, 2, 3, 4])
    edges = np.array([0.0, 2.5, 5])
    full = sculpting(obs, obs, edges, [0.5])[0.5]  # score = observable: fully sculpted
    assert full["threshold"] == 3
    np.testing.assert_array_equal(full["counts"], [0, 2])
    np.testing.assert_array_equal(full["inclusive"], [2, 2])
    np.testing.assert_allclose(full["ratio"], [0, 2])
    flat = sculpting(np.array([4.0, 1, 3, 2]), obs, edges, [0.5])[0.5]  # one kept per bin
    np.testing.assert_allclose(flat["ratio"], [1, 1])


def test_binned_sculpting_hand_worked():
    # score rows: underflow, [0,1), [1,2), overflow; two observable bins
    c = np.array([[0, 0], [3, 1], [1, 3], [0, 2]])
    out = sculpting_from_counts(c, np.array([0.0, 1, 2]), [0.2, 0.6])
    np.testing.assert_array_equal(out[0.2]["counts"], [0, 2])
    np.testing.assert_allclose(out[0.2]["ratio"], [0, 1 / 0.6])
    assert out[0.2]["threshold"] == 2
    np.testing.assert_array_equal(out[0.6]["counts"], [1, 5])
    np.testing.assert_allclose(out[0.6]["ratio"], [(1 / 6) / 0.4, (5 / 6) / 0.6])
    assert out[0.6]["threshold"] == 1


# --- processor histograms, figures and report ---------------------------------------------


@pytest.fixture(scope="module")
def anomaly_results(tmp_path_factory):
    """Processor outputs of a QCD-like background and a harder "signal" (pt x 5)."""
    from hepae_coffea.processing.run import run

    from .conftest import make_jets, write_nanoaod

    d = tmp_path_factory.mktemp("anomaly")
    files, raw = {}, {}
    for name, seed, scale in (("bkg", 30, 1.0), ("sig", 31, 5.0)):
        counts, jets = make_jets(500, seed=seed)
        jets["pt"] = jets["pt"] * scale
        files[name] = d / f"{name}.root"
        write_nanoaod(files[name], counts, jets)
        raw[name] = (counts, jets)
    res = run({k: [str(v)] for k, v in files.items()}, chunksize=200)  # several chunks
    return res.output, raw


def test_processor_fills_baselines_on_the_scored_events(anomaly_results):
    from hepae_coffea.processing.anomaly_hists import BASELINE_BINNING, BASELINES, LEADING_BINNING

    out, raw = anomaly_results
    counts, jets = raw["bkg"]
    pt = jets["pt"].astype(np.float32).astype(np.float64)  # as written to the file
    mass = jets["mass"].astype(np.float32).astype(np.float64)
    ends = np.cumsum(counts)
    lead_pt, lead_m, ht = [], [], []
    for c, e in zip(counts, ends, strict=True):  # plain loop over events
        if c == 0:
            continue
        p, m = pt[e - c : e], mass[e - c : e]
        lead_pt.append(p.max())
        lead_m.append(m[np.argmax(p)])
        ht.append(p.sum())
    edges = BASELINE_BINNING.edges()
    h = out["bkg"]["anomaly"]["baseline"]
    for name, values in zip(BASELINES, (lead_pt, lead_m, ht), strict=True):
        expected = np.bincount(
            np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1
        )
        np.testing.assert_array_equal(h[{"observable": name}].values(flow=True), expected)
    # the 2D histogram projects onto the event-max score histogram and the leading pT
    h2 = out["bkg"]["anomaly"]["score_vs_leading"][{"kind": "max", "observable": "leading_jet_pt"}]
    np.testing.assert_array_equal(
        h2.values(flow=True).sum(axis=1), out["bkg"]["score_event_max"].values(flow=True)
    )
    lead_edges = LEADING_BINNING.edges()
    np.testing.assert_array_equal(
        h2.values(flow=True).sum(axis=0),
        np.bincount(
            np.searchsorted(lead_edges, lead_pt, side="right"), minlength=len(lead_edges) + 1
        ),
    )
    assert h[{"observable": "ht"}].sum(flow=True) == out["bkg"]["score_event_max"].sum(flow=True)


def test_binned_baseline_roc_close_to_exact(anomaly_results):
    from hepae_coffea.processing.anomaly_hists import rocs_from_outputs

    out, raw = anomaly_results
    rocs = rocs_from_outputs(out, "bkg", "sig")
    assert set(rocs) == {
        "score_event_max",
        "score_event_mean",
        "score_jet",
        "leading_jet_pt",
        "leading_jet_mass",
        "ht",
    }
    lead = {}
    for name, (counts, jets) in raw.items():
        pt = jets["pt"].astype(np.float32).astype(np.float64)
        lead[name] = event_baselines(pt, None, counts)["leading_jet_pt"]
    exact = roc_from_scores(lead["bkg"], lead["sig"])
    # 16 bins per octave: only pairs sharing a 4.4%-wide bin are counted as ties
    assert rocs["leading_jet_pt"].auc == pytest.approx(exact.auc, abs=0.01)
    assert rocs["leading_jet_pt"].n_background == len(lead["bkg"])
    with pytest.raises(KeyError, match="dataset 'nope' not in results"):
        rocs_from_outputs(out, "bkg", "nope")


def test_roc_figure_is_rejection_on_log_axis_with_baselines(anomaly_results):
    import matplotlib as mpl

    from hepae_coffea.plots.plotting import figure_roc
    from hepae_coffea.processing.anomaly_hists import rocs_from_outputs

    mpl.use("Agg")
    out, _ = anomaly_results
    fig = figure_roc(out, "bkg", "sig")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert "rejection" in ax.get_ylabel()
    assert "signal efficiency" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    rocs = rocs_from_outputs(out, "bkg", "sig")
    for text in ("event (max)", "event (mean)", "jet score", "leading-jet $p_T$", "$H_T$"):
        assert any(lbl.startswith(text) for lbl in labels), text
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    pt_line = next(v for k, v in lines.items() if k.startswith("leading-jet $p_T$"))
    roc = rocs["leading_jet_pt"]
    keep = roc.eps_b > 0
    np.testing.assert_allclose(pt_line.get_ydata(), 1 / roc.eps_b[keep])
    np.testing.assert_allclose(pt_line.get_xdata(), roc.eps_s[keep])
    assert f"AUC = {roc.auc:.3f}" in pt_line.get_label()
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_sculpting_figure_and_numbers(anomaly_results):
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from hepae_coffea.plots.plotting import figure_sculpting
    from hepae_coffea.processing.anomaly_hists import sculpting_from_output

    mpl.use("Agg")
    out, _ = anomaly_results
    sc = sculpting_from_output(out["bkg"], "max", (0.1,))
    r = sc["leading_jet_pt"][0.1]
    total = r["inclusive"].sum()
    assert 0 < r["kept"] <= 0.1 * total
    # ratio is (cut shape) / (inclusive shape), computed here from the counts
    ok = r["inclusive"] > 0
    np.testing.assert_allclose(
        r["ratio"][ok], (r["counts"][ok] / r["kept"]) / (r["inclusive"][ok] / total)
    )
    fig = figure_sculpting(out["bkg"], "bkg", eps_b=(0.1,))
    assert len(fig.axes) == 4  # spectra and ratios of leading-jet pT and mass
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    assert fig.axes[2].get_ylabel() == "cut / inclusive"
    assert "$p_T$" in fig.axes[2].get_xlabel()
    plt.close(fig)


def test_report_anomaly_section(anomaly_results, tmp_path):
    from hepae_coffea.plots.report import write_report
    from hepae_coffea.processing.anomaly_hists import rocs_from_outputs

    out, _ = anomaly_results
    text = write_report(out, tmp_path, background="bkg", signal="sig").read_text()
    assert "## Anomaly score" in text
    rocs = rocs_from_outputs(out, "bkg", "sig")
    n_b = rocs["score_event_max"].n_background
    row = next(ln for ln in text.splitlines() if ln.startswith("| leading-jet pT |"))
    assert f"| {rocs['leading_jet_pt'].auc:.3f} |" in row
    # ~400 background events: 1e-2 is measurable only with >= 1000; the cell says so
    assert n_b < 1000
    assert row.count("n/m") == 3
    assert "Sculpting of `bkg`" in text
    plain = write_report(out, tmp_path / "plain").read_text()
    assert "## Anomaly score" not in plain
