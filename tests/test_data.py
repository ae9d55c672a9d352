from __future__ import annotations

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot
import vector

from hepae_coffea.errors import InputFileError, MissingBranchError, NoJetsError
from hepae_coffea.io.guards import trusted_pickles
from hepae_coffea.io.jets import canonical_variable, iter_jets, read_jets

from .conftest import make_jets, write_nanoaod


def _flat(jets):
    return np.stack([jets[v] for v in ("pt", "eta", "phi", "mass")], axis=1)


def test_read_root_matches_written(jet_sample):
    path, counts, jets = jet_sample
    data = read_jets(path)
    assert data.variables == ("pt", "eta", "phi", "mass")
    assert data.n_jets == counts.sum()
    assert data.n_events == len(counts)
    np.testing.assert_array_equal(data.values, _flat(jets).astype(np.float32))


def test_chunks_keep_order_and_counts(jet_sample):
    path, counts, jets = jet_sample
    chunks = list(iter_jets(path, step_size=100))
    assert len(chunks) > 1
    np.testing.assert_array_equal(np.concatenate([c.counts for c in chunks]), counts)
    np.testing.assert_array_equal(
        np.concatenate([c.values for c in chunks]), _flat(jets).astype(np.float32)
    )


def test_aliases_and_other_tree_name(tmp_path):
    counts, jets = make_jets(50)
    path = tmp_path / "t.root"
    arrays = {
        "AK4_pT": ak.unflatten(jets["pt"], counts),
        "AK4_Eta": ak.unflatten(jets["eta"], counts),
        "AK4_phi": ak.unflatten(jets["phi"], counts),
        "AK4_m": ak.unflatten(jets["mass"], counts),
    }
    with uproot.recreate(path) as f:
        f.mktree("jets", {k: v.type for k, v in arrays.items()})
        f["jets"].extend(arrays)
    data = read_jets(path, ["pt", "eta", "phi", "m"], prefix="AK4_")
    np.testing.assert_allclose(data.values, _flat(jets))
    assert canonical_variable("m") == "mass"


@pytest.mark.parametrize("energy", [False, True])
def test_cartesian_input_converted_with_vector(tmp_path, energy):
    counts, jets = make_jets(60)
    v = vector.array(
        {"pt": jets["pt"], "eta": jets["eta"], "phi": jets["phi"], "mass": jets["mass"]}
    )
    cart = {"px": v.px, "py": v.py, "pz": v.pz, "E": v.E}
    path = tmp_path / "cart.root"
    coll = ak.zip({k: ak.unflatten(np.asarray(x, np.float64), counts) for k, x in cart.items()})
    with uproot.recreate(path) as f:
        f.mktree("Events", {"Jet": coll.type})
        f["Events"].extend({"Jet": coll})
    want = ["pt", "eta", "phi", "E" if energy else "mass"]
    data = read_jets(path, want)
    expect = _flat(jets)
    if energy:
        expect[:, 3] = v.E
    np.testing.assert_allclose(data.values, expect, rtol=1e-6, atol=1e-6)


def test_pickle_hepautoencoders_format(tmp_path):
    _, jets = make_jets(40)
    df = pd.DataFrame({"pt": jets["pt"], "eta": jets["eta"], "phi": jets["phi"], "m": jets["mass"]})
    path = tmp_path / "jets.pkl"
    df.to_pickle(path)
    with trusted_pickles():
        data = read_jets(path)  # the study's pickles store MeV; read in GeV
    expect = _flat(jets)
    expect[:, [0, 3]] /= 1000.0
    np.testing.assert_allclose(data.values, expect)
    assert data.n_events is None
    assert data.units == "GeV"
    with trusted_pickles():
        np.testing.assert_allclose(read_jets(path, units="GeV").values, _flat(jets))


def test_pickle_with_energy_column(tmp_path):
    _, jets = make_jets(40)
    df = pd.DataFrame(
        {"pt": jets["pt"], "eta": jets["eta"], "phi": jets["phi"], "E": jets["mass"] * 3}
    )
    path = tmp_path / "jets_e.pkl"
    df.to_pickle(path)
    with trusted_pickles():
        data = read_jets(path, ["pt", "eta", "phi", "E"], units="GeV")
    np.testing.assert_allclose(data.values[:, 3], jets["mass"] * 3)


@pytest.mark.parametrize("jagged", [False, True])
def test_parquet(tmp_path, jagged):
    counts, jets = make_jets(40)
    path = tmp_path / "jets.parquet"
    if jagged:
        ak.to_parquet(
            ak.Array({f"Jet_{k}": ak.unflatten(v, counts) for k, v in jets.items()}), path
        )
    else:
        ak.to_parquet(ak.Array({k: v for k, v in jets.items()}), path)
    data = read_jets(path)
    np.testing.assert_allclose(data.values, _flat(jets))
    assert (data.n_events == len(counts)) if jagged else data.n_events is None


def test_nonfinite_jets_dropped_and_counted(tmp_path, caplog):
    counts, jets = make_jets(100)
    jets["pt"][3] = np.nan
    jets["mass"][7] = np.inf
    jets["eta"][7] = np.nan
    path = tmp_path / "nan.root"
    write_nanoaod(path, counts, jets)
    data = read_jets(path)
    assert data.n_nonfinite == 2
    assert data.nonfinite_by_variable == {"pt": 1, "eta": 1, "mass": 1}
    assert data.n_jets == counts.sum() - 2
    assert np.isfinite(data.values).all()
    assert "dropped 2 jet(s) with non-finite values" in caplog.text
    chunk = next(iter_jets(path))
    assert chunk.counts.sum() == counts.sum() - 2


def test_missing_file():
    with pytest.raises(InputFileError, match=r"nope\.root: file not found"):
        read_jets("nope.root")


def test_missing_branch_lists_existing(jet_sample):
    path, _, _ = jet_sample
    with pytest.raises(
        MissingBranchError, match=r"nConstituents.*available: \['Jet_eta', 'Jet_mass'"
    ):
        read_jets(path, ["pt", "nConstituents"])


def test_corrupt_and_unknown_files(tmp_path):
    bad = tmp_path / "bad.root"
    bad.write_bytes(b"this is not ROOT")
    with pytest.raises(InputFileError, match=r"bad\.root: cannot be read as a ROOT file"):
        read_jets(bad)
    txt = tmp_path / "jets.txt"
    txt.write_text("1 2 3")
    with pytest.raises(InputFileError, match=r"unknown format '\.txt'"):
        read_jets(txt)


def test_zero_jets(tmp_path):
    path = tmp_path / "empty.root"
    write_nanoaod(
        path, np.zeros(10, dtype=np.int64), {k: np.zeros(0) for k in ("pt", "eta", "phi", "mass")}
    )
    chunks = list(iter_jets(path))
    assert sum(len(c.values) for c in chunks) == 0
    with pytest.raises(NoJetsError, match="no finite jets"):
        read_jets(path)
