from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hepae_coffea.model.normalize import (
    Normalizer,
    VariableTransform,
    _wrap_angle,
    choose_transforms,
)

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


# Every transform kind in one normaliser, with a non-trivial unit range; the expected
# values below are worked out from the transform definitions with plain numpy.
_HAND_TRANSFORMS = [
    VariableTransform("pt", "log", center=2.0, scale=0.5, offset=1.0, nonneg=True),
    VariableTransform("eta", "standard", center=1.0, scale=2.0),
    VariableTransform("phi", "angle"),
    VariableTransform("dphi", "periodic", center=0.0, scale=math.pi),
    VariableTransform("n", "onehot", center=3.0, scale=4.0, nonneg=True, integer=True),
    VariableTransform("frac", "identity", nonneg=True, unit=True),
    VariableTransform("cnt", "identity", nonneg=True, integer=True),
]
# columns: 7 variables (phi as cos), sin(phi), the 4 one-hot columns of n
_LO = np.arange(12) * 0.25 - 1.0
_WIDTH = np.array([2.0, 4.0, 0.5, 1.0, 2.0, 8.0, 3.0, 0.5, 1.0, 1.0, 2.0, 4.0])


def _hand_normalizer() -> Normalizer:
    return Normalizer(_HAND_TRANSFORMS, unit_range=(_LO, _LO + _WIDTH))


def test_forward_every_transform_kind_hand_worked():
    x = np.array(
        [
            [10.0, 3.0, 0.5, 1.0, 5.0, 0.25, 2.0],
            [0.5, -1.0, -2.0, -0.3, 2.0, 1.0, 0.0],  # n below the one-hot range
            [3.0, 0.0, 3.0, 2.5, 9.0, 0.0, 7.0],  # n above it
        ]
    )
    z = np.empty((3, 12))
    z[:, 0] = (np.log(x[:, 0] + 1.0) - 2.0) / 0.5
    z[:, 1] = (x[:, 1] - 1.0) / 2.0
    z[:, 2] = np.cos(x[:, 2])
    z[:, 3] = x[:, 3] / math.pi
    z[:, 4] = (x[:, 4] - 3.0) / 4.0
    z[:, 5] = x[:, 5]
    z[:, 6] = x[:, 6]
    z[:, 7] = np.sin(x[:, 2])
    z[:, 8:] = 0.0
    z[[0, 1, 2], [8 + 2, 8 + 0, 8 + 3]] = 1.0  # n = 5, 2 (clamped to 3), 9 (clamped to 6)
    expected = (z - _LO) / _WIDTH
    got = _hand_normalizer()(torch.tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_unit_range_from_zero_still_scales_and_inverts():
    """A [0, 1] mapping whose lower ends are all zero still divides by the widths (the
    mapping is skipped only where it is the identity)."""
    tr = [
        VariableTransform("pt", "log", center=1.0, scale=2.0),
        VariableTransform("eta", "identity"),
    ]
    x = torch.tensor([[10.0, 0.5], [100.0, -2.0]])
    plain = Normalizer(tr)(x).numpy()
    mapped = Normalizer(tr, unit_range=(np.zeros(2), np.array([2.0, 4.0])))
    np.testing.assert_allclose(mapped(x).numpy(), plain / [2.0, 4.0], rtol=1e-6)
    np.testing.assert_allclose(mapped.inverse(mapped(x)).numpy(), x.numpy(), rtol=1e-5)


def test_forward_log_transform_clamps_at_1e30():
    tr = [VariableTransform("pt", "log", center=0.0, scale=1.0, offset=0.0)]
    got = Normalizer(tr)(torch.tensor([[0.0], [1e-35], [1e-20]]))
    expected = np.log([1e-30, 1e-30, 1e-20])
    np.testing.assert_allclose(got.numpy()[:, 0], expected, rtol=1e-6)


def test_inverse_every_transform_kind_hand_worked():
    z = np.zeros((3, 12))
    z[:, 0] = [0.4, -6.0, 1.0]  # log: exp(2 + 0.5 z) - 1, floored at 0
    z[:, 1] = [0.5, -1.0, 3.0]  # standard: 2 z + 1
    z[:, 2], z[:, 7] = [1.2, -1.0, 0.0], [1.6, 0.0, -2.0]  # phi = atan2(sin, cos)
    z[:, 3] = [1.5, -0.25, 0.5]  # periodic: pi z, wrapped into (-pi, pi]
    z[:, 4] = [0.3, -0.7, 0.1]  # the one-hot variable's own column is not read back
    z[:, 5] = [1.7, -0.2, 0.3]  # unit fraction: clipped to [0, 1]
    z[:, 6] = [2.6, -1.4, 0.4]  # integer count: rounded, floored at 0
    z[:, 8:] = [[0.1, 0.9, 0.2, 0.0], [0.0, 0.0, 0.0, 1.0], [0.7, 0.1, 0.1, 0.1]]
    expected = np.array(
        [
            [math.exp(2.2) - 1.0, 2.0, math.atan2(1.6, 1.2), -0.5 * math.pi, 4.0, 1.0, 3.0],
            [0.0, -1.0, math.pi, -0.25 * math.pi, 6.0, 0.0, 0.0],
            [math.exp(2.5) - 1.0, 7.0, -0.5 * math.pi, 0.5 * math.pi, 3.0, 0.3, 0.0],
        ]
    )
    u = torch.tensor((z - _LO) / _WIDTH, dtype=torch.float32)
    got = _hand_normalizer().inverse(u).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-6)
    assert got[1, 2] > 0  # atan2(0, -1) = +pi stays +pi


@pytest.mark.parametrize("x", [-8541.990234375, -4439.0703125, 5463.22998046875])
def test_wrap_angle_float32_rounding_at_minus_pi(x):
    # in float32, x - 2 pi ceil((x - pi) / 2 pi) rounds to -3.1416015625 (<= -pi) for these
    t = torch.tensor([x], dtype=torch.float32)
    raw = t - 2.0 * math.pi * torch.ceil((t - math.pi) / (2.0 * math.pi))
    assert raw.item() <= -math.pi
    got = _wrap_angle(t).item()
    assert -math.pi < got <= math.pi + 1e-6
    # congruent to x modulo 2 pi (in float64), up to float32's rounding of x - 2 pi k
    assert math.remainder(got - x, 2.0 * math.pi) == pytest.approx(0.0, abs=2e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_wrap_angle_leaves_values_inside_bit_for_bit(dtype):
    x = torch.tensor([-0.0, 0.0, math.pi, -3.0, 1e-30, -1e-30, 3.0], dtype=dtype)
    x = torch.cat([x, torch.nextafter(torch.tensor([-math.pi], dtype=dtype), x[:1])])
    got = _wrap_angle(x)
    assert torch.equal(got, x)
    assert torch.signbit(got).tolist() == torch.signbit(x).tolist()  # -0.0 stays -0.0


def test_unit_range_from_a_checkpoint_is_applied():
    """A normaliser built without a [0, 1] mapping that loads one (a BCE checkpoint)
    maps with it, as the normaliser it was saved from does."""
    mapped = _hand_normalizer()
    fresh = Normalizer(_HAND_TRANSFORMS)
    x = torch.tensor([[10.0, 3.0, 0.5, 1.0, 5.0, 0.25, 2.0]])
    assert not torch.equal(fresh(x), mapped(x))
    fresh.load_state_dict(mapped.state_dict())
    torch.testing.assert_close(fresh(x), mapped(x), rtol=0, atol=0)
    torch.testing.assert_close(fresh.inverse(fresh(x)), mapped.inverse(mapped(x)), rtol=0, atol=0)
