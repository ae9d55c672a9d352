"""hepae run: jets compressed and decompressed by the coffea processor, histograms saved."""

from __future__ import annotations

import argparse

from .model import model_metadata
from .options import BITS, POSITIVE, Subparsers, add_format_options, float_range, kv_pairs
from .summary import print_run_summary


def add_parser(sub: Subparsers) -> None:
    """Add ``run``."""
    p = sub.add_parser(
        "run", help="compress -> decompress ROOT files with the coffea processor, save hists"
    )
    p.add_argument("inputs", nargs="+", help="ROOT files and/or coffea fileset files (.json/.yaml)")
    p.add_argument("--model", default=None, help="model file (default: the shipped model)")
    p.add_argument("-o", "--output", default="results.coffea", help="output .coffea file")
    p.add_argument("--executor", choices=["iterative", "futures", "dask"], default="iterative")
    p.add_argument(
        "--workers", type=POSITIVE, default=2, help="worker processes (futures, local dask)"
    )
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    p.add_argument("--chunksize", type=POSITIVE, default=100_000, help="events per chunk")
    p.add_argument("--maxchunks", type=POSITIVE, default=None, help="at most N chunks per file")
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
    add_format_options(p)
    p.add_argument(
        "--field",
        action="append",
        metavar="VAR=NAME",
        help="model variable VAR is field NAME of the collection, repeatable",
    )
    p.add_argument(
        "--pt-min", type=float_range(0.0), default=None, help="jet selection: pt > X GeV"
    )
    p.add_argument(
        "--abs-eta-max",
        type=float_range(0.0, strict_lo=True),
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
        type=BITS,
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
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the processor over the inputs; print the summary, save the results."""
    from ..io.guards import check_outputs
    from ..model.handle import open_model
    from ..processing.run import build_fileset, output_paths, run, run_info, save_output, summarize

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
        fields=kv_pairs(args.field, "--field"),
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
        result.output, args.output, run_info(result, model_metadata(model)), summary=summary
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
    print_run_summary(summary)
    print(
        f"\n{result.jets} jets in {result.seconds:.1f} s ({result.jets_per_second:.3g} jets/s, "
        f"{result.executor} executor, {result.schema} schema)"
    )
    print("wrote " + ", ".join(str(f) for f in files))
    return 0
