"""hepae train: a model from the configuration file and options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .options import Subparsers, add_config_options, add_trust_pickle, config_values
from .summary import print_summary

if TYPE_CHECKING:
    from ..training.config import TrainConfig


def add_parser(sub: Subparsers) -> None:
    """Add ``train``."""
    from ..training.config import TrainConfig

    p = sub.add_parser("train", help="train an autoencoder and export it as TorchScript")
    p.add_argument("--config", help="TOML or YAML file with training options")
    add_config_options(p, TrainConfig)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument(
        "--lr-find",
        action="store_true",
        help="run an LR range test instead of training, plot it, suggest a rate",
    )
    add_trust_pickle(p, ".pkl inputs (pandas pickles)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def _check_latent(config: TrainConfig) -> None:
    """The latent space must be smaller than the network's input."""
    n_inputs = len(config.variables) * (config.event_jets if config.level == "event" else 1)
    if config.latent_dim >= n_inputs:
        raise ValueError(
            f"--latent-dim {config.latent_dim} must be smaller than the number of inputs "
            f"({n_inputs}: {', '.join(config.variables)}"
            + (f" x {config.event_jets} jets" if config.level == "event" else "")
            + ")"
        )


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The run's configuration: the ``--config`` file, overridden by the options given."""
    from ..training.config import TrainConfig, load_config

    values: dict[str, Any] = load_config(args.config) if args.config else {}
    config_values(args, TrainConfig, values)
    if not values.get("inputs"):
        raise ValueError("no training data: give input files or 'inputs' in --config")
    config = TrainConfig(**values)
    _check_latent(config)
    return config


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or run the LR range test); print the outputs and the validation residuals."""
    from ..io.guards import check_outputs, trusted_pickles
    from ..training.loop import lr_find, train

    config = train_config(args)
    paths = config.paths()
    inputs = [*config.inputs, args.config]
    plot = Path(config.output).with_suffix(".lr_find.png")
    if args.lr_find:
        check_outputs(inputs, [plot])
    else:
        check_outputs(inputs, [paths["model"], paths["config"]], output_dirs=[paths["run"]])
    if not config.prefix:
        from ..io.formats import detect_format
        from ..training.config import MODEL_UNITS

        with trusted_pickles(args.trust_pickle):
            lines = [
                detect_format(
                    p,
                    fmt=config.format or None,
                    units=config.units or None,
                    collection=config.collection or None,
                    tree=config.tree or None,
                ).describe(MODEL_UNITS)
                for p in config.inputs
            ]
        for line in dict.fromkeys(lines):
            print(line)
    if args.lr_find:
        with trusted_pickles(args.trust_pickle):
            _, _, lr = lr_find(config, plot=plot)
        print(f"suggested learning rate: {lr:.3g} (plot: {plot})")
        return 0
    with trusted_pickles(args.trust_pickle):
        result = train(config, resume=args.resume, progress=not args.quiet)
    print(
        f"wrote {result.paths['model']} ({result.metrics['epochs_run']} epochs, "
        f"{result.seconds:.0f} s; {result.metrics['stop_reason']})"
    )
    print(
        f"config {result.paths['config']}, history {result.paths['history']}, "
        f"previews {result.paths['previews']}"
    )
    print_summary(result.metrics["validation"], "validation set")
    return 0
