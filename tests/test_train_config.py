"""`hepae train`'s options and the `TrainConfig` dataclass agree: one option per field,
the field's default, and config files with the same keys."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from hepae_coffea.cli import build_parser, main
from hepae_coffea.cli.options import config_values
from hepae_coffea.cli.train import train_config
from hepae_coffea.model.config import ModelConfig
from hepae_coffea.training.config import TrainConfig, load_config

#: fields whose option is not ``--field-name`` (written out by hand)
RENAMED = {
    "output": ["-o", "--output"],
    "weights": ["--weight"],
    "transforms": ["--transform"],
    "preview": ["--no-preview"],
    "tensorboard": ["--no-tensorboard"],
}

#: a value other than the default for every field: command-line words -> parsed value
OTHER = {
    "inputs": (["a.root", "b.root"], ["a.root", "b.root"]),
    "output": (["-o", "x.pt"], "x.pt"),
    "variables": (["--variables", "pt, eta ,phi,mass,E"], ["pt", "eta", "phi", "mass", "E"]),
    "latent_dim": (["--latent-dim", "2"], 2),
    "hidden": (["--hidden", "16,8,4"], [16, 8, 4]),
    "activation": (["--activation", "tanh"], "tanh"),
    "kind": (["--kind", "vae"], "vae"),
    "loss": (["--loss", "bce"], "bce"),
    "bottleneck": (["--bottleneck", "plain"], "plain"),
    "levels": (["--levels", "64"], 64),
    "beta": (["--beta", "0.5"], 0.5),
    "weights": (["--weight", "phi=4", "--weight", "pt=0.5"], {"phi": 4.0, "pt": 0.5}),
    "transforms": (["--transform", "eta=scale:3"], {"eta": "scale:3"}),
    "level": (["--level", "event"], "event"),
    "event_jets": (["--event-jets", "6"], 6),
    "epochs": (["--epochs", "7"], 7),
    "batch_size": (["--batch-size", "64"], 64),
    "lr": (["--lr", "0.01"], 0.01),
    "schedule": (["--schedule", "step"], "step"),
    "step_epochs": (["--step-epochs", "3"], 3),
    "step_gamma": (["--step-gamma", "0.5"], 0.5),
    "weight_decay": (["--weight-decay", "0.01"], 0.01),
    "seed": (["--seed", "9"], 9),
    "val_fraction": (["--val-fraction", "0.25"], 0.25),
    "patience": (["--patience", "3"], 3),
    "max_minutes": (["--max-minutes", "1.5"], 1.5),
    "max_jets": (["--max-jets", "1000"], 1000),
    "prefix": (["--prefix", "FatJet"], "FatJet"),
    "tree": (["--tree", "T"], "T"),
    "format": (["--format", "nanoaod"], "nanoaod"),
    "units": (["--units", "MeV"], "MeV"),
    "collection": (["--collection", "LargeRJets"], "LargeRJets"),
    "preview": (["--no-preview"], False),
    "tensorboard": (["--no-tensorboard"], False),
    "weight_branch": (["--weight-branch", "genWeight"], "genWeight"),
    "stream": (["--stream"], True),
    "shuffle_buffer": (["--shuffle-buffer", "1000"], 1000),
    "step_events": (["--step-events", "500"], 500),
    "fit_jets": (["--fit-jets", "700"], 700),
    "max_val_jets": (["--max-val-jets", "300"], 300),
    "max_z": (["--max-z", "8"], 8.0),
    "device": (["--device", "cpu"], "cpu"),
}


def _train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def _default(f: dataclasses.Field) -> object:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _config(argv: list[str]) -> TrainConfig:
    return train_config(build_parser().parse_args(["train", *argv]))


def test_every_field_has_exactly_one_option():
    actions = [a for a in _train_parser()._actions if a.dest != "help"]
    for f in dataclasses.fields(TrainConfig):
        mine = [a for a in actions if a.dest == f.name]
        assert len(mine) == 1, f.name
        expected = (
            [] if f.name == "inputs" else RENAMED.get(f.name, ["--" + f.name.replace("_", "-")])
        )
        assert mine[0].option_strings == expected, f.name
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    others = {a.dest for a in actions} - names
    assert others == {"config", "resume", "lr_find", "trust_pickle", "quiet"}


def test_no_option_given_is_the_dataclass_default():
    config = _config(["x.root"])
    for f in dataclasses.fields(TrainConfig):
        expected = ["x.root"] if f.name == "inputs" else _default(f)
        assert getattr(config, f.name) == expected, f.name


def test_help_states_the_dataclass_default():
    """The default in each option's help, parsed back, is the field's default."""
    actions = {a.dest: a for a in _train_parser()._actions}
    checked = 0
    for f in dataclasses.fields(TrainConfig):
        default = _default(f)
        if isinstance(default, bool) or default in ("", {}, []):
            continue
        m = re.search(r"default ([^;)]+)\)$", actions[f.name].help)
        assert m, f"{f.name}: no default in {actions[f.name].help!r}"
        text = m.group(1)
        if isinstance(default, list):
            shown: object = [type(default[0])(v) for v in text.split(",")]
        else:
            shown = type(default)(text)
        assert shown == default, f.name
        checked += 1
    assert checked >= 30


def test_help_lists_the_choices():
    actions = {a.dest: a for a in _train_parser()._actions}
    assert "ae, vae" in actions["kind"].help
    assert "constant, step, onecycle" in actions["schedule"].help
    assert "tanh, relu, leakyrelu, silu, hardswish, elu, gelu" in actions["activation"].help


def test_each_option_sets_its_field():
    assert set(OTHER) == {f.name for f in dataclasses.fields(TrainConfig)}
    defaults = {f.name: _default(f) for f in dataclasses.fields(TrainConfig)}
    for name, (words, value) in OTHER.items():
        assert value != defaults[name], name
        inputs = [] if name == "inputs" else ["in.root"]
        args = build_parser().parse_args(["train", *inputs, *words])
        values: dict[str, object] = {}
        config_values(args, TrainConfig, values)
        assert values[name] == value, name
        assert set(values) <= {name, "inputs"}, name


def test_config_file_keys_are_the_fields(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 5\nhidden: [16, 16]\nlr: 0.01\nweights: {phi: 2.0}\n")
    config = _config(["x.root", "--config", str(cfg), "--epochs", "2", "--weight", "eta=3"])
    assert config.epochs == 2  # the command line wins
    assert config.hidden == [16, 16]  # the file's value stays
    assert config.lr == 0.01
    assert config.weights == {"phi": 2.0, "eta": 3.0}  # pairs are merged
    # a saved configuration reads back as the same configuration
    import yaml

    saved = tmp_path / "saved.yaml"
    saved.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    assert TrainConfig(**load_config(saved)) == config
    assert list(config.to_dict())[:2] == ["inputs", "output"]


def test_wrong_config_key_is_one_line_naming_key_and_file(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("epochs: 5\nlearning_rate: 0.1\n")
    assert main(["train", "x.root", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "bad.yaml" in err
    assert "'learning_rate'" in err


def test_model_fields_are_shared():
    """`TrainConfig` has every `ModelConfig` field with the same default, and
    `model_config` hands them over."""
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for f in dataclasses.fields(ModelConfig):
        assert _default(train_fields[f.name]) == _default(f), f.name
    config = TrainConfig(latent_dim=2, hidden=[8], kind="vae", weights={"pt": 2.0})
    model = config.model_config()
    assert type(model) is ModelConfig
    assert (model.latent_dim, model.hidden, model.kind, model.weights) == (
        2,
        [8],
        "vae",
        {"pt": 2.0},
    )
    model.weights["pt"] = 5.0
    assert config.weights == {"pt": 2.0}  # a copy


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "0"], "argument --epochs: 0 is out of range"),
        (["--val-fraction", "0.95"], "argument --val-fraction: 0.95 is out of range"),
        (["--max-z", "0"], "argument --max-z: 0 is out of range"),
        (["--levels", "1"], "argument --levels: 1 is out of range"),
    ],
)
def test_bounds_on_the_command_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "x.root", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
