"""--device for inference: processor, compress/decompress, torch_wrapper route."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
from coffea.nanoevents import NanoEventsFactory

from hepae_coffea.cli import main
from hepae_coffea.compress.files import compress, decompress
from hepae_coffea.io.schemas import JetNanoAODSchema
from hepae_coffea.model.export import default_model_path, load_model
from hepae_coffea.processors.compression import JetCompressionProcessor, compress_decompress_chunk
from hepae_coffea.processors.torch_wrapper import JetAutoencoderWrapper

VARS = ["pt", "eta", "phi", "mass"]
HAS_CUDA = torch.cuda.is_available()


def _events(path):
    return NanoEventsFactory.from_root(
        {str(path): "Events"}, schemaclass=JetNanoAODSchema, mode="eager"
    ).events()


def _chunk(path, device):
    model = load_model()
    return compress_decompress_chunk(
        _events(path), default_model_path().read_bytes(), model.sha256, VARS, 3, device=device
    )


def test_unknown_device_refused():
    with pytest.raises(ValueError, match="unknown device"):
        JetCompressionProcessor(device="tpu")
    with pytest.raises(ValueError, match="unknown device"):
        JetAutoencoderWrapper(device="gpu0")


def test_auto_on_this_machine_matches_cpu(jet_sample):
    path = jet_sample[0]
    cpu = _chunk(path, "cpu")
    again = _chunk(path, "cpu")
    np.testing.assert_array_equal(cpu.reconstructed, again.reconstructed)  # deterministic
    if not HAS_CUDA:
        auto = _chunk(path, "auto")
        np.testing.assert_array_equal(auto.reconstructed, cpu.reconstructed)
        np.testing.assert_array_equal(auto.latent, cpu.latent)


@pytest.mark.skipif(HAS_CUDA, reason="checks the error without a GPU")
def test_cuda_without_gpu_is_a_clear_cli_error(jet_sample, tmp_path, capsys):
    code = main(
        ["compress", str(jet_sample[0]), "-o", str(tmp_path / "c.root"), "--device", "cuda"]
    )
    assert code == 2
    assert "no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "c.root").exists()


def test_wrapper_runs_on_cpu(jet_sample):
    path = jet_sample[0]
    events = _events(path)
    rec = JetAutoencoderWrapper(device="cpu").reconstruct(events.Jet)
    ref = _chunk(path, "cpu")
    flat = ak.to_numpy(ak.flatten(rec, axis=1))
    assert flat.shape == ref.reconstructed.shape
    np.testing.assert_allclose(flat, ref.reconstructed, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_cuda_inference_matches_cpu(jet_sample, tmp_path):
    path = jet_sample[0]
    cpu, gpu = _chunk(path, "cpu"), _chunk(path, "cuda")
    np.testing.assert_allclose(gpu.reconstructed, cpu.reconstructed, rtol=1e-4, atol=1e-3)
    c = tmp_path / "c.root"
    compress(path, c, device="cuda")
    decompress(c, tmp_path / "d.root", device="cuda")
    rec = JetAutoencoderWrapper(device="cuda").reconstruct(_events(path).Jet)
    assert len(rec) == len(_events(path))
