from __future__ import annotations

import base64
import builtins
import hashlib
import io
import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from hepae_coffea.cli import main
from hepae_coffea.compress.files import (
    compress,
    decompress,
    read_compression_info,
    truncate_mantissa,
)
from hepae_coffea.errors import HepaeError, InputFileError, ModelFileError
from hepae_coffea.model.export import default_model_path
from hepae_coffea.model.handle import open_model
from hepae_coffea.processing.run import run

from .conftest import make_jets, write_nanoaod
from .domain_rule import in_domain
from .rootfile import ALGORITHM_TAG, basket_tags

KIN = ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    d = tmp_path_factory.mktemp("compress")
    counts, jets = make_jets(700, seed=30)
    counts[10:20] = 0  # events without jets
    jets = {k: v[: counts.sum()] for k, v in jets.items()}
    n = int(counts.sum())
    rng = np.random.default_rng(3)
    jets["nConstituents"] = rng.integers(1, 40, n).astype(np.int32)  # other jet branches
    jets["width"] = rng.uniform(0, 0.4, n)
    path = d / "source.root"
    extra = {"MET_pt": rng.exponential(30, len(counts)).astype(np.float32)}
    write_nanoaod(path, counts, jets, extra=extra)
    return path


def _arrays(path):
    with uproot.open(path) as f:
        t = f["Events"]
        return t.keys(), t.arrays(library="ak")


def test_truncate_mantissa():
    x = np.array([1.0, 1.0 + 2**-10, 3.14159265, -2.5e-3, np.inf, np.nan], dtype=np.float32)
    np.testing.assert_array_equal(truncate_mantissa(x, 23)[:5], x[:5])
    t = truncate_mantissa(x, 7)
    assert t[0] == 1.0
    assert t[1] == 1.0  # 2^-10 is below 7 bits: rounds down
    assert abs(t[2] - np.float32(3.14159265)) <= 2.0 ** (1 - 7) * 2 / 2
    assert np.isinf(t[4])
    assert np.isnan(t[5])
    bits = t[:4].view(np.uint32) & ((1 << 16) - 1)
    assert np.all(bits == 0)
    with pytest.raises(ValueError, match=r"mantissa bits must be in 0\.\.23"):
        truncate_mantissa(x, 30)


@pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")
def test_round_trip(source, tmp_path):
    comp = tmp_path / "c.root"
    s = compress(source, comp, step_size=5000, allow_larger=True)  # several chunks
    keys_c, _ = _arrays(comp)
    assert [k for k in keys_c if k in KIN] == []
    assert {"Jet_z0", "Jet_z1", "Jet_z2"} <= set(keys_c)
    assert s.events == 700
    assert s.bytes_in == source.stat().st_size
    info, blob = read_compression_info(comp)
    assert hashlib.sha256(blob).hexdigest() == info["model"]["weights_sha256"]
    assert (
        info["model"]["file_sha256"]
        == hashlib.sha256(default_model_path().read_bytes()).hexdigest()
    )
    assert info["jets"] == s.jets
    rest = tmp_path / "r.root"
    decompress(comp, rest)
    keys_o, arr_o = _arrays(source)
    keys_r, arr_r = _arrays(rest)
    assert keys_r == keys_o  # names and order restored
    assert len(arr_r) == len(arr_o)
    for k in keys_o:
        if k in KIN:
            assert ak.all(ak.num(arr_r[k]) == ak.num(arr_o[k]))
            continue
        # every other branch bit for bit, with its type
        assert str(ak.type(arr_r[k])) == str(ak.type(arr_o[k])), k
        assert ak.all(arr_r[k] == arr_o[k]), k
    # restored files read back with NanoAODSchema like the original
    ev = NanoEventsFactory.from_root(
        {str(rest): "Events"}, schemaclass=NanoAODSchema, mode="eager"
    ).events()
    assert ak.all(ak.num(ev.Jet) == ak.num(arr_o["Jet_pt"]))


def _model_opens(monkeypatch, model_path):
    """Count the times ``model_path`` is opened (Path.read_bytes and open() alike)."""
    opened: list[str] = []
    want = Path(model_path).resolve()
    real_open = io.open

    def counting(file, *args, **kw):
        if isinstance(file, str | Path) and Path(file).resolve() == want:
            opened.append(str(file))
        return real_open(file, *args, **kw)

    monkeypatch.setattr(io, "open", counting)
    monkeypatch.setattr(builtins, "open", counting)
    return opened


def _latents(path):
    with uproot.open(path) as f:
        t = f["Events"]
        return np.stack([ak.to_numpy(ak.flatten(t[f"Jet_z{i}"].array())) for i in range(3)], 1)


def test_model_read_once_as_path_bytes_or_handle(source, tmp_path, monkeypatch):
    """compress reads the model file once, and a path, its bytes or a handle give the
    same file: the same latents and the file's SHA-256 in the record."""
    path = default_model_path()
    data = path.read_bytes()
    want = hashlib.sha256(data).hexdigest()
    opened = _model_opens(monkeypatch, path)
    by_path = compress(source, tmp_path / "p.root", path, allow_larger=True)
    assert len(opened) == 1, opened
    opened.clear()
    by_bytes = compress(source, tmp_path / "b.root", data, allow_larger=True)
    by_handle = compress(source, tmp_path / "h.root", open_model(path), allow_larger=True)
    assert len(opened) == 1  # open_model above; bytes and a handle read nothing
    z = _latents(by_path.output)
    for s in (by_path, by_bytes, by_handle):
        info, _ = read_compression_info(s.output)
        assert info["model"]["file_sha256"] == want
        np.testing.assert_array_equal(_latents(s.output), z)
    assert read_compression_info(by_path.output)[0]["model"]["name"] == path.name
    assert read_compression_info(by_bytes.output)[0]["model"]["name"] == "model"
    # a model stored by reference, given back as bytes, restores the same jets
    ref = compress(source, tmp_path / "ref.root", data, model_ref=True, allow_larger=True)
    decompress(ref.output, tmp_path / "r1.root", model=data)
    decompress(by_path.output, tmp_path / "r2.root")
    _, a = _arrays(tmp_path / "r1.root")
    _, b = _arrays(tmp_path / "r2.root")
    for k in KIN:
        np.testing.assert_array_equal(ak.flatten(a[k]), ak.flatten(b[k]))


@pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")
def test_restored_residuals_equal_the_processors(source, tmp_path):
    comp, rest = tmp_path / "c.root", tmp_path / "r.root"
    compress(source, comp, allow_larger=True)
    decompress(comp, rest)
    _, o = _arrays(source)
    _, r = _arrays(rest)
    orig = np.stack([ak.to_numpy(ak.flatten(o[k])) for k in KIN], axis=1).astype(np.float64)
    rec = np.stack([ak.to_numpy(ak.flatten(r[k])) for k in KIN], axis=1).astype(np.float64)
    # expected residuals with plain numpy: relative pt, phi difference wrapped into
    # (-pi, pi] with np.mod (the complex phase, np.angle(exp(1j d)), is off by an ulp here
    # and there, which moves a residual on a bin edge into the next bin)
    res = np.empty_like(orig)
    res[:, 0] = (rec[:, 0] - orig[:, 0]) / orig[:, 0]
    wrapped = np.mod(rec[:, 2] - orig[:, 2] + np.pi, 2 * np.pi) - np.pi
    res[:, 2] = np.where(wrapped == -np.pi, np.pi, wrapped)
    res = res[in_domain(orig)]  # the processor decodes only the jets in the model's domain
    out = run([source], chunksize=300).output["source"]
    h = out["residual"][{"variable": "pt"}].copy().reset()
    h.fill(res[:, 0])
    np.testing.assert_array_equal(
        h.values(flow=True), out["residual"][{"variable": "pt"}].values(flow=True)
    )
    habs = out["residual_abs"][{"variable": "phi"}].copy().reset()
    habs.fill(res[:, 2])
    np.testing.assert_array_equal(
        habs.values(flow=True), out["residual_abs"][{"variable": "phi"}].values(flow=True)
    )


def test_latent_bits_and_compression_options(source, tmp_path):
    full = compress(source, tmp_path / "full.root", compression="lzma", level=9, allow_larger=True)
    trunc = compress(
        source, tmp_path / "t8.root", latent_bits=8, compression="lzma", level=9, allow_larger=True
    )
    assert trunc.bytes_out < full.bytes_out
    _, arr = _arrays(tmp_path / "t8.root")
    z = ak.to_numpy(ak.flatten(arr["Jet_z0"])).view(np.uint32)
    assert np.all(z & ((1 << 15) - 1) == 0)
    assert basket_tags(tmp_path / "t8.root") == {ALGORITHM_TAG["lzma"]}
    for algo in ("zlib", "lz4"):
        s = compress(
            source, tmp_path / f"{algo}.root", compression=algo, level=1, allow_larger=True
        )
        # the baskets' own headers name the algorithm that compressed them
        assert basket_tags(tmp_path / f"{algo}.root") == {ALGORITHM_TAG[algo]}
        assert s.bytes_out == (tmp_path / f"{algo}.root").stat().st_size
    info, _ = read_compression_info(tmp_path / "t8.root")
    assert info["latent_bits"] == 8


def test_refusals(source, tmp_path):
    comp = tmp_path / "c.root"
    compress(source, comp, allow_larger=True)
    with pytest.raises(FileExistsError, match="output exists"):
        compress(source, comp, allow_larger=True)
    # random full-precision jets do not shrink: a bigger output is refused, nothing written
    with pytest.raises(HepaeError, match=r"more than the input's \d+ .*try --model-ref"):
        compress(source, tmp_path / "bigger.root")
    assert not (tmp_path / "bigger.root").exists()
    compress(source, comp, overwrite=True, allow_larger=True)
    other = tmp_path / "other.pt"
    raw = bytearray(default_model_path().read_bytes())
    other.write_bytes(bytes(raw) + b"\0")  # same content + 1 byte: another SHA-256
    with pytest.raises(ModelFileError, match="does not match the model that compressed"):
        decompress(comp, tmp_path / "r.root", model=other)
    decompress(comp, tmp_path / "r.root", model=default_model_path())
    with pytest.raises(InputFileError, match="not a file written by hepae compress"):
        decompress(source, tmp_path / "x.root")
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(Path(source).read_bytes()[:3000])
    with pytest.raises(InputFileError, match=r"truncated\.root"):
        compress(truncated, tmp_path / "y.root")
    assert not (tmp_path / "y.root").exists()
    assert list(tmp_path.glob("*.tmp")) == []
    with pytest.raises(InputFileError, match="file not found"):
        compress(tmp_path / "missing.root", tmp_path / "z.root")


def test_nonfinite_jets_refused(tmp_path):
    counts, jets = make_jets(50, seed=31)
    jets["pt"][2] = np.nan
    path = tmp_path / "nan.root"
    write_nanoaod(path, counts, jets)
    with pytest.raises(HepaeError, match=r"1 jet\(s\) with non-finite"):
        compress(path, tmp_path / "c.root")


@pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")
def test_processor_route_writes_chunks(source, tmp_path):
    res = run(
        [source], chunksize=250, executor="futures", workers=2, compress_dir=tmp_path / "chunks"
    )
    c = res.output["source"]["compressed"]
    assert len(c["files"]) == 3
    assert c["events"] == 700
    whole = tmp_path / "whole.root"
    compress(source, whole, compression="zstd", level=5, allow_larger=True)
    _, w = _arrays(whole)
    parts = [
        (_arrays(p)[1], p)
        for p in sorted(c["files"], key=lambda p: int(Path(p).stem.split("_")[-2]))
    ]
    z = ak.concatenate([p["Jet_z0"] for p, _ in parts])
    assert ak.all(ak.num(z) == ak.num(w["Jet_z0"]))
    assert ak.all(z == w["Jet_z0"])
    decompress(parts[0][1], tmp_path / "part0.root")  # each chunk file stands alone


def test_cli(source, tmp_path, capsys):
    out = tmp_path / "c.root"
    assert (
        main(
            [
                "compress",
                str(source),
                "-o",
                str(out),
                "--latent-bits",
                "12",
                "--compression",
                "zstd",
                "--level",
                "3",
                "--allow-larger",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "ratio" in text
    assert main(["decompress", str(out), "-o", str(tmp_path / "r.root")]) == 0
    assert main(["decompress", str(out), "-o", str(tmp_path / "r.root")]) == 2
    assert "use --overwrite" in capsys.readouterr().err
    assert (
        main(["compress", str(source), "-o", str(tmp_path / "x.root"), "--latent-bits", "40"]) == 2
    )
    assert "0..23" in capsys.readouterr().err


# --- the model in compressed files: plain weights, never code ---------------------------


def test_rebuilt_model_is_bit_identical_to_torchscript():
    import torch

    from hepae_coffea.model.weights import blob_sha256, load_weights, weights_from_model_file

    raw = default_model_path().read_bytes()
    blob, _ = weights_from_model_file(raw, "default")
    assert b"PK\x03\x04" not in blob  # no zip / TorchScript archive inside
    assert blob[:8] == b"HEPAEW\x00\x01"  # our magic: no pickle (b"\x80\x02"...) header
    eager, _ = load_weights(blob, blob_sha256(blob))
    assert not isinstance(eager, torch.jit.ScriptModule)
    scripted = torch.jit.load(str(default_model_path()))
    _, jets = make_jets(300, seed=41)
    x = torch.tensor(
        np.stack([jets[v] for v in ("pt", "eta", "phi", "mass")], 1), dtype=torch.float32
    )
    with torch.inference_mode():
        z_s, z_e = scripted.encode(x), eager.encode(x)
        assert torch.equal(z_s, z_e)  # bit for bit (0 ulp)
        assert torch.equal(scripted.decode(z_s), eager.decode(z_e))


def _crafted(tmp_path, name, info, blob=None, legacy=None):
    """A file with a compressed-file header and the given model payload (plain uproot)."""
    path = tmp_path / name
    with uproot.recreate(path) as f:
        f["Events"] = {"run": np.ones(3, np.uint32)}
        f["hepae_compression"] = json.dumps(info)
        if blob is not None:
            f.mktree("hepae_model", {"weights": np.uint8})
            f["hepae_model"].extend({"weights": np.frombuffer(blob, np.uint8)})
        if legacy is not None:
            f["hepae_model_b64"] = base64.b64encode(legacy).decode("ascii")
    return path


@pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")
def test_tampered_weights_refused(source, tmp_path):
    comp = tmp_path / "c.root"
    compress(source, comp, allow_larger=True)
    info, blob = read_compression_info(comp)
    bad = bytearray(blob)
    bad[-3] ^= 0x40  # one bit of one weight
    path = _crafted(tmp_path, "tampered.root", info, bytes(bad))
    with pytest.raises(ModelFileError, match="SHA-256"):
        decompress(path, tmp_path / "r.root")
    assert not (tmp_path / "r.root").exists()
    # a forged blob with a recomputed SHA-256 still holds no code: a header describing
    # other tensor shapes is refused when the weights are loaded
    from hepae_coffea.model.weights import MAGIC

    n = int.from_bytes(blob[8:16], "little")
    head = json.loads(blob[16 : 16 + n])
    head["tensors"][-1]["dtype"] = "object"
    hb = json.dumps(head).encode()
    forged = MAGIC + len(hb).to_bytes(8, "little") + hb + blob[16 + n :]
    info2 = {
        **info,
        "model": {**info["model"], "weights_sha256": hashlib.sha256(forged).hexdigest()},
    }
    with pytest.raises(ModelFileError, match="dtype 'object'"):
        decompress(_crafted(tmp_path, "forged.root", info2, forged), tmp_path / "r2.root")


def test_legacy_torchscript_payload_never_executed(tmp_path, monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: calls.append(a))
    info = {"format": "hepae-coffea-compressed", "model_sha256": "0" * 64, "tree": "Events"}
    path = _crafted(tmp_path, "old.root", info, legacy=default_model_path().read_bytes())
    with pytest.raises(ModelFileError, match="TorchScript code; refused, nothing from it is run"):
        decompress(path, tmp_path / "r.root")
    assert calls == []
    assert main(["decompress", str(path), "-o", str(tmp_path / "r.root")]) == 2


@pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")
def test_model_ref(source, tmp_path, capsys):
    import shutil

    comp = tmp_path / "ref.root"
    emb = compress(source, tmp_path / "emb.root", allow_larger=True)
    ref = compress(source, comp, model_ref=True, allow_larger=True)
    assert ref.bytes_out < emb.bytes_out - 10_000  # the ~15 kB of weights are not stored
    info, blob = read_compression_info(comp)
    assert blob is None
    assert info["model"]["storage"] == "reference"
    want = hashlib.sha256(default_model_path().read_bytes()).hexdigest()
    assert info["model"]["file_sha256"] == want
    with pytest.raises(ModelFileError, match="stored by reference; give it with --model"):
        decompress(comp, tmp_path / "r0.root")
    models = tmp_path / "models"
    models.mkdir()
    (models / "unrelated.pt").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=f"no \\*.pt file in .* has SHA-256 {want}"):
        decompress(comp, tmp_path / "r1.root", model_dir=models)
    shutil.copy(default_model_path(), models / "renamed.pt")
    decompress(comp, tmp_path / "r2.root", model_dir=models)
    decompress(comp, tmp_path / "r3.root", model=default_model_path())
    _, a = _arrays(tmp_path / "r2.root")
    _, b = _arrays(tmp_path / "r3.root")
    assert ak.all(ak.flatten(a["Jet_pt"]) == ak.flatten(b["Jet_pt"]))
    other = tmp_path / "other.pt"
    other.write_bytes(default_model_path().read_bytes() + b"\0")
    have = hashlib.sha256(other.read_bytes()).hexdigest()
    assert (
        main(["decompress", str(comp), "-o", str(tmp_path / "r4.root"), "--model", str(other)]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert have in err
    assert want in err
