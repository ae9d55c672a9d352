"""ONNX export: the graphs in ONNX Runtime against the TorchScript model they come from.

Tolerances: 1e-5 relative with an absolute floor of 1e-5 in the variable's unit (GeV, rad,
or none) for values near 0; phi compared modulo 2 pi; latents with a floor of 1e-6 (they lie
in [0, 1]). The score is a sum of squared differences of order-1 normalised values, so its
float32 rounding is about 2 * 1e-6 * sqrt(score) on top of the relative 1e-5.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import uproot

from hepae_coffea.cli import main
from hepae_coffea.model.export import default_model_path, export_model, file_sha256, read_metadata
from hepae_coffea.model.networks import build_model
from hepae_coffea.model.normalize import Normalizer, choose_transforms

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SAMPLE = default_model_path().with_name("sample_qcd.root")
RTOL, ATOL, LATENT_ATOL = 1e-5, 1e-5, 1e-6


def within(got, want, atol, angle_cols=()) -> np.ndarray:
    """Elementwise pass/fail of |got - want| <= RTOL |want| + atol (angles modulo 2 pi);
    equal non-finite values pass."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    diff = got - want
    for j in angle_cols:
        diff[..., j] = (diff[..., j] + math.pi) % (2 * math.pi) - math.pi
    with np.errstate(invalid="ignore"):
        ok = np.abs(diff) <= RTOL * np.abs(want) + atol
    return ok | (got == want) | (np.isnan(got) & np.isnan(want))


def session(path):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The shipped model exported with the CLI: (paths, TorchScript module)."""
    d = tmp_path_factory.mktemp("onnx")
    out = d / "default.onnx"
    assert main(["export", "--onnx", str(out)]) == 0
    paths = {
        "full": out,
        "encoder": d / "default.encoder.onnx",
        "decoder": d / "default.decoder.onnx",
    }
    module = torch.jit.load(str(default_model_path()), map_location="cpu").eval()
    return paths, module


@pytest.fixture(scope="module")
def qcd_jets():
    """Every jet of the shipped QCD sample, plus a spread of generated jets (float32)."""
    with uproot.open(SAMPLE) as f:
        arr = f["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"], library="np")
    real = np.stack([np.concatenate(arr[f"Jet_{v}"]) for v in ("pt", "eta", "phi", "mass")], axis=1)
    rng = np.random.default_rng(7)
    n = 20000
    pt = 20 * np.exp(rng.uniform(0, math.log(50), n))
    gen = np.stack(
        [pt, rng.uniform(-5, 5, n), rng.uniform(-math.pi, math.pi, n), pt * rng.uniform(0, 0.3, n)],
        axis=1,
    )
    return np.concatenate([real, gen]).astype(np.float32)


def torchscript(module, x):
    with torch.no_grad():
        return tuple(t.numpy() for t in module.encode_decode_score(torch.from_numpy(x)))


def near_tie(module, x, rows, levels=1024):
    """Is each row's coarse latent level within 4 float32 ulps of a rounding tie?"""
    with torch.no_grad():
        h = module.encoder(module.normalizer(torch.from_numpy(x[rows])))[:, :3]
    v = (torch.sigmoid(h) * (levels - 1)).numpy()
    return (np.abs(v - np.floor(v) - 0.5) <= 4 * np.spacing(np.float32(levels))).any(axis=1)


def test_three_graphs_with_metadata(exported):
    paths, _ = exported
    meta = read_metadata()
    sha = file_sha256(default_model_path())
    io = {
        "full": (["jets"], ["latent", "reconstruction", "score"]),
        "encoder": (["jets"], ["latent"]),
        "decoder": (["latent"], ["reconstruction"]),
    }
    for graph, path in paths.items():
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        props = {p.key: p.value for p in model.metadata_props}
        assert props["hepae.graph"] == graph
        assert props["hepae.variables"] == "pt,eta,phi,mass"
        assert props["hepae.units"] == "GeV,,rad,GeV"
        assert props["hepae.latent_dim"] == "3"
        assert props["hepae.source_sha256"] == sha
        assert props["hepae.source_model"] == "default_model.pt"
        assert props["hepae.level"] == "jet"
        full_meta = json.loads(props["hepae.metadata"])
        assert full_meta["normalisation"] == meta["normalisation"]
        sess = session(path)
        ins, outs = io[graph]
        assert [i.name for i in sess.get_inputs()] == ins
        assert [o.name for o in sess.get_outputs()] == outs
        for t in [*sess.get_inputs(), *sess.get_outputs()]:
            assert t.type == "tensor(float)"
            assert isinstance(t.shape[0], str)  # dynamic batch axis
        assert sess.get_inputs()[0].shape[1:] == ([4] if ins == ["jets"] else [3])


def test_encoder_matches_torchscript(exported, qcd_jets):
    paths, module = exported
    z_ts, _, _ = torchscript(module, qcd_jets)
    (z,) = session(paths["encoder"]).run(None, {"jets": qcd_jets})
    ok = within(z, z_ts, LATENT_ATOL).all(axis=1)
    bad = np.flatnonzero(~ok)
    # only jets on a coarse-level rounding tie may land on the neighbouring level
    assert near_tie(module, qcd_jets, bad).all()
    assert len(bad) <= 1e-3 * len(qcd_jets)
    np.testing.assert_allclose(np.abs(z - z_ts)[bad].max(initial=1 / 1024), 1 / 1024, rtol=1e-3)


def test_decoder_matches_torchscript(exported, qcd_jets):
    paths, module = exported
    z_ts, r_ts, _ = torchscript(module, qcd_jets)
    (r,) = session(paths["decoder"]).run(None, {"latent": z_ts})
    assert r.shape == r_ts.shape
    ok = within(r, r_ts, ATOL, angle_cols=[2])
    assert ok.all(), f"{(~ok).sum()} values beyond tolerance, e.g. {r[~ok][:3]} vs {r_ts[~ok][:3]}"


def test_full_pass(exported, qcd_jets):
    paths, module = exported
    z_ts, r_ts, s_ts = torchscript(module, qcd_jets)
    z, r, s = session(paths["full"]).run(None, {"jets": qcd_jets})
    # the full pass is the encoder and decoder graphs chained
    (z_enc,) = session(paths["encoder"]).run(None, {"jets": qcd_jets})
    (r_dec,) = session(paths["decoder"]).run(None, {"latent": z})
    np.testing.assert_array_equal(z, z_enc)
    assert within(r, r_dec, ATOL, angle_cols=[2]).all()
    # the decoding half against TorchScript's decoding of the same latents
    with torch.no_grad():
        r_ts_z = module.decode(torch.from_numpy(z)).numpy()
    assert within(r, r_ts_z, ATOL, angle_cols=[2]).all()
    # against TorchScript wherever the runtimes agree on the latents bit for bit
    same = np.all(z == z_ts, axis=1)
    assert same.mean() > 0.99
    assert within(r[same], r_ts[same], ATOL, angle_cols=[2]).all()
    assert within(s[same], s_ts[same], 2e-6 * np.sqrt(s_ts[same])).all()


def test_edge_values(exported):
    paths, module = exported
    pi = np.float32(math.pi)
    x = np.array(
        [
            [20.0, 0.0, 0.0, 0.0],  # massless
            [20.0, 0.0, pi, 1.0],  # phi at +pi
            [20.0, 0.0, -pi, 1.0],  # and -pi
            [30.0, 0.0, 3.5, 1.0],  # phi beyond pi (an angle: taken modulo 2 pi)
            [1e-3, 6.0, 1.0, 1e-6],  # far below the training range
            [1e4, -6.0, -1.0, 2e3],  # far above it
            [0.0, 0.0, 0.0, 0.0],  # zero pt: log clamped
            [50.0, 1e-7, 1e-7, 5.0],  # tiny eta, phi
        ],
        np.float32,
    )
    z_ts, r_ts, s_ts = torchscript(module, x)
    z, r, s = session(paths["full"]).run(None, {"jets": x})
    same = np.all(z == z_ts, axis=1) | ~near_tie(module, x, np.arange(len(x)))
    assert within(z, z_ts, LATENT_ATOL).all()
    assert within(r[same], r_ts[same], ATOL, angle_cols=[2]).all()
    assert within(s[same], s_ts[same], 2e-6 * np.sqrt(np.abs(s_ts[same]))).all()
    assert np.all(r[:, [0, 3]] >= 0)  # pt and mass clamped at 0
    assert np.all(np.abs(r[:, 2]) <= pi)
    (r_dec,) = session(paths["decoder"]).run(None, {"latent": z_ts})
    assert within(r_dec, r_ts, ATOL, angle_cols=[2]).all()
    # non-finite inputs give the same non-finite pattern as TorchScript, finite rows untouched
    bad = np.array([[np.nan, 0, 0, 5], [50, np.inf, 0, 5]], np.float32)
    zb_ts, rb_ts, sb_ts = torchscript(module, bad)
    zb, rb, sb = session(paths["full"]).run(None, {"jets": bad})
    np.testing.assert_array_equal(np.isfinite(zb), np.isfinite(zb_ts))
    np.testing.assert_array_equal(np.isfinite(rb), np.isfinite(rb_ts))
    np.testing.assert_array_equal(np.isfinite(sb), np.isfinite(sb_ts))
    (rb_dec,) = session(paths["decoder"]).run(None, {"latent": zb_ts})
    np.testing.assert_array_equal(np.isfinite(rb_dec), np.isfinite(rb_ts))


def test_cli_errors(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    shutil.copy(default_model_path(), model)
    before = model.read_bytes()
    # the full pass or a sibling graph would replace the model file
    assert main(["export", "--onnx", str(model), "--model", str(model), "--overwrite"]) == 2
    assert "input model" in capsys.readouterr().err
    sib = tmp_path / "x.encoder.onnx"
    shutil.copy(default_model_path(), sib)
    assert main(["export", "--onnx", str(tmp_path / "x.onnx"), "--model", str(sib)]) == 2
    assert model.read_bytes() == before
    assert sib.read_bytes() == before
    # an existing output is kept without --overwrite
    (tmp_path / "y.decoder.onnx").write_bytes(b"keep")
    assert main(["export", "--onnx", str(tmp_path / "y.onnx")]) == 2
    err = capsys.readouterr().err
    assert "y.decoder.onnx: output exists (use --overwrite" in err
    assert (tmp_path / "y.decoder.onnx").read_bytes() == b"keep"
    assert not (tmp_path / "y.onnx").exists()
    # the output must be a .onnx file; the model one of ours
    assert main(["export", "--onnx", str(tmp_path / "z.pt")]) == 2
    assert ".onnx" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    assert main(["export", "--onnx", str(tmp_path / "j.onnx"), "--model", str(junk)]) == 2
    assert "junk.pt" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "junk.pt",
        "m.onnx",
        "x.encoder.onnx",
        "y.decoder.onnx",
    ]


@pytest.fixture(scope="module")
def event_model(tmp_path_factory):
    """An untrained event-level model with every kind of transform: log, scale, angle,
    periodic, one-hot, integer and unit-interval variables."""
    from hepae_coffea.training.loop import TrainConfig, build_metadata

    rng = np.random.default_rng(3)
    n = 3000
    variables = ["pt", "eta", "phi", "mass", "dphi", "nConstituents", "btagDeepB"]
    values = np.stack(
        [
            20 + rng.exponential(40, n),
            rng.normal(0, 1.5, n),
            rng.uniform(-math.pi, math.pi, n),
            rng.uniform(0, 30, n),
            rng.uniform(-math.pi, math.pi, n),
            rng.integers(2, 40, n).astype(float),
            rng.uniform(0, 1, n),
        ],
        axis=1,
    )
    overrides = {"eta": "scale:3", "dphi": "periodic", "nConstituents": "onehot:40"}
    transforms = choose_transforms(values, variables, overrides)
    cfg = TrainConfig(
        variables=variables,
        transforms=overrides,
        level="event",
        event_jets=3,
        latent_dim=8,
        hidden=[24],
        preview=False,
        tensorboard=False,
    )
    torch.manual_seed(0)
    model = build_model(cfg.model_config(), Normalizer(transforms)).eval()
    meta = build_metadata(model, cfg, {}, {}, transforms)
    meta["latent_range"] = [0.0, 1.0]
    d = tmp_path_factory.mktemp("event_onnx")
    path = export_model(model, d / "event.pt", meta)
    out = d / "event.onnx"
    assert main(["export", "--onnx", str(out), "--model", str(path)]) == 0
    x = values[: 600 * 3].reshape(600, 3, -1)
    counts = rng.integers(0, 4, 600)
    mask = (np.arange(3)[None, :] < counts[:, None]).astype(np.float32)
    x = (x * mask[:, :, None]).astype(np.float32)
    return path, out, x, mask, transforms


def event_recon_atol(module, z, mask, n_vars, angle_col, levels=1024):
    """ATOL, plus 1e-6 / hypot(cos, sin) of the decoder's outputs for the angle variable:
    atan2 of values known to 1e-6 is uncertain by that much (an untrained network's
    (cos, sin) pairs can be far from the unit circle)."""
    t = z.astype(np.float64) * levels
    q = np.clip(np.floor(t), 0, levels - 1)
    feats = np.concatenate([2 * q / (levels - 1) - 1, 2 * (t - q) - 1], axis=1)
    with torch.no_grad():
        inp = torch.from_numpy(np.concatenate([feats, mask], axis=1).astype(np.float32))
        out = module.decoder(inp).numpy().reshape(-1, module.normalizer.n_norm)
    u = out * module.normalizer.width.numpy() + module.normalizer.lo.numpy()
    atol = np.full((len(u), n_vars), ATOL)
    atol[:, angle_col] += 1e-6 / np.hypot(u[:, angle_col], u[:, n_vars])
    return atol.reshape(*mask.shape, n_vars)


def test_event_level_graphs(event_model):
    path, out, x, mask, transforms = event_model
    module = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.no_grad():
        z_ts, r_ts, s_ts = (
            t.numpy()
            for t in module.encode_decode_score(torch.from_numpy(x), torch.from_numpy(mask))
        )
    angles = [i for i, t in enumerate(transforms) if t.kind in ("angle", "periodic")]
    assert angles == [2, 4]
    z, r, s = session(out).run(None, {"jets": x, "mask": mask})
    assert (z.shape, r.shape, s.shape) == ((600, 8), x.shape, (600, 3))
    assert within(z, z_ts, LATENT_ATOL).mean() > 0.999
    # 8 latents from 3 jets: float32 differences in the last bits are common, so the
    # decoding half is checked on TorchScript's decoding of the ONNX latents
    with torch.no_grad():
        r_ts_z = module.decode(torch.from_numpy(z), torch.from_numpy(mask)).numpy()
    atol_z = event_recon_atol(module, z, mask, 7, angle_col=2)
    assert within(r, r_ts_z, atol_z, angle_cols=angles).all()
    same = np.all(z == z_ts, axis=1)
    assert same.mean() > 0.5
    atol = event_recon_atol(module, z_ts, mask, 7, angle_col=2)
    assert within(r[same], r_ts[same], atol[same], angle_cols=angles).all()
    assert within(s[same], s_ts[same], 2e-6 * np.sqrt(s_ts[same])).all()
    np.testing.assert_array_equal(r[mask == 0], 0.0)  # padded slots are zeros
    assert np.all(r[..., 5] == np.round(r[..., 5]))  # constituent counts are whole numbers
    assert np.all((r[..., 6] >= 0) & (r[..., 6] <= 1))  # a fraction stays in [0, 1]
    dec = out.with_name("event.decoder.onnx")
    (r_dec,) = session(dec).run(None, {"latent": z_ts, "mask": mask})
    assert within(r_dec, r_ts, atol, angle_cols=angles).all()
    enc = out.with_name("event.encoder.onnx")
    (z_enc,) = session(enc).run(None, {"jets": x, "mask": mask})
    np.testing.assert_array_equal(z_enc, z)
    props = {p.key: p.value for p in onnx.load(str(dec)).metadata_props}
    assert (props["hepae.level"], props["hepae.event_jets"]) == ("event", "3")
    assert props["hepae.source_sha256"] == file_sha256(path)


def _readme_cpp() -> str:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("## Using the model from C++") :]
    return section[section.index("```cpp\n") + 7 : section.index("```\n", section.index("```cpp"))]


@pytest.mark.skipif(
    not os.environ.get("ONNXRUNTIME_INCLUDE") or shutil.which("g++") is None,
    reason="set ONNXRUNTIME_INCLUDE to ONNX Runtime's C++ headers (and have g++)",
)
def test_readme_cpp_example(exported, tmp_path):
    """The README's C++ program, compiled against the onnxruntime wheel's library."""
    paths, module = exported
    lib = sorted(Path(ort.__file__).parent.glob("capi/libonnxruntime.so.1*"))
    if not lib:
        pytest.skip("this onnxruntime wheel has no libonnxruntime.so")
    for graph in ("encoder", "decoder"):
        shutil.copy(paths[graph], tmp_path / f"model.{graph}.onnx")
    (tmp_path / "libonnxruntime.so").symlink_to(lib[0])
    (tmp_path / "libonnxruntime.so.1").symlink_to(lib[0])
    src = tmp_path / "run_jets.cpp"
    src.write_text(_readme_cpp())
    cmd = ["g++", "-std=c++17", "-O1", str(src), "-I", os.environ["ONNXRUNTIME_INCLUDE"]]
    cmd += ["-L", str(tmp_path), "-lonnxruntime", f"-Wl,-rpath,{tmp_path}", "-o", "run_jets"]
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run(
        ["./run_jets"], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout
    lines = out.splitlines()
    assert lines[0] == "variables pt,eta,phi,mass [GeV,,rad,GeV], latent_dim 3"
    x = np.array([[50, 0.5, 1.0, 8], [120, -1.2, -2.9, 15]], np.float32)
    with torch.no_grad():
        z = module.encode(torch.from_numpy(x))
        r = module.decode(z).numpy()
    for i, line in enumerate(lines[1:3]):
        nums = [float(w) for w in re.findall(r"-?\d[\d.e+-]*", line.split("latent")[1])]
        np.testing.assert_allclose(nums[:3], z[i].numpy(), rtol=1e-6)
        np.testing.assert_allclose(nums[3:], r[i], rtol=1e-5)
