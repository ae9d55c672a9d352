"""compress -> decompress at the edges: a file whose events have no jets at all."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from hepae_coffea.compress.files import compress, decompress

from .conftest import write_nanoaod

pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")


def test_file_without_jets_round_trips(tmp_path):
    met = np.array([1.5, 2.5, 3.5], np.float32)
    jets = {v: np.zeros(0, np.float32) for v in ("pt", "eta", "phi", "mass")}
    write_nanoaod(tmp_path / "s.root", np.zeros(3, np.int64), jets, extra={"MET_pt": met})
    s = compress(tmp_path / "s.root", tmp_path / "c.root", allow_larger=True)
    assert (s.events, s.jets) == (3, 0)
    with uproot.open(tmp_path / "c.root") as f:
        z = f["Events"].arrays(["Jet_z0", "Jet_z1", "Jet_z2"])
    assert [ak.num(z[k]).tolist() for k in z.fields] == [[0, 0, 0]] * 3
    decompress(tmp_path / "c.root", tmp_path / "r.root")
    with uproot.open(tmp_path / "r.root") as f:
        t = f["Events"]
        back = t.arrays()
        assert str(t["Jet_pt"].interpretation) == "AsJagged(AsDtype('>f4'))"
    for v in ("pt", "eta", "phi", "mass"):
        assert ak.num(back[f"Jet_{v}"]).tolist() == [0, 0, 0], v
    np.testing.assert_array_equal(back["MET_pt"], met)
