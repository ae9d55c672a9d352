"""The model handle: one read of the file, SHA-256 of its bytes, metadata without running it."""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile

import pytest

from hepae_coffea.errors import ModelFileError
from hepae_coffea.model.export import default_model_path
from hepae_coffea.model.handle import ModelHandle, open_model


def _stored_metadata(path):
    """The metadata JSON as stored in the TorchScript zip, read with zipfile directly."""
    with zipfile.ZipFile(path) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith("/extra/hepae_metadata.json")]
        return json.loads(zf.read(name))


def test_handle_of_the_default_model_matches_the_file():
    path = default_model_path()
    handle = open_model()
    assert handle.path == path
    assert handle.data == path.read_bytes()
    assert handle.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    stored = _stored_metadata(path)
    assert handle.variables == [v["name"] for v in stored["variables"]]
    assert handle.latent_dim == stored["latent_dim"]
    assert handle.event_level is (stored.get("level", "jet") == "event")
    assert handle.event_jets is None


def test_handle_reads_the_file_once(monkeypatch):
    path = default_model_path()
    calls = []
    original = type(path).read_bytes

    def counting(self):
        calls.append(self)
        return original(self)

    monkeypatch.setattr(type(path), "read_bytes", counting)
    handle = open_model(path)
    assert calls == [path]
    assert open_model(handle) is handle  # a handle passes through without a read
    assert calls == [path]


def test_handle_from_bytes_and_pickle_round_trip():
    data = default_model_path().read_bytes()
    handle = open_model(data)
    assert handle.label == "model bytes"
    assert handle.path is None
    again = pickle.loads(pickle.dumps(handle))
    assert again == handle
    assert isinstance(again, ModelHandle)


def test_handle_module_runs_and_is_cached():
    import torch

    handle = open_model()
    module = handle.module()
    assert module is handle.module()  # the per-worker cache, keyed by the SHA-256
    x = torch.tensor([[100.0, 0.5, 1.0, 10.0]])
    assert module(x).shape == x.shape


def test_bad_model_files_name_the_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(ModelFileError, match=r"nope\.pt: model file not found"):
        open_model(missing)
    with pytest.raises(ModelFileError, match="is a directory"):
        open_model(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match=r"junk\.pt: not a hepae-coffea model"):
        open_model(junk)


def test_check_variables_names_the_mismatch():
    handle = open_model()
    handle.check_variables(handle.variables)
    with pytest.raises(ModelFileError, match="do not match"):
        handle.check_variables(list(reversed(handle.variables)))
