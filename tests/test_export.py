from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from hepae_coffea.errors import ModelFileError
from hepae_coffea.model.export import export_model, load_model, read_metadata
from hepae_coffea.model.networks import ModelConfig, build_model
from hepae_coffea.model.normalize import Normalizer, choose_transforms

from .conftest import make_jets

VARS = ("pt", "eta", "phi", "mass")


@pytest.fixture(params=["plain-ae", "packed-ae", "packed-vae"])
def exported(request, tmp_path):
    bottleneck, kind = request.param.split("-")
    _, jets = make_jets(300)
    values = np.stack([jets[v] for v in VARS], axis=1)
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(bottleneck=bottleneck, kind=kind), Normalizer(choose_transforms(values, VARS))
    )
    model.eval()
    path = export_model(
        model,
        tmp_path / "m.pt",
        {"kind": kind, "latent_dim": 3, "variables": [{"name": v, "unit": ""} for v in VARS]},
    )
    return model, path, torch.tensor(values, dtype=torch.float32)


def test_torchscript_matches_eager(exported):
    model, path, x = exported
    loaded = load_model(path)
    m = loaded.module
    with torch.no_grad():
        torch.testing.assert_close(m.encode(x), model.encode(x), rtol=0, atol=1e-6)
        torch.testing.assert_close(
            m.decode(model.encode(x)), model.decode(model.encode(x)), rtol=1e-6, atol=1e-5
        )
        torch.testing.assert_close(m(x), model(x), rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(m.score(x), model.score(x), rtol=1e-6, atol=1e-7)
        _z, rec, s = m.encode_decode_score(x)
        torch.testing.assert_close(rec, model(x), rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(s, model.score(x), rtol=1e-6, atol=1e-7)


def test_metadata_readable_without_loading(exported):
    _, path, _ = exported
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith("extra/hepae_metadata.json"))
        raw = json.loads(zf.read(name))
    meta = read_metadata(path)
    assert raw["format"] == meta["format"] == "hepae-coffea-model"
    assert [v["name"] for v in meta["variables"]] == list(VARS)


def test_wrong_model_files(tmp_path, exported):
    _, path, _ = exported
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match=r"junk\.pt: not a hepae-coffea model"):
        load_model(junk)
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 3)), plain)
    with pytest.raises(ModelFileError, match=r"plain\.pt: not a hepae-coffea model"):
        load_model(plain)
    with pytest.raises(
        ModelFileError, match=r"model variables \['pt', 'eta', 'phi', 'mass'\] do not match"
    ):
        load_model(path, variables=["pt", "eta", "phi", "E"])
    with pytest.raises(ModelFileError, match="model file not found"):
        load_model(tmp_path / "missing.pt")


@pytest.mark.parametrize("activation", ["hardswish", "silu", "relu", "tanh"])
def test_exported_activations_in_place_same_values_training_model_untouched(tmp_path, activation):
    """The file applies its hidden activations in place (one tensor fewer per layer); its
    outputs equal the eager model's bit for bit, and the model that was exported keeps
    out-of-place activations, so it can still be trained."""
    _, jets = make_jets(300)
    values = np.stack([jets[v] for v in VARS], axis=1)
    torch.manual_seed(1)
    model = build_model(
        ModelConfig(hidden=[16, 16], activation=activation),
        Normalizer(choose_transforms(values, VARS)),
    )
    path = export_model(model, tmp_path / "m.pt", {"latent_dim": 3})
    scripted = torch.jit.load(path)
    act = dict(dict(scripted.named_children())["encoder"].named_children())["1"]
    has_flag = activation != "tanh"  # nn.Tanh has no in-place form
    assert ("True" in act.code) == has_flag, act.code
    assert all(not getattr(m, "inplace", False) for m in model.modules())
    x = torch.tensor(values, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        pairs = zip(scripted.encode_decode_score(x), model.encode_decode_score(x), strict=True)
        for got, want in pairs:
            assert torch.equal(got, want)
    model.train()
    u = model.normalizer(x)
    recon, _kl = model.reconstruct_normalised(u)
    ((recon - u) ** 2).mean().backward()  # out-of-place activations: autograd works
    assert all(p.grad is not None for p in model.encoder.parameters())
