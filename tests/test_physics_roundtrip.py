"""compress -> decompress round trips, every variable checked against values computed
without the compress module: the TorchScript model file called directly (compress itself
rebuilds the network from plain weights), rounding by hand in numpy."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

from hepae_coffea.compress.files import compress, decompress
from hepae_coffea.errors import ModelFileError
from hepae_coffea.model.export import default_model_path
from hepae_coffea.processing.run import run

from .conftest import make_jets, write_nanoaod
from .known_model import VARIABLES, expected_reconstruction, export_known_model
from .rootfile import ALGORITHM_TAG, basket_tags

pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")

KIN = [f"Jet_{v}" for v in VARIABLES]
SHIFTED = {"pt_scale": 1.02, "pt_shift": 0.5, "eta_shift": 0.003, "phi_shift": 0.45}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    d = tmp_path_factory.mktemp("roundtrip")
    counts, jets = make_jets(400, seed=51)
    counts[5:15] = 0
    n = int(counts.sum())
    jets = {k: v[:n] for k, v in jets.items()}
    rng = np.random.default_rng(52)
    jets["nConstituents"] = rng.integers(1, 40, n).astype(np.int32)
    jets["width"] = rng.uniform(0, 0.4, n)
    path = d / "source.root"
    write_nanoaod(path, counts, jets, extra={"MET_pt": rng.exponential(30, len(counts))})
    return path


def _read(path, keys=None):
    with uproot.open(path) as f:
        return f["Events"].arrays(keys, library="ak")


def _flat(arrays, names):
    return np.stack([ak.to_numpy(ak.flatten(arrays[k])) for k in names], axis=1)


def _round_trip(source, tmp_path, model=None, **kw):
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    compress(source, comp, model, step_size=3000, allow_larger=True, **kw)  # several chunks
    decompress(comp, rest, step_size=2000)
    return comp, rest


def test_default_model_every_variable_is_the_models_reconstruction(source, tmp_path):
    _, rest = _round_trip(source, tmp_path)
    orig, back = _read(source), _read(rest)
    x = _flat(orig, KIN).astype(np.float32)
    module = torch.jit.load(str(default_model_path()), map_location="cpu")
    with torch.inference_mode():
        expect = module.decode(module.encode(torch.from_numpy(x))).numpy()
    got = _flat(back, KIN)
    assert got.dtype == np.float32
    for i, v in enumerate(VARIABLES):
        np.testing.assert_allclose(got[:, i], expect[:, i], rtol=2e-6, atol=2e-6, err_msg=v)
    # and close to the input (the default model's resolution is ~1e-3)
    rel = np.abs(got[:, [0, 3]] / x[:, [0, 3]] - 1)
    assert np.median(rel) < 0.01
    assert ak.all(ak.num(back["Jet_pt"]) == ak.num(orig["Jet_pt"]))


def _torchscript(x: np.ndarray, bits: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(latents, reconstruction) of the shipped model file run as TorchScript, the latents
    optionally rounded to ``bits`` mantissa bits by hand before decoding."""
    module = torch.jit.load(str(default_model_path()), map_location="cpu")
    with torch.inference_mode():
        z = module.encode(torch.from_numpy(x)).numpy()
        if bits is not None:
            z = _round_to_bits(z, bits)
        return z, module.decode(torch.from_numpy(z)).numpy()


def test_hand_built_model_is_refused(source, tmp_path):
    """compress stores models as plain weights rebuilt by the library: a TorchScript file
    whose network the library cannot rebuild is refused, and nothing is written."""
    model = export_known_model(tmp_path / "m.pt", **SHIFTED)
    with pytest.raises(ModelFileError, match="cannot describe the model"):
        compress(source, tmp_path / "c.root", model)
    assert not (tmp_path / "c.root").exists()
    x = _flat(_read(source), KIN).astype(np.float32)
    assert expected_reconstruction(x, **SHIFTED).shape == x.shape  # the formula itself runs


def _round_to_bits(x: np.ndarray, bits: int) -> np.ndarray:
    """float32 rounded to ``bits`` mantissa bits, ties away from zero (exact in float64)."""
    m, e = np.frexp(x.astype(np.float64))  # |m| in [0.5, 1): 24 significant bits
    scale = 2.0 ** (bits + 1)
    q = np.sign(m) * np.floor(np.abs(m) * scale + 0.5) / scale
    return np.ldexp(q, e).astype(np.float32)


@pytest.mark.parametrize("bits", [0, 5, 10, 16])
def test_latent_bits_round_every_latent(source, tmp_path, bits):
    comp, rest = _round_trip(source, tmp_path, latent_bits=bits)
    orig = _read(source)
    x = _flat(orig, KIN).astype(np.float32)
    expect_z, expect = _torchscript(x, bits)
    z = _flat(_read(comp), [f"Jet_z{i}" for i in range(expect_z.shape[1])])
    np.testing.assert_array_equal(z, expect_z)
    got = _flat(_read(rest), KIN)
    for i, v in enumerate(VARIABLES):
        np.testing.assert_allclose(got[:, i], expect[:, i], rtol=2e-6, atol=2e-6, err_msg=v)
    # the rounding itself: relative error bounded by half a unit in the last kept bit
    z_full, _ = _torchscript(x)
    nz = z_full != 0
    assert np.all(np.abs(z[nz] / z_full[nz] - 1) <= 2.0 ** -(bits + 1) * (1 + 1e-6))
    for k in orig.fields:  # every other branch bit for bit
        if k not in KIN:
            assert str(ak.type(_read(rest)[k])) == str(ak.type(orig[k])), k
            assert ak.all(_read(rest)[k] == orig[k]), k


def test_processor_chunks_restore_the_same_values(source, tmp_path):
    res = run([source], chunksize=150, compress_dir=tmp_path / "chunks")
    files = sorted(res.output["source"]["compressed"]["files"], key=lambda p: int(p.split("_")[-2]))
    assert len(files) == 3
    parts = []
    for i, f in enumerate(files):
        decompress(f, tmp_path / f"r{i}.root")
        parts.append(_flat(_read(tmp_path / f"r{i}.root"), KIN))
    got = np.concatenate(parts)
    x = _flat(_read(source), KIN).astype(np.float32)
    _, expect = _torchscript(x)
    np.testing.assert_allclose(got, expect, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("algorithm", ["zlib", "lz4", "lzma", "zstd"])
def test_output_uses_the_requested_algorithm(source, tmp_path, algorithm):
    comp = tmp_path / f"{algorithm}.root"
    compress(source, comp, compression=algorithm, level=1, allow_larger=True)
    assert basket_tags(comp) == {ALGORITHM_TAG[algorithm]}
    rest = tmp_path / f"{algorithm}_r.root"
    decompress(comp, rest, compression=algorithm, level=1)
    assert basket_tags(rest) == {ALGORITHM_TAG[algorithm]}
