"""Files written by ``hepae compress`` and ``hepae run``, read back with real ROOT (PyROOT).

Needs the ``root`` extra (ROOT 6.40 from PyPI); skipped without it. Expected values come
from uproot and from the hist objects of the ``.coffea`` file.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import uproot

from hepae_coffea.cli import main
from hepae_coffea.compress.files import INFO_KEY, MODEL_KEY
from hepae_coffea.model.export import default_model_path
from hepae_coffea.processing.run import _root_items, load_output

with warnings.catch_warnings():
    # the PyPI build of ROOT announces itself as an alpha distribution on import
    warnings.simplefilter("ignore")
    ROOT = pytest.importorskip("ROOT")

SAMPLE = default_model_path().with_name("sample_qcd.root")
# ROOT's leaf type name of each numpy dtype
ROOT_TYPE = {
    "bool": "Bool_t",
    "int8": "Char_t",
    "uint8": "UChar_t",
    "int16": "Short_t",
    "uint16": "UShort_t",
    "int32": "Int_t",
    "uint32": "UInt_t",
    "int64": "Long64_t",
    "uint64": "ULong64_t",
    "float32": "Float_t",
    "float64": "Double_t",
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(compressed file, results.coffea, results.root) for the shipped sample and model."""
    d = tmp_path_factory.mktemp("with_root")
    comp = d / "compressed.root"
    assert main(["compress", str(SAMPLE), "-o", str(comp)]) == 0
    res = d / "results.coffea"
    args = ["run", str(SAMPLE), "-o", str(res), "--chunksize", "700", "--maxchunks", "2", "-q"]
    assert main(args) == 0
    return comp, res, d / "results.root"


def _open(path):
    f = ROOT.TFile.Open(str(path))
    assert f, f"ROOT cannot open {path}"
    assert not f.IsZombie(), f"ROOT cannot read {path}"
    return f


def test_compressed_tree_in_root(written):
    comp, _, _ = written
    with uproot.open(comp) as uf:
        ut = uf["Events"]
        expected = {b.name: b for b in ut.branches}
        n_entries = ut.num_entries
        values = ut.arrays(["nJet", "Jet_z0", "Jet_z2", "event"], library="np")
        info = json.loads(str(uf[INFO_KEY]))
    with uproot.open(SAMPLE) as sf:
        assert n_entries == sf["Events"].num_entries
    assert {"Jet_z0", "Jet_z1", "Jet_z2"} <= set(expected)
    assert not {"Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"} & set(expected)
    f = _open(comp)
    try:
        tree = f.Get("Events")
        assert tree.ClassName() == "TTree"
        assert tree.GetEntries() == n_entries
        names = [b.GetName() for b in tree.GetListOfBranches()]
        assert names == list(expected)
        for name, ub in expected.items():
            leaf = tree.GetBranch(name).GetLeaf(name)
            jagged = isinstance(ub.interpretation, uproot.AsJagged)
            dtype = (ub.interpretation.content if jagged else ub.interpretation).to_dtype
            assert leaf.GetTypeName() == ROOT_TYPE[dtype.newbyteorder("=").name], name
            count = leaf.GetLeafCount()
            assert (count.GetName() if count else None) == ("nJet" if jagged else None), name
        # the metadata strings are TObjStrings ROOT reads as the same text
        assert json.loads(str(f.Get(INFO_KEY).GetString())) == info
        assert f.Get(MODEL_KEY).ClassName() == "TTree"  # the model as plain weights
        # event by event with the TTree interface
        z0 = []
        for i, event in enumerate(tree):
            if i == 50:
                break
            assert event.nJet == values["nJet"][i]
            z0.extend(event.Jet_z0)
        np.testing.assert_array_equal(
            np.array(z0, np.float32), np.concatenate(values["Jet_z0"][:50])
        )
    finally:
        f.Close()


def test_compressed_tree_in_rdataframe(written):
    comp, _, _ = written
    with uproot.open(comp) as uf:
        want = uf["Events"].arrays(["nJet", "Jet_z0", "Jet_z2", "event"], library="np")
    df = ROOT.RDataFrame("Events", str(comp))
    got = df.AsNumpy(["nJet", "Jet_z0", "Jet_z2", "event"])
    np.testing.assert_array_equal(got["nJet"], want["nJet"])
    np.testing.assert_array_equal(got["event"], want["event"])
    for b in ("Jet_z0", "Jet_z2"):
        flat = np.concatenate([np.asarray(v, dtype=np.float32) for v in got[b]])
        np.testing.assert_array_equal(flat, np.concatenate(want[b]))
    # computed by ROOT itself: total jets and the sum of a latent over all jets
    d2 = df.Define("s0", "ROOT::VecOps::Sum(Jet_z0)")
    total, s0 = d2.Sum("nJet"), d2.Sum("s0")
    assert total.GetValue() == want["nJet"].sum()
    np.testing.assert_allclose(
        s0.GetValue(), np.concatenate(want["Jet_z0"]).astype(np.float64).sum(), rtol=1e-6
    )


def _flow_values(h, axis: int) -> tuple[bool, bool]:
    ax = h.axes[axis]
    return bool(ax.traits.underflow), bool(ax.traits.overflow)


def _padded(h, what: str) -> np.ndarray:
    """Values (or variances) of a hist with flow bins, zeros where an axis has none."""
    arr = (h.values if what == "values" else h.variances)(flow=True)
    for k in range(h.ndim):
        under, over = _flow_values(h, k)
        pad = [(0, 0)] * h.ndim
        pad[k] = (0 if under else 1, 0 if over else 1)
        arr = np.pad(arr, pad)
    return arr


def test_results_histograms_in_root(written):
    _, res, root_path = written
    data, _ = load_output(res)
    expected = dict(_root_items(data))
    with uproot.open(root_path) as uf:
        classes = {k.split(";")[0]: v for k, v in uf.classnames().items()}
        uproot_values = {name: uf[name].values(flow=True) for name in expected}
        uproot_vars = {name: uf[name].variances(flow=True) for name in expected}
    assert {k for k, v in classes.items() if v != "TDirectory"} == set(expected)
    f = _open(root_path)
    try:
        for name, h in expected.items():
            rh = f.Get(name)
            assert rh, name
            assert rh.ClassName() == ("TH1D" if h.ndim == 1 else "TH2D"), name
            want = _padded(h, "values")
            # Double storage has no variances: ROOT then gives sqrt(content) as the error
            want_var = _padded(h, "variances") if h.variances() is not None else np.abs(want)
            axes = [rh.GetXaxis(), rh.GetYaxis()][: h.ndim]
            for ax, hax in zip(axes, h.axes, strict=True):
                n = ax.GetNbins()
                assert n == len(hax), name
                edges = [ax.GetBinLowEdge(i) for i in range(1, n + 2)]
                # ROOT computes edges from (n, low, high), or the last one as low + width
                # of the last bin: equal to the last bits
                np.testing.assert_allclose(edges, hax.edges, rtol=1e-12, atol=1e-12, err_msg=name)
                if ax.IsVariableBinSize():  # the stored edges themselves are exact
                    stored = ax.GetXbins()
                    got_edges = [stored[i] for i in range(stored.GetSize())]
                    np.testing.assert_array_equal(got_edges, hax.edges, err_msg=name)
            if h.ndim == 1:
                got = np.array([rh.GetBinContent(i) for i in range(len(want))])
                err = np.array([rh.GetBinError(i) for i in range(len(want))])
            else:
                nx, ny = want.shape
                got = np.array([[rh.GetBinContent(i, j) for j in range(ny)] for i in range(nx)])
                err = np.array([[rh.GetBinError(i, j) for j in range(ny)] for i in range(nx)])
            np.testing.assert_array_equal(got, want, err_msg=name)
            np.testing.assert_allclose(err**2, want_var, rtol=1e-12, err_msg=name)
            np.testing.assert_array_equal(got, uproot_values[name], err_msg=name)
            np.testing.assert_allclose(err**2, uproot_vars[name], rtol=1e-12, err_msg=name)
            assert rh.GetEntries() > 0 or want.sum() == 0, name
        total = sum(_padded(h, "values").sum() for h in expected.values())
        assert total > 0
    finally:
        f.Close()
