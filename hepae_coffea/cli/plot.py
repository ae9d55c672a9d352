"""hepae plot and report: figures of a results file or a training run, the report page."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..plots import FIGURE_GROUPS as _GROUPS
from .options import Subparsers, add_trust_pickle, kv_pairs


def add_parser(sub: Subparsers) -> None:
    """Add ``plot`` and ``report``."""
    _add(sub, "plot", report=False)
    _add(sub, "report", report=True)


def _add(sub: Subparsers, name: str, report: bool) -> None:
    """Add ``name``; ``report`` writes the report page always."""
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
        "--figures",
        default=",".join(_GROUPS),
        help=f"groups of figures of the results file, comma-separated (default {','.join(_GROUPS)})",
    )
    p.add_argument(
        "--threshold",
        action="append",
        metavar="VAR=S68",
        help="sigma68 threshold for a variable's verdict, repeatable",
    )
    add_trust_pickle(p, "a .coffea results file itself (a pickle)")
    if not report:
        p.add_argument("--report", action="store_true", help="also write the report page")
    p.set_defaults(func=cmd_plot, force_report=report)


def cmd_plot(args: argparse.Namespace) -> int:
    """Write the figures (and the report page); print what was written."""
    from ..io.guards import check_outputs
    from ..plots.plotting import plot_results, plot_training
    from ..plots.report import write_report
    from ..processing.run import load_output

    if not args.results and not args.training:
        raise ValueError("give a results file and/or --training RUN_DIR")
    if bool(args.background) != bool(args.signal):
        raise ValueError("--background and --signal go together")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    figures = [f.strip() for f in args.figures.split(",") if f.strip()]
    unknown = sorted(set(figures) - set(_GROUPS))
    if unknown:
        raise ValueError(
            f"--figures: unknown group(s) {', '.join(unknown)}; choose from {', '.join(_GROUPS)}"
        )
    thresholds = kv_pairs(args.threshold, "--threshold", float)
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
                figures=figures,
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
