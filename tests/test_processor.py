from __future__ import annotations

import itertools

import awkward as ak
import numpy as np
import pytest
import uproot
import vector
from coffea import processor
from coffea.nanoevents import BaseSchema, NanoEventsFactory

from hepae_coffea.errors import MissingBranchError, ModelFileError
from hepae_coffea.io.schemas import JetNanoAODSchema
from hepae_coffea.model import cache as model_cache
from hepae_coffea.model.export import default_model_path, load_model
from hepae_coffea.processing.evaluate import run_model
from hepae_coffea.processing.metrics import residuals
from hepae_coffea.processors.compression import JetCompressionProcessor, compress_decompress_chunk

from .conftest import make_jets, write_nanoaod
from .domain_rule import in_domain


def _events(path, schema=JetNanoAODSchema):
    return NanoEventsFactory.from_root(
        {str(path): "Events"},
        schemaclass=schema,
        mode="eager",
        metadata={"dataset": "test"},
    ).events()


def _run(path, proc, chunksize=150, schema=JetNanoAODSchema):
    runner = processor.Runner(
        processor.IterativeExecutor(status=False), schema=schema, chunksize=chunksize
    )
    return runner({"test": {"files": {str(path): "Events"}}}, processor_instance=proc)["test"]


def test_results_match_direct_model_call(jet_sample):
    path, counts, jets = jet_sample
    model = load_model()
    flat = np.stack([jets[v] for v in ("pt", "eta", "phi", "mass")], axis=1).astype(np.float32)
    _, rec, score = run_model(model, flat)
    res = compress_decompress_chunk(
        _events(path), default_model_path().read_bytes(), model.sha256, model.variables, 3
    )
    np.testing.assert_array_equal(res.original, flat)
    np.testing.assert_allclose(res.reconstructed, rec, rtol=1e-6)
    np.testing.assert_allclose(res.score, score, rtol=1e-5)
    # mapped back onto the events
    per_event = res.unflatten(res.reconstructed)
    assert ak.num(per_event, axis=1).tolist() == counts.tolist()


def test_histograms_and_counters(jet_sample):
    path, counts, jets = jet_sample
    out = _run(path, JetCompressionProcessor())
    c = out["counters"]
    assert c["events"] == len(counts)
    assert c["jets"] == c["jets_selected"] == counts.sum()
    assert c["jets_nonfinite"] == 0
    assert c["jets_unphysical"] == 0
    # the model's domain by hand: within the training ranges +-10% (energies), +-10% of the
    # range's width (eta); the jets outside are counted, not decoded
    flat = np.stack([jets[v] for v in ("pt", "eta", "phi", "mass")], axis=1).astype(np.float32)
    keep = in_domain(flat)
    assert c["jets_in_domain"] == int(keep.sum())
    assert c["jets_out_of_domain"] == c["jets_out_of_domain_outside_training"] == int((~keep).sum())
    n = int(keep.sum())
    for name in ("residual", "residual_abs"):
        h = out[name]
        assert [ax.name for ax in h.axes] == ["variable", "residual"]
        for v in ("pt", "eta", "phi", "mass"):
            assert h[{"variable": v}].sum(flow=True) == n
    dist = out["distribution"]["pt"]
    assert dist[{"version": "original"}].sum(flow=True) == n
    assert dist[{"version": "reconstructed"}].sum(flow=True) == n
    assert out["score_jet"].sum(flow=True) == n
    n_events_with_jets = int(
        np.count_nonzero(ak.to_numpy(ak.sum(ak.unflatten(keep, counts), axis=1)))
    )
    assert out["score_event_max"].sum(flow=True) == n_events_with_jets
    assert out["score_event_mean"].sum(flow=True) == n_events_with_jets
    assert out["latent"].sum(flow=True) == 3 * n
    assert out["residual_vs_pt"][{"variable": "mass"}].sum(flow=True) == n
    # exact moments agree with a direct computation
    flat = flat[keep]
    _, rec, _ = run_model(load_model(), flat)
    o, q = flat.astype(np.float64), rec.astype(np.float64)
    r = np.stack(  # plain numpy: relative pt/mass, absolute eta, phi wrapped by complex phase
        [
            (q[:, 0] - o[:, 0]) / o[:, 0],
            q[:, 1] - o[:, 1],
            np.angle(np.exp(1j * (q[:, 2] - o[:, 2]))),
            (q[:, 3] - o[:, 3]) / np.maximum(np.abs(o[:, 3]), 1.0),  # 1 GeV mass floor
        ],
        axis=1,
    )
    # preferred kinds: relative pt/mass, absolute eta/phi -> compare the matching column
    means = out["residual_moments"].values()
    np.testing.assert_allclose(means[[0, 3], 0], r[:, [0, 3]].mean(axis=0), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(means[[1, 2], 1], r[:, [1, 2]].mean(axis=0), rtol=1e-9, atol=1e-15)
    # and the spread (sum of squared deviations), from which the report's RMS comes
    ssd = out["residual_moments"].view()["_sum_of_deltas_squared"]
    expect = ((r - r.mean(axis=0)) ** 2).sum(axis=0)
    np.testing.assert_allclose(ssd[[0, 3], 0], expect[[0, 3]], rtol=1e-9)
    np.testing.assert_allclose(ssd[[1, 2], 1], expect[[1, 2]], rtol=1e-9)


def test_event_score_is_max_over_jets(jet_sample):
    """The event-score histograms hold the max and the mean of each event's jet scores,
    computed here with plain numpy from the model's per-jet scores."""
    path, counts, jets = jet_sample
    flat = np.stack([jets[v] for v in ("pt", "eta", "phi", "mass")], axis=1).astype(np.float32)
    _, _, score = run_model(load_model(), flat)
    score = score.astype(np.float64)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    events = [score[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    ev_max = np.array([e.max() for e in events])
    ev_mean = np.array([e.sum() / len(e) for e in events])
    assert not np.allclose(ev_max, ev_mean)  # the sample tells max from mean
    out = JetCompressionProcessor().process(_events(path))["test"]
    for name, values in (("score_event_max", ev_max), ("score_event_mean", ev_mean)):
        edges = out[name].axes[0].edges
        flow_index = np.searchsorted(edges, values, side="right")
        expect = np.bincount(flow_index, minlength=len(edges) + 1)
        np.testing.assert_array_equal(out[name].values(flow=True), expect, err_msg=name)


def test_selection(jet_sample):
    path, _, jets = jet_sample
    out = _run(path, JetCompressionProcessor(pt_min=50.0, abs_eta_max=1.5))
    expect = int(
        (
            (jets["pt"].astype(np.float32) > 50) & (np.abs(jets["eta"].astype(np.float32)) < 1.5)
        ).sum()
    )
    assert out["counters"]["jets_selected"] == expect
    flat = np.stack([jets[v] for v in ("pt", "eta", "phi", "mass")], axis=1).astype(np.float32)
    selected = (flat[:, 0] > 50) & (np.abs(flat[:, 1]) < 1.5)
    decoded = int((selected & in_domain(flat)).sum())
    assert out["counters"]["jets_in_domain"] == decoded
    assert out["score_jet"].sum(flow=True) == decoded


def test_nonfinite_and_zero_jet_chunks(tmp_path):
    counts, jets = make_jets(300, seed=3)
    counts[:200] = 0  # the first chunks have no jets at all
    n = int(counts.sum())
    jets = {k: v[:n] for k, v in jets.items()}
    jets["mass"][0] = np.nan
    jets["pt"][1] = np.inf
    path = tmp_path / "nan.root"
    write_nanoaod(path, counts, jets)
    out = _run(path, JetCompressionProcessor(), chunksize=50)
    c = out["counters"]
    assert c["jets"] == n
    assert c["jets_nonfinite"] == 2
    assert out["score_jet"].sum(flow=True) == n - 2


def test_flat_tree_with_base_schema_and_cartesian_input(tmp_path):
    counts, jets = make_jets(200, seed=4)
    v = vector.array({k: jets[k] for k in ("pt", "eta", "phi", "mass")})
    cart = {"px": v.px, "py": v.py, "pz": v.pz, "E": v.E}
    path = tmp_path / "flat.root"
    coll = ak.zip({k: ak.unflatten(np.asarray(x), counts) for k, x in cart.items()})
    with uproot.recreate(path) as f:  # no event-ID branches: BaseSchema
        f.mktree("Events", {"Jet": coll.type})
        f["Events"].extend({"Jet": coll})
    out = _run(path, JetCompressionProcessor(), schema=BaseSchema)
    assert out["counters"]["jets"] == counts.sum()
    # the converted kinematics are what the model saw
    res = compress_decompress_chunk(
        _events(path, BaseSchema),
        default_model_path().read_bytes(),
        load_model().sha256,
        ["pt", "eta", "phi", "mass"],
        3,
    )
    np.testing.assert_allclose(res.original[:, 0], jets["pt"], rtol=1e-5)


def test_field_mapping(tmp_path):
    counts, jets = make_jets(100, seed=5)
    jets["m"] = jets.pop("mass")
    jets["msoftdrop"] = jets["m"] * 0.5
    path = tmp_path / "m.root"
    write_nanoaod(path, counts, jets)
    out_alias = _run(path, JetCompressionProcessor())  # 'm' is an alias of mass
    out_field = _run(path, JetCompressionProcessor(fields={"mass": "msoftdrop"}))
    assert out_alias["counters"]["jets"] == out_field["counters"]["jets"] == counts.sum()
    assert not np.array_equal(
        out_alias["distribution"]["mass"].values(), out_field["distribution"]["mass"].values()
    )


def test_model_loaded_once_per_worker(jet_sample, monkeypatch):
    path, _, _ = jet_sample
    monkeypatch.setattr(model_cache, "_CACHE", {})
    out = _run(path, JetCompressionProcessor(), chunksize=50)
    assert out["counters"]["model_loads"] == 1


def test_missing_branch_and_bad_model(jet_sample, tmp_path):
    path, _, _ = jet_sample
    with pytest.raises(
        MissingBranchError, match=r"no branch for jet variable\(s\) \['nConstituents'\].*available"
    ):
        compress_decompress_chunk(
            _events(path),
            default_model_path().read_bytes(),
            load_model().sha256,
            ["nConstituents"],
            3,
        )
    with pytest.raises(ModelFileError, match=r"field mapping names \['energy'\]"):
        JetCompressionProcessor(fields={"energy": "E"})
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nope")
    with pytest.raises(ModelFileError, match="not a hepae-coffea model"):
        JetCompressionProcessor(bad)
    with pytest.raises(
        ModelFileError, match=r"do not match the requested variables \['pt', 'eta', 'phi', 'E'\]"
    ):
        JetCompressionProcessor().check_variables(["pt", "eta", "phi", "E"])


def test_fast_fills_equal_hist_fill(jet_sample):
    """The processor's bit-indexed fills give the same bins as hist's own fill."""
    path, _, _ = jet_sample
    proc = JetCompressionProcessor()
    out = proc.process(_events(path))["test"]
    res = compress_decompress_chunk(
        _events(path),
        proc.model_bytes,
        proc.sha256,
        proc.variables,
        3,
        metadata=proc.metadata,
        domain=proc.domain,
    )
    orig, rec = res.original.astype(np.float64), res.reconstructed.astype(np.float64)
    variables = ["pt", "eta", "phi", "mass"]
    rel = residuals(orig, rec, ["relative"] * 3 + ["mass"])  # mass: relative to max(m, 1 GeV)
    absr = residuals(orig, rec, ["pt", "eta", "phi", "eta"])
    absr[:, 0], absr[:, 3] = rec[:, 0] - orig[:, 0], rec[:, 3] - orig[:, 3]
    ref = {k: out[k].copy().reset() for k in ("residual", "residual_abs", "residual_vs_pt")}
    for i, v in enumerate(variables):
        ref["residual"].fill(variable=v, residual=rel[:, i])
        ref["residual_abs"].fill(variable=v, residual=absr[:, i])
        pref = absr[:, i] if v in ("eta", "phi") else rel[:, i]
        ref["residual_vs_pt"].fill(variable=v, pt=orig[:, 0], residual=pref)
    for k, h in ref.items():
        np.testing.assert_array_equal(out[k].view(flow=True), h.view(flow=True), err_msg=k)
    per_event = res.unflatten(res.score.astype(np.float64))
    has = res.counts > 0
    for name, values in (
        ("score_jet", res.score),
        ("score_event_max", ak.to_numpy(ak.max(per_event, axis=1)[has])),
        ("score_event_mean", ak.to_numpy(ak.mean(per_event, axis=1)[has])),
    ):
        h = out[name].copy().reset()
        h.fill(score=values)
        np.testing.assert_array_equal(out[name].view(flow=True), h.view(flow=True), err_msg=name)


def test_every_histogram_equals_plain_hist_fill(jet_sample):
    """fill_hists' bincount fills give, histogram by histogram, the bins of plain
    ``Hist.fill`` calls on values computed here with numpy (residuals by hand)."""
    from hepae_coffea.processing.anomaly import event_baselines
    from hepae_coffea.processing.anomaly_hists import BASELINES, make_anomaly_hists
    from hepae_coffea.processing.hists import make_hists
    from hepae_coffea.processors.compression import ChunkResult, fill_hists

    path, _, _ = jet_sample
    proc = JetCompressionProcessor()
    res = compress_decompress_chunk(
        _events(path), proc.model_bytes, proc.sha256, proc.variables, 3, metadata=proc.metadata
    )
    rng = np.random.default_rng(5)
    # the sample's jets, plus spread latents with values on and outside the axis edges
    latent = np.concatenate([res.latent, rng.uniform(-0.2, 1.2, (200, 3)).astype(np.float32)])
    latent[:5] = [[0.0, 1.0, np.nan]] * 5
    n = len(res.original)
    res = ChunkResult(
        res.original, res.reconstructed, latent[:n], res.score, res.counts, n, n, 0, False
    )
    out = make_hists(proc.metadata)
    timings: dict[str, float] = {}
    fill_hists(out, res, proc.variables, proc.metadata, timings)
    assert {"residuals", "distribution", "anomaly"} <= set(timings)

    ref = make_hists(proc.metadata)
    orig, rec = res.original.astype(np.float64), res.reconstructed.astype(np.float64)
    for i, v in enumerate(proc.variables):
        ref["distribution"][v].fill(value=orig[:, i], version="original")
        ref["distribution"][v].fill(value=rec[:, i], version="reconstructed")
        a = out["distribution"][v].view(flow=True)
        np.testing.assert_array_equal(a, ref["distribution"][v].view(flow=True), err_msg=v)
        assert a.sum() == 2 * n
    for d in range(3):
        ref["latent"].fill(dim=d, z=res.latent[:, d])
    for i, j in ((0, 1), (0, 2), (1, 2)):
        ref["latent_pairs"].fill(pair=f"{i}-{j}", zx=res.latent[:, i], zy=res.latent[:, j])
    for name in ("latent", "latent_pairs"):
        np.testing.assert_array_equal(
            out[name].view(flow=True), ref[name].view(flow=True), err_msg=name
        )
    # moments by hand: relative for pt, eta, phi (plain), mass against max(m, 1 GeV)
    diff = rec - orig
    rel = diff / np.stack([orig[:, 0], orig[:, 1], orig[:, 2], np.maximum(orig[:, 3], 1.0)], 1)
    mom = out["residual_moments"].view()
    for i in range(4):
        fin = rel[np.isfinite(rel[:, i]), i]
        assert mom["count"][i, 0] == fin.size
        np.testing.assert_allclose(mom["value"][i, 0], fin.mean(), rtol=1e-12)
    np.testing.assert_allclose(mom["value"][0, 1], diff[:, 0].mean(), rtol=1e-12)
    # anomaly histograms: leading jet and event scores per event, by hand
    anomaly = make_anomaly_hists()
    base = event_baselines(orig[:, 0], orig[:, 3], res.counts)
    for name in BASELINES:
        anomaly["baseline"].fill(observable=name, value=base[name])
    per_event = res.unflatten(res.score.astype(np.float64))
    has = res.counts > 0
    for kind, reduce in (("max", ak.max), ("mean", ak.mean)):
        ev = ak.to_numpy(reduce(per_event, axis=1)[has])
        for name in BASELINES[:2]:
            anomaly["score_vs_leading"].fill(kind=kind, observable=name, score=ev, value=base[name])
    for name, h in anomaly.items():
        np.testing.assert_array_equal(
            out["anomaly"][name].view(flow=True), h.view(flow=True), err_msg=name
        )


def test_selection_compares_the_float32_values_in_float64():
    """pt_min and abs_eta_max compare the file's float32 values as float64: a jet at
    float32(20.1) = 20.1000004 passes pt > 20.1, and one at float32(1.3) = 1.2999999 passes
    |eta| < 1.3 (in float32 both cuts would round onto the values and drop them)."""
    pt = np.array([20.1, 20.0, 30.0, 30.0], dtype=np.float32)
    eta = np.array([0.5, 0.5, 1.3, -1.3000001], dtype=np.float32)
    jets = ak.zip(
        {
            "pt": pt,
            "eta": eta,
            "phi": np.full(4, 0.3, np.float32),
            "mass": np.full(4, 5.0, np.float32),
        }
    )
    events = ak.Array({"Jet": ak.unflatten(jets, [4])})
    want = (pt.astype(np.float64) > 20.1) & (np.abs(eta.astype(np.float64)) < 1.3)
    assert want.tolist() == [True, False, True, False]
    res = compress_decompress_chunk(
        events,
        default_model_path().read_bytes(),
        load_model().sha256,
        ["pt", "eta", "phi", "mass"],
        3,
        pt_min=20.1,
        abs_eta_max=1.3,
    )
    assert res.n_selected == 2
    np.testing.assert_array_equal(res.original, np.stack([pt, eta, jets.phi, jets.mass], 1)[want])
