"""``hepae run --compress-dir``: per-chunk files from the processor's own latents, with the
format detection and the codecs of ``hepae compress``.

Expected values come from plain uproot/numpy on the raw branches (jet counts, selections,
error bounds) and from ``hepae compress`` on the whole file (the latents).
"""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import hepae_coffea.model.cache as cache_module  # the writer calls in_blocks from here
from hepae_coffea.cli import main
from hepae_coffea.compress.files import compress, decompress, read_compression_info
from hepae_coffea.processing.run import run
from hepae_coffea.processors import compression as processor_module

from .conftest import make_jets, write_nanoaod

DATA = Path(__file__).parent / "data"
NANO = DATA / "nano_dy.root"
PHYSLITE = DATA / "PHYSLITE_example.root"
KIN = ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"]
SPEC = "pt=1e-3rel,eta=1e-3,phi=5e-4,mass=2e-3rel"
BOUNDS = {"pt": ("rel", 1e-3), "eta": ("abs", 1e-3), "phi": ("abs", 5e-4), "mass": ("rel", 2e-3)}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """A small NanoAOD-style file (few branches, so chunk files are quick to write)."""
    counts, jets = make_jets(240, seed=21)
    jets["btag"] = np.random.default_rng(22).uniform(0, 1, int(counts.sum()))
    path = tmp_path_factory.mktemp("compress_dir") / "sample.root"
    write_nanoaod(path, counts, jets)
    return path


def _flat(path, tree, names) -> np.ndarray:
    with uproot.open(path) as f:
        a = f[tree].arrays(names, library="ak")
    return np.stack([ak.to_numpy(ak.flatten(a[n])).astype(np.float64) for n in names], axis=1)


def _chunks(res, dataset) -> list[str]:
    files = res.output[dataset]["compressed"]["files"]
    return sorted(files, key=lambda p: int(Path(p).stem.split("_")[-2]))


def _restore_all(files, tmp_path, tree, names) -> np.ndarray:
    parts = []
    for i, f in enumerate(files):
        out = tmp_path / f"restored_{i}.root"
        decompress(f, out)
        parts.append(_flat(out, tree, names))
    return np.concatenate(parts)


def _check_bounds(orig: np.ndarray, rec: np.ndarray) -> None:
    for i, (var, (kind, bound)) in enumerate(BOUNDS.items()):
        a, b = orig[:, i], rec[:, i]
        d = np.abs(b - a)
        if var == "phi":
            d = np.minimum(d % (2 * math.pi), 2 * math.pi - d % (2 * math.pi))
        if kind == "rel":  # a zero must come back as exactly zero
            err = np.divide(d, np.abs(a), out=np.where(d > 0, np.inf, 0.0), where=a != 0)
        else:
            err = d
        assert err.max() <= bound, (var, err.max(), bound)


@pytest.fixture
def spy(monkeypatch):
    """Rows passed to the model per call, by method name, in the processor and the writer."""
    calls: list[tuple[str, int]] = []

    def wrap(module):
        real = module.in_blocks

        def counting(fn, *arrays, **kw):
            name = getattr(fn, "name", None) or getattr(fn, "__name__", "?")
            calls.append((name, int(arrays[0].shape[0])))
            return real(fn, *arrays, **kw)

        monkeypatch.setattr(module, "in_blocks", counting)

    wrap(cache_module)
    wrap(processor_module)
    read: list[str] = []
    real_arrays = uproot.behaviors.TBranch.HasBranches.arrays

    def arrays(self, expressions=None, *args, **kw):
        if expressions is not None:
            read.extend([expressions] if isinstance(expressions, str) else list(expressions))
        return real_arrays(self, expressions, *args, **kw)

    monkeypatch.setattr(uproot.behaviors.TBranch.HasBranches, "arrays", arrays)
    return calls, read


def test_chunks_reuse_the_processors_latents(spy, sample, tmp_path):
    """Every jet is encoded exactly once: the processor encodes the selected in-domain jets,
    the writer only the others, and the writer never reads the jet branches again."""
    calls, read = spy
    pt = _flat(sample, "Events", ["Jet_pt"])[:, 0]
    read.clear()
    res = run([sample], compress_dir=tmp_path / "c", chunksize=80, pt_min=40.0)
    c = res.output["sample"]["counters"]
    assert c["jets"] == len(pt)
    assert c["jets_selected"] == int(np.count_nonzero(pt > 40.0))
    assert 0 < c["jets_selected"] < len(pt)
    proc = sum(n for name, n in calls if name == "encode_decode_score")
    writer = sum(n for name, n in calls if name == "encode")
    assert proc == c["jets_in_domain"]
    assert writer == len(pt) - c["jets_in_domain"]  # only the jets without latents
    assert proc + writer == len(pt)
    assert "Jet_btag" in read  # the writer read the other branches ...
    assert not set(KIN) & set(read)  # ... but not the jets again
    # the latents equal those of hepae compress on the whole file
    whole = tmp_path / "whole.root"
    compress(sample, whole, allow_larger=True)
    files = _chunks(res, "sample")
    assert len(files) == 3
    z = np.concatenate([_flat(f, "Events", ["Jet_z0", "Jet_z1", "Jet_z2"]) for f in files])
    np.testing.assert_array_equal(z, _flat(whole, "Events", ["Jet_z0", "Jet_z1", "Jet_z2"]))


def test_chunk_record_has_the_layout_of_compress(sample, tmp_path):
    res = run(
        [sample], compress_dir=tmp_path / "c", chunksize=1000, codec="quantize", precision=SPEC
    )
    (chunk,) = _chunks(res, "sample")
    whole = tmp_path / "whole.root"
    compress(sample, whole, codec="quantize", precision=SPEC, allow_larger=True)
    a, _ = read_compression_info(chunk)
    b, _ = read_compression_info(whole)
    assert set(a) - {"entries"} == set(b)
    for key in ("source", "tree", "jet_specs", "jet_positions", "added", "counter", "variables"):
        assert a[key] == b[key], key
    assert a["codec"]["name"] == "quantize"
    assert a["model"] is None
    assert a["entries"] == [0, 240]


@pytest.mark.parametrize(
    ("codec", "executor"),
    [
        ("truncate", "iterative"),
        ("quantize", "futures"),
        ("entropy", "dask"),
        ("ae", "futures"),
    ],
)
def test_chunks_within_bound(sample, tmp_path, codec, executor):
    res = run(
        [sample],
        compress_dir=tmp_path / "c",
        chunksize=80,
        codec=codec,
        precision=SPEC,
        executor=executor,
        workers=2,
    )
    files = _chunks(res, "sample")
    assert len(files) == 3
    assert {read_compression_info(f)[0]["codec"]["name"] for f in files} == {codec}
    orig = _flat(sample, "Events", KIN)
    rec = _restore_all(files, tmp_path, "Events", [*KIN, "Jet_btag"])
    assert rec.shape == (len(orig), 5)
    _check_bounds(orig, rec[:, :4])
    np.testing.assert_array_equal(rec[:, 4], _flat(sample, "Events", ["Jet_btag"])[:, 0])


def test_physlite_chunks_detected_and_within_bound(tmp_path):
    """PHYSLITE (MeV, written flat): detected; the restored jets are in MeV within bound."""
    names = [f"AnalysisJetsAuxDyn.{v}" for v in ("pt", "eta", "phi", "m")]
    res = run(
        [PHYSLITE], compress_dir=tmp_path / "c", chunksize=20, codec="quantize", precision=SPEC
    )
    files = _chunks(res, "PHYSLITE_example")
    info, _ = read_compression_info(files[0])
    assert info["source"]["units"] == "MeV"
    assert info["source"]["layout"] == "flat"
    orig = _flat(PHYSLITE, "CollectionTree", names)
    rec = _restore_all(files, tmp_path, "Events", KIN)
    assert rec.shape == orig.shape
    _check_bounds(orig, rec)


def test_physlite_ae_chunks_restore_compress_values(tmp_path):
    res = run([PHYSLITE], compress_dir=tmp_path / "c", chunksize=50)
    whole, rest = tmp_path / "whole.root", tmp_path / "whole_r.root"
    compress(PHYSLITE, whole, allow_larger=True)
    decompress(whole, rest)
    got = _restore_all(_chunks(res, "PHYSLITE_example"), tmp_path, "Events", KIN)
    np.testing.assert_array_equal(got, _flat(rest, "Events", KIN))


def test_cli_codec_chunks_decompress(tmp_path, capsys):
    d = tmp_path / "chunks"
    args = ["run", str(NANO), "--compress-dir", str(d), "--chunksize", "40", "-q"]
    args += ["--codec", "truncate", "--precision", "nanoaod", "-o", str(tmp_path / "r.coffea")]
    assert main(args) == 0
    assert "wrote 1 compressed chunk files (40 events, 188 jets)" in capsys.readouterr().out
    files = sorted(d.rglob("*.root"), key=lambda p: int(p.stem.split("_")[-2]))
    parts = []
    for i, f in enumerate(files):
        out = tmp_path / f"r{i}.root"
        assert main(["decompress", str(f), "-o", str(out)]) == 0
        parts.append(_flat(out, "Events", KIN))
    # NanoAOD stores these jets at the nanoaod bits already: they come back bit for bit
    np.testing.assert_array_equal(np.concatenate(parts), _flat(NANO, "Events", KIN))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--codec", "quantize"], "--codec needs --compress-dir"),
        (["--precision", "nanoaod"], "--precision needs --compress-dir"),
        (["--compress-dir", "{d}", "--codec", "nope", "--precision", "nanoaod"], "unknown codec"),
        (["--compress-dir", "{d}", "--precision", "pt=x"], "not understood"),
        (["--compress-dir", "{d}", "--codec", "truncate"], "needs a precision"),
    ],
)
def test_cli_codec_options_checked(tmp_path, capsys, extra, message):
    args = ["run", str(NANO), "-o", str(tmp_path / "r.coffea"), "-q"]
    args += [a.replace("{d}", str(tmp_path / "c")) for a in extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "c").exists()
