"""The ``hepae`` command line: generate, train, info, demo."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, get_args, get_origin, get_type_hints

from ._version import __version__
from .errors import HepaeError
from .io.atomic import is_disk_full
from .io.guards import Terminated, handle_termination

if TYPE_CHECKING:
    from .compress.files import CompressionSummary
    from .model.handle import ModelHandle
    from .training.config import TrainConfig

log = logging.getLogger("hepae_coffea")

_Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _kv_pairs(
    items: Sequence[str] | None, what: str, cast: Callable[[str], Any] = str
) -> dict[str, Any]:
    """``NAME=VALUE`` items as a dict, values converted by ``cast``; one-line errors."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must look like NAME=VALUE, got {item!r}")
        try:
            out[key] = cast(value)
        except ValueError:
            raise ValueError(f"{what} {item!r}: {value!r} is not a valid value") from None
    return out


def _int_range(
    lo: int | None = None, hi: int | None = None, what: str = "a whole number"
) -> Callable[[str], int]:
    """argparse type: an int within [lo, hi] (either bound optional)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = (
                f"between {lo} and {hi}"
                if lo is not None and hi is not None
                else (f">= {lo}" if lo is not None else f"<= {hi}")
            )
            raise argparse.ArgumentTypeError(f"{value} is out of range (must be {bounds})")
        return value

    return parse


def _float_range(
    lo: float | None = None, hi: float | None = None, strict_lo: bool = False
) -> Callable[[str], float]:
    """argparse type: a finite float >= lo (> lo with ``strict_lo``) and <= hi."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if lo is not None and (value <= lo if strict_lo else value < lo):
            raise argparse.ArgumentTypeError(
                f"{value:g} is out of range (must be {'>' if strict_lo else '>='} {lo:g})"
            )
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{value:g} is out of range (must be <= {hi:g})")
        return value

    return parse


_POSITIVE = _int_range(1)
_NONNEG = _int_range(0)
_BITS = _int_range(0, 23)
_LEVEL = _int_range(1, 22)


def _add_trust_pickle(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help=f"allow loading {what} (a pickle can run code: only files you trust)",
    )


# --- generate ---------------------------------------------------------------------------


def _cmd_generate(args: argparse.Namespace) -> int:
    from .generate.pythia import generate

    s = generate(
        args.process,
        args.events,
        args.seed,
        args.output,
        pthat_min=args.pthat_min,
        pthat_max=args.pthat_max,
        bias_pow=args.bias_pow,
        bias_ref=args.bias_ref,
        jet_ptmin=args.jet_ptmin,
        jet_etamax=args.jet_etamax,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {s.path}: {s.n_events} {s.process} events, {s.n_jets} jets "
        f"({s.events_per_second:.0f} events/s)"
    )
    return 0


# --- train ------------------------------------------------------------------------------


def _add_train(sub: _Subparsers) -> None:
    from .training.config import TrainConfig

    p = sub.add_parser("train", help="train an autoencoder and export it as TorchScript")
    p.add_argument("--config", help="TOML or YAML file with training options")
    _add_config_options(p, TrainConfig)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument(
        "--lr-find",
        action="store_true",
        help="run an LR range test instead of training, plot it, suggest a rate",
    )
    _add_trust_pickle(p, ".pkl inputs (pandas pickles)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _option_flags(f: Field[Any]) -> list[str]:
    """A config field's option: its ``flag`` metadata, else ``--name`` (``--no-name`` for a
    setting that is on by default)."""
    flag = f.metadata.get("flag")
    if flag is not None:
        return [flag] if isinstance(flag, str) else list(flag)
    name = f.name.replace("_", "-")
    return [f"--no-{name}" if _field_default(f) is True else f"--{name}"]


def _field_default(f: Field[Any]) -> Any:
    """A dataclass field's default value (a fresh one for a ``default_factory``)."""
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


def _option_help(f: Field[Any]) -> str:
    """The field's help text with its choices and default appended."""
    default = _field_default(f)
    notes = []
    if "choices" in f.metadata:
        notes.append(", ".join(f.metadata["choices"]))
    if isinstance(default, bool) or (default in ("", {}, []) and "unset" not in f.metadata):
        pass  # a flag's name says what it changes; nothing to say about an empty default
    elif "unset" in f.metadata:  # what the empty default means
        notes.append(f"default: {f.metadata['unset']}")
    elif isinstance(default, list):
        notes.append("default " + ",".join(str(v) for v in default))
    elif isinstance(default, float):
        notes.append(f"default {default:g}")
    else:
        notes.append(f"default {default}")
    text = str(f.metadata["help"]) + (f" ({'; '.join(notes)})" if notes else "")
    return text.replace("%", "%%")


def _number_type(typ: Any, bounds: tuple[Any, Any, bool] | None) -> Callable[[str], Any]:
    """argparse type of an int or float field, enforcing its bounds."""
    lo, hi, strict = bounds or (None, None, False)
    parse: Callable[[str], Any]
    if typ is int:
        parse = _int_range(
            None if lo is None else int(lo) + (1 if strict else 0),
            None if hi is None else int(hi),
        )
    else:
        parse = _float_range(lo, hi, strict_lo=strict)
    return parse


def _add_config_options(p: argparse.ArgumentParser, cls: type[Any]) -> None:
    """One option per field of the dataclass ``cls`` (name, type, help, default from the
    field). Options default to None, so that a value from ``--config`` stays unless given;
    lists and ``VAR=VALUE`` pairs are parsed by `_config_values`."""
    hints = get_type_hints(cls)
    for f in fields(cls):
        typ, help_text = hints[f.name], _option_help(f)
        if f.metadata.get("positional"):
            p.add_argument(f.name, nargs="*", help=help_text)
        elif typ is bool:
            action = "store_false" if _field_default(f) else "store_true"
            p.add_argument(
                *_option_flags(f), dest=f.name, action=action, default=None, help=help_text
            )
        elif get_origin(typ) is dict:
            p.add_argument(
                *_option_flags(f),
                dest=f.name,
                action="append",
                metavar=f.metadata.get("metavar"),
                help=help_text,
            )
        elif typ in (int, float):
            p.add_argument(
                *_option_flags(f),
                dest=f.name,
                type=_number_type(typ, f.metadata.get("bounds")),
                default=None,
                help=help_text,
            )
        else:  # str, and comma-separated lists
            p.add_argument(*_option_flags(f), dest=f.name, default=None, help=help_text)


def _config_values(args: argparse.Namespace, cls: type[Any], values: dict[str, Any]) -> None:
    """Put the options given on the command line into ``values`` (keys: ``cls``'s fields);
    ``VAR=VALUE`` pairs are merged into those already there."""
    hints = get_type_hints(cls)
    for f in fields(cls):
        v = getattr(args, f.name, None)
        if v is None or (f.metadata.get("positional") and not v):
            continue
        typ, opt = hints[f.name], _option_flags(f)[-1]
        if f.metadata.get("positional"):
            v = list(v)
        elif typ == list[str]:
            v = [s.strip() for s in v.split(",") if s.strip()]
        elif typ == list[int]:
            v = _int_list(v, opt, f.metadata.get("items", "values"))
        elif get_origin(typ) is dict:
            cast = get_args(typ)[1]
            v = {**values.get(f.name, {}), **_kv_pairs(v, opt, cast)}
        values[f.name] = v


def _int_list(text: str, opt: str, items: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"{opt}: {text!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise ValueError(f"{opt}: {items} must be >= 1, got {text!r}")
    return values


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


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The run's configuration: the ``--config`` file, overridden by the options given."""
    from .training.config import TrainConfig, load_config

    values: dict[str, Any] = load_config(args.config) if args.config else {}
    _config_values(args, TrainConfig, values)
    if not values.get("inputs"):
        raise ValueError("no training data: give input files or 'inputs' in --config")
    config = TrainConfig(**values)
    _check_latent(config)
    return config


def _cmd_train(args: argparse.Namespace) -> int:
    from .io.guards import check_outputs, trusted_pickles
    from .training.loop import lr_find, train

    config = _train_config(args)
    paths = config.paths()
    inputs = [*config.inputs, args.config]
    plot = Path(config.output).with_suffix(".lr_find.png")
    if args.lr_find:
        check_outputs(inputs, [plot])
    else:
        check_outputs(inputs, [paths["model"], paths["config"]], output_dirs=[paths["run"]])
    if not config.prefix:
        from .io.formats import detect_format
        from .training.config import MODEL_UNITS

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
    _print_summary(result.metrics["validation"], "validation set")
    return 0


# --- info -------------------------------------------------------------------------------


def _model_metadata(model: ModelHandle) -> dict[str, Any]:
    """The model's metadata with the file's path (``"path"``), as stored with run results."""
    return {**model.metadata, "path": model.label}


def _cmd_info(args: argparse.Namespace) -> int:
    from .model.handle import open_model

    meta = _model_metadata(open_model(args.model))
    if args.json:
        out = dict(meta)
        out["variables"] = [v["name"] for v in meta["variables"]]
        out["units"] = {v["name"]: v["unit"] for v in meta["variables"]}
        out["format"] = "torchscript"
        out["executes_code"] = True
        print(json.dumps(out, indent=1))
        return 0
    arch = meta.get("architecture", {})
    print(f"model        {meta['path']}")
    print("format       TorchScript: a program, run when loaded; use only model files you trust")
    print(
        f"kind         {meta['kind']} ({meta.get('bottleneck', 'plain')} bottleneck, "
        f"loss {meta.get('loss')})"
    )
    print(
        "variables    "
        + ", ".join(
            f"{v['name']} [{v['unit']}]" if v["unit"] else v["name"] for v in meta["variables"]
        )
    )
    print(f"latent_dim   {meta['latent_dim']}")
    print(
        f"network      hidden {arch.get('hidden')} {arch.get('activation')}, "
        f"{arch.get('parameters')} parameters"
    )
    for t in meta.get("normalisation", []):
        print(
            f"  norm {t['variable']:>8}: {t['kind']:<8} center {t['center']:.4g} "
            f"scale {t['scale']:.4g} offset {t['offset']:.4g} nonneg {t['nonneg']}"
            + (" integer" if t.get("integer") else "")
            + (" <=1" if t.get("unit") else "")
        )
    data = meta.get("training", {}).get("data", {})
    print(f"trained on   {data.get('files')} ({data.get('n_jets')} jets)")
    print(f"package      hepae-coffea {meta.get('package_version')}, created {meta.get('created')}")
    val = meta.get("metrics", {}).get("validation")
    if val:
        _print_summary(val, "validation set at training time")
    return 0


def _print_summary(summary: dict[str, Any], title: str) -> None:
    print(f"\nresiduals ({title}):")
    print(
        f"  {'variable':>10} {'kind':>9} {'mean':>11} {'RMS':>10} {'sigma68':>10} {'|r| q99':>10}"
    )
    for v, s in summary.items():
        if v.startswith("_"):
            continue
        print(
            f"  {v:>10} {s['kind']:>9} {s['mean']:>11.3e} {s['rms']:>10.3e} "
            f"{s['sigma68']:>10.3e} {s['q99_abs']:>10.3e}"
        )
    jets = summary.get("_jets")
    if jets:
        print(f"  jets: {jets['n']}, unphysical reconstructions: {jets['unphysical']}")


# --- demo -------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .io.guards import check_outputs

    check_outputs([args.model], [args.output])
    out = run_demo(args.output, model=args.model)
    _print_run_summary(out["summary"])
    print(f"\nreport: {out['report']} (figures in {args.output}/plots/)")
    print(
        f"\nprocessor: {out['jets_per_second']:.3g} jets/s (tiny sample: start-up dominates); "
        f"model alone: {out['model_jets_per_second']:.3g} jets/s"
    )
    print(f"outputs in {args.output}/: " + ", ".join(sorted({p.name for p in out["files"]})))
    return 0


# --- run --------------------------------------------------------------------------------


def _add_format_options(p: argparse.ArgumentParser) -> None:
    from .io.formats import FORMATS

    p.add_argument(
        "--format",
        choices=list(FORMATS),
        default=None,
        help="force the input format instead of detecting it",
    )
    p.add_argument(
        "--units",
        choices=["MeV", "GeV"],
        default=None,
        help="energy unit of the inputs, overriding the format's",
    )


def _add_run(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "run", help="compress -> decompress ROOT files with the coffea processor, save hists"
    )
    p.add_argument("inputs", nargs="+", help="ROOT files and/or coffea fileset files (.json/.yaml)")
    p.add_argument("--model", default=None, help="model file (default: the shipped model)")
    p.add_argument("-o", "--output", default="results.coffea", help="output .coffea file")
    p.add_argument("--executor", choices=["iterative", "futures", "dask"], default="iterative")
    p.add_argument(
        "--workers", type=_POSITIVE, default=2, help="worker processes (futures, local dask)"
    )
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    p.add_argument("--chunksize", type=_POSITIVE, default=100_000, help="events per chunk")
    p.add_argument("--maxchunks", type=_POSITIVE, default=None, help="at most N chunks per file")
    p.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="skip unreadable files, also those that fail while being read (listed)",
    )
    p.add_argument("--schema", choices=["auto", "nanoaod", "physlite", "base"], default="auto")
    p.add_argument("--tree", default=None, help="tree name (default: the detected format's)")
    p.add_argument(
        "--collection",
        default=None,
        help="jet collection / branch prefix (default: the format's; PHYSLITE: Jets or LargeRJets)",
    )
    _add_format_options(p)
    p.add_argument(
        "--field",
        action="append",
        metavar="VAR=NAME",
        help="model variable VAR is field NAME of the collection, repeatable",
    )
    p.add_argument(
        "--pt-min", type=_float_range(0.0), default=None, help="jet selection: pt > X GeV"
    )
    p.add_argument(
        "--abs-eta-max",
        type=_float_range(0.0, strict_lo=True),
        default=None,
        help="jet selection: |eta| < X",
    )
    p.add_argument(
        "--compress-dir",
        default=None,
        help="also write each chunk compressed (jets -> latents) into this folder",
    )
    p.add_argument(
        "--latent-bits",
        type=_BITS,
        default=None,
        help="with --compress-dir: round latents to M mantissa bits (0..23)",
    )
    p.add_argument(
        "--codec",
        default=None,
        help="with --compress-dir: the chunks' codec, as for hepae compress (ae, truncate, "
        "quantize, entropy, ...; checked when the run starts)",
    )
    p.add_argument(
        "--precision",
        default=None,
        metavar="SPEC",
        help="with --compress-dir: max error per value, as for hepae compress",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="cpu",
        help="where the model runs (default cpu; auto: cuda when available)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from .io.guards import check_outputs
    from .model.handle import open_model
    from .processing.run import build_fileset, output_paths, run, run_info, save_output, summarize

    if args.scheduler and args.executor != "dask":
        raise ValueError("--scheduler needs --executor dask")
    for opt in ("latent_bits", "codec", "precision"):
        if getattr(args, opt) is not None and args.compress_dir is None:
            flag = "--" + opt.replace("_", "-")
            raise ValueError(f"{flag} needs --compress-dir (it applies to the compressed files)")
    fileset = build_fileset(args.inputs, tree=args.tree)
    outputs = output_paths(args.output)
    check_outputs(
        [*args.inputs, *(f for d in fileset.values() for f in d["files"]), args.model],
        outputs.values(),
        output_dirs=[args.compress_dir],
    )
    model = open_model(args.model)  # a bad model file fails before any data is read
    result = run(
        fileset,
        model,
        executor=args.executor,
        workers=args.workers,
        scheduler=args.scheduler,
        chunksize=args.chunksize,
        maxchunks=args.maxchunks,
        skip_bad_files=args.skip_bad_files,
        schema=None if args.schema == "auto" else args.schema,
        collection=args.collection,
        fields=_kv_pairs(args.field, "--field"),
        pt_min=args.pt_min,
        abs_eta_max=args.abs_eta_max,
        status=not args.quiet,
        compress_dir=args.compress_dir,
        latent_bits=args.latent_bits,
        fmt=args.format,
        units=args.units,
        device=args.device,
        codec=args.codec,
        precision=args.precision,
    )
    for line in result.format_lines():
        print(line)
    summary = summarize(result.output, result.seconds)
    if result.skipped_files:
        summary["_skipped_files"] = list(result.skipped_files)
    files = save_output(
        result.output, args.output, run_info(result, _model_metadata(model)), summary=summary
    )
    for skipped in result.skipped_files:
        print(f"skipped: {skipped}")
    for dataset, d in result.output.items():
        if "compressed" in d:
            c = d["compressed"]
            print(
                f"{dataset}: wrote {len(c['files'])} compressed chunk files "
                f"({c['events']} events, {c['jets']} jets) to {args.compress_dir}"
            )
    _print_run_summary(summary)
    print(
        f"\n{result.jets} jets in {result.seconds:.1f} s ({result.jets_per_second:.3g} jets/s, "
        f"{result.executor} executor, {result.schema} schema)"
    )
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


def _print_run_summary(summary: dict[str, Any]) -> None:
    for dataset, d in summary.items():
        if dataset.startswith("_"):
            continue
        c = d["counters"]
        print(
            f"\n{dataset}: {c['events']} events, {c['jets']} jets, {c['jets_selected']} selected, "
            f"{c.get('jets_in_domain', c['jets_selected'])} decoded, "
            f"{c.get('jets_out_of_domain', c['jets_nonfinite'])} out of the model's domain "
            f"(not decoded), {c['jets_unphysical']} unphysical"
        )
        reasons = {
            k.removeprefix("jets_out_of_domain_"): n
            for k, n in c.items()
            if k.startswith("jets_out_of_domain_") and n
        }
        if reasons:
            print("  out of domain: " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
        if c.get("jets_beyond_event_jets"):
            print(
                f"  {c['jets_beyond_event_jets']} selected jets beyond the event model's "
                "leading jets were not compressed (not in the residuals)"
            )
        print(f"  {'variable':>10} {'kind':>9} {'mean':>11} {'RMS':>10} {'sigma68':>10}")
        for v, s in d["residuals"].items():
            print(
                f"  {v:>10} {s['kind']:>9} {s['mean']:>11.3e} {s['rms']:>10.3e} {s['sigma68']:>10.3e}"
            )
        for name, q in d["scores"].items():
            print(f"  {name:>16}: median {q['q50']:.3e}, 90% {q['q90']:.3e}, 99% {q['q99']:.3e}")


# --- plot / report ----------------------------------------------------------------------


def _add_plot(sub: _Subparsers, name: str, report: bool) -> None:
    helptext = (
        "write the compression report (figures + Markdown page)"
        if report
        else "ATLAS-style figures of a results file (and of a training run)"
    )
    p = sub.add_parser(name, help=helptext)
    p.add_argument(
        "results",
        nargs="?",
        help="results of `hepae run`: X.hists.json, or X.coffea (its X.hists.json is read)",
    )
    p.add_argument("-o", "--output", default="plots", help="output folder (default plots)")
    p.add_argument(
        "--label",
        default="Simulation Internal",
        help="text after the ATLAS label (default 'Simulation Internal')",
    )
    p.add_argument("--background", help="background dataset for the ROC curve")
    p.add_argument("--signal", help="signal dataset for the ROC curve")
    p.add_argument(
        "--model",
        help="model for the latent-space scan (default: the one that "
        "made the results, if its file exists)",
    )
    p.add_argument(
        "--training",
        metavar="RUN_DIR",
        help="a training run folder (model_run/): loss curves and previews",
    )
    p.add_argument("--formats", default="png,pdf", help="figure formats (default png,pdf)")
    p.add_argument(
        "--threshold",
        action="append",
        metavar="VAR=S68",
        help="sigma68 threshold for a variable's verdict, repeatable",
    )
    _add_trust_pickle(p, "a .coffea results file itself (a pickle)")
    if not report:
        p.add_argument("--report", action="store_true", help="also write the report page")
    p.set_defaults(func=_cmd_plot, force_report=report)


def _cmd_plot(args: argparse.Namespace) -> int:
    from .io.guards import check_outputs
    from .plots.plotting import plot_results, plot_training
    from .plots.report import write_report
    from .processing.run import load_output

    if not args.results and not args.training:
        raise ValueError("give a results file and/or --training RUN_DIR")
    if bool(args.background) != bool(args.signal):
        raise ValueError("--background and --signal go together")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    thresholds = _kv_pairs(args.threshold, "--threshold", float)
    check_outputs(
        [args.results, args.model, args.training],
        [args.output, Path(args.output) / "report.md"],
    )
    made: dict[str, list[Path]] = {}
    info: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if args.results:
        data, info = load_output(args.results, trust_pickle=args.trust_pickle)
        for name in (args.background, args.signal):
            if name and name not in data:
                raise ValueError(f"dataset {name!r} not in {args.results}; have {sorted(data)}")
        model = args.model
        if model is None:
            candidate = (info.get("model") or {}).get("path")
            model = candidate if candidate and Path(candidate).exists() else None
        made.update(
            plot_results(
                data,
                args.output,
                label=args.label,
                background=args.background,
                signal=args.signal,
                model=model,
                formats=formats,
            )
        )
    if args.training:
        files = plot_training(args.training, args.output, label=args.label, formats=formats)
        made["training_loss"] = [f for f in files if "training_loss" in f.name]
        made["training_previews"] = [f for f in files if "training_previews" in f.name]
    n = sum(len(v) for v in made.values())
    print(f"wrote {n} files to {args.output}/")
    if args.force_report or getattr(args, "report", False):
        if not data:
            raise ValueError("the report needs a results file")
        path = write_report(
            data,
            args.output,
            info=info,
            figures=made,
            thresholds=thresholds,
            background=args.background,
            signal=args.signal,
        )
        print(f"report: {path}")
    return 0


# --- compress / decompress ---------------------------------------------------------------


def _add_compress(sub: _Subparsers) -> None:
    c = sub.add_parser(
        "compress", help="write a ROOT file with jets compressed (codec or autoencoder latents)"
    )
    c.add_argument("inputs", nargs="+", help="ROOT files (same layout; format detected)")
    c.add_argument("-o", "--output", required=True, help="compressed ROOT file to write")
    c.add_argument(
        "--codec",
        choices=["ae", "truncate", "quantize", "pcodec", "entropy"],
        default=None,
        help="ae: the model's latents (with --precision plus corrections so every value "
        "meets it); truncate: mantissa bits; quantize: integers in (log pt, eta, phi, "
        "log mass); pcodec: those integers coded with pcodec; entropy: those integers "
        "range-coded with a model fitted on the file's jets and embedded (about 2 kB). "
        "Default: ae without --precision; with it entropy for 15000 jets or more, pcodec "
        "(smaller there) for fewer",
    )
    c.add_argument(
        "--precision",
        default=None,
        metavar="SPEC",
        help="max error per value: a preset (nanoaod: pt 10, eta 12, phi 12, mass 10 bits; "
        "atlas-high: 7 bits; atlas-low: 15 bits) or VAR=Nbits, VAR=X (absolute, GeV for "
        "pt/mass) or VAR=Xrel (relative) tokens, e.g. pt=4.9e-4rel,eta=4.9e-4,phi=2.45e-4,"
        "mass=4.9e-4rel",
    )
    c.add_argument("--model", default=None, help="model file (default: the shipped model)")
    c.add_argument(
        "--latent-bits",
        type=int,  # checked by compress(), which names the valid range
        default=None,
        help="round latents to M mantissa bits (0..23; default: keep float32)",
    )
    c.add_argument(
        "--model-ref",
        action="store_true",
        help="store only the model's name and SHA-256, not its weights",
    )
    c.add_argument(
        "--allow-larger",
        action="store_true",
        help="write the output even if it is bigger than the input (refused by default)",
    )
    c.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="BRANCH",
        help="trees written flat (ATLAS PHYSLITE): also keep this per-event branch",
    )
    _add_format_options(c)
    d = sub.add_parser("decompress", help="restore the jets of a file written by compress")
    d.add_argument("input", help="file written by hepae compress")
    d.add_argument("-o", "--output", required=True, help="restored ROOT file to write")
    d.add_argument(
        "--model",
        default=None,
        help="the model file that compressed the input (needed for --model-ref files; "
        "refused if its SHA-256 differs)",
    )
    d.add_argument(
        "--model-dir",
        default=None,
        help="folder searched for the *.pt model with the recorded SHA-256",
    )
    for p in (c, d):
        p.add_argument(
            "--compression",
            choices=["zlib", "lzma", "lz4", "zstd"],
            default=None,
            help="ROOT compression algorithm of the output (default: the input's own)",
        )
        p.add_argument(
            "--level", type=_LEVEL, default=None, help="compression level (default: the input's)"
        )
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
        p.add_argument(
            "--device",
            choices=["auto", "cpu", "cuda"],
            default="cpu",
            help="where the model runs (default cpu; auto: cuda when available)",
        )
    c.add_argument("--tree", default=None, help="tree name (default: the detected format's)")
    c.add_argument("--collection", default=None, help="jet collection / branch prefix")
    c.set_defaults(func=_cmd_compress)
    d.set_defaults(func=_cmd_decompress)


def _print_sizes(verb: str, s: CompressionSummary) -> None:
    print(
        f"{verb} {s.events} events, {s.jets} jets in {s.seconds:.2f} s "
        f"({s.jets / max(s.seconds, 1e-9):.3g} jets/s)"
    )
    print(f"bytes: {s.bytes_in} -> {s.bytes_out} (ratio {s.ratio:.3f}); wrote {s.output}")


def _cmd_compress(args: argparse.Namespace) -> int:
    from .compress.files import compress
    from .io.guards import check_outputs

    check_outputs([*args.inputs, args.model], [args.output])
    s = compress(
        args.inputs,
        args.output,
        args.model,
        codec=args.codec,
        precision=args.precision,
        latent_bits=args.latent_bits,
        compression=args.compression,
        level=args.level,
        tree=args.tree,
        collection=args.collection,
        units=args.units,
        fmt=args.format,
        keep=args.keep,
        model_ref=args.model_ref,
        allow_larger=args.allow_larger,
        overwrite=args.overwrite,
        device=args.device,
    )
    x = s.extra
    if x.get("format"):
        print(x["format"])
    if x.get("layout") == "flat":
        print(
            f"{x['tree']}: xAOD containers uproot cannot rewrite; wrote a flat tree of the event "
            f"identifiers, the compressed jets and kept branches (jets in {x['units']})"
        )
    for item in x.get("not_copied", []):
        print(f"not copied: {item['name']} ({item['class']}): {item['reason']}")
    if x.get("precision") is not None:
        errs = ", ".join(
            f"{v} {e['rel']:.3g} rel" if v in ("pt", "mass", "E") else f"{v} {e['abs']:.3g}"
            for v, e in x["max_error"].items()
        )
        print(f"codec {x['codec']} at precision {x['precision']}: max error {errs}")
        if "fraction_corrected" in x:
            print(f"jets with stored corrections: {100 * x['fraction_corrected']:.2f}%")
    if "energy" in x:  # jets with E: the model took the mass computed from E
        e = x["energy"]
        print(
            f"E restored from the decoded pt, eta and mass: max error {e['max_error']['rel']:.3g} "
            f"rel ({e['max_error_real_mass']['rel']:.3g} for jets with E >= |p|), 68% of jets "
            f"within {e['rel_error_q68']:.3g}; {e['jets_negative_m2']} jet(s) with E < |p| "
            f"(negative m^2, out of the model's domain) were given mass 0"
        )
    _print_sizes("compressed", s)
    return 0


def _cmd_decompress(args: argparse.Namespace) -> int:
    from .compress.files import decompress
    from .io.guards import check_outputs

    check_outputs([args.input, args.model], [args.output])
    s = decompress(
        args.input,
        args.output,
        args.model,
        model_dir=args.model_dir,
        compression=args.compression,
        level=args.level,
        overwrite=args.overwrite,
        device=args.device,
    )
    _print_sizes("restored", s)
    return 0


# --- export -----------------------------------------------------------------------------


def _add_export(sub: _Subparsers) -> None:
    e = sub.add_parser(
        "export", help="write a model as ONNX: full pass, encoder, decoder (extra 'onnx')"
    )
    e.add_argument(
        "--onnx",
        required=True,
        metavar="OUT.onnx",
        help="full-pass file; OUT.encoder.onnx and OUT.decoder.onnx are written beside it",
    )
    e.add_argument("--model", default=None, help="model file (default: the shipped model)")
    e.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    e.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from .model.onnx_export import export_onnx

    res = export_onnx(args.onnx, args.model, overwrite=args.overwrite)
    for graph, path in res.paths.items():
        print(f"{graph:<8} {path}")
    print(f"source   sha256 {res.sha256}")
    worst = max(v for k, v in res.check.items() if not k.endswith("_fraction"))
    print(
        f"checked against TorchScript in ONNX Runtime on {res.rows} probe inputs: largest "
        f"deviation {worst:.3g} x tolerance (relative 1e-05); identical latents for "
        f"{100 * res.check['full.same_latent_fraction']:.2f}% of them, {res.ties} on a "
        "coarse-level rounding tie"
    )
    return 0


# --- main -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hepae", description="Autoencoder compression of jet data, checked with coffea."
    )
    parser.add_argument("--version", action="version", version=f"hepae-coffea {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser(
        "generate", help="generate a Pythia 8 jet sample (needs the 'generate' extra)"
    )
    g.add_argument(
        "--process", required=True, choices=["qcd", "qcd_flat", "wjets", "zjets", "ttbar", "zprime"]
    )
    g.add_argument("--events", type=_POSITIVE, required=True, help="number of events")
    g.add_argument("--seed", type=int, default=1, help="Pythia random seed (1..900000000)")
    g.add_argument("--pthat-min", type=float, default=None, help="QCD pTHatMin in GeV (default 50)")
    g.add_argument("--pthat-max", type=float, default=None, help="pTHatMax in GeV (a pT-hat slice)")
    g.add_argument(
        "--bias-pow",
        type=float,
        default=None,
        help="flatten the pT-hat spectrum by (pTHat/ref)^POW, events weighted (genWeight); 0: off",
    )
    g.add_argument("--bias-ref", type=float, default=None, help="bias reference pT-hat in GeV")
    g.add_argument("--jet-ptmin", type=float, default=20.0, help="minimum jet pT in GeV (20)")
    g.add_argument(
        "--jet-etamax", type=float, default=None, help="maximum jet |eta| (default: no cut)"
    )
    g.add_argument("-o", "--output", required=True, help="output ROOT file")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_cmd_generate)

    _add_train(sub)
    _add_run(sub)
    _add_plot(sub, "plot", report=False)
    _add_plot(sub, "report", report=True)
    _add_compress(sub)
    _add_export(sub)

    i = sub.add_parser("info", help="describe a model file (default: the shipped model)")
    i.add_argument("model", nargs="?", default=None)
    i.add_argument("--json", action="store_true", help="print the metadata as JSON")
    i.set_defaults(func=_cmd_info)

    d = sub.add_parser("demo", help="run the shipped model over the shipped sample")
    d.add_argument(
        "-o", "--output", default="demo-output", help="output folder (default demo-output)"
    )
    d.add_argument("--model", default=None, help="model file (default: the shipped model)")
    d.set_defaults(func=_cmd_demo)
    return parser


def command_names() -> tuple[str, ...]:
    """The subcommands of ``hepae``, in the order its help lists them."""
    actions = build_parser()._actions
    sub = next(a for a in actions if isinstance(a, argparse._SubParsersAction))
    return tuple(sub.choices)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hepae``; user mistakes give one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # font fallbacks of the ATLAS style are not the user's concern
    logging.getLogger("matplotlib").setLevel(max(level, logging.ERROR))
    # Dask failures end in one error line; distributed's own tracebacks only with -v
    if args.verbose == 0:
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
    try:
        with handle_termination():
            return int(args.func(args) or 0)
    except (HepaeError, FileNotFoundError, FileExistsError, ValueError, ImportError) as err:
        if args.verbose >= 2:  # -vv: the full traceback, for bug reports
            raise
        print(f"hepae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if not is_disk_full(err) or args.verbose >= 2:
            raise
        print(f"hepae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        # outputs' temporaries are removed and worker processes stopped by now; leave
        # at once, so that threads cut off mid-read add no noise at interpreter exit
        print(f"hepae {args.command}: terminated", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(143)
    except KeyboardInterrupt:
        print(f"hepae {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
