"""hepae compress --codec/--precision: every decoded value within the requested bound."""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepae_coffea.cli import main
from hepae_coffea.compress.choose import ENTROPY_MIN_JETS, ENTROPY_MIN_JETS_MANY, choose_codec
from hepae_coffea.compress.files import compress, decompress, read_compression_info
from hepae_coffea.errors import HepaeError

from .conftest import make_jets, write_nanoaod

DATA = Path(__file__).parent / "data"

#: bounds written out by hand: (kind, max error) per variable, phi measured on the circle
NANOAOD = {
    "pt": ("rel", 2.0**-11),
    "eta": ("abs", 2.0**-11),  # 12 bits for |eta| in [4, 8): half an ulp = 2**-11
    "phi": ("abs", 2.0**-12),  # 12 bits for |phi| in [2, 4): 2**-12
    "mass": ("rel", 2.0**-11),
}
CUSTOM_SPEC = "pt=1e-3rel,eta=1e-3,phi=5e-4,mass=2e-3rel"
CUSTOM = {
    "pt": ("rel", 1e-3),
    "eta": ("abs", 1e-3),
    "phi": ("abs", 5e-4),
    "mass": ("rel", 2e-3),
}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A NanoAOD-style file with a non-model jet branch and an event-level float."""
    counts, jets = make_jets(250, seed=3)
    rng = np.random.default_rng(4)
    jets["btag"] = rng.uniform(0, 1, int(counts.sum()))
    path = tmp_path_factory.mktemp("codecs") / "in.root"
    write_nanoaod(path, counts, jets, {"MET_pt": rng.exponential(30, len(counts))})
    return path


def _errors(var: str, kind: str, orig: np.ndarray, rec: np.ndarray) -> np.ndarray:
    a, b = orig.astype(np.float64), rec.astype(np.float64)
    d = np.abs(b - a)
    if var == "phi":
        d = np.minimum(d % (2 * math.pi), 2 * math.pi - d % (2 * math.pi))
    return d / np.abs(a) if kind == "rel" else d


@pytest.mark.parametrize("codec", ["truncate", "quantize", "pcodec", "entropy", "ae"])
@pytest.mark.parametrize(("spec", "bounds"), [("nanoaod", NANOAOD), (CUSTOM_SPEC, CUSTOM)])
def test_every_value_within_bound(source, tmp_path, codec, spec, bounds):
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    s = compress(source, comp, codec=codec, precision=spec, allow_larger=True)
    assert s.extra["codec"] == codec
    decompress(comp, rest)  # nothing but the file
    a = uproot.open(source)["Events"]
    b = uproot.open(rest)["Events"]
    assert b.keys() == a.keys()
    for v, (kind, bound) in bounds.items():
        x = ak.to_numpy(ak.flatten(a[f"Jet_{v}"].array()))
        y = ak.to_numpy(ak.flatten(b[f"Jet_{v}"].array()))
        assert y.dtype == x.dtype == np.float32
        err = _errors(v, kind, x, y)
        assert err.max() <= bound, f"{codec} {v}: max error {err.max()} > {bound}"
        assert err.max() > 0  # lossy: something was rounded
        if v == "phi":
            assert np.all((y > -math.pi) & (y <= np.float32(math.pi)))
    for name in ("run", "luminosityBlock", "event", "nJet", "Jet_btag", "MET_pt"):
        x, y = a[name].array(), b[name].array()
        assert str(x.type) == str(y.type)
        assert ak.all(ak.flatten(x, axis=None) == ak.flatten(y, axis=None)), name
    if codec == "ae":
        assert 0 <= s.extra["fraction_corrected"] <= 1
    for v, (kind, bound) in bounds.items():  # the reported max error meets it too
        assert s.extra["max_error"][v][kind] <= bound


def test_default_codec(source, tmp_path):
    # a small file: pcodec (entropy's embedded model would outweigh its gain)
    assert uproot.open(source)["Events"]["nJet"].array().to_numpy().sum() < ENTROPY_MIN_JETS
    compress(source, tmp_path / "p.root", precision="nanoaod", allow_larger=True)
    info, _ = read_compression_info(tmp_path / "p.root")
    assert info["codec"]["name"] == "pcodec"
    assert info["model"] is None
    assert choose_codec(None, "nanoaod", n_jets=ENTROPY_MIN_JETS - 1) == "pcodec"
    assert choose_codec(None, "nanoaod", n_jets=ENTROPY_MIN_JETS) == "entropy"
    assert choose_codec(None, "nanoaod") == "entropy"  # number of jets unknown
    assert choose_codec(None, None, n_jets=10) == "ae"
    assert choose_codec("quantize", "nanoaod", n_jets=10**6) == "quantize"
    many = ["pt", "eta", "phi", "mass", "chHEF"]  # other columns: a later break-even
    assert ENTROPY_MIN_JETS_MANY > ENTROPY_MIN_JETS
    assert choose_codec(None, "nanoaod", n_jets=ENTROPY_MIN_JETS, variables=many) == "pcodec"
    assert choose_codec(None, "nanoaod", n_jets=ENTROPY_MIN_JETS_MANY, variables=many) == "entropy"
    compress(source, tmp_path / "a.root", allow_larger=True)
    info, _ = read_compression_info(tmp_path / "a.root")
    assert info["codec"]["name"] == "ae"
    assert info["model"]["storage"] == "embedded"


def test_cli_codec_and_errors(source, tmp_path, capsys):
    out = tmp_path / "t.root"
    args = ["compress", str(source), "-o", str(out), "--allow-larger"]
    assert main([*args, "--codec", "quantize", "--precision", "nanoaod"]) == 0
    text = capsys.readouterr().out
    assert "codec quantize at precision nanoaod: max error pt" in text
    assert main(["decompress", str(out), "-o", str(tmp_path / "r.root")]) == 0
    assert main([*args, "--overwrite", "--precision", "pt=10bits,eta=abc"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'eta=abc'" in err
    assert len(err.splitlines()) == 1
    assert main([*args, "--overwrite", "--codec", "truncate"]) == 2
    assert "needs a precision" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--codec", "ae", "--precision", "atlas-high"]) == 0
    assert "jets with stored corrections:" in capsys.readouterr().out


def test_no_model_options_for_array_codecs(source, tmp_path):
    with pytest.raises(HepaeError, match="uses no model"):
        compress(source, tmp_path / "x.root", codec="truncate", precision="nanoaod", model_ref=True)


def test_nano_dy_truncate_exact_and_smaller(tmp_path):
    """NanoAOD already keeps these mantissa bits: truncation changes nothing."""
    src = DATA / "nano_dy.root"
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    s = compress(src, comp, codec="truncate", precision="nanoaod")
    assert s.bytes_out <= s.bytes_in
    decompress(comp, rest)
    a = uproot.open(src)["Events"]
    b = uproot.open(rest)["Events"]
    for v in ("pt", "eta", "phi", "mass"):
        x, y = a[f"Jet_{v}"].array(), b[f"Jet_{v}"].array()
        assert str(x.type) == str(y.type)
        assert ak.all(ak.num(x) == ak.num(y))
        assert np.array_equal(ak.to_numpy(ak.flatten(x)), ak.to_numpy(ak.flatten(y))), v


def test_format_detected_and_printed(source, tmp_path, capsys):
    out = tmp_path / "f.root"
    assert main(["compress", str(source), "-o", str(out), "--precision", "nanoaod"]) == 0
    assert "format: CMS NanoAOD (tree Events, jets Jet, GeV)" in capsys.readouterr().out
    info, _ = read_compression_info(out)
    assert info["source"]["units"] == "GeV"
    assert info["source"]["branches"]["mass"] == "Jet_mass"


def test_physlite_quantize_within_bound_in_mev(tmp_path):
    """PHYSLITE (MeV, written flat): decoded in the file's units, every value in bound."""
    src = DATA / "PHYSLITE_example.root"
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    s = compress(src, comp, codec="quantize", precision=CUSTOM_SPEC)
    assert s.extra["units"] == "MeV"
    assert s.extra["format"].startswith("format: ATLAS PHYSLITE")
    decompress(comp, rest)
    a = uproot.open(src)["CollectionTree"]
    b = uproot.open(rest)["Events"]
    for v, name in (("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "m")):
        x = ak.to_numpy(ak.flatten(a[f"AnalysisJetsAuxDyn.{name}"].array())).astype(np.float64)
        y = ak.to_numpy(ak.flatten(b[f"Jet_{v}"].array())).astype(np.float64)
        kind, bound = CUSTOM[v]
        nz = x != 0
        assert np.all(y[~nz] == 0), v
        err = _errors(v, kind, x[nz], y[nz])
        assert err.max() <= bound, f"{v}: {err.max()} > {bound}"
    assert np.median(ak.to_numpy(ak.flatten(b["Jet_pt"].array()))) > 1000  # MeV, not GeV


def test_two_inputs_and_no_model_on_decompress(tmp_path):
    """Jets of several inputs land in their own events; a codec file takes no --model."""
    paths, originals = [], []
    for seed in (7, 8):
        counts, jets = make_jets(60, seed=seed)
        p = tmp_path / f"in{seed}.root"
        write_nanoaod(p, counts, jets)
        paths.append(p)
        originals.append(uproot.open(p)["Events"].arrays(["Jet_pt", "Jet_phi"]))
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    compress(paths, comp, codec="entropy", precision="nanoaod", allow_larger=True)
    with pytest.raises(HepaeError, match="uses no model"):
        decompress(comp, rest, model="whatever.pt")
    decompress(comp, rest)
    got = uproot.open(rest)["Events"].arrays(["Jet_pt", "Jet_phi"])
    want = ak.concatenate(originals)
    assert ak.all(ak.num(got.Jet_pt) == ak.num(want.Jet_pt))
    x = ak.to_numpy(ak.flatten(want.Jet_pt)).astype(np.float64)
    y = ak.to_numpy(ak.flatten(got.Jet_pt)).astype(np.float64)
    assert np.max(np.abs(y / x - 1)) <= 2.0**-11
    phi_in = ak.to_numpy(ak.flatten(want.Jet_phi))
    err = _errors("phi", "abs", phi_in, ak.to_numpy(ak.flatten(got.Jet_phi)))
    assert err.max() <= 2.0**-12
