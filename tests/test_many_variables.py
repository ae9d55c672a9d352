"""N -> k models: any list of jet variables, integer-valued ones restored as integers."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

from hepae_coffea.compress import compress, decompress
from hepae_coffea.export import read_metadata
from hepae_coffea.normalize import Normalizer, choose_transforms
from hepae_coffea.run import run
from hepae_coffea.train import TrainConfig, train

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
    cfg = TrainConfig(
        inputs=[str(rich_sample)],
        output=str(tmp_path / "m7.pt"),
        variables=VARS,
        latent_dim=5,
        epochs=4,
        batch_size=256,
        preview=False,
        tensorboard=False,
    )
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
    compress(rich_sample, comp, res.paths["model"])
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
