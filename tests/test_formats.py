"""Format detection and reading of real ATLAS/CMS files and Open Data layouts.

Expected values are computed here with plain uproot/numpy on the raw branches.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepae_coffea.cli import main
from hepae_coffea.errors import InputFileError
from hepae_coffea.io.formats import detect_format
from hepae_coffea.io.guards import UntrustedPickleError, trusted_pickles
from hepae_coffea.io.jets import read_jets
from hepae_coffea.model.export import read_metadata
from hepae_coffea.plots.report import report_table
from hepae_coffea.variables.domain import REASONS, Domain, model_domain

from .conftest import make_jets

DATA = Path(__file__).parent / "data"
PHYSLITE = DATA / "PHYSLITE_example.root"
NANO = DATA / "nano_dy.root"
PFNANO = DATA / "pfnano.root"


def _raw(path, tree, names):
    with uproot.open(path) as f:
        arrays = f[tree].arrays(names, library="ak")
    return [np.asarray(ak.flatten(arrays[n]), dtype=np.float64) for n in names]


# --- Open Data fixtures with the exact branch layouts -----------------------------------


@pytest.fixture(scope="module")
def opendata2020(tmp_path_factory):
    """ATLAS Open Data 13 TeV 2020 layout: tree mini, jet_n, jet_pt/eta/phi/E in MeV."""
    counts, jets = make_jets(300, seed=5)
    energy = np.hypot(jets["pt"] * np.cosh(jets["eta"]), jets["mass"])
    path = tmp_path_factory.mktemp("od2020") / "mc_361106.Zee.1largeRjet1lep.root"
    un = lambda x, dt=np.float32: ak.unflatten(np.asarray(x, dt), counts)
    data = {
        "runNumber": np.full(len(counts), 284500, np.int32),
        "eventNumber": np.arange(len(counts), dtype=np.int32),
        "jet_n": counts.astype(np.uint32),
        "jet_pt": un(jets["pt"] * 1000),
        "jet_eta": un(jets["eta"]),
        "jet_phi": un(jets["phi"]),
        "jet_E": un(energy * 1000),
        "jet_jvt": un(np.full(counts.sum(), 0.9)),
        "jet_MV2c10": un(np.zeros(counts.sum())),
        "jet_trueflav": un(np.zeros(counts.sum()), np.int32),
    }
    with uproot.recreate(path) as f:
        f.mktree(
            "mini", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in data.items()}
        )
        f["mini"].extend(data)
    return path, counts, jets


@pytest.fixture(scope="module")
def opendata2025(tmp_path_factory):
    """ATLAS Open Data 13 TeV 2025 layout: tree analysis, jet_pt/eta/phi/e in GeV."""
    counts, jets = make_jets(300, seed=6)
    energy = np.hypot(jets["pt"] * np.cosh(jets["eta"]), jets["mass"])
    path = tmp_path_factory.mktemp("od2025") / "ODEO_FEB2025_v0_2J2LMET30_mc.root"
    un = lambda x, dt=np.float32: ak.unflatten(np.asarray(x, dt), counts)
    data = {
        "jet_pt": un(jets["pt"]),
        "jet_eta": un(jets["eta"]),
        "jet_phi": un(jets["phi"]),
        "jet_e": un(energy),
        "jet_btag_quantile": un(np.ones(counts.sum()), np.int32),
        "jet_jvt": un(np.ones(counts.sum()), np.bool_),
    }
    with uproot.recreate(path) as f:
        f.mktree(
            "analysis", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in data.items()}
        )
        f["analysis"].extend(data)
    return path, counts, jets


# --- detection ------------------------------------------------------------------------


def test_detect_physlite():
    f = detect_format(PHYSLITE)
    assert (f.name, f.tree, f.collection, f.units, f.schema) == (
        "physlite",
        "CollectionTree",
        "Jets",
        "MeV",
        "physlite",
    )
    assert f.branches["mass"] == "AnalysisJetsAuxDyn.m"
    assert f.describe() == (
        "format: ATLAS PHYSLITE (tree CollectionTree, jets AnalysisJets, MeV -> GeV)"
    )
    large = detect_format(PHYSLITE, collection="LargeRJets")
    assert large.prefix == "AnalysisLargeRJetsAuxDyn."
    assert large.collection == "LargeRJets"


def test_detect_nanoaod_and_pfnano():
    nano = detect_format(NANO)
    assert (nano.name, nano.tree, nano.collection, nano.units, nano.schema) == (
        "nanoaod",
        "Events",
        "Jet",
        "GeV",
        "nanoaod",
    )
    assert nano.event_id == ("run", "luminosityBlock", "event")
    assert nano.describe() == "format: CMS NanoAOD (tree Events, jets Jet, GeV)"
    pf = detect_format(PFNANO)
    assert pf.name == "pfnano"
    assert pf.branches["pt"] == "Jet_pt"


def test_detect_opendata(opendata2020, opendata2025):
    a = detect_format(opendata2020[0])
    assert (a.name, a.tree, a.prefix, a.units, a.counter) == (
        "opendata2020",
        "mini",
        "jet_",
        "MeV",
        "jet_n",
    )
    assert a.branches["E"] == "jet_E"
    b = detect_format(opendata2025[0])
    assert (b.name, b.tree, b.units) == ("opendata2025", "analysis", "GeV")
    assert b.branches["E"] == "jet_e"


def test_overrides():
    forced = detect_format(NANO, units="MeV")
    assert forced.units == "MeV"
    assert "MeV -> GeV (--units)" in forced.describe()
    with pytest.raises(InputFileError, match="ATLAS PHYSLITE layout"):
        detect_format(NANO, fmt="physlite")


def test_detection_failure_is_short(tmp_path):
    path = tmp_path / "muons.root"
    n = 20
    with uproot.recreate(path) as f:
        f["Events"] = {f"Muon{i}_pt": np.ones(n) for i in range(40)} | {"x": np.zeros(n)}
    with pytest.raises(InputFileError) as err:
        detect_format(path)
    msg = str(err.value)
    assert "no jets found" in msg
    assert "CollectionTree" in msg
    assert "tree mini" in msg
    assert "trees in file: ['Events']" in msg
    assert "Events:Muon0_*" in msg
    assert "and 35 more" in msg
    assert len(msg) < 900


# --- reading: units converted once, at the boundary --------------------------------------


def test_physlite_read_in_gev():
    pt, eta, phi, m = _raw(
        PHYSLITE, "CollectionTree", [f"AnalysisJetsAuxDyn.{v}" for v in ("pt", "eta", "phi", "m")]
    )
    data = read_jets(PHYSLITE)
    assert data.units == "GeV"
    assert data.n_jets == len(pt) == 881
    np.testing.assert_allclose(data.values, np.stack([pt / 1e3, eta, phi, m / 1e3], axis=1))
    np.testing.assert_allclose(read_jets(PHYSLITE, to_units="MeV").values[:, 0], pt)


def test_opendata2020_mass_from_energy(opendata2020):
    path, counts, jets = opendata2020
    data = read_jets(path)
    assert data.n_events == len(counts)
    # independent: float32 MeV inputs -> GeV; mass from E^2 - (pt cosh eta)^2 by hand
    pt, eta, _phi, e = _raw(path, "mini", ["jet_pt", "jet_eta", "jet_phi", "jet_E"])
    p = pt * np.cosh(eta)
    m2 = e * e - p * p
    mass = np.sign(m2) * np.sqrt(np.abs(m2)) / 1000.0
    np.testing.assert_allclose(data.values[:, 0], pt / 1000.0)
    np.testing.assert_allclose(data.values[:, 3], mass, rtol=1e-9, atol=1e-9)
    # and close to the generated mass (float32 rounding of E limits it)
    big = jets["mass"] > 5
    np.testing.assert_allclose(data.values[big, 3], jets["mass"][big], rtol=0.02)


def test_opendata2025_in_gev(opendata2025):
    path, _counts, jets = opendata2025
    data = read_jets(path)
    np.testing.assert_allclose(data.values[:, 0], jets["pt"].astype(np.float32))
    assert data.units == "GeV"


# --- the model's domain -----------------------------------------------------------------


def test_domain_rules():
    meta = read_metadata()
    dom = model_domain(meta)
    rng = meta["training"]["data"]["ranges"]
    lo, hi = rng["pt"][0] / 1.1, rng["pt"][2] * 1.1
    x = np.array(
        [
            [100.0, 0.1, 0.2, 10.0],  # in
            [np.nan, 0.1, 0.2, 10.0],  # nonfinite
            [1e30, 0.1, 0.2, 10.0],  # absurd
            [-20.0, 0.1, 0.2, 10.0],  # pt <= 0
            [100.0, 0.1, 0.2, -2.0],  # mass below -1% of pt
            [100.0, 0.1, 0.2, -0.01],  # tiny negative mass: in
            [100.0, 0.1, 4.0, 10.0],  # |phi| > pi
            [lo * 0.99, 0.1, 0.2, 1.0],  # below the training minimum / 1.1
            [hi * 1.01, 0.1, 0.2, 10.0],  # above the training maximum x 1.1
            [lo * 1.01, 0.1, 0.2, 1.0],  # inside the margin: in
        ]
    )
    assert dom.reasons(x).tolist() == [-1, 0, 1, 2, 3, -1, 4, 5, 5, -1]


def test_domain_rules_boundaries_by_hand():
    # values in MeV: energy-like values (pt, mass, px) are absurd above 1e6 GeV = 1e9 MeV,
    # dimensionless ones (eta) above 1e6; mass tolerance min(1% of pt, 0.3)
    inf, up, down = math.inf, math.inf, -math.inf
    dom = Domain(
        variables=("pt", "eta", "phi", "mass", "px"),
        lo=(10.0, -2.0, -inf, -inf, -inf),
        hi=(inf, 2.0, inf, inf, inf),
        mass_tolerance_cap=0.3,
        units="MeV",
        source="training ranges",
    )
    edge = math.pi + 1e-6
    rows = [  # (pt, eta, phi, mass, px), expected reason (-1: in)
        ((50.0, 0.0, 0.0, 5.0, 0.0), -1),
        ((10.0, 0.0, 0.0, 5.0, 0.0), -1),  # pt at the training minimum
        ((np.nextafter(10.0, down), 0.0, 0.0, 5.0, 0.0), 5),
        ((50.0, 2.0, 0.0, 5.0, 0.0), -1),  # eta at the maximum
        ((50.0, np.nextafter(2.0, up), 0.0, 5.0, 0.0), 5),
        ((50.0, -2.0, 0.0, 5.0, 0.0), -1),
        ((50.0, np.nextafter(-2.0, down), 0.0, 5.0, 0.0), 5),
        ((1e9, 0.0, 0.0, 5.0, 0.0), -1),  # 1e6 GeV exactly: not absurd
        ((np.nextafter(1e9, up), 0.0, 0.0, 5.0, 0.0), 1),
        ((50.0, 1e6, 0.0, 5.0, 0.0), 5),  # eta 1e6: not absurd, outside
        ((50.0, np.nextafter(1e6, up), 0.0, 5.0, 0.0), 1),
        ((50.0, np.nextafter(-1e6, down), 0.0, 5.0, 0.0), 1),
        ((50.0, 0.0, 0.0, 5.0, -1e9), -1),  # px is energy-like
        ((50.0, 0.0, 0.0, 5.0, np.nextafter(-1e9, down)), 1),
        ((50.0, 0.0, 0.0, 5.0, 2e6), -1),
        ((0.0, 0.0, 0.0, 5.0, 0.0), 2),  # pt <= 0 comes before the training range
        ((0.5, 0.0, 0.0, 5.0, 0.0), 5),  # 0 < pt < training minimum
        ((np.nan, 0.0, 0.0, 5.0, 0.0), 0),
        ((50.0, inf, 0.0, 5.0, 0.0), 0),  # non-finite comes before absurd
        ((50.0, 0.0, 0.0, -0.3, 0.0), -1),  # tolerance min(0.5, 0.3)
        ((50.0, 0.0, 0.0, np.nextafter(-0.3, down), 0.0), 3),
        ((20.0, 0.0, 0.0, -0.2, 0.0), -1),  # tolerance min(0.2, 0.3)
        ((20.0, 0.0, 0.0, -0.2001, 0.0), 3),
        ((50.0, 0.0, edge, 5.0, 0.0), -1),
        ((50.0, 0.0, np.nextafter(edge, up), 5.0, 0.0), 4),
        ((50.0, 0.0, -edge, 5.0, 0.0), -1),
        ((50.0, 0.0, np.nextafter(-edge, down), 5.0, 0.0), 4),
    ]
    x = np.array([r for r, _ in rows])
    expected = [e for _, e in rows]
    codes = dom.reasons(x)
    assert codes.tolist() == expected
    assert dom.counts(codes) == {
        "nonfinite": 2,
        "absurd": 4,
        "pt_nonpositive": 1,
        "mass_negative": 2,
        "phi_range": 2,
        "outside_training": 5,
    }
    assert list(dom.counts(codes)) == list(REASONS)


# --- hepae run on real files, no options ------------------------------------------------


def _run_cli(tmp_path, capsys, *args):
    out = tmp_path / "r.coffea"
    assert main(["run", *map(str, args), "-o", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    from hepae_coffea.processing.run import load_output

    data, _ = load_output(out)
    return text, summary, data


def test_run_physlite_no_options(tmp_path, capsys):
    text, summary, data = _run_cli(tmp_path, capsys, PHYSLITE)
    assert "format: ATLAS PHYSLITE (tree CollectionTree, jets AnalysisJets, MeV -> GeV)" in text
    c = summary["PHYSLITE_example"]["counters"]
    # expected counts from the raw branches with numpy and the stated domain rule
    pt, eta, _phi, m = _raw(
        PHYSLITE, "CollectionTree", [f"AnalysisJetsAuxDyn.{v}" for v in ("pt", "eta", "phi", "m")]
    )
    pt, m = pt / 1e3, m / 1e3
    meta = read_metadata()
    rng = meta["training"]["data"]["ranges"]
    offset = next(t["offset"] for t in meta["normalisation"] if t["variable"] == "mass")
    tol = np.minimum(0.01 * pt, 0.5 * offset)
    eta_pad = 0.1 * (rng["eta"][2] - rng["eta"][0])
    out = (
        (pt <= 0)
        | (m < -tol)
        | (pt < rng["pt"][0] / 1.1)
        | (pt > rng["pt"][2] * 1.1)
        | (m > rng["mass"][2] * 1.1)
        | (eta < rng["eta"][0] - eta_pad)
        | (eta > rng["eta"][2] + eta_pad)
    )
    assert c["jets"] == 881
    assert c["jets_out_of_domain"] == int(out.sum())  # 0 for the whole-range default
    assert c["jets_in_domain"] + c["jets_out_of_domain"] == c["jets_selected"] == 881
    assert sum(v for k, v in c.items() if k.startswith("jets_out_of_domain_")) == int(out.sum())
    assert c["jets_out_of_domain_mass_negative"] == int(((pt > 0) & (m < -tol)).sum())
    # in-domain residuals pass the report's thresholds
    table = report_table(data)["PHYSLITE_example"]
    verdicts = {v: r["verdict"] for v, r in table["variables"].items()}
    assert verdicts == dict.fromkeys(["pt", "eta", "phi", "mass"], "PASS"), table


@pytest.mark.parametrize(("path", "title"), [(NANO, "CMS NanoAOD"), (PFNANO, "CMS PFNano")])
def test_run_cms_no_options(tmp_path, capsys, path, title):
    text, summary, _data = _run_cli(tmp_path, capsys, path)
    assert f"format: {title} (tree Events, jets Jet, GeV)" in text
    c = summary[path.stem]["counters"]
    (pt,) = _raw(path, "Events", ["Jet_pt"])
    assert c["jets"] == len(pt)
    assert c["jets_in_domain"] + c["jets_out_of_domain"] == len(pt)


def test_run_opendata2020_no_options(tmp_path, capsys, opendata2020):
    path, counts, _jets = opendata2020
    text, summary, data = _run_cli(tmp_path, capsys, path)
    assert "format: ATLAS Open Data 13 TeV (2020) (tree mini, jets jet, MeV -> GeV)" in text
    c = summary[path.stem]["counters"]
    assert c["jets"] == counts.sum()
    table = report_table(data)[path.stem]
    assert all(r["verdict"] == "PASS" for r in table["variables"].values()), table


def test_run_units_override_counts_mev_as_out_of_domain(tmp_path, capsys):
    """A MeV file declared GeV: nearly every jet is beyond the training range, counted,
    never decoded to plausible-looking values."""
    text, summary, _ = _run_cli(tmp_path, capsys, PHYSLITE, "--units", "GeV")
    assert "(--units)" in text
    c = summary["PHYSLITE_example"]["counters"]
    (pt,) = _raw(PHYSLITE, "CollectionTree", ["AnalysisJetsAuxDyn.pt"])
    assert c["jets_in_domain"] <= int((pt <= 524).sum())
    assert c["jets_out_of_domain_outside_training"] > 0.9 * len(pt)


def test_run_format_failure_is_one_line(tmp_path, capsys):
    path = tmp_path / "nojets.root"
    with uproot.recreate(path) as f:
        f["Events"] = {"Muon_pt": np.ones(5)}
    assert main(["run", str(path), "-o", str(tmp_path / "x.coffea"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "no jets found" in err[0]


def test_run_forced_format_mismatch_is_one_line(tmp_path, capsys):
    rc = main(["run", str(NANO), "--format", "physlite", "-o", str(tmp_path / "x.coffea"), "-q"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "ATLAS PHYSLITE layout" in err[0]


# --- tables, training, the dask-awkward route -------------------------------------------


def test_tables(tmp_path):
    import pandas as pd

    _, jets = make_jets(30, seed=3)
    pkl = tmp_path / "all_jets_test_4D.pkl"
    pd.DataFrame(
        {"pt": jets["pt"] * 1e3, "eta": jets["eta"], "phi": jets["phi"], "m": jets["mass"] * 1e3}
    ).to_pickle(pkl)
    with pytest.raises(UntrustedPickleError, match="--trust-pickle"):
        detect_format(pkl)  # detection does not unpickle an untrusted file either
    with trusted_pickles():
        f = detect_format(pkl)
        assert (f.name, f.units) == ("pickle", "MeV")
        np.testing.assert_allclose(read_jets(pkl).values[:, 0], jets["pt"])
    pq = tmp_path / "jets.parquet"
    ak.to_parquet(ak.Array({f"Jet_{k}": v for k, v in jets.items()}), pq)
    g = detect_format(pq)
    assert (g.name, g.prefix, g.units) == ("parquet", "Jet_", "GeV")


def test_train_detects_format(opendata2020, tmp_path, capsys):
    out = tmp_path / "m.pt"
    args = ["train", str(opendata2020[0]), "-o", str(out), "--epochs", "1", "--no-preview", "-q"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "format: ATLAS Open Data 13 TeV (2020) (tree mini, jets jet, MeV -> GeV)" in text
    meta = read_metadata(out)
    assert meta["units"] == "GeV"
    lo, _, hi = meta["training"]["data"]["ranges"]["pt"]
    _, jets = opendata2020[1], opendata2020[2]
    assert lo == pytest.approx(jets["pt"].min(), rel=1e-6)  # trained in GeV, not MeV
    assert hi == pytest.approx(jets["pt"].max(), rel=1e-6)


def test_torch_wrapper_physlite_units():
    import torch
    from coffea.nanoevents import NanoEventsFactory

    from hepae_coffea.io.schemas import jet_branch_filter, schema_class
    from hepae_coffea.model.export import load_model
    from hepae_coffea.processors.torch_wrapper import JetAutoencoderWrapper

    f = detect_format(PHYSLITE)
    events = NanoEventsFactory.from_root(
        {str(PHYSLITE): f.tree},
        schemaclass=schema_class(f.schema),
        mode="eager",
        iteritems_options={"filter_branch": jet_branch_filter(f.schema, f.collection)},
    ).events()
    rec = JetAutoencoderWrapper(units=f.units).reconstruct(events[f.collection])
    gev = read_jets(PHYSLITE).values
    with torch.inference_mode():
        expect = load_model().module(torch.tensor(gev, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(rec, axis=1)), expect, rtol=1e-5, atol=1e-5)


def test_out_of_domain_jets_counted_not_decoded(tmp_path):
    """pt -20, pt 1e30, a mass of -5 GeV and a NaN: counted per reason, never decoded."""
    from coffea.nanoevents import NanoEventsFactory

    from hepae_coffea.io.schemas import JetNanoAODSchema
    from hepae_coffea.plots.report import write_report
    from hepae_coffea.processors.compression import JetCompressionProcessor

    from .conftest import write_nanoaod

    counts, jets = make_jets(40, seed=8)
    jets["pt"] = np.clip(jets["pt"], 25, 300)
    jets["mass"] = np.minimum(jets["mass"], 60)
    jets["pt"][:4] = [-20.0, 1e30, 100.0, np.nan]
    jets["mass"][2] = -5.0
    path = tmp_path / "bad_values.root"
    write_nanoaod(path, counts, jets)
    events = NanoEventsFactory.from_root(
        {str(path): "Events"}, schemaclass=JetNanoAODSchema, mode="eager"
    ).events()
    out = JetCompressionProcessor().process(events)["dataset"]
    c = out["counters"]
    n = int(counts.sum())
    assert c["jets_out_of_domain_pt_nonpositive"] == 1
    assert c["jets_out_of_domain_absurd"] == 1
    assert c["jets_out_of_domain_mass_negative"] == 1
    assert c["jets_out_of_domain_nonfinite"] == c["jets_nonfinite"] == 1
    assert c["jets_out_of_domain"] == 4
    assert c["jets_in_domain"] == n - 4
    assert out["score_jet"].sum(flow=True) == n - 4  # only in-domain jets were decoded
    assert out["residual"][{"variable": "pt"}].sum(flow=True) == n - 4
    report = write_report({"bad": out}, tmp_path / "rep").read_text()
    assert f"{n - 4} jets decoded and compared, 4 out of domain, not decoded" in report
    assert "pt nonpositive: 1" in report
