"""Training at scale: robust normalisation, event weights, streaming, shuffle buffer,
progress, devices."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from hepae_coffea.model.cache import get_model, in_blocks, resolve_device
from hepae_coffea.model.export import load_model
from hepae_coffea.model.networks import weighted_mean
from hepae_coffea.model.normalize import Normalizer, fit_transforms, flag_absurd
from hepae_coffea.training.loop import TrainConfig, train
from hepae_coffea.training.prepare import prepare
from hepae_coffea.training.prepare_stream import JetStream
from hepae_coffea.training.stream import ShuffleBuffer, batches, iter_weighted_jets

from .conftest import make_jets, write_nanoaod

VARS = ["pt", "eta", "phi", "mass"]
Q16, Q84 = 0.15865525, 0.84134475


def _values(n_events: int = 3000, seed: int = 3) -> np.ndarray:
    _, jets = make_jets(n_events, seed=seed)
    return np.stack([jets[v] for v in VARS], axis=1)


def _quantile_fit(t: np.ndarray) -> tuple[float, float]:
    """Median and half the 16-84% quantile width, computed here independently."""
    s = np.sort(t)
    return float(np.median(s)), float(
        0.5 * (np.quantile(s, Q84, method="linear") - np.quantile(s, Q16, method="linear"))
    )


# --- robust normalisation ---------------------------------------------------------------


def test_robust_fit_ignores_planted_absurd_jets(caplog):
    clean = _values()
    planted = clean.copy()
    rows = [10, 500, 2000]
    planted[rows[0], 0] = 1e30  # absurd pt
    planted[rows[1], 0] = -20.0  # negative pt
    planted[rows[2], 3] = 1e28  # absurd mass
    with caplog.at_level(logging.WARNING):
        transforms, report = fit_transforms(planted, VARS)
    assert report.n_absurd == 3
    assert sorted(np.flatnonzero(~report.keep).tolist()) == rows
    assert report.by_variable == {"pt": 2, "mass": 1}
    assert "absurd" in caplog.text
    # expected scales from the clean jets only, with plain numpy
    keep = np.ones(len(clean), bool)
    keep[rows] = False
    pt = clean[keep, 0]
    center, scale = _quantile_fit(np.log(pt))
    t_pt = transforms[0]
    assert t_pt.kind == "log"
    assert t_pt.offset == 0.0
    assert t_pt.center == pytest.approx(center, rel=1e-12)
    assert t_pt.scale == pytest.approx(scale, rel=1e-12)
    eta_center, eta_scale = _quantile_fit(clean[keep, 1])
    assert (transforms[1].center, transforms[1].scale) == pytest.approx((eta_center, eta_scale))
    # the absurd pt would have set a scale of ~1e28 with mean/std of the raw values
    assert 0.1 < t_pt.scale < 3


def test_old_failure_mode_standard_transform_is_not_ruined():
    """Negative pt used to force the 'standard' transform with a 1e28 scale."""
    x = _values()
    x[:2, 0] = -5.0
    x[2, 0] = 1e30
    transforms, report = fit_transforms(x, VARS)
    assert transforms[0].kind == "log"
    assert report.n_absurd == 3
    u = Normalizer(transforms)(torch.tensor(x[report.keep], dtype=torch.float32))
    assert float(u.abs().max()) < 10


def test_masses_zero_and_slightly_negative_take_the_log():
    x = _values()
    med = float(np.median(x[:, 3]))
    x[:50, 3] = 0.0
    x[50:60, 3] = -0.004 * med  # reconstruction-style tiny negative masses
    x[60, 3] = -0.5 * med  # far below: outside the domain
    transforms, report = fit_transforms(x, VARS)
    t = transforms[3]
    assert t.kind == "log"
    assert t.offset > 0.004 * med
    assert report.n_absurd == 1
    assert not report.keep[60]
    norm = Normalizer(transforms)
    back = norm.inverse(norm(torch.tensor(x[report.keep], dtype=torch.float32)))
    assert torch.isfinite(back).all()
    assert float(back[:, 3].min()) >= 0  # decoded masses are never negative


def test_flag_absurd_rule_on_fitted_transforms():
    x = _values()
    transforms, _ = fit_transforms(x, VARS)
    t = transforms[0]
    probe = np.repeat(x[:1], 4, axis=0)
    probe[1, 0] = np.exp(t.center + 25 * t.scale)  # 25 widths away: absurd
    probe[2, 0] = np.exp(t.center + 15 * t.scale)  # 15 widths: kept
    probe[3, 2] = 100.0  # phi
    bad, by_var = flag_absurd(probe, transforms)
    assert bad.tolist() == [False, True, False, True]
    assert by_var == {"pt": 1, "phi": 1}


# --- weighted loss ----------------------------------------------------------------------


def test_weighted_loss_equals_hand_computation():
    per_jet = torch.tensor([1.0, 2.0, 4.0, 0.5])
    w = torch.tensor([2.0, 0.5, 1.0, -1.0])
    # (2*1 + 0.5*2 + 1*4 - 1*0.5) / 4 / 1.25
    assert float(weighted_mean(per_jet, w, 1.25)) == pytest.approx(6.5 / 4 / 1.25)
    assert float(weighted_mean(per_jet)) == pytest.approx(7.5 / 4)
    with pytest.raises(ValueError, match="mean_weight"):
        weighted_mean(per_jet, w, 0.0)


# --- files with weights -----------------------------------------------------------------


@pytest.fixture(scope="module")
def weighted_files(tmp_path_factory):
    """Two ROOT files with a genWeight branch: [(path, counts, jets, weights)]."""
    out = []
    base = tmp_path_factory.mktemp("weighted")
    for k in range(2):
        counts, jets = make_jets(900, seed=20 + k)
        w = np.random.default_rng(30 + k).uniform(0.5, 3.0, len(counts)).astype(np.float32)
        path = base / f"w{k}.root"
        write_nanoaod(path, counts, jets, extra={"genWeight": w})
        out.append((path, counts, jets, w))
    return out


def test_weights_line_up_with_jets(weighted_files):
    path, counts, jets, w = weighted_files[0]
    chunks = list(iter_weighted_jets(path, VARS, weight_branch="genWeight", step_events=128))
    assert len(chunks) == int(np.ceil(len(counts) / 128))
    values = np.concatenate([c.values for c in chunks])
    weights = np.concatenate([c.weights for c in chunks])
    np.testing.assert_array_equal(values[:, 0], jets["pt"].astype(np.float32))
    np.testing.assert_array_equal(weights, np.repeat(w, counts).astype(np.float64))


def test_missing_weight_branch_is_named(weighted_files):
    from hepae_coffea.errors import MissingBranchError

    with pytest.raises(MissingBranchError, match="Generator_weight"):
        list(iter_weighted_jets(weighted_files[0][0], VARS, weight_branch="Generator_weight"))


# --- shuffle buffer and streaming ---------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, 7, 100, 10_000])
def test_shuffle_buffer_is_a_permutation(capacity):
    rng = np.random.default_rng(0)
    data = np.arange(1000)
    blocks = [[data[i : i + 37]] for i in range(0, 1000, 37)]
    out = list(batches(iter(blocks), 64, ShuffleBuffer(capacity, rng)))
    flat = np.concatenate([b[0] for b in out])
    assert sorted(flat.tolist()) == data.tolist()
    assert all(len(b[0]) == 64 for b in out[:-1])
    if capacity >= 100:
        assert not np.array_equal(flat, data)  # actually mixed
        # items leave their chunk: the first batch draws from several input blocks
        assert len(set((out[0][0] // 37).tolist())) > 2


def test_shuffle_buffer_keeps_rows_together():
    buf = ShuffleBuffer(5, np.random.default_rng(1))
    a, b = np.arange(20), np.arange(20) * 10
    outs = [buf.push(a[i : i + 4], b[i : i + 4]) for i in range(0, 20, 4)]
    outs.append(buf.flush())
    x = np.concatenate([o[0] for o in outs])
    y = np.concatenate([o[1] for o in outs])
    np.testing.assert_array_equal(y, x * 10)
    assert sorted(x.tolist()) == list(range(20))


def _stream_cfg(files, tmp_path, **kw) -> TrainConfig:
    base = {
        "inputs": [str(f[0]) for f in files],
        "output": str(tmp_path / "s.pt"),
        "epochs": 2,
        "batch_size": 256,
        "preview": False,
        "tensorboard": False,
        "stream": True,
        "step_events": 200,
        "shuffle_buffer": 1000,
        "seed": 4,
        "device": "cpu",
    }
    base.update(kw)
    return TrainConfig(**base)


def test_stream_reads_every_training_jet_once_per_epoch(weighted_files, tmp_path):
    cfg = _stream_cfg(weighted_files, tmp_path, weight_branch="genWeight")
    prep = prepare(cfg)
    stream = prep.stream
    assert isinstance(stream, JetStream)
    all_vals = np.concatenate(
        [np.stack([f[2][v] for v in VARS], axis=1).astype(np.float32) for f in weighted_files]
    )
    n_total = len(all_vals)
    n_val = len(prep.x_va)
    assert prep.n_train + n_val == n_total  # no absurd jets in this sample
    for epoch in (0, 1):
        got = [b for b in stream.epoch(epoch)]
        vals = np.concatenate([b[0] for b in got])
        assert len(vals) == prep.n_train
        # training jets + validation jets = every jet, each exactly once
        both = np.concatenate([vals, prep.x_va.numpy()]).astype(np.float32)
        key = np.lexsort(both.T[::-1])
        ref = np.lexsort(all_vals.T[::-1])
        np.testing.assert_array_equal(both[key], all_vals[ref])
        if epoch == 0:
            first = vals
    assert not np.array_equal(first, vals)  # a new order each epoch
    # the mean weight of the training jets, by hand
    w_all = np.concatenate([np.repeat(f[3], f[1]) for f in weighted_files]).astype(np.float64)
    is_val = np.zeros(n_total, bool)
    offset = 0
    for i, (_, values, _) in enumerate(stream.chunks()):
        is_val[offset : offset + len(values)] = stream.is_val(i, len(values))
        offset += len(values)
    assert prep.mean_weight == pytest.approx(w_all[~is_val].mean(), rel=1e-9)


def test_stream_training_reports_absurd_jets_and_progress(tmp_path, caplog):
    counts, jets = make_jets(1500, seed=9)
    jets["pt"][[3, 40]] = [1e30, -20.0]
    path = tmp_path / "bad.root"
    write_nanoaod(path, counts, jets)
    cfg = _stream_cfg([(path,)], tmp_path, epochs=2)
    with caplog.at_level(logging.INFO, logger="hepae_coffea"):
        res = train(cfg, progress=False)
    absurd = load_model(res.paths["model"]).metadata["training"]["data"]["absurd"]
    assert absurd["n_train_absurd"] + absurd["n_validation_absurd"] == 2
    assert "jets/s" in caplog.text
    assert "ETA" in caplog.text
    assert all(row["jets_per_second"] > 0 for row in res.history)
    t = load_model(res.paths["model"]).metadata["normalisation"][0]
    assert 0.1 < t["scale"] < 3  # not ruined by the absurd jets


def test_in_memory_weighted_training_uses_weights(weighted_files, tmp_path):
    cfg = _stream_cfg(weighted_files, tmp_path, stream=False, weight_branch="genWeight")
    prep = prepare(cfg)
    assert prep.w_tr is not None
    assert len(prep.w_tr) == prep.n_train
    assert prep.mean_weight == pytest.approx(float(prep.w_tr.double().mean()), rel=1e-6)
    res = train(cfg, progress=False)
    meta = load_model(res.paths["model"]).metadata
    assert meta["training"]["data"]["weight_branch"] == "genWeight"


# --- devices ------------------------------------------------------------------------------


def test_resolve_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device(None) == expected
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_cpu_training_is_deterministic(weighted_files, tmp_path):
    a = train(_stream_cfg(weighted_files, tmp_path / "a"), progress=False)
    b = train(_stream_cfg(weighted_files, tmp_path / "b"), progress=False)
    for (ka, va), (kb, vb) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert ka == kb
        assert torch.equal(va, vb), ka


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_and_inference_match_cpu(weighted_files, tmp_path):
    res = train(_stream_cfg(weighted_files, tmp_path, device="cuda", epochs=1), progress=False)
    data = res.paths["model"].read_bytes()
    cpu, _ = get_model(data, "x-cpu", "cpu")  # exported model loads on the CPU
    gpu, _ = get_model(data, "x-cuda", "cuda")
    x = torch.tensor(_values(200)[:500], dtype=torch.float32)
    (rc,) = in_blocks(cpu.forward, x)
    (rg,) = in_blocks(gpu.forward, x, device="cuda")
    assert rg.device.type == "cpu"
    torch.testing.assert_close(rg, rc, rtol=1e-4, atol=1e-3)
