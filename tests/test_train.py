from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hepae_coffea.model.export import load_model
from hepae_coffea.training.loop import TrainConfig, load_config, lr_find, train


def _cfg(train_sample, tmp_path, **kw):
    base = {
        "inputs": [str(train_sample)],
        "output": str(tmp_path / "m.pt"),
        "epochs": 3,
        "batch_size": 256,
        "lr": 3e-3,
        "preview": False,
        "tensorboard": False,
        "seed": 5,
    }
    base.update(kw)
    return TrainConfig(**base)


def test_training_lowers_loss_and_exports(train_sample, tmp_path):
    res = train(_cfg(train_sample, tmp_path, epochs=4, preview=True), progress=False)
    hist = res.history
    assert len(hist) == 4
    assert hist[-1]["val_loss"] < 0.7 * hist[0]["val_loss"]  # 4 short epochs, 32-32 default
    paths = res.paths
    for key in ("model", "config", "history", "history_csv", "checkpoint"):
        assert paths[key].exists(), key
    assert len(list(paths["previews"].glob("epoch_*.png"))) == 4
    loaded = load_model(paths["model"], variables=["pt", "eta", "phi", "mass"])
    meta = loaded.metadata
    assert meta["latent_dim"] == 3
    assert meta["kind"] == "ae"
    assert meta["training"]["data"]["n_jets"] > 1000
    assert set(meta["metrics"]["validation"]) >= {"pt", "eta", "phi", "mass"}
    assert json.loads(paths["history"].read_text())[-1]["epoch"] == 4
    # the exported file reproduces the in-memory model
    x = torch.tensor([[50.0, 0.5, 1.0, 8.0], [300.0, -2.0, -3.0, 40.0]])
    res.model.eval()
    torch.testing.assert_close(loaded.module(x), res.model(x), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize(
    ("kind", "loss", "schedule"),
    [("vae", "mse", "step"), ("ae", "bce", "constant"), ("vae", "bce", "onecycle")],
)
def test_variants_train(train_sample, tmp_path, kind, loss, schedule):
    res = train(
        _cfg(
            train_sample,
            tmp_path,
            kind=kind,
            loss=loss,
            schedule=schedule,
            bottleneck="plain",
            epochs=3,
            step_epochs=1,
        ),
        progress=False,
    )
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]
    assert res.history[-1]["unphysical"] == 0


def test_deterministic(train_sample, tmp_path):
    a = train(_cfg(train_sample, tmp_path / "a", epochs=2), progress=False)
    b = train(_cfg(train_sample, tmp_path / "b", epochs=2), progress=False)
    for ta, tb in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True):
        assert torch.equal(ta, tb)
    c = train(_cfg(train_sample, tmp_path / "c", epochs=2, seed=6), progress=False)
    assert not torch.equal(a.model.encoder[0].weight, c.model.encoder[0].weight)


def test_resume_continues_identically(train_sample, tmp_path):
    full = train(
        _cfg(train_sample, tmp_path / "full", epochs=3, schedule="constant"), progress=False
    )
    cfg = _cfg(train_sample, tmp_path / "part", epochs=3, schedule="constant")
    seen = []

    def stop_after_two(row):
        seen.append(row["epoch"])
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, on_epoch=stop_after_two)
    resumed = train(cfg, resume=True, progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.history[-1]["val_loss"] == pytest.approx(full.history[-1]["val_loss"], rel=1e-6)
    for ta, tb in zip(
        full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(ta, tb)


def test_resume_refuses_changed_config(train_sample, tmp_path):
    train(_cfg(train_sample, tmp_path, epochs=1), progress=False)
    with pytest.raises(ValueError, match=r"configuration differs from the checkpoint in \['lr'\]"):
        train(_cfg(train_sample, tmp_path, epochs=1, lr=1e-2), resume=True, progress=False)


def test_weights_shift_the_loss(train_sample, tmp_path):
    cfg = _cfg(train_sample, tmp_path, weights={"phi": 4.0})
    m = cfg.model_config()
    assert m.weights == {"phi": 4.0}
    res = train(cfg, progress=False)
    w = res.model.column_weight
    # phi has two normalised columns (cos, sin), each weighted 4x the others
    assert float(w[2]) == pytest.approx(4 * float(w[0]))
    assert float(w[4]) == pytest.approx(4 * float(w[0]))


def test_config_files(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('epochs = 7\nvariables = ["pt", "eta", "phi", "E"]\n[weights]\nphi = 2.0\n')
    assert load_config(toml) == {
        "epochs": 7,
        "variables": ["pt", "eta", "phi", "E"],
        "weights": {"phi": 2.0},
    }
    yml = tmp_path / "c.yaml"
    yml.write_text("lr: 0.01\nschedule: step\n")
    assert load_config(yml) == {"lr": 0.01, "schedule": "step"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 1\n")
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['learning_rate'\]"):
        load_config(bad)


def test_lr_find(train_sample, tmp_path):
    plot = tmp_path / "lr.png"
    lrs, losses, lr = lr_find(_cfg(train_sample, tmp_path), steps=60, plot=plot)
    assert plot.exists()
    assert plot.stat().st_size > 1000
    assert lrs[0] < lr < lrs[-1]
    assert np.all(np.diff(lrs) > 0)
    assert len(losses) == len(lrs)


def test_tensorboard_scalars_written(train_sample, tmp_path):
    pytest.importorskip("tensorboard")
    res = train(_cfg(train_sample, tmp_path, epochs=1, tensorboard=True), progress=False)
    assert list(res.paths["tensorboard"].glob("events.out.tfevents.*"))
