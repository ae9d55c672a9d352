from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hepae_coffea.normalize import Normalizer, choose_transforms

from .conftest import make_jets

VARS = ["pt", "eta", "phi", "mass"]


@pytest.fixture
def values():
    _, jets = make_jets(500)
    return np.stack([jets[v] for v in VARS], axis=1)


def test_automatic_choice(values):
    kinds = [t.kind for t in choose_transforms(values, VARS)]
    assert kinds == ["log", "standard", "angle", "log"]


@pytest.mark.parametrize(
    "overrides",
    [{}, {"eta": "scale:3", "phi": "periodic"}, {"pt": "standard", "mass": "identity"}],
)
def test_round_trip(values, overrides):
    norm = Normalizer(choose_transforms(values, VARS, overrides))
    x = torch.tensor(values, dtype=torch.float64).float()
    u = norm(x)
    assert u.shape[1] == 4 + (1 if overrides.get("phi", "angle") == "angle" else 0)
    back = norm.inverse(u)
    torch.testing.assert_close(back, x, rtol=2e-6, atol=2e-6)


def test_scale_override_value(values):
    t = choose_transforms(values, VARS, {"eta": "scale:3"})[1]
    assert (t.kind, t.center, t.scale) == ("scale", 0.0, 3.0)
    norm = Normalizer(choose_transforms(values, VARS, {"eta": "scale:3"}))
    x = torch.tensor(values[:5], dtype=torch.float32)
    torch.testing.assert_close(norm(x)[:, 1], x[:, 1] / 3)


def test_unit_range_for_bce(values):
    norm = Normalizer(choose_transforms(values, VARS))
    x = torch.tensor(values, dtype=torch.float32)
    norm.set_unit_range(norm(x))
    u = norm(x)
    assert float(u.min()) > 0
    assert float(u.max()) < 1
    torch.testing.assert_close(norm.inverse(u), x, rtol=1e-5, atol=1e-5)


def test_outputs_physical(values):
    """Arbitrary network outputs decode to phi in (-pi, pi] and non-negative pt/mass."""
    for phi_kind in ("angle", "periodic"):
        norm = Normalizer(choose_transforms(values, VARS, {"phi": phi_kind, "pt": "standard"}))
        u = torch.randn(2000, norm.n_norm) * 10
        x = norm.inverse(u)
        assert bool((x[:, 0] >= 0).all())
        assert bool((x[:, 3] >= 0).all())
        assert bool((x[:, 2] > -math.pi).all())
        assert bool((x[:, 2] <= math.pi).all())


def test_bad_overrides(values):
    with pytest.raises(ValueError, match="unknown transform 'cube' for variable 'pt'"):
        choose_transforms(values, VARS, {"pt": "cube"})
    with pytest.raises(ValueError, match="unknown variable"):
        choose_transforms(values, VARS, {"nope": "log"})
    with pytest.raises(ValueError, match="log transform for 'eta' needs values >= 0"):
        choose_transforms(values, VARS, {"eta": "log"})


def test_normalizer_scripts(values):
    norm = torch.jit.script(Normalizer(choose_transforms(values, VARS)))
    x = torch.tensor(values[:10], dtype=torch.float32)
    torch.testing.assert_close(norm.inverse(norm(x)), x, rtol=2e-6, atol=2e-6)
