"""Tests for hepae_coffea.generate.pythia (Pythia 8 + FastJet sample generation)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hepae_coffea.generate import pythia as gen

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")
uproot = pytest.importorskip("uproot")

pytestmark = pytest.mark.generate

N_EVENTS = 25
SEED = 5
FRACTIONS = ["Jet_chHEF", "Jet_neHEF", "Jet_chEmEF", "Jet_neEmEF", "Jet_muEF"]
EXPECTED_BRANCHES = [
    "run",
    "luminosityBlock",
    "event",
    "genWeight",
    "Generator_weight",
    "nJet",
    "Jet_pt",
    "Jet_eta",
    "Jet_phi",
    "Jet_mass",
    "Jet_nConstituents",
    "Jet_nCharged",
    *FRACTIONS,
    "Jet_width",
    "Jet_ptD",
]


def _read(path: Path) -> ak.Array:
    with uproot.open(path) as f:
        return f["Events"].arrays()


@pytest.fixture(scope="module")
def qcd_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, gen.GenerationSummary]:
    path = tmp_path_factory.mktemp("gen") / "qcd.root"
    summary = gen.generate("qcd", N_EVENTS, SEED, path, progress=False, batch_size=10)
    return path, summary


@pytest.fixture(scope="module")
def qcd_events(qcd_file: tuple[Path, gen.GenerationSummary]) -> ak.Array:
    return _read(qcd_file[0])


def test_summary(qcd_file: tuple[Path, gen.GenerationSummary], qcd_events: ak.Array) -> None:
    path, summary = qcd_file
    assert summary.path == str(path)
    assert summary.process == "qcd"
    assert summary.seed == SEED
    assert summary.n_events == N_EVENTS == len(qcd_events)
    assert summary.n_jets == int(ak.sum(qcd_events.nJet)) > 0
    assert summary.seconds > 0
    assert summary.events_per_second == pytest.approx(N_EVENTS / summary.seconds)
    assert set(summary.timings) == {"init", "shower", "extract", "cluster", "write"}
    # no temporary file left behind
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_output_permissions_follow_umask(qcd_file: tuple[Path, gen.GenerationSummary]) -> None:
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(qcd_file[0].stat().st_mode) == 0o666 & ~umask


def test_branch_names_and_dtypes(qcd_file: tuple[Path, gen.GenerationSummary]) -> None:
    with uproot.open(qcd_file[0]) as f:
        tree = f["Events"]
        assert isinstance(tree, uproot.TTree)
        assert list(tree.keys()) == EXPECTED_BRANCHES
        arrays = tree.arrays()
    assert list(gen.BRANCHES) == EXPECTED_BRANCHES
    for name, dtype in gen.BRANCHES.items():
        values = arrays[name]
        if name.startswith("Jet_"):
            assert values.ndim == 2, name
            values = ak.flatten(values)
        assert ak.to_numpy(values).dtype == dtype, name


def test_event_bookkeeping(qcd_events: ak.Array) -> None:
    assert np.all(ak.to_numpy(qcd_events.run) == 1)
    assert np.all(ak.to_numpy(qcd_events.luminosityBlock) == SEED)
    np.testing.assert_array_equal(ak.to_numpy(qcd_events.event), np.arange(1, N_EVENTS + 1))
    nj = ak.to_numpy(qcd_events.nJet)
    for name in EXPECTED_BRANCHES[6:]:
        np.testing.assert_array_equal(nj, ak.to_numpy(ak.num(qcd_events[name])), err_msg=name)


def test_jet_kinematics(qcd_events: ak.Array) -> None:
    pt = qcd_events.Jet_pt
    flat_pt = ak.to_numpy(ak.flatten(pt))
    assert np.all(flat_pt > 20.0)
    # sorted by pt, descending, within each event
    assert ak.all(pt[:, 1:] <= pt[:, :-1])
    phi = ak.to_numpy(ak.flatten(qcd_events.Jet_phi))
    pi32 = np.float32(np.pi)
    assert np.all(phi > -pi32)
    assert np.all(phi <= pi32)
    assert np.all(ak.to_numpy(ak.flatten(qcd_events.Jet_mass)) >= 0)
    assert np.all(np.isfinite(ak.to_numpy(ak.flatten(qcd_events.Jet_eta))))
    ncon = ak.to_numpy(ak.flatten(qcd_events.Jet_nConstituents))
    nch = ak.to_numpy(ak.flatten(qcd_events.Jet_nCharged))
    assert np.all(ncon >= 1)
    assert np.all((nch >= 0) & (nch <= ncon))


def test_energy_fractions(qcd_events: ak.Array) -> None:
    fractions = np.stack([ak.to_numpy(ak.flatten(qcd_events[f])) for f in FRACTIONS])
    assert fractions.shape[1] > 0
    assert np.all(fractions >= 0)
    assert np.all(fractions <= 1 + 1e-6)
    # every visible constituent is in exactly one category: the sum is 1 up to rounding
    np.testing.assert_allclose(fractions.sum(axis=0), 1.0, atol=1e-3)


def test_substructure_ranges(qcd_events: ak.Array) -> None:
    ptd = ak.to_numpy(ak.flatten(qcd_events.Jet_ptD))
    width = ak.to_numpy(ak.flatten(qcd_events.Jet_width))
    ncon = ak.to_numpy(ak.flatten(qcd_events.Jet_nConstituents))
    # 1/sqrt(n) <= ptD <= 1
    assert np.all(ptd <= 1 + 1e-6)
    assert np.all(ptd >= 1 / np.sqrt(ncon) - 1e-6)
    assert np.all(width >= 0)
    assert np.all(width < 1.0)  # anti-kt R=0.4 constituents sit (almost all) within ~R
    assert np.all(width[ncon == 1] == 0)


def test_constituents_sum_to_jets_and_match_file(qcd_events: ak.Array) -> None:
    """FastJet jets and constituent lists line up; the file holds the same jets, pt-sorted."""
    import fastjet
    import pythia8mc

    pythia = gen._make_pythia(pythia8mc, gen.pythia_settings("qcd", SEED))
    table = gen._ParticleTable(pythia.particleData)
    particles = gen._extract_particles(pythia.nextBatch(N_EVENTS), table)
    clustered = gen._cluster(particles, fastjet, 20.0)

    sums = gen._constituent_sums(particles, clustered)
    jets = np.stack([clustered.jet_px, clustered.jet_py, clustered.jet_pz, clustered.jet_e], 1)
    assert len(jets) > 0
    np.testing.assert_allclose(sums, jets, rtol=1e-9, atol=1e-6)
    assert int(clustered.constituents_per_jet.sum()) == len(clustered.constituents)
    # each particle belongs to at most one jet
    assert len(np.unique(clustered.constituents)) == len(clustered.constituents)

    # same seed, same events: the written jets are these jets, sorted by pt
    np.testing.assert_array_equal(clustered.jets_per_event, ak.to_numpy(qcd_events.nJet))
    pt = np.hypot(clustered.jet_px, clustered.jet_py)
    event = np.repeat(np.arange(N_EVENTS), clustered.jets_per_event)
    expected = pt[np.lexsort((-pt, event))].astype(np.float32)
    np.testing.assert_array_equal(expected, ak.to_numpy(ak.flatten(qcd_events.Jet_pt)))


def test_visible_final_state_only() -> None:
    import pythia8mc

    pythia = gen._make_pythia(pythia8mc, gen.pythia_settings("qcd", SEED))
    table = gen._ParticleTable(pythia.particleData)
    batch = pythia.nextBatch(5)
    particles = gen._extract_particles(batch, table)
    prt = batch["prt"]
    fs = prt[(prt.status > 0)]
    n_nu = ak.sum(np.isin(np.abs(ak.flatten(fs.id)), [12, 14, 16]))
    assert particles.offsets[-1] == ak.count(fs.id) - n_nu
    assert np.all(particles.e > 0)


def test_same_seed_identical_different_seed_differs(
    qcd_file: tuple[Path, gen.GenerationSummary], qcd_events: ak.Array, tmp_path: Path
) -> None:
    same = tmp_path / "same.root"
    # a different batch size must not change the event sequence
    gen.generate("qcd", N_EVENTS, SEED, same, progress=False, batch_size=N_EVENTS)
    again = _read(same)
    for name in EXPECTED_BRANCHES:
        assert ak.array_equal(again[name], qcd_events[name]), name

    other = tmp_path / "other.root"
    gen.generate("qcd", N_EVENTS, SEED + 1, other, progress=False)
    different = _read(other)
    assert not ak.array_equal(different.Jet_pt, qcd_events.Jet_pt)
    assert np.all(ak.to_numpy(different.luminosityBlock) == SEED + 1)


@pytest.mark.parametrize(
    ("process", "min_jets"), [("ttbar", 20), ("zprime", 20), ("wjets", 10), ("zjets", 10)]
)
def test_other_processes(process: str, min_jets: int, tmp_path: Path) -> None:
    path = tmp_path / f"{process}.root"
    summary = gen.generate(process, 10, 3, path, progress=False)
    events = _read(path)
    assert len(events) == summary.n_events == 10
    # heavy final states / boson + jet: several jets per event on average
    assert summary.n_jets == int(ak.sum(events.nJet)) >= min_jets
    w = ak.to_numpy(events.genWeight)
    np.testing.assert_array_equal(w, ak.to_numpy(events.Generator_weight))
    assert np.all(w > 0)


def test_unknown_process(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'dijets'.*qcd.*ttbar.*zprime"):
        gen.generate("dijets", 10, 1, tmp_path / "x.root", progress=False)
    assert not (tmp_path / "x.root").exists()


@pytest.mark.parametrize("seed", [0, -3, 900_000_001, 1.5, True])
def test_bad_seed(seed: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seed"):
        gen.generate("qcd", 10, seed, tmp_path / "x.root", progress=False)  # type: ignore[arg-type]


def test_bad_n_events(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_events"):
        gen.generate("qcd", 0, 1, tmp_path / "x.root", progress=False)


def test_existing_output_refused(tmp_path: Path) -> None:
    path = tmp_path / "exists.root"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match=str(path)):
        gen.generate("qcd", 5, 1, path, progress=False)
    assert path.read_bytes() == b"keep me"
    summary = gen.generate("qcd", 5, 1, path, progress=False, overwrite=True)
    assert len(_read(path)) == summary.n_events == 5


def test_failure_removes_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(gen, "_build_jets", boom)
    with pytest.raises(RuntimeError, match="boom"):
        gen.generate("qcd", 5, 1, tmp_path / "fail.root", progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module", ["pythia8mc", "fastjet"])
def test_missing_backend_message(
    module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    expected = (
        "hepae generate needs the 'generate' extra: pip install 'hepae-coffea[generate]' "
        f"(missing: {module})"
    )
    with pytest.raises(ImportError) as excinfo:
        gen.generate("qcd", 5, 1, tmp_path / "x.root", progress=False)
    assert str(excinfo.value) == expected
    assert list(tmp_path.iterdir()) == []


# --- biased spectra, weights, jet selection ------------------------------------------------

N_SPECTRUM = 300
LEAD_CUT = 150.0


def _lead_pt(events: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.fill_none(ak.max(events.Jet_pt, axis=1), 0.0))


def test_unbiased_sample_has_unit_weights(qcd_events: ak.Array) -> None:
    assert np.all(ak.to_numpy(qcd_events.genWeight) == 1.0)


def test_biased_spectrum_weighted_matches_unbiased(tmp_path: Path) -> None:
    """Flattened pT-hat: many more hard events, and the weights undo it within statistics."""
    plain = _read_summary(tmp_path / "plain.root", bias_pow=None, seed=11)
    biased = _read_summary(tmp_path / "biased.root", bias_pow=4.0, seed=12)
    w = ak.to_numpy(biased.genWeight).astype(np.float64)
    assert np.all(w > 0)
    assert w.std() > 0  # genuinely weighted
    lead_p, lead_b = _lead_pt(plain), _lead_pt(biased)
    # fraction of events with a hard leading jet: unbiased, and biased with weights
    f_plain = float(np.mean(lead_p > LEAD_CUT))
    hard = lead_b > LEAD_CUT
    f_raw = float(np.mean(hard))
    f_w = float(w[hard].sum() / w.sum())
    assert f_raw > 3 * f_plain  # the bias works: hard events are enriched
    # binomial error of the plain fraction; ratio-estimator error of the weighted one
    err_p = np.sqrt(max(f_plain * (1 - f_plain), 1.0 / N_SPECTRUM) / N_SPECTRUM)
    resid = w * (hard - f_w)
    err_w = np.sqrt(np.sum(resid**2)) / w.sum()
    assert abs(f_w - f_plain) < 4 * np.hypot(err_p, err_w), (f_plain, f_w, err_p, err_w)
    # the weight of a hard event is smaller than that of a soft one (1/bias)
    assert np.median(w[hard]) < np.median(w[~hard])


def _read_summary(path: Path, bias_pow: float | None, seed: int) -> ak.Array:
    gen.generate(
        "qcd",
        N_SPECTRUM,
        seed,
        path,
        bias_pow=bias_pow,
        bias_ref=50.0 if bias_pow else None,
        progress=False,
        batch_size=N_SPECTRUM,
    )
    return _read(path)


def test_jet_selection_options_cut_the_same_events(tmp_path: Path) -> None:
    """Same seed, same events: the eta and pt cuts only remove jets."""
    loose = _generate_read(tmp_path / "loose.root", jet_ptmin=10.0)
    tight = _generate_read(tmp_path / "tight.root", jet_ptmin=15.0, jet_etamax=2.0)
    pt_l, eta_l = loose.Jet_pt, loose.Jet_eta
    assert float(ak.min(ak.flatten(pt_l))) >= 10.0
    assert float(ak.max(abs(ak.flatten(eta_l)))) > 2.0  # no eta cut by default
    keep = (pt_l >= 15.0) & (abs(eta_l) <= 2.0)
    for name in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_nConstituents"):
        assert ak.array_equal(loose[name][keep], tight[name]), name
    np.testing.assert_array_equal(ak.to_numpy(tight.nJet), ak.to_numpy(ak.num(tight.Jet_pt)))


def _generate_read(path: Path, **kw: float) -> ak.Array:
    gen.generate("qcd", 20, 8, path, progress=False, **kw)
    return _read(path)


def test_slice_and_bias_settings() -> None:
    s = gen.pythia_settings("qcd", 1, 200.0, pthat_max=400.0, bias_pow=0)
    assert s[-3:] == [
        "PhaseSpace:pTHatMin = 200.0",
        "PhaseSpace:pTHatMax = 400.0",
        "PhaseSpace:bias2Selection = off",
    ]
    flat = gen.pythia_settings("qcd_flat", 1)
    assert "PhaseSpace:bias2Selection = on" in flat
    with pytest.raises(ValueError, match="pthat_max"):
        gen.pythia_settings("qcd", 1, 200.0, pthat_max=100.0)
    with pytest.raises(ValueError, match="jet_etamax"):
        gen.generate("qcd", 1, 1, "/nonexistent/x.root", jet_etamax=-1.0)
