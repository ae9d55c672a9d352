"""hepae export, info and demo: a model file as ONNX, its description, a run of it."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from .options import Subparsers
from .summary import print_run_summary, print_summary

if TYPE_CHECKING:
    from ..model.handle import ModelHandle


def add_parser(sub: Subparsers) -> None:
    """Add ``export``, ``info`` and ``demo``."""
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
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("info", help="describe a model file (default: the shipped model)")
    i.add_argument("model", nargs="?", default=None)
    i.add_argument("--json", action="store_true", help="print the metadata as JSON")
    i.set_defaults(func=cmd_info)

    d = sub.add_parser("demo", help="run the shipped model over the shipped sample")
    d.add_argument(
        "-o", "--output", default="demo-output", help="output folder (default demo-output)"
    )
    d.add_argument("--model", default=None, help="model file (default: the shipped model)")
    d.set_defaults(func=cmd_demo)


def model_metadata(model: ModelHandle) -> dict[str, Any]:
    """The model's metadata with the file's path (``"path"``), as stored with run results."""
    return {**model.metadata, "path": model.label}


def cmd_info(args: argparse.Namespace) -> int:
    """Print the model file's metadata, as a table or ``--json``."""
    from ..model.handle import open_model

    meta = model_metadata(open_model(args.model))
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
        print_summary(val, "validation set at training time")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the ONNX files; print them and how closely they match TorchScript."""
    from ..model.onnx_export import export_onnx

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


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the shipped model over the shipped sample; print the summary and outputs."""
    from ..demo import run_demo
    from ..io.guards import check_outputs

    check_outputs([args.model], [args.output])
    out = run_demo(args.output, model=args.model)
    print_run_summary(out["summary"])
    print(f"\nreport: {out['report']} (figures in {args.output}/plots/)")
    print(
        f"\nprocessor: {out['jets_per_second']:.3g} jets/s (tiny sample: start-up dominates); "
        f"model alone: {out['model_jets_per_second']:.3g} jets/s"
    )
    print(f"outputs in {args.output}/: " + ", ".join(sorted({p.name for p in out["files"]})))
    return 0
