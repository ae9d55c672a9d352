"""Non-finite inputs are counted per variable and per jet, never silently kept or lost."""

from __future__ import annotations

import numpy as np

from hepae_coffea.io.jets import read_jets

from .conftest import make_jets, write_nanoaod

VARS = ("pt", "eta", "phi", "mass")


def test_read_jets_counts_nonfinite_per_variable(tmp_path):
    counts, jets = make_jets(120, seed=61)
    n = int(counts.sum())
    jets = {k: v[:n].copy() for k, v in jets.items()}
    jets["pt"][[1, 4]] = np.nan
    jets["eta"][4] = np.inf  # jet 4: two bad variables
    jets["mass"][[9, 10, 11]] = -np.inf
    path = tmp_path / "bad.root"
    write_nanoaod(path, counts, jets)
    data = read_jets(path, VARS, step_size=50)
    raw = np.stack([jets[v] for v in VARS], axis=1).astype(np.float32)
    finite = np.isfinite(raw).all(axis=1)
    assert data.n_nonfinite == int((~finite).sum()) == 5
    assert data.nonfinite_by_variable == {"pt": 2, "eta": 1, "mass": 3}
    assert data.n_jets == n - 5
    np.testing.assert_array_equal(data.values, raw[finite])  # the others, in file order
    # jets per event, after dropping the non-finite ones
    event_of_jet = np.repeat(np.arange(len(counts)), counts)
    expect = np.bincount(event_of_jet[finite], minlength=len(counts))
    np.testing.assert_array_equal(data.counts, expect)
