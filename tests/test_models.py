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


@pytest.mark.parametrize(("n_in", "n_out"), [(32, 6), (32, 5), (5, 32), (7, 1)])
def test_feature_major_linear_is_a_linear_layer(n_in, n_out):
    """The same map, gradients and state-dict names as nn.Linear, on rows stored either
    way; the expectation is the plain sum over inputs, in float64."""
    from torch import nn

    from hepae_coffea.model.networks import FeatureMajorLinear

    torch.manual_seed(3)
    ref = nn.Linear(n_in, n_out).double()
    layer = FeatureMajorLinear(n_in, n_out).double()
    assert list(layer.state_dict()) == list(ref.state_dict())
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(257, n_in, dtype=torch.float64)
    w, b = ref.weight.detach(), ref.bias.detach()
    want = (x[:, None, :] * w[None, :, :]).sum(dim=2) + b
    for rows in (x, x.t().contiguous().t()):
        got = layer(rows)
        assert got.shape == (257, n_out)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    layer(x).square().sum().backward()
    ref(x).square().sum().backward()
    torch.testing.assert_close(layer.weight.grad, ref.weight.grad)
    torch.testing.assert_close(layer.bias.grad, ref.bias.grad)


def test_narrow_layers_are_feature_major_and_outputs_contiguous():
    """Layers with at most NARROW outputs compute W @ x^T; the rest stay nn.Linear. The
    latents and reconstructions come back C-contiguous (numba kernels and writers take
    them as they are)."""
    from torch import nn

    from hepae_coffea.model.networks import NARROW, FeatureMajorLinear

    assert NARROW == 12
    model, x = _model(bottleneck="packed", hidden=[32, 16])
    model.eval()
    linears = [m for m in [*model.encoder, *model.decoder] if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [32, 16, 6, 16, 32, 5]
    feature_major = [type(m) is FeatureMajorLinear for m in linears]
    assert feature_major == [False, False, True, False, False, True]
    with torch.no_grad():
        z, rec, s = model.encode_decode_score(x)
        assert z.is_contiguous()
        assert rec.is_contiguous()
        assert s.is_contiguous()
        assert model.encode(x).is_contiguous()
        assert model.decode(z).is_contiguous()
        torch.testing.assert_close(model.encode(x), z, rtol=0, atol=0)


def test_a_jets_outputs_do_not_depend_on_the_batch():
    """With one torch thread, every public call gives each jet the same bits whatever
    rows come with it: small batches, lengths off the vector width and a call of more
    than one piece (expectation: the same call on all rows at once)."""
    from hepae_coffea.model.networks import PIECE

    model, x = _model(bottleneck="packed", hidden=[32, 32])
    model.eval()
    rng = np.random.default_rng(5)
    big = torch.from_numpy(x.numpy()[rng.integers(0, len(x), PIECE + 700)])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            z, rec, s = model.encode_decode_score(big)
            for a, b in [(0, 1), (3, 5), (10, 27), (100, 165), (7, 1008), (5, PIECE + 600)]:
                zp, rp, sp = model.encode_decode_score(big[a:b])
                assert torch.equal(zp, z[a:b]), (a, b)
                assert torch.equal(rp, rec[a:b]), (a, b)
                assert torch.equal(sp, s[a:b]), (a, b)
                assert torch.equal(model.encode(big[a:b]), z[a:b]), (a, b)
                assert torch.equal(model.decode(z[a:b]), rec[a:b]), (a, b)
                assert torch.equal(model.score(big[a:b]), s[a:b]), (a, b)
            empty = model.encode_decode_score(big[:0])
            assert [tuple(t.shape) for t in empty] == [(0, 3), (0, 4), (0,)]
    finally:
        torch.set_num_threads(threads)
