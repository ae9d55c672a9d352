"""N -> k models: any list of jet variables, integer-valued ones restored as integers."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

from hepae_coffea.compress.files import compress, decompress
from hepae_coffea.model.export import read_metadata
from hepae_coffea.model.normalize import Normalizer, choose_transforms
from hepae_coffea.processing.run import run
from hepae_coffea.training.loop import TrainConfig, train

from .conftest import make_jets, write_nanoaod

VARS = ["pt", "eta", "phi", "mass", "nConstituents", "width", "chHEF"]


@pytest.fixture(scope="module")
def rich_sample(tmp_path_factory):
    counts, jets = make_jets(1500, seed=40)
    n = int(counts.sum())
    rng = np.random.default_rng(41)
    jets["nConstituents"] = (5 + rng.poisson(jets["pt"] / 5)).astype(np.int32)
    jets["width"] = rng.uniform(0.01, 0.3, n)
    jets["chHEF"] = rng.uniform(0, 1, n)
    path = tmp_path_factory.mktemp("rich") / "rich.root"
    write_nanoaod(path, counts, jets)
    return path


def _train_cfg(sample, output, **kw) -> TrainConfig:
    """A short training on ``sample`` with the test's variables."""
    base = {"batch_size": 256, "preview": False, "tensorboard": False}
    return TrainConfig(inputs=[str(sample)], output=str(output), variables=VARS, **base, **kw)


def test_integer_variables_detected_and_rounded():
    rng = np.random.default_rng(0)
    x = np.stack(
        [
            20 + rng.exponential(30, 500),
            rng.integers(1, 60, 500).astype(float),
            rng.uniform(0, 1, 500),
        ],
        axis=1,
    )
    tr = choose_transforms(x, ["pt", "nConstituents", "chHEF"])
    assert [t.integer for t in tr] == [False, True, False]
    norm = Normalizer(tr)
    u = norm(torch.tensor(x, dtype=torch.float32))
    back = norm.inverse(u + 0.01 * torch.randn_like(u))
    assert torch.equal(back[:, 1], torch.round(back[:, 1]))
    torch.testing.assert_close(norm.inverse(u)[:, 1], torch.tensor(x[:, 1], dtype=torch.float32))
    forced = choose_transforms(x, ["pt", "nConstituents", "chHEF"], integers=[])
    assert not any(t.integer for t in forced)


@pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")
def test_n_to_k_train_run_compress(rich_sample, tmp_path):
    cfg = _train_cfg(rich_sample, tmp_path / "m7.pt", latent_dim=5, epochs=4)
    res = train(cfg, progress=False)
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]
    meta_norm = {t["variable"]: t for t in read_metadata(res.paths["model"])["normalisation"]}
    assert meta_norm["nConstituents"]["integer"] is True
    assert meta_norm["width"]["integer"] is False
    out = run([rich_sample], res.paths["model"], chunksize=500).output["rich"]
    assert list(out["residual"].axes["variable"]) == VARS
    assert out["latent"].axes["dim"].size == 5
    rec = out["distribution"]["nConstituents"][{"version": "reconstructed"}]
    assert rec.sum(flow=True) == out["counters"]["jets"]
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    compress(rich_sample, comp, res.paths["model"], allow_larger=True)
    with uproot.open(comp) as f:
        keys = f["Events"].keys()
    assert "Jet_nConstituents" not in keys
    assert "Jet_z4" in keys
    decompress(comp, rest)
    with uproot.open(rest) as f, uproot.open(rich_sample) as g:
        r, o = f["Events"].arrays(), g["Events"].arrays()
        assert f["Events"].keys() == g["Events"].keys()
    assert str(ak.type(r["Jet_nConstituents"])).endswith("int32")
    assert ak.all(ak.num(r["Jet_nConstituents"]) == ak.num(o["Jet_nConstituents"]))
    assert np.all(ak.to_numpy(ak.flatten(r["Jet_nConstituents"])) >= 0)


def _discrete_table():
    rng = np.random.default_rng(7)
    pt = 20 + rng.exponential(30, 800)
    ncon = (3 + rng.poisson(pt / 10)).astype(float)
    return np.stack([pt, ncon, rng.uniform(0, 1, 800)], axis=1), ["pt", "nConstituents", "chHEF"]


def test_onehot_transform_round_trip_and_errors():
    x, names = _discrete_table()
    tr = choose_transforms(x, names, {"nConstituents": "onehot"})
    t = tr[1]
    size = int(x[:, 1].max() - x[:, 1].min()) + 1
    assert (t.kind, t.center, t.scale, t.integer) == ("onehot", x[:, 1].min(), size, True)
    norm = Normalizer(tr)
    assert norm.n_norm == 3 + size
    xt = torch.tensor(x, dtype=torch.float32)
    u = norm(xt)
    block = u[:, 3:]
    assert torch.equal(block.sum(dim=1), torch.ones(len(x)))
    assert torch.equal(block.argmax(dim=1).float() + t.center, xt[:, 1])
    assert torch.equal(norm.inverse(u)[:, 1], xt[:, 1])  # exact integers back
    # out-of-range values are encoded as the nearest end of the range
    far = xt[:2].clone()
    far[0, 1], far[1, 1] = t.center - 5, t.center + size + 10
    assert norm.inverse(norm(far))[:, 1].tolist() == [t.center, t.center + size - 1]
    # TorchScript gives the same
    scripted = torch.jit.script(norm)
    assert torch.equal(scripted(xt), u)
    assert torch.equal(scripted.inverse(u), norm.inverse(u))
    # weights: the block counts once, the scaled input column is no target
    w = norm.column_weight(torch.ones(3))
    assert float(w[1]) == 0.0
    assert float(w.sum()) == pytest.approx(1.0 + (size - 1) / 3)
    assert float(w[0]) == pytest.approx(1 / 3)
    # cross entropy in the block, squared error elsewhere
    recon = u.clone()
    recon[:, 3:] = 0.0  # uniform softmax
    err = norm.column_error(u, recon, False)
    torch.testing.assert_close(err[:, 3:].sum(dim=1), torch.full((len(x),), np.log(size)))
    with pytest.raises(ValueError, match="whole-number values"):
        choose_transforms(x, names, {"chHEF": "onehot"})
    with pytest.raises(ValueError, match="must be 2 to 1024"):
        choose_transforms(x, names, {"nConstituents": "onehot:5000"})


@pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")
@pytest.mark.parametrize("level", ["jet", "event"])
def test_onehot_model_trains_runs_and_restores_integers(rich_sample, tmp_path, level):
    cfg = _train_cfg(
        rich_sample,
        tmp_path / "oh.pt",
        latent_dim=5 if level == "jet" else 12,
        transforms={"nConstituents": "onehot"},
        level=level,
        event_jets=3,
        epochs=3,
    )
    res = train(cfg, progress=False)
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]
    meta = read_metadata(res.paths["model"])
    norm = {t["variable"]: t for t in meta["normalisation"]}
    assert norm["nConstituents"]["kind"] == "onehot"
    module = torch.jit.load(res.paths["model"])
    with uproot.open(rich_sample) as f:
        ncon = ak.to_numpy(ak.flatten(f["Events"]["Jet_nConstituents"].array()))
    lo, size = norm["nConstituents"]["center"], norm["nConstituents"]["scale"]
    # range from the training split (80% of the jets)
    assert ncon.min() <= lo < lo + size - 1 <= ncon.max()
    out = run([rich_sample], res.paths["model"], chunksize=500).output["rich"]
    assert out["counters"]["jets_unphysical"] == 0
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    compress(rich_sample, comp, res.paths["model"], allow_larger=True)
    decompress(comp, rest)
    with uproot.open(rest) as f:
        back = f["Events"]["Jet_nConstituents"].array()
    assert str(ak.type(back)).endswith("int32")
    flat = ak.to_numpy(ak.flatten(back))
    assert np.all((flat >= lo) & (flat <= lo + size - 1))
    if level == "jet":  # the model's own decode gives the same integers
        x = np.stack(
            [
                ak.to_numpy(ak.flatten(uproot.open(rich_sample)["Events"][f"Jet_{v}"].array()))
                for v in VARS
            ],
            axis=1,
        ).astype(np.float32)
        with torch.no_grad():
            rec = module.forward(torch.from_numpy(x))[:, VARS.index("nConstituents")].numpy()
        np.testing.assert_array_equal(rec.astype(np.int64), flat)


def test_fractions_decoded_within_unit_interval():
    x, names = _discrete_table()
    tr = choose_transforms(x, names)
    assert [t.unit for t in tr] == [False, False, True]  # chHEF in [0, 1]; pt is kinematic
    norm = Normalizer(tr)
    u = norm(torch.tensor(x, dtype=torch.float32))
    u[:, 2] += 10.0  # a network output far above the training range
    back = norm.inverse(u)
    assert float(back[:, 2].max()) == 1.0
    assert float(norm.inverse(u - 20.0)[:, 2].min()) == 0.0
    scripted = torch.jit.script(norm)
    assert torch.equal(scripted.inverse(u), back)


def test_residual_kind_for_fractions_and_counts():
    from hepae_coffea.processing.metrics import residual_kind, residuals

    absolute = ["eta", "phi", "chHEF", "muEF", "Jet_neEmEF", "nConstituents", "nCharged"]
    relative = ["pt", "mass", "E", "width", "ptD", "n", "nothing"]
    assert {residual_kind(v) for v in absolute} == {"absolute"}
    assert {residual_kind(v) for v in relative} == {"relative"}
    orig = np.array([[0.0, 0.0, 10.0]])
    rec = np.array([[0.01, 1.0, 11.0]])
    r = residuals(orig, rec, ["muEF", "nCharged", "width"])
    np.testing.assert_allclose(r, [[0.01, 1.0, 0.1]])  # zeros stay measurable
