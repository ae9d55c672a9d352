"""Extra-jet branches of event-level files, for jet variables with underscores in their names.

An event-level model compresses the leading jets of each event; the jets beyond them are
stored as they are in ``<collection>Extra_<variable>`` branches. The model here is built
and exported without training (its weights are the seeded initial ones): only the names
and the untouched extra jets are checked, which do not depend on what the network learnt.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import torch
import uproot

from hepae_coffea.compress.blocks import extra_branch
from hepae_coffea.compress.files import compress, decompress
from hepae_coffea.model.export import export_model
from hepae_coffea.model.networks import build_model
from hepae_coffea.model.normalize import Normalizer, choose_transforms
from hepae_coffea.training.loop import TrainConfig, build_metadata

from .conftest import write_nanoaod

J = 2
VARIABLES = ["pt", "eta", "phi", "mass", "btag_x"]


def test_extra_branch_keeps_the_variables_underscores():
    assert extra_branch("Jet", "Jet_pt") == "JetExtra_pt"
    assert extra_branch("Jet", "Jet_btag_x") == "JetExtra_btag_x"
    assert extra_branch("FatJet", "FatJet_a_b_c") == "FatJetExtra_a_b_c"


def _untrained_event_model(path, x):
    """An event-level model file with seeded initial weights (the config only describes
    the model for its metadata; nothing is read or trained)."""
    cfg = TrainConfig(
        inputs=["unused.root"],
        output=str(path.parent),
        level="event",
        event_jets=J,
        latent_dim=4,
        variables=VARIABLES,
    )
    transforms = choose_transforms(x, VARIABLES)
    torch.manual_seed(3)
    model = build_model(cfg.model_config(), Normalizer(transforms)).eval()
    meta = build_metadata(model, cfg, {}, {}, transforms)
    meta["latent_range"] = [0.0, 1.0]  # as training writes for the packed bottleneck
    return export_model(model, path, meta)


def test_event_level_extra_jets_of_an_underscored_variable(tmp_path):
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 6, 60)
    counts[:3] = [0, J, J + 3]  # no jet, exactly J, and 3 beyond J
    n = int(counts.sum())
    pt = 20 + rng.exponential(40, n)
    jets = {
        "pt": pt,
        "eta": rng.normal(0, 1.5, n),
        "phi": rng.uniform(-np.pi, np.pi, n),
        "mass": pt * rng.uniform(0.03, 0.25, n),
        "btag_x": rng.uniform(0.0, 1.0, n),
    }
    src = tmp_path / "ev.root"
    write_nanoaod(src, counts, jets)
    x = np.stack([jets[v] for v in VARIABLES], axis=1)
    model = _untrained_event_model(tmp_path / "ev.pt", x)

    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    compress(src, comp, model, allow_larger=True)
    decompress(comp, rest)

    btag = ak.unflatten(jets["btag_x"].astype(np.float32), counts)  # as written
    beyond = np.concatenate([np.asarray(b[J:]) for b in btag.tolist()]).astype(np.float32)
    assert len(beyond) == int(np.maximum(counts - J, 0).sum()) > 0
    with uproot.open(comp) as f:
        t = f["Events"]
        names = list(t.keys())
        assert "JetExtra_btag_x" in names
        assert "JetExtra_x" not in names
        stored = t["JetExtra_btag_x"].array()
        assert ak.to_list(ak.num(stored)) == np.maximum(counts - J, 0).tolist()
        assert np.array_equal(ak.to_numpy(ak.flatten(stored)), beyond)
    with uproot.open(rest) as f:
        r = f["Events"].arrays(["Jet_btag_x", "nJet"])
    assert ak.to_list(r["nJet"]) == counts.tolist()
    restored = r["Jet_btag_x"]
    assert np.array_equal(ak.to_numpy(ak.flatten(restored[ak.local_index(restored) >= J])), beyond)
