from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hepae_coffea.model.networks import ModelConfig, build_model
from hepae_coffea.model.normalize import Normalizer, choose_transforms

from .conftest import make_jets

VARS = ("pt", "eta", "phi", "mass")


def _model(**kw):
    _, jets = make_jets(300)
    values = np.stack([jets[v] for v in VARS], axis=1)
    torch.manual_seed(0)
    norm = Normalizer(choose_transforms(values, VARS))
    return build_model(ModelConfig(**kw), norm), torch.tensor(values, dtype=torch.float32)


@pytest.mark.parametrize("bottleneck", ["plain", "packed"])
@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_shapes_and_physical_outputs(kind, bottleneck):
    model, x = _model(kind=kind, bottleneck=bottleneck)
    model.eval()
    z = model.encode(x)
    assert z.shape == (len(x), 3)
    rec = model.decode(z)
    assert rec.shape == x.shape
    assert bool((rec[:, 0] >= 0).all())
    assert bool((rec[:, 3] >= 0).all())
    assert bool((rec[:, 2].abs() <= math.pi).all())
    torch.testing.assert_close(model(x), rec)
    assert model.score(x).shape == (len(x),)


def test_packed_latent_round_trip():
    """Decoding the packed float32 latent gives the training path's features exactly."""
    model, x = _model(bottleneck="packed", levels=1024)
    u = model.normalizer(x)
    h, _ = model._pre_latent(u)
    z = model._pack(h)
    assert bool((z > 0).all())
    assert bool((z < 1).all())
    torch.testing.assert_close(model._unpack(z), model._features_train(h), rtol=0, atol=0)
    coarse = torch.floor(z * 1024)
    assert bool((coarse == torch.round(torch.sigmoid(h[:, :3]) * 1023)).all())


def test_vae_sampling_vs_inference():
    model, x = _model(kind="vae")
    u = model.normalizer(x)
    torch.manual_seed(1)
    a, kl = model.reconstruct_normalised(u, sample=True)
    b, _ = model.reconstruct_normalised(u, sample=True)
    c, _ = model.reconstruct_normalised(u, sample=False)
    d, _ = model.reconstruct_normalised(u, sample=False)
    assert not torch.equal(a, b)  # sampling draws new noise
    torch.testing.assert_close(c, d)  # the mean path is deterministic
    assert bool((kl >= 0).all())
    # inference (encode/decode) uses the mean
    torch.testing.assert_close(model.normalizer.inverse(c), model(x), rtol=1e-5, atol=1e-4)


def test_bce_outputs_in_unit_interval():
    model, x = _model(loss="bce")
    model.normalizer.set_unit_range(model.normalizer(x))
    recon, _ = model.reconstruct_normalised(model.normalizer(x))
    assert bool((recon > 0).all())
    assert bool((recon < 1).all())
    err = model.per_column_error(model.normalizer(x), recon)
    assert bool((err >= 0).all())


def test_bad_config():
    with pytest.raises(ValueError, match="kind 'gan' not in"):
        ModelConfig(kind="gan")
    with pytest.raises(ValueError, match="weights given for unknown variable"):
        ModelConfig(weights={"nope": 2.0})


def test_every_activation_name_builds_that_activation():
    """`model.config` names the activations without torch; `networks` maps each to a layer."""
    from torch import nn

    from hepae_coffea.model.config import ACTIVATION_NAMES
    from hepae_coffea.model.networks import ACTIVATIONS

    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
    for name in ACTIVATION_NAMES:
        model, _ = _model(activation=name)
        layers = [m for m in model.encoder if not isinstance(m, nn.Linear)]
        assert layers, name
        assert all(type(m) is ACTIVATIONS[name] for m in layers), name
    with pytest.raises(ValueError, match="activation 'swish' not in"):
        ModelConfig(activation="swish")
