"""Shared fixtures: tiny synthetic jet samples in every supported format."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot


def make_jets(n_events: int = 400, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Jet-like (pt, eta, phi, mass) per event, with QCD-like spectra."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, n_events)
    n = int(counts.sum())
    pt = 20 + rng.exponential(40, n)
    jets = {
        "pt": pt,
        "eta": rng.normal(0, 1.5, n),
        "phi": rng.uniform(-np.pi, np.pi, n),
        "mass": pt * rng.uniform(0.03, 0.25, n),
    }
    return counts, jets


def write_nanoaod(path, counts, jets, extra=None) -> None:
    """A NanoAOD-style flat ROOT file (TTree Events with event-ID branches)."""
    n_ev = len(counts)

    def cast(v):  # floats as float32 (as NanoAOD), integers keep their type
        v = np.asarray(v)
        return v.astype(np.float32) if v.dtype.kind == "f" else v

    coll = ak.zip({k: ak.unflatten(cast(v), counts) for k, v in jets.items()})
    data = {
        "run": np.ones(n_ev, np.uint32),
        "luminosityBlock": np.ones(n_ev, np.uint32),
        "event": np.arange(1, n_ev + 1, dtype=np.uint64),
        "Jet": coll,
    }
    data.update(extra or {})
    with uproot.recreate(path) as f:
        f.mktree(
            "Events", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
        )
        f["Events"].extend(data)


@pytest.fixture(scope="session")
def jet_sample(tmp_path_factory):
    """(path, counts, jets) of a small NanoAOD-style ROOT file."""
    counts, jets = make_jets(400, seed=0)
    path = tmp_path_factory.mktemp("samples") / "jets.root"
    write_nanoaod(path, counts, jets)
    return path, counts, jets


@pytest.fixture(scope="session")
def train_sample(tmp_path_factory):
    """A ROOT file large enough for a short training (~5k jets)."""
    counts, jets = make_jets(2000, seed=1)
    path = tmp_path_factory.mktemp("train") / "train.root"
    write_nanoaod(path, counts, jets)
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny tensors train faster on one thread than on two competing ones."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
