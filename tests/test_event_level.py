"""Event-level models: the leading J jets of an event compressed together."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

from hepae_coffea.compress.files import compress, decompress
from hepae_coffea.errors import ModelFileError
from hepae_coffea.io.jets import pad_events
from hepae_coffea.model.export import load_model
from hepae_coffea.model.networks import ModelConfig, build_model
from hepae_coffea.model.normalize import Normalizer, choose_transforms
from hepae_coffea.processing.evaluate import evaluate
from hepae_coffea.processing.run import run
from hepae_coffea.training.loop import TrainConfig, train

from .conftest import make_jets, write_nanoaod

J = 3


def test_pad_events_zero_and_many_jets():
    values = np.arange(16, dtype=float).reshape(8, 2)
    counts = np.array([0, 5, 1, 2])
    x, mask = pad_events(values, counts, J)
    assert x.shape == (4, J, 2)
    assert mask.tolist() == [[False] * 3, [True] * 3, [True, False, False], [True, True, False]]
    np.testing.assert_array_equal(x[1], values[:3])  # leading 3 of 5
    np.testing.assert_array_equal(x[2, 0], values[5])
    np.testing.assert_array_equal(x[0], 0)


@pytest.fixture(scope="module")
def event_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("event")
    counts, jets = make_jets(1500, seed=50)
    counts[:30] = 0
    jets = {k: v[: counts.sum()] for k, v in jets.items()}
    jets["nConstituents"] = (3 + np.arange(int(counts.sum())) % 30).astype(np.int32)
    path = d / "ev.root"
    write_nanoaod(path, counts, jets)
    cfg = TrainConfig(
        inputs=[str(path)],
        output=str(d / "ev.pt"),
        level="event",
        event_jets=J,
        latent_dim=10,
        variables=["pt", "eta", "phi", "mass", "nConstituents"],
        epochs=4,
        batch_size=128,
        preview=False,
        tensorboard=False,
    )
    res = train(cfg, progress=False)
    return path, res


def test_training_and_metadata(event_model):
    _, res = event_model
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]
    meta = load_model(res.paths["model"]).metadata
    assert meta["level"] == "event"
    assert meta["event_jets"] == J


def test_masking_honoured():
    _, jets = make_jets(200, seed=51)
    x = np.stack([jets[v] for v in ("pt", "eta", "phi", "mass")], axis=1)
    torch.manual_seed(0)
    m = build_model(
        ModelConfig(level="event", event_jets=J, latent_dim=6),
        Normalizer(choose_transforms(x, ["pt", "eta", "phi", "mass"])),
    )
    m.eval()
    xe = torch.tensor(x[: 10 * J], dtype=torch.float32).reshape(10, J, 4)
    mask = torch.ones(10, J)
    mask[:, 2] = 0
    other = xe.clone()
    other[:, 2] = torch.tensor([500.0, 2.0, 1.0, 50.0])  # change only the padded slot
    torch.testing.assert_close(m.encode(xe, mask), m.encode(other, mask))
    rec = m(xe, mask)
    assert torch.all(rec[:, 2] == 0)
    scripted = torch.jit.script(m)
    torch.testing.assert_close(scripted(xe, mask), rec, rtol=1e-5, atol=1e-4)
    js = m.jet_scores(xe, mask)
    assert torch.all(js[:, 2] == 0)
    torch.testing.assert_close(m.score(xe, mask), js.sum(1) / 2)


@pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")
def test_processor_and_compression(event_model, tmp_path):
    path, res = event_model
    model = res.paths["model"]
    out = run([path], model, chunksize=400).output["ev"]
    c = out["counters"]
    with uproot.open(path) as f:
        counts = ak.to_numpy(f["Events"]["nJet"].array())
    beyond = int(np.maximum(counts - J, 0).sum())
    assert c["jets_beyond_event_jets"] == beyond
    assert out["score_jet"].sum(flow=True) == counts.sum() - beyond
    assert out["latent"].sum(flow=True) == 10 * int((counts > 0).sum())
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    compress(path, comp, model, allow_larger=True)
    decompress(comp, rest)
    with uproot.open(rest) as f, uproot.open(path) as g:
        r, o = f["Events"].arrays(), g["Events"].arrays()
        assert f["Events"].keys() == g["Events"].keys()
    assert ak.all(ak.num(r["Jet_pt"]) == ak.num(o["Jet_pt"]))  # jet counts exact
    extra = ak.local_index(o["Jet_pt"]) >= J
    assert ak.all(r["Jet_pt"][extra] == o["Jet_pt"][extra])  # jets after J stored as they were
    n = ak.to_numpy(ak.flatten(r["Jet_nConstituents"]))
    assert str(ak.type(r["Jet_nConstituents"])).endswith("int32")
    assert np.all(n == np.round(n))
    with pytest.raises(ModelFileError, match="event-level model"):
        evaluate(path, model)


def test_extra_jets_keep_float64_exactly(event_model, tmp_path):
    """Jets after the leading J come back bit for bit, also from float64 branches."""
    path, res = event_model
    with uproot.open(path) as f:
        o = f["Events"].arrays()
    src = tmp_path / "f64.root"
    with uproot.recreate(src) as f:
        jets = {
            v: ak.values_astype(o[f"Jet_{v}"], np.float64) for v in ("pt", "eta", "phi", "mass")
        }
        jets["pt"] = jets["pt"] * (1 + 1e-12)  # digits a float32 cannot hold
        jets["nConstituents"] = o["Jet_nConstituents"]
        data = {"Jet": ak.zip(jets)}
        f.mktree("Events", {k: v.type for k, v in data.items()})
        f["Events"].extend(data)
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    compress(src, comp, res.paths["model"], allow_larger=True)
    decompress(comp, rest)
    with uproot.open(rest) as f, uproot.open(src) as g:
        r, s = f["Events"].arrays(), g["Events"].arrays()
        assert f["Events"]["Jet_pt"].interpretation == g["Events"]["Jet_pt"].interpretation
    extra = ak.local_index(s["Jet_pt"]) >= J
    assert ak.sum(extra) > 0
    for v in ("pt", "eta", "phi", "mass", "nConstituents"):
        assert ak.all(r[f"Jet_{v}"][extra] == s[f"Jet_{v}"][extra]), v
