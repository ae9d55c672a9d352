"""Compressing ATLAS Open Data ntuples, whose jets have E instead of mass.

The codecs store the file's own pt, eta, phi and E (every value within its bound); the
autoencoder takes the mass computed from E and decompress writes E back from the decoded
values. Expected values are computed here with plain numpy on the raw branches.
"""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

from hepae_coffea.cli import main
from hepae_coffea.compress.files import compress, decompress, read_compression_info
from hepae_coffea.errors import HepaeError
from hepae_coffea.model.export import default_model_path
from hepae_coffea.processing.run import run

from .conftest import make_jets

#: jets given E just below |p| (E^2 < p^2: no real mass)
N_NEGATIVE = 4


def _write(path: Path, tree: str, energy_branch: str, scale: float, seed: int):
    counts, jets = make_jets(160, seed=seed)
    p = jets["pt"] * np.cosh(jets["eta"])
    energy = np.hypot(p, jets["mass"])
    energy[:N_NEGATIVE] = p[:N_NEGATIVE] * (1 - 1e-3)
    un = lambda x, dt=np.float32: ak.unflatten(np.asarray(x, dt), counts)
    data = {
        "runNumber": np.full(len(counts), 284500, np.int32),
        "eventNumber": np.arange(len(counts), dtype=np.int32),
        "jet_n": counts.astype(np.uint32),
        "jet_pt": un(jets["pt"] * scale),
        "jet_eta": un(jets["eta"]),
        "jet_phi": un(jets["phi"]),
        energy_branch: un(energy * scale),
        "jet_jvt": un(np.linspace(0, 1, int(counts.sum()))),
        "jet_trueflav": un(np.arange(int(counts.sum())) % 5, np.int32),
    }
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in data.items()})
        f[tree].extend(data)
    return path


@pytest.fixture(scope="module")
def od2020(tmp_path_factory) -> Path:
    """Open Data 2020 layout: tree mini, jet_n, jet_pt/eta/phi/E in MeV."""
    return _write(tmp_path_factory.mktemp("od") / "mc_1.root", "mini", "jet_E", 1e3, 41)


@pytest.fixture(scope="module")
def od2025(tmp_path_factory) -> Path:
    """Open Data 2025 layout: tree analysis, jet_pt/eta/phi/e in GeV."""
    return _write(tmp_path_factory.mktemp("od") / "ODEO_x.root", "analysis", "jet_e", 1.0, 42)


def _raw(path, tree, names) -> np.ndarray:
    with uproot.open(path) as f:
        a = f[tree].arrays(names, library="ak")
    return np.stack([ak.to_numpy(ak.flatten(a[n])).astype(np.float64) for n in names], axis=1)


def _rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(b - a) / np.abs(a)


def _circular(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(b - a) % (2 * math.pi)
    return np.minimum(d, 2 * math.pi - d)


CASES = [("od2020", "mini", "jet_E"), ("od2025", "analysis", "jet_e")]


@pytest.mark.parametrize(("fixture", "tree", "ebranch"), CASES)
@pytest.mark.parametrize("codec", ["truncate", "quantize"])
def test_codecs_store_e_within_bound(request, tmp_path, fixture, tree, ebranch, codec):
    src = request.getfixturevalue(fixture)
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    spec = "pt=1e-3rel,eta=1e-3,phi=5e-4,E=2e-3rel"
    s = compress(src, comp, codec=codec, precision=spec, allow_larger=True)
    assert s.extra["codec"] == codec
    assert s.extra["max_error"]["E"]["rel"] <= 2e-3
    decompress(comp, rest)
    names = ["jet_pt", "jet_eta", "jet_phi", ebranch]
    orig, got = _raw(src, tree, names), _raw(rest, tree, names)
    assert got.shape == orig.shape
    assert _rel(orig[:, 0], got[:, 0]).max() <= 1e-3
    assert np.abs(got[:, 1] - orig[:, 1]).max() <= 1e-3
    assert _circular(orig[:, 2], got[:, 2]).max() <= 5e-4
    assert _rel(orig[:, 3], got[:, 3]).max() <= 2e-3
    with uproot.open(src) as f, uproot.open(rest) as g:
        assert g[tree].keys() == f[tree].keys()
        for b in list(f[tree].keys()):
            assert str(g[tree][b].interpretation) == str(f[tree][b].interpretation), b
            if b not in names:  # every other branch bit for bit
                assert ak.all(g[tree][b].array() == f[tree][b].array()), b


def test_presets_bound_e_as_the_mass(od2020, tmp_path):
    """A preset names the mass: E gets its bits (nanoaod: 10 bits, 2**-11 relative)."""
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    s = compress(od2020, comp, precision="nanoaod", allow_larger=True)
    assert s.extra["codec"] == "quantize"  # the default for jets with E
    decompress(comp, rest)
    e0, e1 = _raw(od2020, "mini", ["jet_E"])[:, 0], _raw(rest, "mini", ["jet_E"])[:, 0]
    assert _rel(e0, e1).max() <= 2.0**-11
    assert _rel(e0, e1).max() > 2.0**-14  # really quantised, not stored as it was


def _model():
    return torch.jit.load(str(default_model_path()))


def test_autoencoder_takes_the_mass_from_e(od2020, tmp_path, capsys):
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    assert main(["compress", str(od2020), "-o", str(comp), "--allow-larger"]) == 0
    out = capsys.readouterr().out
    assert f"{N_NEGATIVE} jet(s) with E < |p|" in out
    assert main(["decompress", str(comp), "-o", str(rest)]) == 0
    pt, eta, phi, e = _raw(od2020, "mini", ["jet_pt", "jet_eta", "jet_phi", "jet_E"]).T
    pt, e = pt / 1e3, e / 1e3  # GeV, the model's units
    p = pt * np.cosh(eta)
    assert int(np.count_nonzero(e < p)) == N_NEGATIVE
    mass = np.sqrt(np.maximum(e**2 - p**2, 0.0))
    x = np.stack([pt, eta, phi, mass], axis=1).astype(np.float32)
    with torch.inference_mode():
        rec = _model().decode(_model().encode(torch.from_numpy(x))).numpy().astype(np.float64)
    expect = np.sqrt(rec[:, 3] ** 2 + (rec[:, 0] * np.cosh(rec[:, 1])) ** 2) * 1e3  # MeV
    got = _raw(rest, "mini", ["jet_E"])[:, 0]
    np.testing.assert_allclose(got, expect, rtol=1e-5)
    with uproot.open(rest) as f, uproot.open(od2020) as g:
        assert str(f["mini"]["jet_E"].interpretation) == str(g["mini"]["jet_E"].interpretation)
    # the reported E error is the error of the restored file
    s = compress(od2020, tmp_path / "c2.root", allow_larger=True)
    rel = _rel(e * 1e3, got)
    assert s.extra["energy"]["jets_negative_m2"] == N_NEGATIVE
    assert s.extra["energy"]["max_error"]["rel"] == pytest.approx(rel.max(), rel=1e-4)
    real = e >= p
    assert s.extra["energy"]["max_error_real_mass"]["rel"] == pytest.approx(
        rel[real].max(), rel=1e-4
    )
    info, _ = read_compression_info(comp)
    assert info["source"]["mass_from_energy"] is True
    assert info["jet_branches"] == ["jet_pt", "jet_eta", "jet_phi", "jet_E"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--codec", "entropy", "--precision", "nanoaod"], "the jets have E instead of mass"),
        (["--codec", "ae", "--precision", "nanoaod"], "would bound the mass computed from E"),
    ],
)
def test_what_cannot_take_e_is_one_line(od2020, tmp_path, capsys, args, message):
    out = tmp_path / "o.root"
    assert main(["compress", str(od2020), "-o", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert str(od2020) in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_compress_dir_on_open_data(od2020, tmp_path):
    res = run(
        [od2020],
        compress_dir=tmp_path / "c",
        chunksize=80,
        precision="E=1e-3rel,pt=1e-3rel,eta=1e-3,phi=1e-3",
    )
    files = sorted(
        res.output["mc_1"]["compressed"]["files"],
        key=lambda p: int(Path(p).stem.split("_")[-2]),
    )
    assert len(files) == 2
    parts = []
    for i, f in enumerate(files):
        assert read_compression_info(f)[0]["codec"]["name"] == "quantize"
        decompress(f, tmp_path / f"r{i}.root")
        parts.append(_raw(tmp_path / f"r{i}.root", "mini", ["jet_E"])[:, 0])
    e0 = _raw(od2020, "mini", ["jet_E"])[:, 0]
    assert _rel(e0, np.concatenate(parts)).max() <= 1e-3


def test_event_level_model_refused_for_e(od2020, tmp_path, monkeypatch):
    from hepae_coffea.compress import energy as module

    with pytest.raises(HepaeError, match="jet-level"):
        module.energy_route(
            {"energy": True}, "ae", ["pt", "eta", "phi", "mass"], None, "f", event_level=True
        )
